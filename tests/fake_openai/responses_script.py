"""Scripting API of the fake `POST /v1/responses`: what a test says the model answers, and what it sent.

Lives here:
- the reply specs: `Reply` (text and/or function calls), `FunctionCall`, `ErrorReply` (an HTTP error, or
  a failure right after a stream opened), `BrokenStream` (a streamed reply that breaks after some of
  its words), `RawReply` (a verbatim body), the `Delay` marker, and
  `coerce_reply` for the loose forms tests write (`"Hello"`, `("get_x", {...})`, lists of calls);
- `ResponsesScript`, the half of `FakeOpenAI` that tests call: `queue_text`, `queue_function_call(s)`,
  `queue_malformed_arguments`, `queue_error`, `queue_broken_stream`, `queue_delay`, `queue`,
  `respond_with`, `reset`, and the
  recordings `requests`, `replies`, `response_requests`, `last_request`, `responder_errors`;
- helpers for `respond_with()` callables: `function_call_outputs`, `last_function_call_output`,
  `last_user_text`.

How a reply goes on the wire (response bodies, SSE events, request validation, the HTTP handler) is in
`responses_api.py`; starting and stopping the server is in `server.py`.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "BrokenStream",
    "Delay",
    "ErrorReply",
    "FunctionCall",
    "RawReply",
    "Reply",
    "ReplySpec",
    "Responder",
    "ResponsesScript",
    "as_function_call",
    "coerce_reply",
    "function_call_outputs",
    "input_items",
    "last_function_call_output",
    "last_user_text",
    "message_text",
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
class BrokenStream:
    """A streamed reply that breaks partway: the words of `text` go out as `response.output_text.delta`
    events, then the stream breaks the way `how` says:

    - `"error"`: an `error` event (`code`, `message`), as the API sends when it fails mid-response;
    - `"failed"`: a `response.failed` event whose response carries the error and the partial message;
    - `"cut"`: the connection is closed without ending the chunked body (a crashed upstream or a
      proxy that dropped the connection): the client's read fails.

    A request without `stream` gets what the same failure looks like there: a 500 for `"error"` and
    `"failed"`, a connection closed before any answer for `"cut"`.
    """

    text: str
    how: Literal["error", "failed", "cut"] = "error"
    code: str = "server_error"
    message: str = "The server had an error while processing your request. Sorry about that!"


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
ReplySpec = Reply | ErrorReply | BrokenStream | RawReply | FunctionCall | str | Sequence[Any] | Mapping[str, Any] | None


def coerce_reply(spec: ReplySpec) -> Reply | ErrorReply | BrokenStream | RawReply | None:
    """Turn the loose forms tests like to write into a reply object.

    - `"Hello"` -> a text reply;
    - `("get_x", {"a": 1})` or `FunctionCall(...)` -> one function call;
    - `[("get_x", {...}), ("get_y", {...})]` -> parallel function calls;
    - a `dict` -> sent verbatim as the JSON body (status 200);
    - `None` -> `None` (the caller falls back to the default reply).
    """
    if spec is None or isinstance(spec, Reply | ErrorReply | BrokenStream | RawReply):
        return spec
    if isinstance(spec, str):
        return Reply(text=spec)
    if isinstance(spec, FunctionCall):
        return Reply(function_calls=[spec])
    if isinstance(spec, Mapping):
        return RawReply(body=dict(spec))
    if isinstance(spec, Sequence):
        if _looks_like_one_call(spec):
            return Reply(function_calls=[as_function_call(spec)])
        return Reply(function_calls=[as_function_call(item) for item in spec])
    raise TypeError(f"Unsupported reply spec: {spec!r}")


def _looks_like_one_call(spec: Sequence[Any]) -> bool:
    return len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], Mapping | str)


def as_function_call(item: Any) -> FunctionCall:
    """A `FunctionCall` from itself or from a `(name, arguments[, call_id])` tuple."""
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


def input_items(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = body.get("input")
    if isinstance(items, list):
        return [item for item in items if isinstance(item, Mapping)]
    return []


def function_call_outputs(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """All `function_call_output` items in a request body, in order."""
    return [item for item in input_items(body) if item.get("type") == "function_call_output"]


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
    for item in reversed(input_items(body)):
        if item.get("role") == "user":
            return message_text(item.get("content"))
    return None


def message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return ""


Responder = Callable[[dict[str, Any]], ReplySpec]
"""A `respond_with()` callable: gets the request's JSON body, returns a reply spec (`None`: default)."""


# --------------------------------------------------------------------------------------------------
# The script


class ResponsesScript:
    """The Responses API half of `FakeOpenAI` that tests call: its script and its recordings.

    Reply selection per `POST /v1/responses`: the next queued reply (delays queued with `queue_delay()`
    are added up until the next reply), else the `respond_with()` callable, else a text reply with
    `default_text`. All methods are thread-safe: the server answers on its own thread.
    """

    def __init__(self, *, default_text: str) -> None:
        self.default_text = default_text
        """Text of the reply used when nothing is queued and no responder answers."""
        self.requests: list[dict[str, Any]] = []
        """Every HTTP request received: method, path, query, headers (lower-cased), json (parsed body;
        also under "body"), received_at (time.monotonic())."""
        self.replies: list[dict[str, Any]] = []
        """Every reply sent to `/v1/responses`: status and the JSON body (the final response for streams).
        A stream's entry also has `first_text_at`: `time.monotonic()` when its first text delta was
        written (None without text), for measuring how fast the first words reach a client."""
        self.responder_errors: list[BaseException] = []
        """Exceptions raised by a `respond_with()` callable (the client got a 500 or a failed response)."""
        self._lock = threading.Lock()
        self._script: deque[Reply | ErrorReply | BrokenStream | RawReply | Delay] = deque()
        self._responder: Responder | None = None

    def queue(self, *specs: ReplySpec) -> None:
        """Queue replies in any form `coerce_reply` accepts (text, call tuples, Reply, ErrorReply, ...)."""
        with self._lock:
            for spec in specs:
                reply = coerce_reply(spec)
                self._script.append(reply if reply is not None else Reply(text=self.default_text))

    def queue_text(self, text: str, *, usage: Mapping[str, Any] | None = None) -> None:
        """Queue an assistant message with `text` (read back by the SDK as `response.output_text`)."""
        self.queue(Reply(text=text, usage=usage))

    def queue_function_calls(
        self,
        calls: Sequence[tuple[str, Mapping[str, Any] | str] | FunctionCall],
        *,
        text: str | None = None,
        usage: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue one response holding all `calls` (several = parallel tool calls), ids `call_<n>`.

        `text` adds an assistant message before the calls, as models sometimes do.
        """
        self.queue(Reply(text=text, function_calls=[as_function_call(call) for call in calls], usage=usage))

    def queue_function_call(
        self, name: str, arguments: Mapping[str, Any] | str | None = None, *, usage: Mapping[str, Any] | None = None
    ) -> None:
        """Queue a response with a single function call."""
        self.queue_function_calls([(name, arguments if arguments is not None else {})], usage=usage)

    def queue_malformed_arguments(self, name: str, raw_arguments: str) -> None:
        """Queue a function call whose `arguments` string is sent verbatim (e.g. invalid JSON)."""
        self.queue(Reply(function_calls=[FunctionCall(name, raw_arguments)]))

    def queue_error(
        self,
        status: int,
        message: str = "",
        *,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        mid_stream: bool = False,
    ) -> None:
        """Queue an HTTP error (`{"error": {...}}` body, `x-should-retry: false`).

        The SDK raises by status: 400 BadRequestError, 401 AuthenticationError, 429 RateLimitError,
        >=500 InternalServerError. `error_type`/`code` default to what the real API sends for the
        status (429: "requests"/"rate_limit_exceeded"; 5xx: "server_error"). `headers` can add e.g.
        `retry-after-ms`. See `ErrorReply` for `mid_stream`.
        """
        self.queue(
            ErrorReply(
                status,
                message or f"Scripted error {status}",
                error_type=error_type,
                code=code,
                param=param,
                headers=dict(headers or {}),
                mid_stream=mid_stream,
            )
        )

    def queue_broken_stream(
        self, text: str, *, how: Literal["error", "failed", "cut"] = "error", code: str = "server_error"
    ) -> None:
        """Queue a streamed reply that breaks after the words of `text` (see `BrokenStream`)."""
        self.queue(BrokenStream(text, how=how, code=code))

    def queue_rate_limited(
        self, retry_after: float | None = 1.0, *, kind: str = "requests", retry_after_ms: bool = True
    ) -> None:
        """Queue a 429 `rate_limit_exceeded` (type `requests` or `tokens`), the real API's message,
        with `retry-after` (whole seconds) and, unless `retry_after_ms=False`, `retry-after-ms`.
        `retry_after=None` sends neither (a 429 that does not say how long)."""
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["retry-after"] = str(max(1, math.ceil(retry_after)))
            if retry_after_ms:
                headers["retry-after-ms"] = str(max(1, math.ceil(retry_after * 1000)))
        wait = f"{retry_after:g}s" if retry_after is not None else "a moment"
        self.queue(
            ErrorReply(
                429,
                f"Rate limit reached for the model in organization org-fake on {kind} per min. "
                f"Please try again in {wait}. Visit https://platform.openai.com/account/rate-limits to learn more.",
                error_type=kind,
                code="rate_limit_exceeded",
                headers=headers,
            )
        )

    def queue_delay(self, seconds: float) -> None:
        """Wait `seconds` before sending the next reply (queued or default): triggers client timeouts."""
        with self._lock:
            self._script.append(Delay(seconds))

    def respond_with(self, responder: Responder | None) -> None:
        """Answer with `responder(request_json)` whenever the queue is empty; `None` removes it.

        The callable runs on the fake's event-loop thread and may return any reply spec accepted by
        `queue()`, or `None` for the default reply. Helpers for inspecting the request:
        `function_call_outputs`, `last_function_call_output`, `last_user_text`.
        """
        with self._lock:
            self._responder = responder

    def reset(self) -> None:
        """Forget queued replies, the responder and the recordings."""
        with self._lock:
            self._script.clear()
            self._responder = None
            self.requests.clear()
            self.replies.clear()
            self.responder_errors.clear()

    @property
    def pending_replies(self) -> int:
        """Number of queued replies not consumed yet (delay markers excluded)."""
        with self._lock:
            return sum(1 for item in self._script if not isinstance(item, Delay))

    @property
    def last_request(self) -> dict[str, Any]:
        """The most recent request recorded (raises IndexError if there is none)."""
        return self.requests[-1]

    @property
    def response_requests(self) -> list[dict[str, Any]]:
        """Parsed JSON bodies of the `POST /v1/responses` requests, in arrival order."""
        return [r["json"] for r in self.requests if r["path"] == "/v1/responses" and r["method"] == "POST"]

    def _next_reply(self, body: dict[str, Any]) -> tuple[Reply | ErrorReply | BrokenStream | RawReply, float]:
        delay = 0.0
        with self._lock:
            while self._script and isinstance(self._script[0], Delay):
                delay += self._script.popleft().seconds  # type: ignore[union-attr]
            if self._script:
                return self._script.popleft(), delay  # type: ignore[return-value]
            responder = self._responder
        if responder is not None:
            try:
                reply = coerce_reply(responder(body))
            except Exception as exc:
                # The client just sees a 500; the test sees the real exception in responder_errors.
                with self._lock:
                    self.responder_errors.append(exc)
                reply = ErrorReply(500, f"fake_openai responder raised {exc!r}")
            if reply is not None:
                return reply, delay
        return Reply(text=self.default_text), delay
