"""The fake OpenAI server works with the unmodified `openai` SDK (no patching, real loopback sockets)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.error
import urllib.request

import openai
import pytest
import websockets

from tests.fake_openai import (
    FakeOpenAI,
    FunctionCall,
    Reply,
    fake_openai_fixture,  # noqa: F401  (registers the `fake_openai` fixture)
    last_function_call_output,
    last_user_text,
)
from tests.fake_openai.audio import b64, rms_pcm16, silence_pcm16, sine_pcm16
from tests.fake_openai.audio import chunks as audio_chunks

MODEL = "gpt-6-luna"

TOOLS = [
    {
        "type": "function",
        "name": "get_available_services",
        "description": "List bookable services of a trade.",
        "parameters": {
            "type": "object",
            "properties": {"trade": {"type": "string"}},
            "required": ["trade"],
            "additionalProperties": False,
        },
        "strict": True,
    },
    {
        "type": "function",
        "name": "resolve_date",
        "description": "Turn a phrase like 'Friday' into a date.",
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
            "additionalProperties": False,
        },
        "strict": True,
    },
]


def client_for(fake: FakeOpenAI, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0, **kwargs)


def ask(client: openai.OpenAI, text: str = "Can someone fix my AC on Friday?", **kwargs):
    return client.responses.create(
        model=MODEL,
        instructions="You book HVAC visits.",
        input=[{"role": "user", "content": text}],
        tools=TOOLS,
        store=False,
        **kwargs,
    )


# --------------------------------------------------------------------------------------------------
# Responses API, non-streaming


def test_parallel_function_calls_are_parsed_by_the_sdk(fake_openai):
    fake_openai.queue_function_calls(
        [("get_available_services", {"trade": "hvac"}), ("resolve_date", {"text": "Friday"})]
    )

    response = ask(client_for(fake_openai))

    calls = [item for item in response.output if item.type == "function_call"]
    assert [call.name for call in calls] == ["get_available_services", "resolve_date"]
    assert [json.loads(call.arguments) for call in calls] == [{"trade": "hvac"}, {"text": "Friday"}]
    assert [call.call_id for call in calls] == ["call_1", "call_2"]
    assert all(call.status == "completed" and call.id for call in calls)
    assert response.status == "completed"
    assert response.model == MODEL
    assert response.parallel_tool_calls is True
    assert [tool.name for tool in response.tools] == ["get_available_services", "resolve_date"]
    assert response.output_text == ""


def test_text_reply_reaches_output_text_with_usage(fake_openai):
    fake_openai.queue_text("Alice can come on Friday at 9.")

    response = ask(client_for(fake_openai))

    assert response.output_text == "Alice can come on Friday at 9."
    message = response.output[0]
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].annotations == []
    usage = response.usage
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.input_tokens_details.cache_write_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0


def test_usage_is_deterministic_and_can_be_overridden(fake_openai):
    fake_openai.queue_text("Same answer.")
    fake_openai.queue_text("Same answer.")
    fake_openai.queue_text("Cached.", usage={"input_tokens": 2000, "input_tokens_details": {"cached_tokens": 1536}})
    client = client_for(fake_openai)

    first, second, third = ask(client), ask(client), ask(client)

    assert first.usage == second.usage
    assert third.usage.input_tokens == 2000
    assert third.usage.input_tokens_details.cached_tokens == 1536
    assert third.usage.total_tokens == 2000 + third.usage.output_tokens


def test_tool_loop_round_trip_is_recorded(fake_openai):
    fake_openai.queue_function_call("get_available_services", {"trade": "hvac"})
    fake_openai.respond_with(lambda body: f"Found: {last_function_call_output(body)['services'][0]}")
    client = client_for(fake_openai)
    history: list = [{"role": "user", "content": "Any HVAC services?"}]

    first = client.responses.create(model=MODEL, input=history, tools=TOOLS, store=False)
    call = first.output[0]
    # A pydantic output item goes straight back into `input`; the SDK serialises it.
    history += [call, {"type": "function_call_output", "call_id": call.call_id, "output": '{"services": ["Repair"]}'}]
    second = client.responses.create(model=MODEL, input=history, tools=TOOLS, store=False)

    assert second.output_text == "Found: Repair"
    assert len(fake_openai.requests) == 2
    sent = fake_openai.requests[1]
    assert sent["path"] == "/v1/responses"
    assert sent["headers"]["authorization"] == "Bearer sk-test"
    assert sent["headers"]["user-agent"].startswith("OpenAI/Python")
    assert [item.get("type") for item in sent["json"]["input"]] == [None, "function_call", "function_call_output"]
    assert sent["json"]["input"][1]["call_id"] == "call_1"


def test_responder_decides_from_the_input_and_none_means_default(fake_openai):
    fake_openai.default_text = "Sorry?"
    fake_openai.respond_with(lambda body: "Hi Alice!" if last_user_text(body) == "I am Alice" else None)
    client = client_for(fake_openai)

    assert ask(client, "I am Alice").output_text == "Hi Alice!"
    assert ask(client, "Hello").output_text == "Sorry?"


def test_empty_queue_answers_ok(fake_openai):
    assert ask(client_for(fake_openai)).output_text == "OK"
    assert fake_openai.pending_replies == 0


def test_malformed_arguments_are_sent_verbatim(fake_openai):
    fake_openai.queue_malformed_arguments("resolve_date", '{"text": "Friday"')

    call = ask(client_for(fake_openai)).output[0]

    assert call.arguments == '{"text": "Friday"'
    with pytest.raises(json.JSONDecodeError):
        json.loads(call.arguments)


def test_rate_limit_raises_without_retrying(fake_openai):
    fake_openai.queue_error(429, "rate limited")
    # Even with SDK retries on, `x-should-retry: false` makes it fail at once.
    client = openai.OpenAI(api_key="sk-test", base_url=fake_openai.base_url, max_retries=2)

    with pytest.raises(openai.RateLimitError) as raised:
        ask(client)

    assert raised.value.status_code == 429
    assert raised.value.code == "rate_limit_exceeded"
    assert "rate limited" in raised.value.message
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert len(fake_openai.requests) == 1


def test_server_error_raises_internal_server_error(fake_openai):
    fake_openai.queue_error(500, "upstream exploded")
    fake_openai.queue_text("recovered")
    client = client_for(fake_openai)

    with pytest.raises(openai.InternalServerError) as raised:
        ask(client)

    assert raised.value.type == "server_error"
    assert ask(client).output_text == "recovered"


def test_delay_beyond_client_timeout_raises_timeout(fake_openai):
    fake_openai.queue_delay(5)
    client = client_for(fake_openai, timeout=0.3)

    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        ask(client)

    assert time.monotonic() - started < 3
    assert ask(client).output_text == "OK"


def test_request_mistakes_get_the_real_apis_400s(fake_openai):
    client = client_for(fake_openai)

    with pytest.raises(openai.BadRequestError, match="No tool call found"):
        client.responses.create(
            model=MODEL, input=[{"type": "function_call_output", "call_id": "call_9", "output": "{}"}], store=False
        )
    with pytest.raises(openai.BadRequestError, match="No tool output found for function call call_1"):
        client.responses.create(
            model=MODEL,
            input=[{"type": "function_call", "call_id": "call_1", "name": "resolve_date", "arguments": "{}"}],
            store=False,
        )
    loose_tool = {**TOOLS[0], "parameters": {"type": "object", "properties": {"trade": {"type": "string"}}}}
    with pytest.raises(openai.BadRequestError, match="additionalProperties") as raised:
        client.responses.create(model=MODEL, input="hi", tools=[loose_tool])
    assert raised.value.param == "tools[0].parameters"
    assert fake_openai.pending_replies == 0


def test_previous_response_id_chains_stored_responses(fake_openai):
    fake_openai.queue_function_call("resolve_date", {"text": "Friday"})
    fake_openai.queue_text("Friday is the 20th.")
    client = client_for(fake_openai)

    first = client.responses.create(model=MODEL, input="When is Friday?", tools=TOOLS)
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": first.output[0].call_id, "output": "2026-11-20"}],
        tools=TOOLS,
    )

    assert second.output_text == "Friday is the 20th."
    assert second.previous_response_id == first.id
    with pytest.raises(openai.BadRequestError, match="not found"):
        client.responses.create(model=MODEL, previous_response_id="resp_404", input="hi")


def test_missing_api_key_is_401():
    with FakeOpenAI() as fake:
        # S310: the URL is the fake's own http://127.0.0.1 address.
        request = urllib.request.Request(fake.base_url + "/responses", data=b'{"model": "x"}', method="POST")  # noqa: S310
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(request, timeout=5)  # noqa: S310

    assert raised.value.code == 401
    assert json.loads(raised.value.read())["error"]["type"] == "invalid_request_error"


def test_unknown_endpoint_is_404(fake_openai):
    with pytest.raises(openai.NotFoundError):
        client_for(fake_openai).models.list()


# --------------------------------------------------------------------------------------------------
# Responses API, streaming


def test_streamed_text_and_calls_parse(fake_openai):
    fake_openai.queue(Reply(text="Let me check.", function_calls=[FunctionCall("resolve_date", {"text": "Friday"})]))

    events = list(ask(client_for(fake_openai), stream=True))

    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == "Let me check."
    arguments = "".join(event.delta for event in events if event.type == "response.function_call_arguments.delta")
    assert json.loads(arguments) == {"text": "Friday"}
    added = [event.item for event in events if event.type == "response.output_item.added"]
    assert added[1].type == "function_call" and added[1].name == "resolve_date" and added[1].call_id == "call_1"
    final = events[-1].response
    assert final.output_text == "Let me check."
    assert final.usage.total_tokens == final.usage.input_tokens + final.usage.output_tokens


def test_stream_helper_builds_the_final_response(fake_openai):
    fake_openai.queue_function_calls([("get_available_services", {"trade": "hvac"}), ("resolve_date", {"text": "Fri"})])
    client = client_for(fake_openai)

    with client.responses.stream(model=MODEL, input="hi", tools=TOOLS) as stream:
        for _event in stream:
            pass
        final = stream.get_final_response()

    assert [(item.name, item.call_id) for item in final.output] == [
        ("get_available_services", "call_1"),
        ("resolve_date", "call_2"),
    ]


def test_mid_stream_error_event(fake_openai):
    fake_openai.queue_error(500, "overloaded", mid_stream=True)

    events = list(ask(client_for(fake_openai), stream=True))

    assert [event.type for event in events] == ["response.created", "response.in_progress", "error"]
    assert events[-1].message == "overloaded"


def test_a_stream_that_breaks_with_an_error_event_after_some_words(fake_openai):
    fake_openai.queue_broken_stream("We can come on", how="error")

    events = list(ask(client_for(fake_openai), stream=True))

    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "We can come on"
    assert events[-1].type == "error"
    assert (events[-1].code, events[-1].param) == ("server_error", None)
    assert [event.sequence_number for event in events] == list(range(len(events)))


def test_a_stream_that_ends_with_a_failed_response_after_some_words(fake_openai):
    fake_openai.queue_broken_stream("We can come on", how="failed")

    events = list(ask(client_for(fake_openai), stream=True))

    assert events[-1].type == "response.failed"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code == "server_error"
    assert failed.output[0].content[0].text == "We can come on"


def test_a_cut_connection_fails_the_sdk_read_after_the_words_it_got(fake_openai):
    fake_openai.queue_broken_stream("We can come on", how="cut")
    got = []

    with pytest.raises(openai.APIConnectionError):
        for event in ask(client_for(fake_openai), stream=True):
            got.append(event)

    assert "".join(e.delta for e in got if e.type == "response.output_text.delta") == "We can come on"
    # The server is fine afterwards: the next request is answered.
    assert ask(client_for(fake_openai)).output_text == "OK"


def test_a_broken_stream_asked_without_streaming_is_a_500_or_a_dropped_connection(fake_openai):
    fake_openai.queue_broken_stream("We can", how="error")
    fake_openai.queue_broken_stream("We can", how="cut")

    with pytest.raises(openai.InternalServerError):
        ask(client_for(fake_openai))
    with pytest.raises(openai.APIConnectionError):
        ask(client_for(fake_openai))


def test_a_stream_records_when_its_first_words_went_out(fake_openai):
    fake_openai.stream_event_delay = 0.05
    fake_openai.queue_text("Hello there")
    asked = time.monotonic()

    events = list(ask(client_for(fake_openai), stream=True))

    # created, in_progress, item added and content part added go first, 50 ms apart.
    first_text_at = fake_openai.replies[-1]["first_text_at"]
    assert first_text_at - asked >= 0.2
    assert any(e.type == "response.output_text.delta" for e in events)


# --------------------------------------------------------------------------------------------------
# Async client and concurrency


async def test_async_client_and_latency_do_not_serialize(fake_openai):
    fake_openai.latency = 0.5
    fake_openai.queue_function_call("resolve_date", {"text": "Friday"})
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake_openai.base_url, max_retries=0)

    started = time.monotonic()
    responses = await asyncio.gather(
        *(client.responses.create(model=MODEL, input=f"question {n}", tools=TOOLS) for n in range(10))
    )
    elapsed = time.monotonic() - started

    assert elapsed < 2.5  # ten 0.5 s replies overlap instead of taking 5 s
    assert sum(1 for r in responses if r.output[0].type == "function_call") == 1
    assert sum(1 for r in responses if r.output_text == "OK") == 9
    assert fake_openai.requests[0]["headers"]["user-agent"].startswith("AsyncOpenAI/Python")
    await client.close()


async def test_start_together_holds_replies_until_that_many_requests_wait(fake_openai):
    # A benchmark's worst case: every reply's first words in the same instant.
    fake_openai.start_together = 3
    fake_openai.stream_event_delay = 0.01
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake_openai.base_url, max_retries=0)

    async def streamed(n: int) -> None:
        await asyncio.sleep(0.3 * n)  # the requests come 0.3 s apart
        stream = await client.responses.create(model=MODEL, input=f"question {n}", stream=True)
        async for _ in stream:
            pass

    await asyncio.gather(*(streamed(n) for n in range(3)))

    firsts = sorted(reply["first_text_at"] for reply in fake_openai.replies)
    received = sorted(request["received_at"] for request in fake_openai.requests)
    assert received[-1] - received[0] >= 0.5  # they came apart...
    assert firsts[-1] - firsts[0] < 0.1  # ...and were answered together, after the last came
    assert firsts[0] > received[-1]
    await client.close()


# --------------------------------------------------------------------------------------------------
# Realtime (GA) WebSocket

REALTIME_MODEL = "gpt-realtime-2.1-mini"
SESSION = {
    "type": "realtime",
    "instructions": "You book HVAC visits.",
    "output_modalities": ["audio"],
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": {"model": "gpt-4o-mini-transcribe", "language": "en"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500, "create_response": True},
        },
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
    },
}


def async_client_for(fake: FakeOpenAI) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)


async def receive_until(conn, event_type: str, timeout: float = 5.0) -> list:
    """All events up to and including the first one of `event_type`."""
    events = []
    async with asyncio.timeout(timeout):
        while True:
            event = await conn.recv()
            events.append(event)
            if event.type == event_type:
                return events


async def open_session(conn, session: dict | None = None) -> None:
    assert (await conn.recv()).type == "session.created"
    await conn.session.update(session=session or SESSION)
    assert (await conn.recv()).type == "session.updated"


async def speak(conn, loud_ms: int = 600, quiet_ms: int = 700) -> None:
    """Caller audio in 100 ms appends: a tone, then silence long enough for server VAD to end the turn."""
    for chunk in audio_chunks(sine_pcm16(loud_ms) + silence_pcm16(quiet_ms), 100):
        await conn.input_audio_buffer.append(audio=b64(chunk))


async def test_realtime_connect_and_session_update(fake_openai):
    async with async_client_for(fake_openai).realtime.connect(model=REALTIME_MODEL) as conn:
        created = await conn.recv()
        await conn.session.update(session=SESSION)
        updated = await conn.recv()

    assert created.type == "session.created"
    assert created.session.id.startswith("sess_") and created.session.model == REALTIME_MODEL
    assert updated.type == "session.updated"
    assert updated.session.audio.input.transcription.model == "gpt-4o-mini-transcribe"
    assert updated.session.audio.output.voice == "marin"
    assert updated.session.instructions == "You book HVAC visits."
    connection = fake_openai.realtime.connections[0]
    assert connection.query == {"model": REALTIME_MODEL}
    assert connection.headers["authorization"] == "Bearer sk-test"
    assert "openai-beta" not in connection.headers
    assert fake_openai.realtime.event_types() == ["session.update"]


async def test_realtime_session_update_is_validated(fake_openai):
    async with async_client_for(fake_openai).realtime.connect(model=REALTIME_MODEL) as conn:
        await conn.recv()
        await conn.send({"type": "session.update", "event_id": "evt_1", "session": {"instructions": "hi"}})
        missing_type = await conn.recv()
        bad_format = {"type": "realtime", "audio": {"output": {"format": {"type": "pcm16"}}}}
        await conn.send({"type": "session.update", "session": bad_format})
        pcm16 = await conn.recv()
        no_rate = {"type": "realtime", "audio": {"output": {"format": {"type": "audio/pcm"}}}}
        await conn.send({"type": "session.update", "session": no_rate})
        missing_rate = await conn.recv()

    assert missing_type.type == "error"
    assert missing_type.error.code == "missing_required_parameter"
    assert missing_type.error.param == "session.type"
    assert missing_type.error.event_id == "evt_1"
    assert pcm16.error.code == "invalid_value" and "'pcm16'" in pcm16.error.message
    assert missing_rate.error.code == "missing_required_parameter"
    assert missing_rate.error.param == "session.audio.output.format.rate"


async def test_realtime_vad_turn_gives_transcript_and_spoken_reply(fake_openai):
    fake_openai.realtime.queue_turn(
        transcript="I need a furnace repair", reply_text="Sure, when works for you?", audio_ms=1200
    )
    async with async_client_for(fake_openai).realtime.connect(model=REALTIME_MODEL) as conn:
        await open_session(conn)
        await speak(conn, loud_ms=600, quiet_ms=700)
        events = await receive_until(conn, "response.done")

    types = [event.type for event in events]
    assert types[:7] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
    ]
    assert types[7:12] == [
        "response.created",
        # The standing once the response has started, as the real API sends it.
        "rate_limits.updated",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
    ]
    assert types[-6:] == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    started, stopped, committed = events[0], events[1], events[2]
    assert started.audio_start_ms == 0 and stopped.audio_end_ms == 600
    assert started.item_id == stopped.item_id == committed.item_id
    transcription = events[6]
    assert transcription.transcript == "I need a furnace repair"
    assert transcription.usage.type == "tokens"

    audio = b"".join(base64.b64decode(e.delta) for e in events if e.type == "response.output_audio.delta")
    assert len(audio) == 1200 * 48
    assert rms_pcm16(audio) > 1000
    spoken = "".join(e.delta for e in events if e.type == "response.output_audio_transcript.delta")
    assert spoken == "Sure, when works for you?"
    done = events[-1].response
    assert done.status == "completed"
    assert done.output[0].content[0].type == "output_audio"
    assert done.output[0].content[0].transcript == spoken
    usage = done.usage
    assert usage.input_token_details.audio_tokens == 11  # 1100 ms committed (600 loud + 500 silence) / 100 ms
    assert usage.output_token_details.audio_tokens == 24  # 1200 ms / 50 ms
    assert usage.input_token_details.cached_tokens == 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert fake_openai.realtime.pcm_bytes_received == 1300 * 48


async def test_realtime_function_call_then_spoken_answer(fake_openai):
    fake_openai.realtime.queue_turn("Book me Friday", function_calls=[("resolve_date", {"text": "Friday"})])
    fake_openai.realtime.queue_reply("You're booked for Friday.", audio_ms=300)
    async with async_client_for(fake_openai).realtime.connect(model=REALTIME_MODEL) as conn:
        await open_session(conn)
        await speak(conn)
        first = await receive_until(conn, "response.done")
        call = first[-1].response.output[0]
        await conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": call.call_id, "output": '{"date": "2026-11-20"}'}
        )
        await conn.response.create()
        second = await receive_until(conn, "response.done")

    arguments_done = next(e for e in first if e.type == "response.function_call_arguments.done")
    assert (arguments_done.name, arguments_done.call_id) == ("resolve_date", call.call_id)
    assert json.loads(arguments_done.arguments) == {"text": "Friday"}
    assert call.type == "function_call" and call.status == "completed"
    assert not any(e.type == "response.output_audio.delta" for e in first)
    assert [e.type for e in second][:2] == ["conversation.item.added", "conversation.item.done"]
    assert second[-1].response.output[0].content[0].transcript == "You're booked for Friday."
    assert fake_openai.realtime.event_types()[-2:] == ["conversation.item.create", "response.create"]


async def test_realtime_responder_sees_the_conversation(fake_openai):
    def responder(items):
        last = items[-1]
        if last["type"] == "function_call_output":
            return f"The date is {json.loads(last['output'])['date']}."
        return ("resolve_date", {"text": "Friday"})

    fake_openai.realtime.respond_with(responder)
    async with async_client_for(fake_openai).realtime.connect(model=REALTIME_MODEL) as conn:
        await open_session(conn)
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "When is Friday?"}]}
        )
        await conn.response.create()
        call = (await receive_until(conn, "response.done"))[-1].response.output[0]
        output = {"type": "function_call_output", "call_id": call.call_id, "output": '{"date": "2026-11-20"}'}
        await conn.conversation.item.create(item=output)
        await conn.response.create()
        answer = (await receive_until(conn, "response.done"))[-1].response

    assert call.name == "resolve_date"
    assert answer.output[0].content[0].transcript == "The date is 2026-11-20."
    assert await fake_openai.realtime.wait_for_client_event_async("response.create", count=2)


async def test_realtime_truncate_is_checked_and_recorded(fake_openai):
    fake_openai.realtime.queue_reply("Here are the slots.", audio_ms=1000)
    async with async_client_for(fake_openai).realtime.connect(model=REALTIME_MODEL) as conn:
        await open_session(conn)
        await conn.response.create()
        events = await receive_until(conn, "response.done")
        item_id = events[-1].response.output[0].id
        await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=400)
        truncated = await conn.recv()
        await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=900)
        too_long = await conn.recv()

    assert truncated.type == "conversation.item.truncated"
    assert (truncated.item_id, truncated.content_index, truncated.audio_end_ms) == (item_id, 0, 400)
    assert fake_openai.realtime.truncations == [{"item_id": item_id, "content_index": 0, "audio_end_ms": 400}]
    assert too_long.type == "error" and too_long.error.param == "audio_end_ms"


async def test_realtime_truncating_a_user_item_is_rejected(fake_openai):
    async with async_client_for(fake_openai).realtime.connect(model=REALTIME_MODEL) as conn:
        await open_session(conn)
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
        )
        added = await conn.recv()
        await conn.recv()
        await conn.conversation.item.truncate(item_id=added.item.id, content_index=0, audio_end_ms=0)
        error = await conn.recv()

    assert error.type == "error" and error.error.code == "unsupported_content_type"


async def test_realtime_second_response_create_is_an_error_and_cancel_works(fake_openai):
    fake_openai.realtime.audio_pacing = 1.0  # stream in real time so the response stays active
    fake_openai.realtime.queue_reply("A long answer about furnaces.", audio_ms=3000)
    async with async_client_for(fake_openai).realtime.connect(model=REALTIME_MODEL) as conn:
        await open_session(conn)
        await conn.response.create()
        created = (await receive_until(conn, "response.created"))[-1]
        await conn.response.create()
        error = (await receive_until(conn, "error"))[-1]
        await conn.response.cancel()
        done = (await receive_until(conn, "response.done"))[-1]
        await conn.response.cancel()
        not_active = (await receive_until(conn, "error"))[-1]

    assert error.error.code == "conversation_already_has_active_response"
    assert created.response.id in error.error.message
    assert done.response.status == "cancelled"
    assert done.response.status_details.reason == "client_cancelled"
    assert done.response.output[0].status == "incomplete"
    assert not_active.error.code == "response_cancel_not_active"


async def test_realtime_barge_in_cancels_the_response(fake_openai):
    fake_openai.realtime.audio_pacing = 1.0
    fake_openai.realtime.queue_reply("Let me list every technician we have.", audio_ms=3000)
    async with async_client_for(fake_openai).realtime.connect(model=REALTIME_MODEL) as conn:
        await open_session(conn)
        await conn.response.create()
        await receive_until(conn, "response.output_audio.delta")
        await conn.input_audio_buffer.append(audio=b64(sine_pcm16(100)))
        events = await receive_until(conn, "response.done")

    types = [event.type for event in events]
    assert "input_audio_buffer.speech_started" in types
    assert types.index("input_audio_buffer.speech_started") < types.index("response.done")
    assert events[-1].response.status == "cancelled"
    assert events[-1].response.status_details.reason == "turn_detected"


async def test_realtime_upstream_drop_mid_response(fake_openai):
    fake_openai.realtime.queue_drop(after_chunks=2)
    async with async_client_for(fake_openai).realtime.connect(model=REALTIME_MODEL) as conn:
        await open_session(conn)
        await conn.response.create()
        received = []
        with pytest.raises(websockets.ConnectionClosedError) as raised:
            async with asyncio.timeout(5):
                async for event in conn:
                    received.append(event.type)

    assert received.count("response.output_audio.delta") == 2
    assert "response.done" not in received
    assert raised.value.rcvd is None  # no close frame: an abnormal closure (1006)
    assert fake_openai.realtime.connections[0].dropped


async def test_realtime_push_to_talk_commit(fake_openai):
    transcription = {"model": "gpt-4o-mini-transcribe"}
    session = {"type": "realtime", "audio": {"input": {"transcription": transcription, "turn_detection": None}}}
    async with async_client_for(fake_openai).realtime.connect(model=REALTIME_MODEL) as conn:
        await open_session(conn, session)
        await conn.input_audio_buffer.append(audio=b64(sine_pcm16(50)))
        await conn.input_audio_buffer.commit()
        too_short = await conn.recv()
        await conn.input_audio_buffer.append(audio=b64(sine_pcm16(200)))
        await conn.input_audio_buffer.commit()
        committed = await receive_until(conn, "conversation.item.input_audio_transcription.completed")

    assert too_short.error.code == "input_audio_buffer_commit_empty"
    types = [event.type for event in committed]
    assert types[0] == "input_audio_buffer.committed"
    assert "input_audio_buffer.speech_started" not in types  # VAD is off
    assert "response.created" not in fake_openai.realtime.sent_types()  # a commit doesn't start a response


async def test_realtime_text_modality(fake_openai):
    fake_openai.realtime.queue_reply("Written answer.")
    async with async_client_for(fake_openai).realtime.connect(model=REALTIME_MODEL) as conn:
        await open_session(conn, {**SESSION, "output_modalities": ["text"]})
        await conn.response.create()
        events = await receive_until(conn, "response.done")

    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Written answer."
    assert not any(e.type == "response.output_audio.delta" for e in events)
    assert events[-1].response.output[0].content[0].text == "Written answer."


async def test_realtime_beta_header_is_refused_like_the_real_api(fake_openai):
    client = async_client_for(fake_openai)
    with pytest.raises(websockets.ConnectionClosedError) as raised:
        async with client.realtime.connect(model=REALTIME_MODEL, extra_headers={"OpenAI-Beta": "realtime=v1"}) as conn:
            await conn.recv()

    assert raised.value.rcvd.code == 4000


def test_realtime_sync_client_works(fake_openai):
    client = openai.OpenAI(api_key="sk-test", base_url=fake_openai.base_url, max_retries=0)
    with client.realtime.connect(model=REALTIME_MODEL) as conn:
        assert conn.recv().type == "session.created"
        conn.session.update(session=SESSION)
        assert conn.recv().type == "session.updated"
