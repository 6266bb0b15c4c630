"""`FakeTwilio`: a loopback HTTP server that speaks Twilio's Messages API as the SDK uses it.

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP basic auth (account SID and
auth token) and a form body (`To`, `From` or `MessagingServiceSid`, `Body`), answered as
Twilio does: 201 with the message resource (`sid` "SM" + 32 hex, `status` "queued"), 401 for
wrong credentials, 400 with Twilio's error JSON (`code`, `message`, `more_info`, `status`)
for a missing or invalid `To` (21604 / 21211), a missing `Body` (21602), no sender (21603)
and a number that replied STOP (21610). Tests point the real `twilio` SDK at it with
TWILIO_API_BASE_URL and script outages with `fail_next`.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from urllib.parse import parse_qs

MESSAGES = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-f]{32})/Messages\.json$")
E164 = re.compile(r"^\+[1-9]\d{7,14}$")


class FakeTwilio:
    def __init__(self, *, account_sid: str, auth_token: str, latency: float = 0.0) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.latency = latency
        self.unsubscribed: set[str] = set()
        """Numbers that replied STOP at Twilio: sending to them is error 21610."""
        self.requests: list[dict] = []
        """Every request: method, path, auth (user, password), form (one value per key)."""
        self.sent: list[dict] = []
        """Messages accepted (201), in order: sid, to, from, body."""
        self._failures: list[tuple[int, int | None]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- scripting ------------------------------------------------------------------------

    def fail_next(self, times: int = 1, *, status: int = 503, code: int | None = None) -> None:
        """The next `times` requests fail with `status` (a 5xx outage by default)."""
        with self._lock:
            self._failures.extend([(status, code)] * times)

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake._handle(self)

            def do_GET(self) -> None:
                fake._reply(self, 405, {"code": 20004, "message": "Method not allowed", "status": 405})

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    # --- the API --------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length).decode()
        form = {key: values[0] for key, values in parse_qs(raw, keep_blank_values=True).items()}
        auth = _basic_auth(request.headers.get("Authorization", ""))
        with self._lock:
            self.requests.append({"method": "POST", "path": request.path, "auth": auth, "form": form})
            failure = self._failures.pop(0) if self._failures else None
        if self.latency:
            time.sleep(self.latency)
        match = MESSAGES.match(request.path)
        if match is None:
            return self._error(request, 404, 20404, "The requested resource was not found")
        if auth != (self.account_sid, self.auth_token) or match.group(1) != self.account_sid:
            return self._error(request, 401, 20003, "Authenticate")
        if failure is not None:
            status, code = failure
            return self._error(request, status, code or 20500, "Internal Server Error")
        to = form.get("To", "")
        if not to:
            return self._error(request, 400, 21604, "A 'To' phone number is required.")
        if not E164.match(to):
            return self._error(request, 400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not form.get("Body"):
            return self._error(request, 400, 21602, "Message body is required.")
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return self._error(request, 400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.")
        if to in self.unsubscribed:
            return self._error(request, 400, 21610, "Attempt to send to unsubscribed recipient")
        sid = "SM" + secrets.token_hex(16)
        with self._lock:
            self.sent.append({"sid": sid, "to": to, "from": form.get("From", ""), "body": form["Body"]})
        self._reply(
            request,
            201,
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": to,
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "body": form["Body"],
                "status": "queued",
                "direction": "outbound-api",
                "num_segments": "1",
                "num_media": "0",
                "price": None,
                "price_unit": "USD",
                "error_code": None,
                "error_message": None,
                "api_version": "2010-04-01",
                "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
                "date_updated": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
                "date_sent": None,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
                "subresource_uris": {"media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media.json"},
            },
        )

    def _error(self, request: BaseHTTPRequestHandler, status: int, code: int, message: str) -> None:
        self._reply(
            request,
            status,
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
        )

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


def _basic_auth(header: str) -> tuple[str, str] | None:
    if not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user, password
