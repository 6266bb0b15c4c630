"""The OpenAPI schema's wiring: what every operation shares, and the WebSocket protocols.

drf-spectacular runs `postprocess` on the finished schema (SPECTACULAR_SETTINGS). The
answers any route can give whatever the view does (413 and 415 for a body too large or not
JSON, 503 when the database or Redis is down: chatdesk.api_errors) are added here once,
instead of on every view; and the description carries the WebSocket protocols, which
OpenAPI cannot describe, so /api/docs/ shows them beside the HTTP API.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework.permissions import SAFE_METHODS

from chatdesk.conversations.models import Conversation

# ENUM_NAME_OVERRIDES takes an import path; Conversation.Status is a nested class.
CONVERSATION_STATUSES = Conversation.Status

INTRO = """AI receptionist for home-services businesses: customers chat (or call) to book, look up, move or \
cancel a technician's visit; staff watch and answer through the staff API.

Every error under `/api/` is JSON: the `ErrorOut` envelope, `{"error": "<code>", "message": "…"}`,
with `fields` for invalid input and `Retry-After` on 429. Unsafe requests need the CSRF token
(`X-CSRFToken` header, from the `csrftoken` cookie); the staff endpoints need a staff member's
admin session.
"""

PROTOCOL_FILES = ("docs/websockets.md", "voice/PROTOCOL.md")

ERROR_REF = "#/components/schemas/ErrorOut"


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ERROR_REF}}}}


# What any route may answer besides its own errors (chatdesk.api_errors): a body too large
# for Django to read, and a database or Redis that is briefly down.
TOO_LARGE = _error("too_large: the body is larger than the server reads.")
SERVICE_UNAVAILABLE = _error(
    "service_unavailable: the database or the cache is briefly unavailable; try again after Retry-After seconds."
)
UNSUPPORTED_MEDIA_TYPE = _error("unsupported_media_type: the body must be JSON (Content-Type: application/json).")


def description() -> str:
    """The intro, then each protocol document with its headings moved under the intro's level."""
    parts = [INTRO]
    for name in PROTOCOL_FILES:
        text = (Path(settings.BASE_DIR) / name).read_text()
        parts.append("\n".join("#" + line if line.startswith("#") else line for line in text.splitlines()))
    return "\n\n".join(parts)


def security(method: str, requirements: list[dict]) -> list[dict]:
    """What an operation really needs: the staff session for staff routes, the CSRF token for a POST.

    drf-spectacular lists the customer's CSRF scheme as optional (AllowAny adds `{}`) and
    leaves CSRF out of the staff routes, though Django refuses a POST without it on both. The
    CSRF schemes themselves (header and cookie) are chatdesk.web.api.CsrfEnforcedScheme's.
    """
    needs: dict = {}
    if any("cookieAuth" in requirement for requirement in requirements):
        needs["cookieAuth"] = []
    if method.upper() not in SAFE_METHODS:
        needs["csrfToken"] = []
        needs["csrfCookie"] = []
    return [needs] if needs else [{}]


def postprocess(result: dict, generator: object, request: object, public: bool) -> dict:
    result["info"]["description"] = description()
    schemes = result["components"].get("securitySchemes", {})
    if "cookieAuth" in schemes:
        schemes["cookieAuth"]["description"] = "A staff member's admin session cookie (log in at /admin/)."
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            operation["security"] = security(method, operation.get("security", []))
            if "requestBody" in operation:
                operation["responses"].setdefault("413", TOO_LARGE)
                operation["responses"].setdefault("415", UNSUPPORTED_MEDIA_TYPE)
            operation["responses"].setdefault("503", SERVICE_UNAVAILABLE)
    return result


class DocsView(SpectacularSwaggerView):
    """Swagger UI at /api/docs/, its inline script and style allowed by the CSP nonce."""

    template_name = "api/swagger_ui.html"


# DRF refuses a NUL character in any string, and a required, trimmed string that is only
# whitespace; the default mapping says neither (only minLength 1), so "  " or "a\x00" were
# valid strings the server refused.
# (drf-spectacular states an optional field's "" as a second oneOf branch, maxLength 0: the
# pattern leaves "" to that branch, or "" would match both.)
NO_NUL = r"^[^\x00]+$"
NOT_BLANK_NO_NUL = r"^[^\x00]*[^\s\x00][^\x00]*$"


class TextSchema(OpenApiSerializerFieldExtension):
    """A Text field (bookings.serializers.Text): no NUL, and not blank unless allowed."""

    target_class = "bookings.serializers.Text"

    def map_serializer_field(self, auto_schema: object, direction: str) -> dict:
        field = self.target
        schema = auto_schema._map_serializer_field(field, direction, bypass_extensions=True)  # type: ignore[attr-defined]
        schema["pattern"] = NOT_BLANK_NO_NUL if not field.allow_blank and field.trim_whitespace else NO_NUL
        return schema


class MessageTextSchema(OpenApiSerializerFieldExtension):
    """A message field: not blank, no NUL, at most CHAT_MAX_MESSAGE_CHARS (answered 413 beyond)."""

    target_class = "chatdesk.conversations.limits.MessageText"
    priority = 1

    def map_serializer_field(self, auto_schema: object, direction: str) -> dict:
        return {"type": "string", "pattern": NOT_BLANK_NO_NUL, "maxLength": settings.CHAT_MAX_MESSAGE_CHARS}
