"""The customer's chat session cookie: signed, HttpOnly, read and written here only.

The chat page, the chat API, the live WebSocket and voice calls all find the customer's
conversation through this one cookie, so its name and signing salt are defined once.

Inside the website widget the chat page is a third-party iframe on the business's site, where
browsers drop ordinary cookies (Chromium, Firefox and Safari block or partition third-party
cookies). A conversation started in the widget therefore lives in a partitioned cookie (CHIPS:
`Partitioned; SameSite=None; Secure`): the browser keeps it, keyed by the business's site, so
the conversation survives the host site's page changes and reloads, and no other site can use
it. `embedded` picks that kind; everything else keeps the first-party `SameSite=Lax` cookie.
"""

from __future__ import annotations

from http.cookies import Morsel

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

SESSION_COOKIE = "chatdesk_session"
SALT = "chat-session"
MAX_AGE_SECONDS = 7 * 24 * 3600


class _PartitionedMorsel(Morsel):
    """A cookie with the `Partitioned` attribute (Python's Morsel knows it only from 3.14)."""

    def OutputString(self, attrs: list[str] | None = None) -> str:
        return super().OutputString(attrs) + "; Partitioned"


def partition_cookie(response: HttpResponseBase, name: str) -> None:
    """Make the cookie `name` that `response` sets a partitioned one (`SameSite=None; Secure`).

    Secure is required by browsers for both attributes; http://localhost and http://127.0.0.1
    count as secure origins, so development and the tests work over plain HTTP.
    """
    morsel = response.cookies.get(name)
    if morsel is None:
        return
    partitioned = _PartitionedMorsel()
    partitioned.set(morsel.key, morsel.value, morsel.coded_value)
    for attribute, value in morsel.items():
        if value:
            partitioned[attribute] = value
    partitioned["samesite"] = "None"
    partitioned["secure"] = True
    # dict's own __setitem__: SimpleCookie's would copy the value into a plain Morsel again.
    dict.__setitem__(response.cookies, name, partitioned)


def set_session_cookie(response: HttpResponseBase, session_id: str, *, embedded: bool = False) -> None:
    response.set_signed_cookie(
        SESSION_COOKIE,
        session_id,
        salt=SALT,
        max_age=MAX_AGE_SECONDS,
        httponly=True,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )
    if embedded:
        partition_cookie(response, SESSION_COOKIE)


def delete_session_cookie(response: HttpResponseBase, *, embedded: bool = False) -> None:
    # A partitioned cookie is only removed by a deletion that is partitioned too.
    response.delete_cookie(SESSION_COOKIE, samesite="None" if embedded else None)
    if embedded:
        partition_cookie(response, SESSION_COOKIE)


def session_id_from_request(request: HttpRequest) -> str:
    """The chat session id in the request's cookie, or "" when it is missing or forged.

    With a default, get_signed_cookie returns it for a bad signature instead of raising.
    """
    return request.get_signed_cookie(SESSION_COOKIE, default="", salt=SALT)


def session_id_from_cookies(cookies: dict[str, str]) -> str:
    """The chat session id in a signed `chatdesk_session` cookie, or "" (WebSocket handshakes)."""
    # Through HttpRequest.get_signed_cookie, so the signing salt is always Django's own.
    request = HttpRequest()
    request.COOKIES = cookies
    return session_id_from_request(request)
