"""Log lines: JSON with the request id and the conversation number, never a phone number or a
session token; and the request id itself (made here, or taken from a trusted proxy, and echoed).

The same lines from real uvicorn workers are checked in tests/test_metrics_two_processes.py.
"""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from django.conf import settings as django_settings

from chatdesk.log_lines import ContextFilter, JsonFormatter, TextFormatter, scrub
from chatdesk.observability import context
from chatdesk.request_ids import RequestIdMiddleware

PHONE = "+1 (416) 555-0142"
SESSION_ID = "q3Vb9_xY-Zt0aBcDeFgHiJkLmNoPqRsTuVwXyZ012345"


def log_through(formatter: logging.Formatter, emit) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger("tests.log_lines")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue()


def emit_a_line_with_a_phone_and_a_token(logger: logging.Logger) -> None:
    token = context.request_id.set("req-7f3a")
    try:
        with context.conversation("INT-2026-000042"):
            logger.warning("Customer called back on %s, session_id=%s", PHONE, SESSION_ID)
            try:
                raise ValueError(f"lookup failed for {PHONE} in /api/v1/chat/session/{SESSION_ID}/history")
            except ValueError:
                logger.exception('GET /api/v1/chat/session/%s/history {"session_id": "%s"}', SESSION_ID, SESSION_ID)
    finally:
        context.request_id.reset(token)


def test_a_json_line_carries_the_request_and_the_conversation_and_no_phone_or_token():
    output = log_through(JsonFormatter(), emit_a_line_with_a_phone_and_a_token)
    lines = [json.loads(line) for line in output.splitlines()]
    assert len(lines) == 2  # one object a line, the traceback inside its line
    first, second = lines
    assert first["level"] == "WARNING" and first["logger"] == "tests.log_lines"
    assert first["request_id"] == "req-7f3a" and second["request_id"] == "req-7f3a"
    assert first["conversation"] == "INT-2026-000042" and second["conversation"] == "INT-2026-000042"
    assert first["message"] == "Customer called back on •••, session_id=•••"
    assert "ValueError: lookup failed for ••• in /api/v1/chat/session/•••/history" in second["exception"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    for text in (output, json.dumps(lines, ensure_ascii=False)):
        assert SESSION_ID not in text
        assert "555-0142" not in text and "5550142" not in text


def test_a_text_line_is_scrubbed_the_same_way():
    output = log_through(TextFormatter(), emit_a_line_with_a_phone_and_a_token)
    assert output.startswith("WARNING tests.log_lines [req-7f3a INT-2026-000042] Customer called back on •••")
    assert SESSION_ID not in output and "555-0142" not in output


def test_outside_a_request_the_fields_are_empty():
    line = json.loads(log_through(JsonFormatter(), lambda logger: logger.info("started")))
    assert (line["request_id"], line["conversation"], line["message"]) == ("", "", "started")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Left alone: what operators need, which only looks like digits.
        ("booking BK-2026-000123 for INT-2026-000042", "booking BK-2026-000123 for INT-2026-000042"),
        ('127.0.0.1:51234 - "GET / HTTP/1.1" 200', '127.0.0.1:51234 - "GET / HTTP/1.1" 200'),
        ("at 2026-11-17 10:00, 3 of 12 slots, 45 ms", "at 2026-11-17 10:00, 3 of 12 slots, 45 ms"),
        ("POST /api/v1/chat/session/new 201", "POST /api/v1/chat/session/new 201"),
        # Masked: phone numbers in the forms people type them.
        ("call 416-555-0142 or 555 0142", "call ••• or •••"),
        ("tel:+14165550142.", "tel:•••."),
        # Masked: secrets by name, path or header.
        ("GET /calendar/Zx8_aQ3r-long-feed-token.ics 200", "GET /calendar/•••.ics 200"),
        ("Authorization: Bearer sk-live-abcdef123456", "Authorization: Bearer •••"),
        ("csrftoken=abcDEF123; chatdesk_session=xyz:sig", "csrftoken=•••; chatdesk_session=•••"),
        ("Cookie: csrftoken=abc; chatdesk_session=xyz", "Cookie: •••"),
    ],
)
def test_scrub_masks_phones_and_secrets_only(text, expected):
    assert scrub(text) == expected


def test_production_logs_are_json_through_the_scrubbing_formatter():
    # tests.settings is production with DEBUG off: the handler Django configured is the JSON one.
    assert django_settings.LOG_FORMAT == "json"
    console = django_settings.LOGGING["handlers"]["console"]
    assert console["formatter"] == "json" and console["filters"] == ["context"]
    # uvicorn's access log (its paths carry session ids) goes through it too.
    assert django_settings.LOGGING["loggers"]["uvicorn.access"]["handlers"] == ["console"]


# --- the request id --------------------------------------------------------------------------------


async def run_asgi(scope: dict) -> tuple[str, dict]:
    """Run one request through the middleware: (the id the app saw, the response headers)."""
    seen: dict[str, str] = {}
    sent: list[dict] = []

    async def app(scope, receive, send):
        seen["id"] = context.request_id.get()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    await RequestIdMiddleware(app)(scope, receive, send)
    assert context.request_id.get() == ""  # nothing leaks past the request
    return seen["id"], dict(sent[0]["headers"])


def http_scope(peer: str, request_id: bytes | None = None) -> dict:
    headers = [(b"host", b"testserver")] + ([(b"x-request-id", request_id)] if request_id else [])
    return {"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (peer, 5000)}


async def test_each_request_gets_a_new_id_echoed_in_the_response(settings):
    settings.TRUSTED_PROXIES = []
    first, headers = await run_asgi(http_scope("203.0.113.9"))
    second, _ = await run_asgi(http_scope("203.0.113.9"))
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second
    assert headers[b"x-request-id"] == first.encode()
    assert headers[b"content-type"] == b"text/plain"


async def test_a_clients_own_request_id_is_ignored(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    seen, headers = await run_asgi(http_scope("203.0.113.9", b"i-choose-my-id"))
    assert seen != "i-choose-my-id" and headers[b"x-request-id"] == seen.encode()


async def test_a_trusted_proxys_request_id_is_kept_if_it_looks_like_one(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    seen, headers = await run_asgi(http_scope("10.1.2.3", b"0f9e8d7c6b5a49382716a5b4c3d2e1f0"))
    assert seen == "0f9e8d7c6b5a49382716a5b4c3d2e1f0" and headers[b"x-request-id"] == seen.encode()
    for forged in (b'x" , "level": "ERROR', b"a" * 65, b"line\nbreak"):
        seen, _ = await run_asgi(http_scope("10.1.2.3", forged))
        assert re.fullmatch(r"[0-9a-f]{32}", seen)


async def test_a_websocket_connection_gets_an_id_and_its_frames_pass_untouched():
    seen: dict[str, str] = {}
    frames: list[dict] = []

    async def app(scope, receive, send):
        seen["id"] = context.request_id.get()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "bytes": b"\x00\x01"})

    async def send(message):
        frames.append(message)

    scope = {"type": "websocket", "path": "/api/v1/chat/voice/call", "headers": [], "client": ("127.0.0.1", 1)}
    await RequestIdMiddleware(app)(scope, None, send)
    assert re.fullmatch(r"[0-9a-f]{32}", seen["id"])
    assert frames == [{"type": "websocket.accept"}, {"type": "websocket.send", "bytes": b"\x00\x01"}]
