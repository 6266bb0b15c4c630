"""The fake OpenAI server works with the unmodified `openai` SDK (no patching, real loopback sockets)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import openai
import pytest

from tests.fake_openai import (
    FakeOpenAI,
    FunctionCall,
    Reply,
    fake_openai_fixture,  # noqa: F401  (registers the `fake_openai` fixture)
    last_function_call_output,
    last_user_text,
)

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
