"""The OpenAPI schema (/api/schema/) says exactly what each route accepts and answers.

Its documentation (every operation, property and parameter described; three tags), its
security (CSRF on every POST, the staff session on staff routes), and the places where
the API and the schema used to disagree: the close answer, JSON-only bodies, the
pagination's page numbers, empty query parameters and numbers where strings belong.
tests/test_fuzz_api.py checks the rest by fuzzing the running server against it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from chatdesk.conversations import live
from tests.chat_customer import Customer

pytestmark = pytest.mark.django_db

TAGS = {"chat", "staff", "bookings"}
ROOT = Path(settings.BASE_DIR)


@pytest.fixture
def schema() -> dict:
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def staff() -> APIClient:
    client = APIClient()
    # Every permission (the policy is tested in test_permission_matrix): these tests are about shapes.
    client.force_login(get_user_model().objects.create_superuser("sam"))
    return client


def operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def undescribed_properties(node: object, where: str) -> list[str]:
    """Every property of every object schema under `node` that has no description."""
    missing = []
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            if not prop.get("description"):
                missing.append(f"{where}.{name}")
        for key, value in node.items():
            missing += undescribed_properties(value, f"{where}.{key}" if key != "properties" else where)
    elif isinstance(node, list):
        for item in node:
            missing += undescribed_properties(item, where)
    return missing


# --- documentation -------------------------------------------------------------------------------


def test_every_operation_has_a_summary_a_description_and_one_of_the_three_tags(schema):
    for label, operation in operations(schema):
        assert operation.get("summary"), label
        assert operation.get("description"), label
        assert len(operation.get("tags", [])) == 1 and operation["tags"][0] in TAGS, (label, operation.get("tags"))
    assert {tag["name"] for tag in schema["tags"]} == TAGS
    assert all(tag["description"] for tag in schema["tags"])


def test_every_property_and_parameter_has_a_description(schema):
    assert undescribed_properties(schema["components"]["schemas"], "components") == []
    for label, operation in operations(schema):
        assert undescribed_properties(operation, label) == []
        for parameter in operation.get("parameters", []):
            assert parameter.get("description"), (label, parameter["name"])
    for name, scheme in schema["components"]["securitySchemes"].items():
        assert scheme.get("description"), name


def test_the_description_check_finds_an_undescribed_property():
    # The check above is only worth something if it sees a property without one.
    node = {
        "A": {
            "properties": {
                "x": {"type": "string"},
                "y": {"description": "y", "type": "object", "properties": {"z": {}}},
            }
        }
    }
    assert undescribed_properties(node, "c") == ["c.A.x", "c.A.y.z"]


def test_the_schema_lists_neither_itself_nor_the_docs(schema):
    assert not [path for path in schema["paths"] if not path.startswith("/api/v1/")]


def test_every_error_answer_is_the_error_envelope(schema):
    for label, operation in operations(schema):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorOut", (label, status)
                assert response["description"], (label, status)
    envelope = schema["components"]["schemas"]["ErrorOut"]
    assert envelope["required"] == ["error", "message"]
    assert {"field", "fields", "retry_after"} <= set(envelope["properties"])


def test_every_body_is_json_only_and_a_post_needs_the_csrf_token(schema):
    for label, operation in operations(schema):
        if "requestBody" in operation:
            assert list(operation["requestBody"]["content"]) == ["application/json"], label
            assert "415" in operation["responses"], label
        staff_route = not label.startswith(("POST /api/v1/chat/", "GET /api/v1/chat/session/"))
        needs = {"cookieAuth"} if staff_route else set()
        if label.startswith("POST"):
            needs |= {"csrfToken", "csrfCookie"}
        assert [set(requirement) for requirement in operation["security"]] == [needs], label


def test_the_websocket_protocols_are_in_the_schema_description(schema):
    text = schema["info"]["description"]
    for socket in ("/api/v1/chat/live", "/api/v1/staff/live", "/api/v1/chat/voice/call"):
        assert f"`{socket}`" in text
    assert "PCM16" in text  # the voice protocol (voice/PROTOCOL.md) itself, not only a pointer


def test_every_message_type_the_live_consumers_send_or_read_is_documented():
    consumers = (ROOT / "chatdesk/web/consumers.py").read_text()
    docs = (ROOT / "docs/websockets.md").read_text()
    types = set(re.findall(r'"type": "(\w+)"', consumers)) | set(re.findall(r'"type"\) [!=]= "(\w+)"', consumers))
    assert types >= {"takeover", "staff_message", "pong", "ping", "watch", "watching", "summary", "event", "error"}
    for message_type in types:
        assert f'"type": "{message_type}"' in docs, message_type
    for code in re.findall(r"close\(code=(\d+)\)", consumers):
        assert f"| {code} |" in docs, code
    assert docs.count(f"| {live.LIVE_UNAVAILABLE_CLOSE} |") == 2  # both live sockets


# --- the answers match it ------------------------------------------------------------------------


def test_close_answers_the_number_and_status_as_the_schema_says(schema):
    dana = Customer()
    response = dana.client.post(
        f"/api/v1/chat/session/{dana.session_id}/close", json.dumps({}), content_type="application/json"
    )
    assert response.status_code == 200
    operation = schema["paths"]["/api/v1/chat/session/{session_id}/close"]["post"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    documented = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    # interaction_number: the same number under its name from before issue 10, for old clients.
    assert (
        set(response.json()) == set(documented["properties"]) == {"conversation_number", "interaction_number", "status"}
    )
    assert response.json()["status"] == "closed"


def test_a_form_body_is_refused_with_415_json():
    dana = Customer()
    response = dana.client.post(f"/api/v1/chat/session/{dana.session_id}/close", {"resolution": "booked"})
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


def test_a_form_body_to_the_staff_api_is_refused_with_415_json(staff):
    response = staff.post("/api/v1/bookings/", {"service": "hvac-repair"}, format="multipart")
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"page": "0"}, "page"),
        ({"page": "-1"}, "page"),
        ({"page": "last"}, "page"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "201"}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
    ],
)
def test_a_page_or_page_size_out_of_range_is_a_400(staff, query, field):
    response = staff.get("/api/v1/bookings/", query)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_input"
    assert field in response.json()["fields"]


def test_a_page_past_the_last_is_a_404_json_as_documented(staff, schema):
    response = staff.get("/api/v1/bookings/", {"page": "7"})
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert "404" in schema["paths"]["/api/v1/bookings/"]["get"]["responses"]
    page = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/bookings/"]["get"]["parameters"]}
    assert page["page"] == {"type": "integer", "minimum": 1}
    assert page["page_size"] == {"type": "integer", "minimum": 1, "maximum": 200}
    assert staff.get("/api/v1/bookings/", {"page": "1", "page_size": "200"}).status_code == 200


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/api/v1/bookings/", "service"),
        ("/api/v1/bookings/", "technician"),
        ("/api/v1/bookings/", "date_from"),
        ("/api/v1/chat/analytics", "until"),
        ("/api/v1/chat/analytics", "since"),
    ],
)
def test_an_empty_query_parameter_is_a_400_not_left_out(staff, url, parameter):
    response = staff.get(url, {parameter: ""})
    assert response.status_code == 400
    assert parameter in response.json()["fields"]


def test_a_number_where_the_schema_says_string_is_a_400():
    dana = Customer()
    response = dana.client.post(
        "/api/v1/chat/message",
        json.dumps({"session_id": dana.session_id, "message": 12345}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "message" in response.json()["fields"]
    assert not dana.conversation.messages.filter(text="12345").exists()


def test_a_number_for_a_staff_text_field_is_a_400(staff):
    response = staff.post(
        "/api/v1/bookings/",
        {"service": "hvac-repair", "start": "2026-11-17T10:00", "customer_name": 7, "customer_phone": 4165550123},
        format="json",
    )
    assert response.status_code == 400
    assert {"customer_name", "customer_phone"} <= set(response.json()["fields"])


def test_a_form_post_without_the_csrf_token_is_refused_403_before_its_media_type():
    browser = Client(enforce_csrf_checks=True)
    token = browser.get("/").cookies["csrftoken"].value
    session_id = browser.post("/api/v1/chat/session/new", HTTP_X_CSRFTOKEN=token).json()["session_id"]
    close = f"/api/v1/chat/session/{session_id}/close"
    # A form field is not where this API takes the token: still a 403, not a 415.
    refused = browser.post(close, {"csrfmiddlewaretoken": token})
    assert refused.status_code == 403
    assert browser.post(close, {"resolution": "booked"}, HTTP_X_CSRFTOKEN=token).status_code == 415
    assert browser.post(close, {}, content_type="application/json", HTTP_X_CSRFTOKEN=token).status_code == 200


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("PUT", "/api/v1/bookings/"),
        ("QUERY", "/api/v1/chat/session/abc/history"),
        ("DELETE", "/api/v1/chat/session/abc/close"),
        ("PATCH", "/api/v1/staff/conversations/open"),
        ("POST", "/api/v1/chat/analytics"),
    ],
)
def test_a_method_a_route_does_not_have_is_405_before_the_csrf_or_staff_check(method, url):
    # Anonymous and without a CSRF token: DRF used to answer these 403.
    response = Client(enforce_csrf_checks=True).generic(method, url)
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert method not in response["Allow"]


@pytest.mark.parametrize("session_id", ["a\x00b", "   ", 42, "x" * 65])
def test_the_voice_session_endpoint_refuses_what_its_schema_refuses_with_a_400(session_id):
    # A NUL reached PostgreSQL (psycopg DataError): a 500 the fuzzer found.
    response = Client().post("/api/v1/chat/voice/session", {"session_id": session_id}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert "session_id" in response.json()["fields"]


def test_the_schema_says_a_message_has_no_nul_and_is_not_blank(schema):
    pattern = schema["components"]["schemas"]["MessageInRequest"]["properties"]["message"]["pattern"]
    assert [bool(re.search(pattern, text)) for text in ("hi", " hi ", "  ", "h\x00i")] == [True, True, False, False]
    dana = Customer()
    for text in ("  ", "h\x00i"):
        response = dana.client.post(
            "/api/v1/chat/message",
            json.dumps({"session_id": dana.session_id, "message": text}),
            content_type="application/json",
        )
        assert response.status_code == 400, text


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded", "text/plain"])
def test_a_body_over_the_upload_limit_is_a_413_whatever_its_media_type(content_type, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = Client().post("/api/v1/chat/session/abc/close", "x" * 1001, content_type=content_type)
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    # At the limit it is read, and judged on its media type.
    small = Client().post("/api/v1/chat/session/abc/close", "x" * 1000, content_type="text/plain")
    assert small.status_code == 415
