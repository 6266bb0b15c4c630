"""The customer's chat session cookie: signed, HttpOnly, read and written here only.

The chat page, the chat API, the live WebSocket and voice calls all find the customer's
conversation through this one cookie, so its name and signing salt are defined once.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

SESSION_COOKIE = "chatdesk_session"
SALT = "chat-session"
MAX_AGE_SECONDS = 7 * 24 * 3600


def set_session_cookie(response: object, session_id: str) -> None:
    response.set_signed_cookie(  # type: ignore[attr-defined]
        SESSION_COOKIE,
        session_id,
        salt=SALT,
        max_age=MAX_AGE_SECONDS,
        httponly=True,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )


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
