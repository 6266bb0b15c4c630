"""Reply specs and wire bodies for the fake `POST /v1/responses` endpoint.

Shapes follow /work/shared/reference/openai-wire-protocol.md section 2 and were checked against the
SDK 3.57.0 types in `openai/types/responses/` (`Response`, `ResponseUsage`, `ResponseFunctionToolCall`,
`ResponseOutputMessage` and the stream event classes). Every field the SDK marks as required is sent,
because the SDK's lenient parsing only fails later, when application code reads a missing attribute.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ErrorReply",
    "FunctionCall",
    "RawReply",
    "Reply",
    "ReplySpec",
    "coerce_reply",
    "function_call_outputs",
    "last_function_call_output",
    "last_user_text",
]


@dataclass(frozen=True)
class FunctionCall:
    """One `function_call` output item.

    `arguments` is JSON-encoded when it is a mapping; a string is sent verbatim, which is how a test
    scripts a model that emits invalid JSON. `call_id` defaults to the next `call_<n>`.
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    call_id: str | None = None

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, separators=(",", ":"))


@dataclass
class Reply:
    """A successful scripted answer: optional assistant text, then zero or more function calls.

    `usage` overrides any of the computed usage fields (nested `input_tokens_details` and
    `output_tokens_details` are merged; `total_tokens` is recomputed unless given).
    `status="incomplete"` with `incomplete_reason="max_output_tokens"` simulates a cut-off answer.
    """

    text: str | None = None
    function_calls: Sequence[FunctionCall] = ()
    usage: Mapping[str, Any] | None = None
    status: Literal["completed", "incomplete", "failed"] = "completed"
    incomplete_reason: str | None = None


@dataclass
class ErrorReply:
    """A scripted HTTP error with the `{"error": {...}}` body the SDK turns into an exception.

    `x-should-retry: false` is always sent so a client with retries enabled still fails fast.
    With `mid_stream=True` a streaming request instead gets `200`, `response.created`, and then an
    `error` event, which is how a failure partway through a stream looks on the wire.
    """

    status: int
    message: str
    error_type: str | None = None
    code: str | None = None
    param: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    mid_stream: bool = False

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type or _default_error_type(self.status),
                "param": self.param,
                # None means "what the real API sends for this status"; "" means an explicit null.
                "code": (self.code if self.code is not None else _default_error_code(self.status)) or None,
            }
        }


@dataclass
class RawReply:
    """A body sent verbatim with the given status: for shapes the builders don't produce."""

    body: Any
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Delay:
    """Queue marker: wait this many seconds before sending the next reply."""

    seconds: float


# What a responder callable or `FakeOpenAI.queue()` accepts. `None` from a responder means
# "use the default reply".
ReplySpec = Reply | ErrorReply | RawReply | FunctionCall | str | Sequence[Any] | Mapping[str, Any] | None


def coerce_reply(spec: ReplySpec) -> Reply | ErrorReply | RawReply | None:
    """Turn the loose forms tests like to write into a reply object.

    - `"Hello"` -> a text reply;
    - `("get_x", {"a": 1})` or `FunctionCall(...)` -> one function call;
    - `[("get_x", {...}), ("get_y", {...})]` -> parallel function calls;
    - a `dict` -> sent verbatim as the JSON body (status 200);
    - `None` -> `None` (the caller falls back to the default reply).
    """
    if spec is None or isinstance(spec, Reply | ErrorReply | RawReply):
        return spec
    if isinstance(spec, str):
        return Reply(text=spec)
    if isinstance(spec, FunctionCall):
        return Reply(function_calls=[spec])
    if isinstance(spec, Mapping):
        return RawReply(body=dict(spec))
    if isinstance(spec, Sequence):
        if _looks_like_one_call(spec):
            return Reply(function_calls=[_to_call(spec)])
        return Reply(function_calls=[_to_call(item) for item in spec])
    raise TypeError(f"Unsupported reply spec: {spec!r}")


def _looks_like_one_call(spec: Sequence[Any]) -> bool:
    return len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], Mapping | str)


def _to_call(item: Any) -> FunctionCall:
    if isinstance(item, FunctionCall):
        return item
    if isinstance(item, Sequence) and not isinstance(item, str) and len(item) in (2, 3):
        return FunctionCall(*item)
    raise TypeError(f"Expected FunctionCall or (name, arguments) tuple, got {item!r}")


def _default_error_type(status: int) -> str:
    # These are the `type` values the real API uses for each class of failure.
    if status == 401:
        return "invalid_request_error"
    if status == 429:
        return "requests"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def _default_error_code(status: int) -> str | None:
    if status == 401:
        return "invalid_api_key"
    if status == 429:
        return "rate_limit_exceeded"
    return None


# --------------------------------------------------------------------------------------------------
# Helpers for responder callables


def _input_items(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = body.get("input")
    if isinstance(items, list):
        return [item for item in items if isinstance(item, Mapping)]
    return []


def function_call_outputs(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """All `function_call_output` items in a request body, in order."""
    return [item for item in _input_items(body) if item.get("type") == "function_call_output"]


def last_function_call_output(body: Mapping[str, Any]) -> Any:
    """The last tool result in the request, JSON-decoded when it is JSON; `None` if there is none."""
    outputs = function_call_outputs(body)
    if not outputs:
        return None
    output = outputs[-1].get("output")
    if isinstance(output, str):
        try:
            return json.loads(output)
        except ValueError:
            return output
    return output


def last_user_text(body: Mapping[str, Any]) -> str | None:
    """The text of the last user message (string input counts as one user message)."""
    if isinstance(body.get("input"), str):
        return body["input"]
    for item in reversed(_input_items(body)):
        if item.get("role") == "user":
            return _message_text(item.get("content"))
    return None


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return ""


# --------------------------------------------------------------------------------------------------
# Body builders


class IdFactory:
    """Deterministic ids (`call_1`, `fc_1`, `msg_1`, `resp_1`, ...), one counter per prefix."""

    def __init__(self) -> None:
        self._counters: dict[str, int] = {}

    def next(self, prefix: str) -> str:
        value = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = value
        return f"{prefix}_{value}"


def _tokens_for(text: str) -> int:
    # ~4 characters per token is OpenAI's own rule of thumb; deterministic and plausible.
    return max(1, math.ceil(len(text) / 4))


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
        else _message_text(item.get("content"))
        for item in output
    )
    usage: dict[str, Any] = {
        "input_tokens": _tokens_for(prompt),
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": _tokens_for(produced) if output else 0,
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


def _text_chunks(text: str) -> list[str]:
    # Word-sized deltas whose concatenation is exactly `text` (whitespace included).
    chunks = [chunk for chunk in re.findall(r"\S*\s*", text) if chunk]
    return chunks or [""]


def _argument_chunks(arguments: str, pieces: int = 3) -> list[str]:
    if not arguments:
        return [""]
    size = max(1, math.ceil(len(arguments) / pieces))
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


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
) -> Iterator[dict[str, Any]]:
    """The SSE event sequence for one streamed response, without `sequence_number` (added by the sender).

    Order per item type is the one in the wire doc section 2 (and what the SDK's
    `responses.stream()` accumulator checks: stable ids per `output_index`).
    """

    def snapshot(status: str, items: list[dict[str, Any]], with_usage: bool) -> dict[str, Any]:
        return build_response(
            request,
            response_id=response_id,
            created_at=created_at,
            status=status,
            output=items,
            usage=usage if with_usage else None,
            incomplete_reason=incomplete_reason,
        )

    yield {"type": "response.created", "response": snapshot("in_progress", [], False)}
    yield {"type": "response.in_progress", "response": snapshot("in_progress", [], False)}
    if stream_error is not None:
        error = stream_error.body()["error"]
        yield {"type": "error", "code": error["code"], "message": error["message"], "param": error["param"]}
        return

    for index, item in enumerate(output):
        if item["type"] == "function_call":
            yield {
                "type": "response.output_item.added",
                "output_index": index,
                "item": {**item, "arguments": "", "status": "in_progress"},
            }
            for delta in _argument_chunks(item["arguments"]):
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
            for delta in _text_chunks(text):
                yield {"type": "response.output_text.delta", **location, "delta": delta, "logprobs": []}
            yield {"type": "response.output_text.done", **location, "text": text, "logprobs": []}
            yield {"type": "response.content_part.done", **location, "part": item["content"][0]}
        yield {"type": "response.output_item.done", "output_index": index, "item": item}

    final_type = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(
        final_status, "response.failed"
    )
    yield {"type": final_type, "response": snapshot(final_status, output, True)}


# --------------------------------------------------------------------------------------------------
# Request validation: the 400s the real API returns for the mistakes a tool loop typically makes.


class ResponseStore:
    """Responses created with `store` not false, so `previous_response_id` can be checked."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[str | None, list[Mapping[str, Any]], list[Mapping[str, Any]]]] = {}

    def save(self, response_id: str, request: Mapping[str, Any], output: list[dict[str, Any]]) -> None:
        self._items[response_id] = (request.get("previous_response_id"), _input_items(request), output)

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

    items = _input_items(body)
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


Responder = Callable[[dict[str, Any]], ReplySpec]
