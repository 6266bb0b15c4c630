"""A loopback fake of the OpenAI API for tests: the real `openai` SDK talks to it over real HTTP/WebSocket.

Never patch the SDK; point it at the fake instead::

    from tests.fake_openai import fake_openai_fixture  # noqa: F401  (registers the `fake_openai` fixture)

    def test_books_a_visit(fake_openai):
        fake_openai.queue_function_calls([("get_available_services", {"trade": "hvac"})])
        fake_openai.queue_text("Alice can come on Friday at 9.")
        client = openai.OpenAI(api_key="sk-test", base_url=fake_openai.base_url, max_retries=0)
        ...
        assert fake_openai.requests[-1]["json"]["input"][-1]["type"] == "function_call_output"

Alternatively add `pytest_plugins = ["tests.fake_openai"]` to the root `tests/conftest.py` (pytest
only honours `pytest_plugins` there) to make `fake_openai` available everywhere.

The fixture is function-scoped: a fresh server on an ephemeral port per test, stopped afterwards. While
it runs, `OPENAI_BASE_URL` and `OPENAI_API_KEY` point at it (so `openai.OpenAI()` without arguments,
and child processes started by the test, use the fake), and `NO_PROXY` covers 127.0.0.1 so a proxy in
the environment can't swallow loopback traffic (websockets >= 15 honours proxy variables). Code that
copied those variables into Django settings at import time must be pointed at `fake_openai.base_url`
with the `settings` fixture.

Responses API (`POST /v1/responses`, plain and `stream=True`) scripting, see `FakeOpenAI`:
`queue_text`, `queue_function_calls`, `queue_function_call`, `queue_malformed_arguments`,
`queue_error`, `queue_broken_stream` (a stream that breaks after some words: an `error` event, a
`response.failed` event or a cut connection), `queue_delay`, `queue` (any reply spec), `respond_with(fn)`,
`default_text`, `latency`, `stream_event_delay` (seconds between SSE events: a model that writes slowly),
`start_together` (hold replies until that many requests wait, then start them in the same instant).
Recordings: `requests`, `replies`, `response_requests`, `last_request`.

Realtime (`GET /v1/realtime?model=...` WebSocket, GA protocol) scripting and recordings live on
`fake.realtime` (see `tests.fake_openai.realtime_script.FakeRealtime`): `queue_turn(transcript, reply_text,
audio_ms=...)`, `queue_transcript`, `queue_reply`, `queue_function_call(s)`, `queue_drop`,
`queue_failed_response`, `respond_with(fn)`, `audio_pacing` (real-time streaming, for barge-in);
recordings `events`, `sent`, `connections`, `truncations`, `pcm_bytes_received`,
`wait_for_client_event[_async]`. `tests.fake_openai.audio` makes loud (`sine_pcm16`) and silent
(`silence_pcm16`) PCM16 24 kHz audio and base64 (`b64`) for `input_audio_buffer.append`.

Outside pytest (a benchmark, a manual run) use `with FakeOpenAI() as fake: ...` or `.start()`/`.stop()`.

Where things live: each API has a scripting module (what tests call) and a wire module (what the SDK
sees), and neither needs the other's details to be read.

- `server.py`: `FakeOpenAI`, the server's lifecycle and routes; it mixes in the two Responses modules.
- `responses_script.py`: Responses API scripting (`queue_*`, `respond_with`, reply specs, recordings).
- `responses_api.py`: Responses API wire emulation (HTTP handler, bodies, SSE events, validation).
- `realtime_script.py`: Realtime scripting (`FakeRealtime`, `RealtimeReply`, recordings).
- `realtime.py`: Realtime wire emulation (handshake, event dispatch, responses, audio chunking), with
  `realtime_config.py` (the session object), `realtime_input.py` (input audio buffer and VAD) and
  `realtime_items.py` (conversation items).
- `audio.py`: PCM16 helpers for the fake and for tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .realtime_script import FakeRealtime, RealtimeConnection, RealtimeReply
from .responses_script import (
    BrokenStream,
    ErrorReply,
    FunctionCall,
    RawReply,
    Reply,
    function_call_outputs,
    last_function_call_output,
    last_user_text,
)
from .server import FakeOpenAI

__all__ = [
    "BrokenStream",
    "ErrorReply",
    "FakeOpenAI",
    "FakeRealtime",
    "FunctionCall",
    "RawReply",
    "RealtimeConnection",
    "RealtimeReply",
    "Reply",
    "fake_openai_fixture",
    "function_call_outputs",
    "last_function_call_output",
    "last_user_text",
]


# Registered under the name `fake_openai`; the function has another name so that importing it into a
# test module doesn't shadow (ruff F811) the `fake_openai` parameters of the tests.
@pytest.fixture(name="fake_openai")
def fake_openai_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """A running `FakeOpenAI` for one test, with the OpenAI env vars pointing at it."""
    with FakeOpenAI() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        for name in ("NO_PROXY", "no_proxy"):
            current = os.environ.get(name, "")
            monkeypatch.setenv(name, ",".join(filter(None, [current, "127.0.0.1", "localhost"])))
        yield fake
