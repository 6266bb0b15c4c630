"""The one module that talks to OpenAI for text (the Responses API through the official SDK).

Responses are not stored at OpenAI (`store=False`: transcripts hold customer PII), so the
whole item history is resent each turn. The SDK never retries here (`max_retries=0`): a
turn whose tool call already ran must not be replayed behind our back.

A chat turn streams (`stream=True`): the text goes to a ReplyListener as the model writes it,
and the reply (text, function calls, usage) is assembled from the stream's events. Replay
asks without a listener and gets the plain JSON answer.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx2
import openai
from django.conf import settings
from openai import AsyncOpenAI

from chatdesk.assistant import openai_budget
from chatdesk.assistant.costs import TextUsage
from chatdesk.observability import metrics

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[tuple, AsyncOpenAI, AsyncGenerator[None]]] = (
    weakref.WeakKeyDictionary()
)


class ModelUnavailable(Exception):
    """The model could not answer this turn.

    `kind` is one of Message.FailureKind: timeout, unreachable (refused or reset),
    rate_limited (429), budget_exhausted (nothing sent: the fleet's OpenAI budget had nothing
    left within the wait, chatdesk.assistant.openai_budget), server_error (5xx or a failed
    response), bad_request (other 4xx), incomplete (cut off at max_output_tokens even after
    the retry, or by the content filter), bad_reply (not a Responses API body), stream_broken (a streamed response that
    failed after some of its text was written: an `error` or `response.failed` event, the
    connection lost, or the stream ending without its last event; before any text, the same
    failures are server_error, unreachable or bad_reply, as without a stream). `usage` is
    what the responses that did come back cost (an incomplete response is billed too).
    `partial_text` is what a broken stream had written before it broke (the customer saw it
    appear, then taken back).
    """

    def __init__(
        self, kind: str, detail: str, *, usage: TextUsage | None = None, model: str = "", partial_text: str = ""
    ) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail[:250]
        self.usage = usage
        self.model = model
        self.partial_text = partial_text


class ReplyListener(Protocol):
    """Who hears a streamed reply as it is written (chatdesk.conversations.live.ReplyStream).

    Both are called on the event loop between two reads of the stream, so they must not wait:
    a slow listener would hold the model's stream back.
    """

    def response_started(self) -> None:
        """A new model response began: its text replaces any earlier response's in this turn."""

    def text_delta(self, delta: str) -> None:
        """The model wrote `delta`, the next piece of this response's text."""


@dataclass
class FunctionCall:
    call_id: str
    name: str
    arguments: str


@dataclass
class ModelReply:
    text: str
    output_items: list[dict]
    function_calls: list[FunctionCall]
    usage: TextUsage
    model: str
    # "completed", or "incomplete" with the reason (max_output_tokens, content_filter).
    status: str = "completed"
    incomplete_reason: str = ""
    # Set when this reply is the retry of one cut off at max_output_tokens: the cut-off reply's
    # budget, to be recorded (its usage is already added to `usage`).
    retried_after_budget: int = 0
    # Seconds this reply's requests waited for the fleet's OpenAI budget, and what for.
    budget_waited: float = 0.0
    budget_wait_reason: str = ""


def is_configured() -> bool:
    """Whether an OpenAI key is set: the one answer for the text model, voice calls, the chat and
    voice pages (guided flow or model, voice button or not) and the management commands."""
    return bool(settings.OPENAI_API_KEY)


def client() -> AsyncOpenAI:
    """One client per event loop (its HTTP pool is bound to the loop that first uses it).

    The HTTP transport is aiohttp (the SDK's `DefaultAioHttpClient`): it cost ~1.5 ms less
    CPU per call than the default transport in bench/chat_turns.py. Its session must be
    closed on the loop that made it, so the client is closed when its loop shuts down.
    """
    loop = asyncio.get_running_loop()
    config = (settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL, settings.OPENAI_TIMEOUT_SECONDS)
    cached = _clients.get(loop)
    if cached is None or cached[0] != config:
        instance = AsyncOpenAI(
            api_key=settings.OPENAI_API_KEY,
            base_url=settings.OPENAI_BASE_URL,
            timeout=settings.OPENAI_TIMEOUT_SECONDS,
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(timeout=settings.OPENAI_TIMEOUT_SECONDS),
        )
        # A replaced client (settings changed) is closed too: dropping its generator makes
        # the loop finalize it.
        _clients[loop] = (config, instance, _close_at_loop_shutdown(loop, instance))
        return instance
    return cached[1]


def _close_at_loop_shutdown(loop: asyncio.AbstractEventLoop, instance: AsyncOpenAI) -> AsyncGenerator[None]:
    """Close `instance` when `loop` shuts down (the caller keeps the returned generator).

    asyncio has no "loop closing" callback, but every way we run a loop (the ASGI server,
    asgiref's async_to_sync, asyncio.run, pytest-asyncio) finalizes the loop's suspended
    async generators before closing it; this one closes the client then.
    """

    async def held_open() -> AsyncGenerator[None]:
        try:
            yield
        finally:
            await instance.close()

    generator = held_open()

    async def start() -> None:
        await anext(generator)

    loop.create_task(start())
    return generator


async def respond(
    *,
    instructions: str,
    items: list[dict],
    tools: list[dict],
    wait_until: float | None = None,
    listener: ReplyListener | None = None,
) -> ModelReply:
    """One complete model response for the conversation so far. Raises ModelUnavailable.

    With a `listener`, the response is streamed and its text handed to the listener as it is
    written; the reply returned is the same either way.

    Each request first takes its share of the fleet's OpenAI budget, waiting for it until
    `wait_until` (time.monotonic(); default now + OPENAI_BUDGET_WAIT_SECONDS) at most.

    A response cut off at max_output_tokens is never used (its text ends mid-word, its
    function call arguments may be cut): it is asked for once more with twice the budget
    (at most OPENAI_RETRY_MAX_OUTPUT_TOKENS). Still cut off, or stopped by the content
    filter, it raises ModelUnavailable("incomplete"). Nothing ran between the two requests,
    so the retry cannot repeat a tool call. (Streamed, the cut-off text was shown as it came;
    the retry's text replaces it.)

    Each failure is counted in the metrics by kind (chatdesk_model_errors_total), once.
    """
    try:
        return await _respond(
            instructions=instructions, items=items, tools=tools, wait_until=wait_until, listener=listener
        )
    except ModelUnavailable as error:
        metrics.count_model_error(api="responses", kind=error.kind)
        raise


async def _respond(
    *,
    instructions: str,
    items: list[dict],
    tools: list[dict],
    wait_until: float | None,
    listener: ReplyListener | None,
) -> ModelReply:
    if wait_until is None:
        wait_until = time.monotonic() + settings.OPENAI_BUDGET_WAIT_SECONDS
    budget = settings.OPENAI_MAX_OUTPUT_TOKENS
    reply = await _respond_once(
        instructions=instructions,
        items=items,
        tools=tools,
        max_output_tokens=budget,
        wait_until=wait_until,
        listener=listener,
    )
    retry_budget = min(2 * budget, settings.OPENAI_RETRY_MAX_OUTPUT_TOKENS)
    if reply.status == "incomplete" and reply.incomplete_reason == "max_output_tokens" and retry_budget > budget:
        cut_off = reply
        try:
            reply = await _respond_once(
                instructions=instructions,
                items=items,
                tools=tools,
                max_output_tokens=retry_budget,
                wait_until=wait_until,
                listener=listener,
            )
        except ModelUnavailable as error:
            error.usage = _sum(cut_off.usage, error.usage)
            error.model = error.model or cut_off.model
            raise
        reply.usage = _sum(cut_off.usage, reply.usage)
        reply.budget_waited += cut_off.budget_waited
        reply.budget_wait_reason = reply.budget_wait_reason or cut_off.budget_wait_reason
        reply.retried_after_budget = budget
        budget = retry_budget
    if reply.status == "incomplete":
        raise ModelUnavailable(
            "incomplete",
            f"the reply was cut off ({reply.incomplete_reason or 'no reason given'}, max_output_tokens={budget})",
            usage=reply.usage,
            model=reply.model,
        )
    return reply


def _sum(first: TextUsage, second: TextUsage | None) -> TextUsage:
    total = TextUsage()
    total.add(first)
    if second is not None:
        total.add(second)
    return total


async def _respond_once(
    *,
    instructions: str,
    items: list[dict],
    tools: list[dict],
    max_output_tokens: int,
    wait_until: float,
    listener: ReplyListener | None = None,
) -> ModelReply:
    body = {
        "model": settings.OPENAI_MODEL,
        "instructions": instructions,
        "input": items,
        "tools": tools,
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "reasoning": {"effort": settings.OPENAI_REASONING_EFFORT},
        "max_output_tokens": max_output_tokens,
    }
    model = settings.OPENAI_MODEL
    tokens = openai_budget.estimate_tokens(body, max_output_tokens)
    waited = 0.0
    reason = ""
    # A 429 that says how long pauses the fleet; this request is sent once more after the pause
    # if it ends within the wait (a 429 means OpenAI ran nothing, so nothing can happen twice).
    for attempt in (1, 2):
        try:
            seconds, waited_for = await openai_budget.acquire(model, tokens, wait_until=wait_until)
        except openai_budget.BudgetExhausted as exhausted:
            raise ModelUnavailable("budget_exhausted", exhausted.detail, model=model) from exhausted
        waited += seconds
        reason = reason or waited_for
        try:
            # The SDK's generic `post` (its documented way to make a request the typed method
            # would make) with the raw HTTP response back: same endpoint, auth, timeout, retry
            # policy and error classes as `responses.create`, without its per-call work that
            # we do not need. Measured in bench/chat_turns.py: the typed call walked our JSON
            # against its TypedDicts (~3 ms) and built the typed Response with a fresh pydantic
            # schema each time (~9 ms of CPU per call on the 2-core bench machine), more than
            # the rest of a turn together. We read the JSON ourselves, as the wire protocol
            # defines it. The raw response also carries the x-ratelimit-* headers.
            started = time.perf_counter()
            try:
                if listener is not None:
                    # Timed to the stream's end: a streamed request lasts until its last event.
                    reply = await _stream_once(body, listener, model)
                else:
                    http_response = await client().post("/responses", cast_to=httpx2.Response, body=body)
            except Exception:  # not a cancellation: the customer leaving is not the model's failure
                metrics.observe_model_request(time.perf_counter() - started, ok=False)
                raise
            metrics.observe_model_request(time.perf_counter() - started, ok=True)
            if listener is None:
                await openai_budget.arecord(model, openai_budget.windows_from_headers(http_response.headers))
                reply = parse_response(http_response.json())
        except openai.RateLimitError as error:
            pause = await openai_budget.arate_limited(model, error.response.headers)
            if attempt == 1 and pause and time.monotonic() + pause < wait_until:
                continue
            raise ModelUnavailable("rate_limited", str(error), model=model) from error
        except openai.APITimeoutError as error:
            raise ModelUnavailable("timeout" if is_timeout(error) else "unreachable", str(error)) from error
        except openai.APIConnectionError as error:
            raise ModelUnavailable("unreachable", str(error)) from error
        except openai.APIStatusError as error:
            kind = "server_error" if error.status_code >= 500 else "bad_request"
            raise ModelUnavailable(kind, f"HTTP {error.status_code}: {error}") from error
        except openai.OpenAIError as error:
            raise ModelUnavailable("bad_reply", str(error)) from error
        except ValueError as error:  # not JSON
            raise ModelUnavailable("bad_reply", str(error)) from error
        reply.budget_waited = waited
        reply.budget_wait_reason = reason
        return reply
    raise AssertionError("unreachable: the second attempt returns or raises")


async def _stream_once(body: dict, listener: ReplyListener, model: str) -> ModelReply:
    """One response streamed (`stream=True`), its reply assembled from the events.

    Through the SDK's generic `post` with `stream=True`, as `_respond_once` and for the same
    reason: the SDK reads the server-sent events (and maps HTTP and connection errors), and
    we read each event's JSON as the wire protocol defines it instead of building the SDK's
    typed event objects. The text goes to `listener` delta by delta; function calls are put
    together from `response.output_item.added` (call id, name) and the arguments' deltas,
    and each item is taken as finished from `response.output_item.done`. The usage and the
    status come from the last event (`response.completed` or `response.incomplete`).

    A 429 is raised as the SDK's RateLimitError, for the budget's pause and one more try in
    `_respond_once`; every other failure as ModelUnavailable.
    """
    body = {**body, "stream": True}
    stream = _ReadStream(listener)
    try:
        events = await client().post(
            "/responses", cast_to=object, body=body, stream=True, stream_cls=openai.AsyncStream[object]
        )
        await openai_budget.arecord(model, openai_budget.windows_from_headers(events.response.headers))
        async with events:
            if "text/event-stream" not in events.response.headers.get("content-type", ""):
                # Answered in one piece after all (a gateway that does not stream): read as such.
                return parse_response(json.loads(await _whole_body(events.response)))
            # Read to the end of the body even after the last event, so that the connection
            # goes back to the pool instead of being closed half-read.
            async for event in events:
                stream.read(event)
    except (ModelUnavailable, openai.RateLimitError):
        raise
    except openai.APITimeoutError as error:
        kind = "timeout" if is_timeout(error) else stream.broken_or("unreachable")
        raise ModelUnavailable(kind, stream.detail(str(error)), partial_text=stream.text) from error
    except openai.APIConnectionError as error:
        raise ModelUnavailable(
            stream.broken_or("unreachable"), stream.detail(f"connection lost: {error}"), partial_text=stream.text
        ) from error
    except openai.APIStatusError as error:
        kind = "server_error" if error.status_code >= 500 else "bad_request"
        raise ModelUnavailable(kind, f"HTTP {error.status_code}: {error}") from error
    except openai.OpenAIError as error:  # an event with a top-level "error" key, among others
        raise ModelUnavailable(
            stream.broken_or("bad_reply"), stream.detail(str(error)), partial_text=stream.text
        ) from error
    except ValueError as error:  # an event that is not JSON
        raise ModelUnavailable(
            stream.broken_or("bad_reply"), stream.detail(str(error)), partial_text=stream.text
        ) from error
    return stream.reply()


async def _whole_body(response: httpx2.Response) -> bytes:
    """The body of a response the SDK handed over unread, with its read errors as the SDK's."""
    try:
        return await response.aread()
    except httpx2.TimeoutException as error:
        raise openai.APITimeoutError(request=response.request) from error
    except httpx2.RequestError as error:
        raise openai.APIConnectionError(request=response.request) from error


class _ReadStream:
    """What one streamed response has said so far, event by event (see `_stream_once`)."""

    def __init__(self, listener: ReplyListener) -> None:
        self.listener = listener
        self.began = False
        # By output_index: the item as announced, then as finished; its text or arguments so far.
        self.items: dict[int, dict] = {}
        self.pieces: dict[int, list[str]] = {}
        self.final: dict | None = None

    @property
    def text(self) -> str:
        return "".join(
            "".join(self.pieces.get(index, []))
            for index, item in sorted(self.items.items())
            if item.get("type") == "message"
        )

    def broken_or(self, kind: str) -> str:
        """The failure kind: stream_broken once words of the reply were written (they were on
        the customer's screen), else `kind`, what the same failure is without a stream."""
        return "stream_broken" if self.text else kind

    def detail(self, what: str) -> str:
        written = len(self.text)
        return f"{what} (after {written} characters of the reply)" if written else what

    def read(self, event: object) -> None:
        """Take in one event. Raises ModelUnavailable for a failure."""
        if not isinstance(event, dict):
            raise ModelUnavailable(self.broken_or("bad_reply"), self.detail("an event is not an object"))
        kind = event.get("type")
        index = event.get("output_index")
        if kind == "response.created":
            self.began = True
            self.listener.response_started()
        elif kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
            self.pieces.setdefault(index, []).append(event["delta"])
            self.listener.text_delta(event["delta"])
        elif kind == "response.function_call_arguments.delta" and isinstance(event.get("delta"), str):
            self.pieces.setdefault(index, []).append(event["delta"])
        elif kind in {"response.output_item.added", "response.output_item.done"}:
            if not isinstance(event.get("item"), dict) or not isinstance(index, int):
                raise ModelUnavailable(self.broken_or("bad_reply"), self.detail(f"{kind} without its item"))
            self.items[index] = event["item"]
        elif kind in {"response.completed", "response.incomplete"}:
            self.final = event.get("response") if isinstance(event.get("response"), dict) else {}
        elif kind == "response.failed":
            response = event.get("response") if isinstance(event.get("response"), dict) else {}
            error = response.get("error") if isinstance(response.get("error"), dict) else {}
            raise ModelUnavailable(
                self.broken_or("server_error"),
                self.detail(f"response failed: {_error_words(error)}"),
                partial_text=self.text,
            )
        elif kind == "error":
            raise ModelUnavailable(
                self.broken_or("server_error"),
                self.detail(f"error event: {_error_words(event)}"),
                partial_text=self.text,
            )

    def reply(self) -> ModelReply:
        if self.final is None:
            raise ModelUnavailable(
                self.broken_or("bad_reply"),
                self.detail("the stream ended before the response was complete"),
                partial_text=self.text,
            )
        output = [self._assembled(index, item) for index, item in sorted(self.items.items())]
        if not output and isinstance(self.final.get("output"), list):
            output = self.final["output"]  # nothing itemised along the way: the final snapshot has it
        return parse_response({**self.final, "output": output})

    def _assembled(self, index: int, item: dict) -> dict:
        """The item as finished; one that never got its `output_item.done` is put together from
        its deltas (a function call's arguments, a message's text)."""
        if item.get("status") not in {None, "in_progress"}:
            return item
        pieces = "".join(self.pieces.get(index, []))
        if item.get("type") == "function_call":
            return {**item, "arguments": pieces, "status": "completed"}
        if item.get("type") == "message":
            part = {"type": "output_text", "text": pieces, "annotations": []}
            return {**item, "content": [part], "status": "completed"}
        return item


def _error_words(error: dict) -> str:
    """An error object of the stream (`code`, `message`) in a few words for the failure's row."""
    return " ".join(str(part) for part in (error.get("code"), error.get("message") or "no message") if part)


def is_timeout(error: openai.APITimeoutError) -> bool:
    """True for a real timeout, False for a refused, reset or dropped connection.

    The SDK's aiohttp transport maps every aiohttp connection error (refused, reset by
    peer, server disconnected) to a connect *timeout* (its error map prefers the
    ClientConnectionError entry over the more specific ones), so look at what aiohttp
    raised: a real timeout is a TimeoutError (aiohttp's socket and connect timeouts
    subclass it), anything else from the socket is an unreachable server.
    """
    cause = error.__cause__
    while cause is not None:
        if isinstance(cause, TimeoutError):
            return True
        if isinstance(cause, OSError | aiohttp.ClientConnectionError):
            return False
        cause = cause.__cause__ or cause.__context__
    return True


def parse_response(response: object) -> ModelReply:
    """A ModelReply from a Responses API response body. Raises ModelUnavailable if it is not one."""
    if not isinstance(response, dict) or not isinstance(response.get("output"), list):
        raise ModelUnavailable("bad_reply", "the response has no output list")
    status = response.get("status")
    if status == "failed":
        # The request was fine and the model failed on OpenAI's side.
        error = response.get("error") if isinstance(response.get("error"), dict) else {}
        raise ModelUnavailable("server_error", "response failed: " + str(error.get("message") or "no message"))
    details = response.get("incomplete_details")
    reason = str(details.get("reason") or "") if status == "incomplete" and isinstance(details, dict) else ""
    output_items: list[dict] = []
    calls: list[FunctionCall] = []
    texts: list[str] = []
    for item in response["output"]:
        if not isinstance(item, dict):
            raise ModelUnavailable("bad_reply", "an output item is not an object")
        # Sent back as input next time; nulls dropped as the SDK's own serialisation does.
        output_items.append({key: value for key, value in item.items() if value is not None})
        if item.get("type") == "function_call":
            calls.append(
                FunctionCall(
                    call_id=str(item.get("call_id") or ""),
                    name=str(item.get("name") or ""),
                    arguments=item.get("arguments") if isinstance(item.get("arguments"), str) else "",
                )
            )
        elif item.get("type") == "message":
            # What the SDK's `output_text` joins: the output_text parts of message items.
            texts.extend(
                part.get("text") or ""
                for part in item.get("content") or []
                if isinstance(part, dict) and part.get("type") == "output_text"
            )
    return ModelReply(
        text="".join(texts),
        output_items=output_items,
        function_calls=calls,
        usage=TextUsage.from_response(response.get("usage")),
        model=str(response.get("model") or settings.OPENAI_MODEL),
        status="incomplete" if status == "incomplete" else "completed",
        incomplete_reason=reason,
    )
