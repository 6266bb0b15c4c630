"""Twilio: the one module that imports the `twilio` package (sending, and checking the
signature of its inbound webhooks).

`TWILIO_API_BASE_URL` points the client at another server with the same REST API (the tests'
loopback fake). It is done through the SDK's documented extension point for this, a custom
`http_client` (twilio-python's advanced-examples/custom-http-client.md: subclass
`TwilioHttpClient` and override `request`); the SDK builds its requests as usual, and only
the scheme and host of each URL are swapped before they go out.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from bookings.sms import SmsBackend, SmsRejected

# Twilio error codes that mean "never to this number" (not "try later").
UNSUBSCRIBED = 21610  # the recipient replied STOP
PERMANENT = {21211, 21214, 21408, 21604, 21610, 21612, 21614, 30003, 30004, 30005, 30006}


class _BaseUrlHttpClient(TwilioHttpClient):
    """Sends every request to `base_url` (scheme and host) instead of Twilio's own hosts."""

    def __init__(self, base_url: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.base = urlsplit(base_url)

    def request(self, method: str, url: str, *args, **kwargs) -> Response:
        parts = urlsplit(url)
        url = urlunsplit((self.base.scheme, self.base.netloc, self.base.path + parts.path, parts.query, ""))
        return super().request(method, url, *args, **kwargs)


def _client() -> Client:
    timeout = settings.SMS_TIMEOUT_SECONDS
    if settings.TWILIO_API_BASE_URL:
        http_client = _BaseUrlHttpClient(settings.TWILIO_API_BASE_URL, timeout=timeout)
    else:
        http_client = TwilioHttpClient(timeout=timeout)
    return Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=http_client)


class TwilioBackend(SmsBackend):
    """Sends through Twilio's Messages API from TWILIO_FROM (a number, or a Messaging Service SID)."""

    def __init__(self) -> None:
        self.client = _client()

    def send(self, *, to: str, body: str) -> str:
        sender = settings.TWILIO_FROM
        sender_args = {"messaging_service_sid": sender} if sender.startswith("MG") else {"from_": sender}
        try:
            message = self.client.messages.create(to=to, body=body, **sender_args)
        except TwilioRestException as error:
            # A bad request (a bad number, a STOP): this message will never go. Bad credentials
            # (401/403), a rate limit (429) and Twilio's own errors (5xx): try again later.
            if error.status in (400, 404) or error.code in PERMANENT:
                raise SmsRejected(
                    f"Twilio {error.code}: {error.msg}", code=str(error.code), unsubscribed=error.code == UNSUBSCRIBED
                ) from error
            raise
        return message.sid


def signature_valid(*, url: str, params: dict[str, str], signature: str) -> bool:
    """Whether an inbound webhook really comes from Twilio: `signature` (X-Twilio-Signature)
    over the exact public `url` Twilio called and its POST `params`, with our auth token."""
    if not settings.TWILIO_AUTH_TOKEN or not signature:
        return False
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(url, params, signature)


def twiml_reply(text: str | None) -> str:
    """The webhook's answer: TwiML with one reply message, or an empty response (no reply)."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)
