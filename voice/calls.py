"""Voice calls: one customer's call, relayed between the browser and the Realtime API, and recorded.

`VoiceCall` is the call's state machine; the Channels consumer only feeds it frames. The
browser side of the wire is voice/PROTOCOL.md (close codes and frame checks in voice/wire.py),
the OpenAI side is voice/realtime.py, and how the call answers its server events (the relay
loop and the handlers, mixed into `VoiceCall`) is voice/realtime_events.py. What the caller
heard of a line they cut off, and the transcript's spoken order, are voice/heard.py.

Three rules shape this module:
- The audio path never waits on the database. Transcripts, usage and the call's end are
  queued to a per-call background writer (`CallWriter`, voice/records.py, with the rows it
  writes) that runs them through `db()`;
  tool calls run in their own task. Between receiving upstream audio and forwarding it
  there is only a base64 decode.
- Everything is stored as it happens (utterances, tool calls, usage), so a dropped call or a
  restarted server keeps all that was said up to that moment.
- Tools run only after `response.done` with status completed; all outputs are sent, then
  exactly one `response.create`, and never while another response is active.

Per-client call limits are in voice/limits.py; call usage is priced next to the text prices,
in chatdesk/assistant/costs.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from chatdesk import lifecycle
from chatdesk.assistant import openai_budget
from chatdesk.assistant.openai_client import FunctionCall, is_configured
from chatdesk.assistant.tool_rounds import bookings_touched, calls_run, run_tool_round
from chatdesk.assistant.tools import TOO_MANY_TOOL_CALLS, ToolOutcome, realtime_tool_definitions
from chatdesk.conversations.booking_cards import booking_cards
from chatdesk.conversations.models import Conversation, Message, number_fields
from chatdesk.conversations.services import db, hash_ip
from chatdesk.conversations.session_cookie import session_id_from_cookies
from chatdesk.observability import context, metrics
from voice import realtime
from voice.heard import AssistantAudio, Transcript
from voice.limits import FrameBudget, call_admit, call_release
from voice.realtime_events import RealtimeEvents
from voice.records import (
    CallRefused,
    CallStart,
    CallWriter,
    call_begin,
    call_end,
    publish,
)
from voice.wire import (
    FRAME_TOO_LARGE,
    IDLE,
    MAX_DURATION,
    NORMAL,
    RATE_LIMITED,
    SERVER_ERROR,
    SERVICE_RESTART,
    UNAVAILABLE,
    UPSTREAM_LOST,
    BadFrame,
    Browser,
    read_frame,
)

logger = logging.getLogger(__name__)

# daphne kills an application 10 s after its client left: finish writing well before.
WRITER_DRAIN_SECONDS = 5.0
# A call refused because the fleet's OpenAI budget is used up or paused (openai_budget).
BUSY = (
    "busy",
    "We're very busy right now and can't take a call this minute. "
    "You can type instead, or call again in a few minutes.",
)

# The browser plays what it was sent behind a small jitter buffer: after the last audio should
# have played, wait this much more before closing (closing stops its playback).
PLAYBACK_MARGIN_SECONDS = 0.4

# What the assistant is asked to say when the server must end the call (a worker draining on
# SIGTERM, chatdesk/drain.py), and what the page shows.
GOODBYE_INSTRUCTIONS = (
    "Our system is restarting and this call has to end now. In one or two short sentences, tell the "
    "caller politely that we need to end this call, that everything said so far is saved, and ask "
    "them to please call back in a minute. Do not ask a question. Do not call any tools."
)
SHUTDOWN_MESSAGE = (
    "We had to end this call because our server is restarting. Everything said so far is saved: "
    "please call back in a minute, or keep typing here."
)
RESTARTING_MESSAGE = "This server is restarting. Please call again in a moment, or keep typing here."

# The calls open in this process, for the drain to say goodbye on (end_calls_for_shutdown).
_open_calls: set[VoiceCall] = set()


def open_call_count() -> int:
    return len(_open_calls)


async def end_calls_for_shutdown(timeout: float) -> int:
    """Say goodbye on every call open in this process and end them (server_shutdown), within
    `timeout` seconds; how many there were. Each call's transcript and end are stored."""
    calls = list(_open_calls)
    if calls:
        await asyncio.gather(*(call.say_goodbye(timeout) for call in calls), return_exceptions=True)
    return len(calls)


# --- the call -------------------------------------------------------------------------


class VoiceCall(RealtimeEvents):
    """One call. The consumer calls `start()`, `receive()` per frame and `browser_gone()`."""

    def __init__(
        self,
        browser: Browser,
        *,
        ip: str,
        user_agent: str,
        cookies: dict[str, str],
        widget_page: str | None = None,
    ) -> None:
        self.browser = browser
        # Placed from the website widget (its host page, or ""), or None (voice.consumers).
        self.widget_page = widget_page
        self.browser_open = True
        self.ip = ip
        self.ip_hash = hash_ip(ip)
        self.user_agent = user_agent
        self.cookies = cookies
        # Monotonic (the loop's clock): frozen wall clocks in tests and NTP steps don't matter.
        self.loop = asyncio.get_running_loop()
        self.started_at = self.loop.time()
        self.last_activity = self.started_at
        self.budget = FrameBudget(settings.VOICE_MAX_FRAMES_PER_SECOND, self.loop.time)
        # Read once: settings is a lazy object, and these are checked on every frame.
        self.max_frame_bytes = settings.VOICE_MAX_FRAME_BYTES
        self.max_text_chars = settings.VOICE_MAX_TEXT_FRAME_CHARS
        self.tasks: set[asyncio.Task[None]] = set()
        self.upstream: realtime.RealtimeLink | None = None
        self.writer: CallWriter | None = None
        self.start_info: CallStart | None = None
        self.ready = False
        self.ended = False
        self.end_reason = ""
        self.finished = asyncio.Event()  # set once end() has stored everything and freed the slot
        # The server is ending this call (say_goodbye): the caller's audio is no longer relayed
        # and no reply other than the goodbye is asked for.
        self.leaving = False
        # When the browser will have played all the audio sent so far (the loop's clock).
        self.playback_ends_at = 0.0
        self.response_done_waiters: list[asyncio.Future[str]] = []
        self.admitted = False
        self.state = ""
        # Conversation state, driven by upstream events.
        self.response_active = False
        self.response_wanted = False
        self.tools_running = 0
        self.tool_rounds = 0
        self.tool_calls_in_turn = 0
        self.failed_responses = 0
        self.spent = Decimal("0")
        self.carried_cost = Decimal("0")
        self.turn_ended_at: float | None = None
        # The caller has spoken and has not had an answer yet (a turn, in the metrics).
        self.caller_waiting = False
        self.audio: AssistantAudio | None = None
        self.transcript = Transcript(self.loop.time, self._sink)
        self.handlers = self._realtime_handlers()

    @property
    def conversation_id(self) -> int | None:
        return self.start_info.conversation_id if self.start_info else None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        _open_calls.add(self)
        self._spawn(self._run())

    async def _run(self) -> None:
        connecting: asyncio.Task[realtime.RealtimeLink] | None = None
        try:
            await self._set_state("connecting")
            if lifecycle.draining():
                await self.end("server_shutdown", SERVICE_RESTART, error=("server_shutdown", RESTARTING_MESSAGE))
                return
            if not is_configured():
                message = "Voice calls need OPENAI_API_KEY to be set on the server. You can keep typing instead."
                await self.end("voice_unavailable", UNAVAILABLE, error=("voice_unavailable", message))
                return
            refusal = await sync_to_async(call_admit, thread_sensitive=False)(self.ip_hash)
            if refusal:
                await self.end("limit_reached", RATE_LIMITED, error=("rate_limited", refusal))
                return
            self.admitted = True
            metrics.voice_call_admitted()
            # Admitted against the fleet's OpenAI budget like a text turn: opening the session
            # is a request, and nothing goes to OpenAI while a 429 has paused the fleet.
            try:
                await openai_budget.acquire(
                    settings.OPENAI_REALTIME_MODEL,
                    settings.OPENAI_REALTIME_MAX_OUTPUT_TOKENS,
                    wait_until=time.monotonic() + settings.OPENAI_BUDGET_WAIT_SECONDS,
                )
            except openai_budget.BudgetExhausted as busy:
                logger.warning("Voice call refused for call %s: %s", self.ip_hash[:8], busy.detail)
                await self.end("busy", UNAVAILABLE, error=BUSY)
                return
            # Open the socket while the database trip runs: both take tens of milliseconds.
            connecting = asyncio.ensure_future(realtime.connect())
            self.start_info = await db(
                call_begin,
                session_id=session_id_from_cookies(self.cookies),
                ip=self.ip,
                user_agent=self.user_agent,
                widget_page=self.widget_page,
            )
            self.writer = CallWriter()
            # This task's log lines, and those of the tasks it spawns, name the conversation.
            context.conversation_number.set(self.start_info.number)
            await publish([self.start_info.live])
            self.upstream = await connecting
            connecting = None
            session = realtime.session_config(
                instructions=self.start_info.instructions, tools=realtime_tool_definitions()
            )
            await self.upstream.configure(session, self.start_info.prior_items, settings.VOICE_CONNECT_TIMEOUT_SECONDS)
            self.ready = True
            self.last_activity = self.loop.time()
            self._spawn(self._watchdog())
            await self._send(
                {
                    "type": "ready",
                    **number_fields(self.start_info.number),
                    "session_id": self.start_info.session_id,
                }
            )
            await self._set_state("listening")
            if settings.VOICE_GREET_FIRST:
                await self._request_response()
            await self._relay_upstream()
        except realtime.RealtimeUnavailable as error:
            logger.warning("Realtime upstream failed for call %s: %s", self.ip_hash[:8], error)
            metrics.count_model_error(api="realtime", kind=Message.FailureKind.UNREACHABLE)
            await self.end(
                "upstream_error",
                UNAVAILABLE,
                error=UPSTREAM_LOST,
                failure=f"Realtime {error}",
                failure_kind=Message.FailureKind.UNREACHABLE,
            )
        except CallRefused as refused:
            await self.end("voice_unavailable", UNAVAILABLE, error=(refused.code, refused.message))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Voice call failed")
            message = "Something went wrong on our side. Everything said so far is saved: you can continue by typing."
            await self.end("server_error", SERVER_ERROR, error=("server_error", message), failure="server error")
        finally:
            if connecting is not None:
                await realtime.discard_connection(connecting)

    async def _watchdog(self) -> None:
        """Ends the call at its maximum length, or when nobody has spoken for a while."""
        deadline = self.started_at + settings.VOICE_MAX_CALL_SECONDS
        while not self.ended:
            now = self.loop.time()
            if now >= deadline:
                message = "This call reached its maximum length. You can continue by typing."
                await self.end("max_duration", MAX_DURATION, error=("max_duration", message))
                return
            if self.response_active or self.tools_running:
                self.last_activity = now
            idle_at = self.last_activity + settings.VOICE_IDLE_SECONDS
            if now >= idle_at:
                await self.end("idle", IDLE)
                return
            await asyncio.sleep(min(deadline, idle_at) - now + 0.01)

    async def end(
        self,
        reason: str,
        code: int = NORMAL,
        *,
        error: tuple[str, str] | None = None,
        failure: str = "",
        failure_kind: str = "",
    ) -> None:
        """End the call (once): tell the browser, free the slot, store the rest, close the upstream.

        The caller's slot is freed and the end queued for writing before the upstream socket is
        closed: a socket closed mid-reply may take its close timeout (it stops reading while
        audio is still queued), and a hang-up must not keep the next call waiting for that.
        """
        if self.ended:
            return
        self.ended = True
        self.end_reason = reason
        metrics.count_voice_call(reason)
        current = asyncio.current_task()
        for task in list(self.tasks):
            if task is not current:
                task.cancel()
        if self.audio is not None and self.audio.timer is not None:
            self.audio.timer.cancel()
        try:
            if error is not None:
                await self._send(
                    {
                        "type": "error",
                        "code": error[0],
                        "message": error[1],
                        "fallback": Conversation.ChannelKind.CHAT.value,
                    }
                )
            await self._send({"type": "ended", "reason": reason})
            if self.browser_open:
                self.browser_open = False
                with contextlib.suppress(Exception):
                    await self.browser.close(code)
            await self._release()
            closing = []
            if self.start_info is not None and self.writer is not None:
                self.transcript.settle(final=True)
                seconds = int(self.loop.time() - self.started_at)
                self.writer.put(
                    call_end,
                    conversation_id=self.start_info.conversation_id,
                    reason=reason,
                    seconds=seconds,
                    failure=failure,
                    failure_kind=failure_kind,
                )
                closing.append(self.writer.close(WRITER_DRAIN_SECONDS))
            if self.upstream is not None:
                closing.append(self.upstream.close())
            await asyncio.gather(*closing)
        finally:
            try:
                await self._release()
            finally:
                _open_calls.discard(self)
                self.finished.set()

    async def _release(self) -> None:
        """Free this call's place in its client's concurrent-calls count (once)."""
        if self.admitted:
            self.admitted = False
            metrics.voice_call_released()
            await sync_to_async(call_release, thread_sensitive=False)(self.ip_hash)

    async def finish(self, reason: str, code: int = NORMAL, *, error: tuple[str, str] | None = None) -> None:
        """End the call and return only once it is fully recorded, whichever task is ending it.

        The consumer returns after this, so the server (daphne waits for applications it
        cancels at shutdown) and the tests see a call that is completely stored.
        """
        await self.end(reason, code, error=error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.finished.wait(), WRITER_DRAIN_SECONDS + 2)

    async def say_goodbye(self, timeout: float) -> None:
        """The server must end this call (it is shutting down): the assistant says so, the caller
        hears it, then the call ends as server_shutdown with its transcript stored. Bounded by
        `timeout`; past it, or without a working upstream, the call ends with the goodbye written
        on the page only."""
        if self.ended:
            return
        self.leaving = True
        with contextlib.suppress(TimeoutError, realtime.RealtimeUnavailable):
            async with asyncio.timeout(timeout):
                await self._speak_goodbye(timeout)
        await self.finish("server_shutdown", SERVICE_RESTART, error=("server_shutdown", SHUTDOWN_MESSAGE))

    async def _speak_goodbye(self, timeout: float) -> None:
        if not self.ready or self.upstream is None or self.ended:
            return  # still connecting: the caller has heard nothing yet, the page says why
        await self._send({"type": "notice", "code": "server_shutdown", "message": SHUTDOWN_MESSAGE})
        # A tool round being run finishes first: a booking being made is made, and the model
        # has its outcome.
        while self.tools_running:
            await asyncio.sleep(0.05)
        if self.response_active:
            # Let the sentence being spoken end; cut it only when it runs long.
            done = self._response_done()
            try:
                await asyncio.wait_for(asyncio.shield(done), timeout / 2)
            except TimeoutError:
                await self.upstream.send({"type": "response.cancel"})
                await done
        done = self._response_done()
        self.response_active = True
        await self.upstream.send(
            {"type": "response.create", "response": {"instructions": GOODBYE_INSTRUCTIONS, "tool_choice": "none"}}
        )
        await done
        # Closing the socket stops the browser's playback: wait until the goodbye has played.
        await asyncio.sleep(max(0.0, self.playback_ends_at - self.loop.time()) + PLAYBACK_MARGIN_SECONDS)

    def _response_done(self) -> asyncio.Future[str]:
        """A future resolved with the status of the next response.done."""
        future: asyncio.Future[str] = self.loop.create_future()
        self.response_done_waiters.append(future)
        return future

    async def browser_gone(self, code: int) -> None:
        """The browser's socket closed: a clean close is a hang-up, anything else a lost client."""
        self.browser_open = False
        if code == SERVICE_RESTART:
            reason = "server_shutdown"  # uvicorn closes its clients with 1012 when it stops
        elif code == NORMAL:
            reason = "customer_hung_up"
        else:
            reason = "client_disconnected"
        await self.finish(reason)

    # -- frames from the browser -----------------------------------------------------------

    async def receive(self, text: str | None = None, data: bytes | None = None) -> None:
        arrived = time.perf_counter()
        if self.ended:
            return
        if not self.budget.take():
            await self.end("limit_reached", RATE_LIMITED, error=("rate_limited", "Too many frames per second."))
            return
        frame = read_frame(text=text, data=data, max_bytes=self.max_frame_bytes, max_chars=self.max_text_chars)
        if isinstance(frame, BadFrame):
            await self._bad_frame(frame.code, frame.message)
        elif frame is None:
            return
        elif frame.kind == "audio":
            if self.ready and frame.audio and self.upstream is not None and not self.leaving:
                # Frames before `ready` are dropped: the browser starts the microphone on `ready`.
                with contextlib.suppress(realtime.RealtimeUnavailable):  # the relay task sees it too and ends the call
                    await self.upstream.append_audio(frame.audio)
                    metrics.RELAY_UPLINK.observe(time.perf_counter() - arrived)
        elif frame.kind == "playback":
            await self._on_playback(frame.item_id, frame.played_ms)
        elif frame.kind == "hangup":
            await self.end("customer_hung_up")
        elif frame.kind == "ping":
            await self._send({"type": "pong"})

    async def _bad_frame(self, code: int, message: str) -> None:
        kind = "frame_too_large" if code == FRAME_TOO_LARGE else "bad_frame"
        await self.end("bad_frame", code, error=(kind, message))

    async def _on_playback(self, item_id: str, played_ms: int) -> None:
        self.last_activity = self.loop.time()
        audio = self.audio
        if audio is None or audio.item_id != item_id:
            return
        audio.played_ms = max(audio.played_ms, played_ms)
        audio.ever_reported = True
        if audio.flushed:
            # The report the browser sends right after a flush: no need to wait for the timeout.
            audio.reported = True
            await self._truncate(audio)

    # -- tools -----------------------------------------------------------------------------

    async def _run_tools(self, calls: list[dict[str, Any]]) -> None:
        assert self.start_info is not None and self.upstream is not None
        try:
            self.tool_rounds += 1
            await self._set_state("thinking")
            outcomes: list[ToolOutcome]
            if self.tool_rounds > settings.CHAT_MAX_TOOL_ROUNDS:
                result = {
                    "error": "too_many_steps",
                    "message": "Too many steps. Ask the customer to restate the request.",
                }
                outcomes = [
                    ToolOutcome(c.get("call_id", ""), c.get("name", ""), result, "too_many_steps") for c in calls
                ]
            else:
                # The text chat's round (chatdesk.assistant.tool_rounds): its caps, validation, identity
                # rules and ToolCall rows; the calls beyond the caps are recorded, not run.
                # Fresh from the database: booking_count may have moved in the text chat.
                conversation = await db(Conversation.objects.get, pk=self.start_info.conversation_id)
                outcomes = await run_tool_round(
                    conversation,
                    [FunctionCall(c.get("call_id", ""), c.get("name", ""), c.get("arguments", "")) for c in calls],
                    channel=Conversation.ChannelKind.VOICE,
                    ran_this_turn=self.tool_calls_in_turn,
                )
                self.tool_calls_in_turn += calls_run(outcomes)
                ran = [o for o in outcomes if o.error != TOO_MANY_TOOL_CALLS]
                await publish([(conversation, {"kind": "tool_call", **o.summary()}) for o in ran])
            for outcome in outcomes:
                await self._send({"type": "tool", **outcome.summary()})
            # The chat page's cards (chatdesk.conversations.booking_cards): the state as it stands now, so a
            # booking moved during the call shows "moved" with the old time, as in text.
            touched = bookings_touched(outcomes)
            for card in await db(booking_cards, touched) if touched else []:
                await self._send({"type": "booking", "booking": card})
            # Every output first, then one response.create for all of them.
            for outcome in outcomes:
                item = {"type": "function_call_output", "call_id": outcome.call_id, "output": outcome.output}
                await self.upstream.send({"type": "conversation.item.create", "item": item})
            await self._request_response()
        except realtime.RealtimeUnavailable:
            pass  # the relay task sees the same failure and ends the call
        finally:
            self.tools_running -= 1
            self.last_activity = self.loop.time()

    async def _request_response(self) -> None:
        if self.leaving:
            return  # the goodbye is the last reply (say_goodbye asks for it itself)
        if self.response_active:
            self.response_wanted = True
            return
        # Active from now until response.done: a second response.create meanwhile is an error.
        self.response_active = True
        assert self.upstream is not None
        await self.upstream.send({"type": "response.create"})

    # -- transcript --------------------------------------------------------------------------

    def _sink(self) -> tuple[CallWriter, int] | None:
        """Where the transcript's rows go: the call's writer, once the call has a conversation."""
        if self.writer is None or self.start_info is None:
            return None
        return self.writer, self.start_info.conversation_id

    async def _mark_interrupted(self, item_id: str, heard: float) -> None:
        utterance = self.transcript.interrupt(item_id, heard)
        if utterance is not None and utterance.text is not None:
            # Its final transcript already went out: send it again, cut to what was heard.
            await self._send_transcript("assistant", item_id, utterance.spoken(), final=True, interrupted=True)

    # -- browser ------------------------------------------------------------------------------

    async def _send(self, message: dict[str, Any]) -> None:
        if not self.browser_open:
            return
        try:
            await self.browser.send_json(message)
        except Exception:
            self.browser_open = False

    async def _send_transcript(
        self, role: str, item_id: str, text: str, *, final: bool, interrupted: bool = False
    ) -> None:
        await self._send(
            {
                "type": "transcript",
                "role": role,
                "item_id": item_id,
                "text": text,
                "final": final,
                "interrupted": interrupted,
            }
        )

    async def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            await self._send({"type": "state", "state": state})

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("Voice call task failed", exc_info=task.exception())
