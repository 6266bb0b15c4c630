"""The OpenAPI schema's wiring: what every operation shares, and the WebSocket protocols.

drf-spectacular runs `postprocess` on the finished schema (SPECTACULAR_SETTINGS). The
answers any route can give whatever the view does (415 for a body that is not JSON, the
error envelope for them all) are added here once, instead of on every view; and the
description carries the WebSocket protocols, which OpenAPI cannot describe, so
/api/docs/ shows them beside the HTTP API.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework.permissions import SAFE_METHODS

from chatdesk.conversations.models import Interaction

# ENUM_NAME_OVERRIDES takes an import path; Interaction.Status is a nested class.
CONVERSATION_STATUSES = Interaction.Status

INTRO = """AI receptionist for home-services businesses: customers chat (or call) to book, look up, move or \
cancel a technician's visit; staff watch and answer through the staff API.

Every error under `/api/` is JSON: the `ErrorOut` envelope, `{"error": "<code>", "message": "…"}`,
with `fields` for invalid input and `Retry-After` on 429. Unsafe requests need the CSRF token
(`X-CSRFToken` header, from the `csrftoken` cookie); the staff endpoints need a staff member's
admin session.
"""

PROTOCOL_FILES = ("docs/websockets.md", "voice/PROTOCOL.md")

UNSUPPORTED_MEDIA_TYPE = {
    "description": "unsupported_media_type: the body must be JSON (Content-Type: application/json).",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
}


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
    csrfToken scheme itself is chatdesk.web.api.CsrfEnforcedScheme's.
    """
    needs: dict = {}
    if any("cookieAuth" in requirement for requirement in requirements):
        needs["cookieAuth"] = []
    if method.upper() not in SAFE_METHODS:
        needs["csrfToken"] = []
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
                operation["responses"].setdefault("415", UNSUPPORTED_MEDIA_TYPE)
    return result


class DocsView(SpectacularSwaggerView):
    """Swagger UI at /api/docs/, its inline script and style allowed by the CSP nonce."""

    template_name = "api/swagger_ui.html"
