"""Wire emulation of `POST /v1/responses`: the bodies, SSE events and errors the real API sends.

Lives here: `ResponsesEndpoint`, the HTTP handler half of `FakeOpenAI` (auth, JSON parsing, validation,
plain and `stream=True` answers, the 404 for unknown routes); the body builders (`build_output`,
`build_response`, `compute_usage`), the SSE sequence (`stream_events`); and request validation
(`validate_request` with the `ResponseStore` behind `previous_response_id`).

What to answer is decided by the script in `responses_script.py`. Shapes follow
/work/shared/reference/openai-wire-protocol.md section 2 and were checked against the SDK 3.57.0 types
in `openai/types/responses/` (`Response`, `ResponseUsage`, `ResponseFunctionToolCall`,
`ResponseOutputMessage` and the stream event classes). Every field the SDK marks as required is sent,
because the SDK's lenient parsing only fails later, when application code reads a missing attribute.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from aiohttp import web

from .responses_script import BrokenStream, ErrorReply, RawReply, Reply, input_items, message_text

__all__ = [
    "IdFactory",
    "ResponseStore",
    "ResponsesEndpoint",
    "argument_deltas",
    "build_output",
    "build_response",
    "compute_usage",
    "estimate_tokens",
    "retry_after_headers",
    "stream_events",
    "validate_request",
    "word_deltas",
]

_NO_RETRY = {"x-should-retry": "false"}


# --------------------------------------------------------------------------------------------------
# Shared with the Realtime side (realtime*.py): ids, token estimates, how text is cut into deltas


class IdFactory:
    """Deterministic ids (`call_1`, `fc_1`, `msg_1`, `resp_1`, ...), one counter per prefix."""

    def __init__(self) -> None:
        self._counters: dict[str, int] = {}

    def next(self, prefix: str) -> str:
        value = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = value
        return f"{prefix}_{value}"


def estimate_tokens(text: str) -> int:
    """~4 characters per token, OpenAI's own rule of thumb: deterministic and plausible (0 for "")."""
    return math.ceil(len(text) / 4)


def word_deltas(text: str) -> list[str]:
    """Word-sized deltas whose concatenation is exactly `text`, whitespace included ([] for "")."""
    return [chunk for chunk in re.findall(r"\S*\s*", text) if chunk]


def argument_deltas(arguments: str, pieces: int = 3) -> list[str]:
    """Function-call `arguments` cut into `pieces` deltas ([] for "")."""
    size = max(1, math.ceil(len(arguments) / pieces))
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def retry_after_headers(seconds: float) -> dict[str, str]:
    """`retry-after` (whole seconds, rounded up) and `retry-after-ms`, as the real API sends with a 429."""
    return {"retry-after": str(max(1, math.ceil(seconds))), "retry-after-ms": str(max(1, math.ceil(seconds * 1000)))}


# --------------------------------------------------------------------------------------------------
# Body builders


def compute_usage(
    request: Mapping[str, Any], output: Sequence[Mapping[str, Any]], override: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Deterministic usage: ~len(json of instructions + input + tools) / 4 in, ~len(output) / 4 out."""
    prompt = json.dumps(
        [request.get("instructions"), request.get("input"), request.get("tools")],
        separators=(",", ":"),
        sort_keys=True,
        default=str,
    )
    produced = "".join(
        item.get("arguments", "") + item.get("name", "")
        if item.get("type") == "function_call"
        else message_text(item.get("content"))
        for item in output
    )
    usage: dict[str, Any] = {
        "input_tokens": estimate_tokens(prompt),
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        # An answer costs at least one token, even an empty one.
        "output_tokens": max(1, estimate_tokens(produced)) if output else 0,
        "output_tokens_details": {"reasoning_tokens": 0},
    }
    override = dict(override or {})
    for nested in ("input_tokens_details", "output_tokens_details"):
        if nested in override:
            usage[nested] = {**usage[nested], **override.pop(nested)}
    usage.update(override)
    usage.setdefault("total_tokens", usage["input_tokens"] + usage["output_tokens"])
    return usage


def build_output(reply: Reply, ids: IdFactory) -> list[dict[str, Any]]:
    """The `output` items of a finished response (message first, then calls, like the real model).

    In an incomplete response (cut off at max_output_tokens) the items are `incomplete` too.
    """
    output: list[dict[str, Any]] = []
    item_status = "incomplete" if reply.status == "incomplete" else "completed"
    if reply.text is not None:
        output.append(
            {
                "type": "message",
                "id": ids.next("msg"),
                "role": "assistant",
                "status": item_status,
                "content": [{"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}],
            }
        )
    for call in reply.function_calls:
        output.append(
            {
                "type": "function_call",
                "id": ids.next("fc"),
                "call_id": call.call_id or ids.next("call"),
                "name": call.name,
                "arguments": call.arguments_json(),
                "status": item_status,
            }
        )
    return output


def build_response(
    request: Mapping[str, Any],
    *,
    response_id: str,
    created_at: int,
    status: str,
    output: list[dict[str, Any]],
    usage: Mapping[str, Any] | None,
    incomplete_reason: str | None = None,
    error: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A full `Response` object, echoing the request's settings the way the real API does."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": created_at if status == "completed" else None,
        "background": False,
        "error": dict(error) if error else None,
        "incomplete_details": {"reason": incomplete_reason} if status == "incomplete" else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": request.get("max_tool_calls"),
        "model": request.get("model"),
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "prompt_cache_key": request.get("prompt_cache_key"),
        "reasoning": request.get("reasoning") or {"effort": None, "summary": None},
        "safety_identifier": request.get("safety_identifier"),
        "service_tier": request.get("service_tier") or "default",
        "store": request.get("store", True),
        "temperature": request.get("temperature", 1.0),
        "text": request.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p", 1.0),
        "truncation": request.get("truncation") or "disabled",
        "usage": dict(usage) if usage is not None else None,
        "user": None,
        "metadata": request.get("metadata") or {},
    }


def stream_events(
    request: Mapping[str, Any],
    *,
    response_id: str,
    created_at: int,
    final_status: str,
    output: list[dict[str, Any]],
    usage: Mapping[str, Any],
    incomplete_reason: str | None = None,
    stream_error: ErrorReply | None = None,
    broken: BrokenStream | None = None,
) -> Iterator[dict[str, Any]]:
    """The SSE event sequence for one streamed response, without `sequence_number` (added by the sender).

    Order per item type is the one in the wire doc section 2 (and what the SDK's
    `responses.stream()` accumulator checks: stable ids per `output_index`). With `broken`, `output`
    is the one message whose words go out before the break: an `error` or `response.failed` event
    ends the sequence, or nothing does (`"cut"`: the sender drops the connection).
    """

    def snapshot(
        status: str, items: list[dict[str, Any]], with_usage: bool, error: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return build_response(
            request,
            response_id=response_id,
            created_at=created_at,
            status=status,
            output=items,
            usage=usage if with_usage else None,
            incomplete_reason=incomplete_reason,
            error=error,
        )

    yield {"type": "response.created", "response": snapshot("in_progress", [], False)}
    yield {"type": "response.in_progress", "response": snapshot("in_progress", [], False)}
    if stream_error is not None:
        error = stream_error.body()["error"]
        yield {"type": "error", "code": error["code"], "message": error["message"], "param": error["param"]}
        return

    if broken is not None:
        yield from _broken_stream_events(output[0], broken, snapshot)
        return

    for index, item in enumerate(output):
        if item["type"] == "function_call":
            yield {
                "type": "response.output_item.added",
                "output_index": index,
                "item": {**item, "arguments": "", "status": "in_progress"},
            }
            for delta in argument_deltas(item["arguments"]) or [""]:
                yield {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item["id"],
                    "output_index": index,
                    "delta": delta,
                }
            yield {
                "type": "response.function_call_arguments.done",
                "item_id": item["id"],
                "output_index": index,
                "name": item["name"],
                "arguments": item["arguments"],
            }
        else:
            text = item["content"][0]["text"]
            location = {"item_id": item["id"], "output_index": index, "content_index": 0}
            yield {
                "type": "response.output_item.added",
                "output_index": index,
                "item": {**item, "status": "in_progress", "content": []},
            }
            yield {
                "type": "response.content_part.added",
                **location,
                "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            }
            for delta in word_deltas(text) or [""]:
                yield {"type": "response.output_text.delta", **location, "delta": delta, "logprobs": []}
            yield {"type": "response.output_text.done", **location, "text": text, "logprobs": []}
            yield {"type": "response.content_part.done", **location, "part": item["content"][0]}
        yield {"type": "response.output_item.done", "output_index": index, "item": item}

    final_type = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(
        final_status, "response.failed"
    )
    yield {"type": final_type, "response": snapshot(final_status, output, True)}


def _broken_stream_events(message: dict[str, Any], broken: BrokenStream, snapshot: Any) -> Iterator[dict[str, Any]]:
    """A message item that starts as usual, streams the words of `broken.text`, then breaks."""
    location = {"item_id": message["id"], "output_index": 0, "content_index": 0}
    partial = {**message, "status": "in_progress", "content": []}
    yield {"type": "response.output_item.added", "output_index": 0, "item": partial}
    yield {
        "type": "response.content_part.added",
        **location,
        "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
    }
    for delta in word_deltas(broken.text):
        yield {"type": "response.output_text.delta", **location, "delta": delta, "logprobs": []}
    if broken.how == "error":
        yield {"type": "error", "code": broken.code, "message": broken.message, "param": None}
    elif broken.how == "failed":
        # The failed response holds what was generated before the failure, still in progress.
        written = {**partial, "content": [{**message["content"][0], "text": broken.text}]}
        yield {
            "type": "response.failed",
            "response": snapshot("failed", [written], True, {"code": broken.code, "message": broken.message}),
        }


# --------------------------------------------------------------------------------------------------
# Request validation: the 400s the real API returns for the mistakes a tool loop typically makes.


class ResponseStore:
    """Responses created with `store` not false, so `previous_response_id` can be checked."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[str | None, list[Mapping[str, Any]], list[Mapping[str, Any]]]] = {}

    def save(self, response_id: str, request: Mapping[str, Any], output: list[dict[str, Any]]) -> None:
        self._items[response_id] = (request.get("previous_response_id"), input_items(request), output)

    def __contains__(self, response_id: object) -> bool:
        return response_id in self._items

    def chain_items(self, response_id: str) -> list[Mapping[str, Any]]:
        """Input and output items of a stored response and all of its ancestors, oldest first."""
        chain: list[Mapping[str, Any]] = []
        current: str | None = response_id
        while current is not None and current in self._items:
            parent, inputs, outputs = self._items[current]
            chain = [*inputs, *outputs, *chain]
            current = parent
        return chain

    def output(self, response_id: str) -> list[Mapping[str, Any]]:
        return self._items[response_id][2]


def validate_request(body: Mapping[str, Any], store: ResponseStore) -> ErrorReply | None:
    """Return the 400 the real API would send for this body, or `None` when it is acceptable."""
    if not body.get("model"):
        return _bad_request("Missing required parameter: 'model'.", "missing_required_parameter", "model")

    for index, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, Mapping) or tool.get("type") != "function":
            continue
        if not tool.get("name"):
            return _bad_request(
                f"Missing required parameter: 'tools[{index}].name'.",
                "missing_required_parameter",
                f"tools[{index}].name",
            )
        if tool.get("strict") and isinstance(tool.get("parameters"), Mapping):
            problem = _strict_schema_problem(tool["parameters"], ())
            if problem:
                return _bad_request(
                    f"Invalid schema for function '{tool['name']}': {problem}",
                    "invalid_function_parameters",
                    f"tools[{index}].parameters",
                )

    previous_id = body.get("previous_response_id")
    history: list[Mapping[str, Any]] = []
    pending_from_previous: list[Mapping[str, Any]] = []
    if previous_id is not None:
        if previous_id not in store:
            return _bad_request(
                f"Previous response with id '{previous_id}' not found.",
                "previous_response_not_found",
                "previous_response_id",
            )
        history = store.chain_items(previous_id)
        pending_from_previous = [item for item in store.output(previous_id) if item.get("type") == "function_call"]

    items = input_items(body)
    known_calls = {item.get("call_id") for item in [*history, *items] if item.get("type") == "function_call"}
    answered = {item.get("call_id") for item in items if item.get("type") == "function_call_output"}
    for item in items:
        if item.get("type") == "function_call_output" and item.get("call_id") not in known_calls:
            return _bad_request(
                f"No tool call found for function call output with call_id {item.get('call_id')}.", None, "input"
            )
    # Every function call the model made must be answered before the conversation moves on:
    # calls in the inline input, and calls in the previous response being continued.
    answered_in_history = {item.get("call_id") for item in history if item.get("type") == "function_call_output"}
    for item in [*items, *pending_from_previous]:
        if item.get("type") != "function_call":
            continue
        call_id = item.get("call_id")
        if call_id not in answered and call_id not in answered_in_history:
            return _bad_request(f"No tool output found for function call {call_id}.", None, "input")
    return None


def _strict_schema_problem(schema: Mapping[str, Any], context: tuple[str, ...]) -> str | None:
    where = f"In context={context}, "
    types = schema.get("type")
    is_object = types == "object" or (isinstance(types, list) and "object" in types)
    if is_object:
        if schema.get("additionalProperties") is not False:
            return where + "'additionalProperties' is required to be supplied and to be false."
        properties = schema.get("properties") or {}
        required = schema.get("required") or []
        missing = [name for name in properties if name not in required]
        if missing:
            return (
                where + "'required' is required to be supplied and to be an array including every key in "
                f"properties. Missing '{missing[0]}'."
            )
        for name, sub in properties.items():
            if isinstance(sub, Mapping):
                problem = _strict_schema_problem(sub, (*context, "properties", name))
                if problem:
                    return problem
    if isinstance(schema.get("items"), Mapping):
        return _strict_schema_problem(schema["items"], (*context, "items"))
    for keyword in ("anyOf", "oneOf"):
        for position, sub in enumerate(schema.get(keyword) or []):
            if isinstance(sub, Mapping):
                problem = _strict_schema_problem(sub, (*context, keyword, str(position)))
                if problem:
                    return problem
    return None


def _bad_request(message: str, code: str | None, param: str | None) -> ErrorReply:
    return ErrorReply(400, message, error_type="invalid_request_error", code=code, param=param)


# --------------------------------------------------------------------------------------------------
# The HTTP handlers


class ResponsesEndpoint:
    """The HTTP half of `FakeOpenAI`: answers `POST /v1/responses` (and 404s anything else).

    Mixed into `FakeOpenAI` next to `ResponsesScript`, whose `_next_reply()` picks the answer and whose
    recordings it fills; the knobs it reads (`latency`, `stream_event_delay`, `start_together`, `require_auth`,
    `validate_requests`) and `_ids`/`_store` are set by `FakeOpenAI.__init__`.
    """

    def _record(self, request: web.Request, body: Any) -> dict[str, Any]:
        record = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": {key.lower(): value for key, value in request.headers.items()},
            "json": body,
            "body": body,
            "received_at": time.monotonic(),
        }
        with self._lock:
            self.requests.append(record)
        return record

    def _auth_error(self, request: web.Request) -> ErrorReply | None:
        if not self.require_auth:
            return None
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not key.strip():
            return ErrorReply(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="",
            )
        return None

    async def _handle_responses(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self._record(request, body)

        problem = self._auth_error(request)
        if problem is None and not isinstance(body, dict):
            problem = ErrorReply(400, "We could not parse the JSON body of your request.", code="invalid_json")
        if problem is None and self.validate_requests:
            problem = validate_request(body, self._store)
        if problem is not None:
            # Client mistakes don't consume the script: the test's next scripted reply is still there.
            return self._error_response(problem)
        # The limits are checked before anything runs; a refused request consumes no script either.
        refused = self._over_rate_limit(body)
        if refused is not None:
            return self._error_response(refused)

        reply, delay = self._next_reply(body)
        if self.start_together:
            await self._wait_for_company()
        if delay + self.latency > 0:
            await asyncio.sleep(delay + self.latency)

        if isinstance(reply, RawReply):
            with self._lock:
                self.replies.append({"status": reply.status, "json": reply.body})
            return web.json_response(reply.body, status=reply.status, headers=self._headers(reply.headers))
        if isinstance(reply, ErrorReply) and not (reply.mid_stream and body.get("stream")):
            return self._error_response(reply)
        if isinstance(reply, BrokenStream) and not body.get("stream"):
            if reply.how == "cut":
                return await self._cut(request)
            return self._error_response(ErrorReply(500, reply.message, code=reply.code))

        response_id = self._ids.next("resp")
        created_at = int(time.time())
        if isinstance(reply, ErrorReply):
            # Mid-stream failure: the body the client sees is the stream itself.
            return await self._stream(request, body, response_id, created_at, Reply(), stream_error=reply)

        if isinstance(reply, BrokenStream):
            return await self._stream(request, body, response_id, created_at, Reply(text=reply.text), broken=reply)
        if body.get("stream"):
            return await self._stream(request, body, response_id, created_at, reply)

        output = build_output(reply, self._ids)
        payload = build_response(
            body,
            response_id=response_id,
            created_at=created_at,
            status=reply.status,
            output=output,
            usage=compute_usage(body, output, reply.usage),
            incomplete_reason=reply.incomplete_reason,
        )
        self._remember(body, response_id, output, payload)
        return web.json_response(payload, headers=self._headers())

    async def _wait_for_company(self) -> None:
        """Hold this request until `start_together` requests are held, then release them together
        (all on the fake's own event loop, so no lock is needed)."""
        if self._company is None:
            self._company = (asyncio.Event(), [0])
        released, held = self._company
        held[0] += 1
        if held[0] >= self.start_together:
            self._company = None
            released.set()
        await released.wait()

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        response_id: str,
        created_at: int,
        reply: Reply,
        *,
        stream_error: ErrorReply | None = None,
        broken: BrokenStream | None = None,
    ) -> web.StreamResponse:
        output = build_output(reply, self._ids)
        usage = compute_usage(body, output, reply.usage)
        response = web.StreamResponse(
            headers=self._headers({"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"})
        )
        await response.prepare(request)
        final: dict[str, Any] | None = None
        events = stream_events(
            body,
            response_id=response_id,
            created_at=created_at,
            final_status=reply.status,
            output=output,
            usage=usage,
            incomplete_reason=reply.incomplete_reason,
            stream_error=stream_error,
            broken=broken,
        )
        first_text_at: float | None = None
        for sequence_number, event in enumerate(events):
            event = {**event, "sequence_number": sequence_number}
            if "response" in event:
                final = event["response"]
            # The SDK only reads `data:` lines; `event:` is sent because the real API sends it.
            chunk = f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"
            if first_text_at is None and event["type"] == "response.output_text.delta":
                first_text_at = time.monotonic()
            await response.write(chunk.encode())
            if self.stream_event_delay:
                await asyncio.sleep(self.stream_event_delay)
        if broken is not None and broken.how == "cut":
            # A pause before the cut, so that the client has read the words first: aiohttp drops
            # what it has buffered but not yet handed over once the connection fails.
            await asyncio.sleep(0.2)
            with self._lock:
                self.replies.append({"status": 200, "json": None, "broken": broken, "first_text_at": first_text_at})
            return await self._cut(request, response)
        await response.write_eof()
        if final is not None and stream_error is None and broken is None:
            self._remember(body, response_id, output, final, first_text_at=first_text_at)
        else:
            with self._lock:
                self.replies.append(
                    {
                        "status": 200,
                        "json": final,
                        "stream_error": stream_error,
                        "broken": broken,
                        "first_text_at": first_text_at,
                    }
                )
        return response

    async def _cut(self, request: web.Request, response: web.StreamResponse | None = None) -> web.StreamResponse:
        """Drop the connection: no more bytes, not even the chunked body's last chunk. What was
        written goes out first (close, not abort, which would discard it), then the FIN."""
        if response is None:
            with self._lock:
                self.replies.append({"status": None, "json": None, "cut": True})
        assert request.transport is not None
        request.transport.close()
        # aiohttp's own close of the handler's response would write to the aborted socket.
        raise asyncio.CancelledError

    def _remember(
        self,
        body: dict[str, Any],
        response_id: str,
        output: list[dict[str, Any]],
        payload: Any,
        *,
        first_text_at: float | None = None,
    ) -> None:
        with self._lock:
            entry: dict[str, Any] = {"status": 200, "json": payload}
            if body.get("stream"):
                entry["first_text_at"] = first_text_at
            self.replies.append(entry)
            if body.get("store", True) is not False:
                self._store.save(response_id, body, output)

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        # Every answer, errors included, carries the model's standing, as the real API's do.
        return {
            "x-request-id": self._ids.next("req"),
            "openai-processing-ms": "1",
            **self.rate_limits.headers(),
            **(extra or {}),
        }

    def _over_rate_limit(self, body: dict[str, Any]) -> ErrorReply | None:
        """The 429 the real API sends when this request does not fit the model's limits (it counts
        the prompt's estimated tokens plus max_output_tokens), else None (and it is counted)."""
        prompt = json.dumps([body.get("instructions"), body.get("input"), body.get("tools")], default=str)
        max_output = body.get("max_output_tokens")
        tokens = estimate_tokens(prompt) + (max_output if isinstance(max_output, int) else 0)
        refused = self.rate_limits.take(tokens)
        if refused is None:
            return None
        kind, wait = refused
        return ErrorReply(
            429,
            self.rate_limits.refusal_message(str(body.get("model")), kind, tokens, wait),
            error_type=kind,
            code="rate_limit_exceeded",
            headers=retry_after_headers(wait),
        )

    def _error_response(self, error: ErrorReply) -> web.Response:
        with self._lock:
            self.replies.append({"status": error.status, "json": error.body()})
        return web.json_response(
            error.body(), status=error.status, headers=self._headers({**_NO_RETRY, **error.headers})
        )

    async def _handle_unknown(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self._record(request, body)
        error = ErrorReply(
            404, f"Invalid URL ({request.method} {request.path})", error_type="invalid_request_error", code=""
        )
        return self._error_response(error)
