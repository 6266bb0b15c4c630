"""How a voice call answers the Realtime API's server events: the relay loop and its handlers.

Split from voice/calls.py, whose `VoiceCall` (the call's state machine) mixes `RealtimeEvents`
in: the relay task reads each upstream event and runs its handler here. The handlers stream the
assistant's audio to the browser, keep the transcript (voice/heard.py) as it is spoken, handle
a barge-in (what the caller heard is truncated upstream), account each response's usage and the
caller's turns (metrics), give up after failed replies, and store the rate limits the fleet's
OpenAI budget is admitted against. Everything they start (ending the call, a tool round, the
next response) is VoiceCall's, in voice/calls.py, so the call's lifecycle stays in one place.

The handlers sit on the audio path: they never wait on the database (rows go through the
call's writer, voice/records.py), and between an audio delta arriving and being sent on there
is only a base64 decode.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from django.conf import settings

from chatdesk.assistant import openai_budget
from chatdesk.assistant.costs import realtime_usage, transcription_usage
from chatdesk.conversations.models import Conversation, Message
from chatdesk.observability import metrics
from voice import realtime
from voice.heard import BYTES_PER_MS, AssistantAudio, Transcript, cut_audio
from voice.records import CallStart, CallWriter, add_usage, realtime_failure_kind, reply_failed
from voice.wire import MAX_DURATION, REPLY_FAILED, UNAVAILABLE, UPSTREAM_LOST, Browser

logger = logging.getLogger(__name__)
# Budget records in flight (strong references until done: the loop keeps only weak ones).
_BUDGET_RECORDS: set[asyncio.Task[None]] = set()

# After a barge-in the browser reports what it played "at once"; don't wait longer than this.
PLAYBACK_REPORT_WAIT_SECONDS = 0.5
# Failed model responses in a row before the call gives up and offers the text chat.
MAX_FAILED_RESPONSES = 2
# A caller's turn in the metrics, by how the response answering it ended.
VOICE_TURN_OUTCOMES = {"completed": "answered", "failed": "model_failed", "cancelled": "interrupted"}


class RealtimeEvents:
    """The Realtime API's side of `VoiceCall` (voice/calls.py), which sets all of this state up
    and provides end(), _send(), _send_transcript(), _set_state(), _spawn(), _run_tools(),
    _request_response() and _mark_interrupted()."""

    # The call's state these handlers read and write (set in VoiceCall.__init__).
    browser: Browser
    browser_open: bool
    loop: asyncio.AbstractEventLoop
    upstream: realtime.RealtimeLink | None
    writer: CallWriter | None
    start_info: CallStart | None
    ended: bool
    last_activity: float
    playback_ends_at: float
    response_done_waiters: list[asyncio.Future[str]]
    response_active: bool
    response_wanted: bool
    tools_running: int
    tool_rounds: int
    tool_calls_in_turn: int
    failed_responses: int
    spent: Decimal
    carried_cost: Decimal
    turn_ended_at: float | None
    caller_waiting: bool
    audio: AssistantAudio | None
    transcript: Transcript
    handlers: dict[str, Callable[[dict[str, Any]], Coroutine[Any, Any, None]]]

    async def _relay_upstream(self) -> None:
        assert self.upstream is not None
        handlers = self.handlers
        while True:
            event = await self.upstream.recv()
            if event is None:
                raise realtime.RealtimeUnavailable("closed", "the server ended the session")
            handler = handlers.get(event.get("type", ""))
            if handler is not None:
                await handler(event)

    def _realtime_handlers(self) -> dict[str, Callable[[dict[str, Any]], Coroutine[Any, Any, None]]]:
        """Which method answers each server event; events not listed are ignored."""
        return {
            "response.output_audio.delta": self._on_audio_delta,
            "response.output_audio.done": self._on_audio_done,
            "response.output_audio_transcript.delta": self._on_assistant_transcript_delta,
            "response.output_audio_transcript.done": self._on_assistant_transcript_done,
            "response.output_item.added": self._on_output_item_added,
            "response.created": self._on_response_created,
            "response.done": self._on_response_done,
            "input_audio_buffer.speech_started": self._on_speech_started,
            "input_audio_buffer.speech_stopped": self._on_speech_stopped,
            "input_audio_buffer.committed": self._on_committed,
            "conversation.item.input_audio_transcription.delta": self._on_customer_transcript_delta,
            "conversation.item.input_audio_transcription.completed": self._on_customer_transcript_done,
            "conversation.item.input_audio_transcription.failed": self._on_customer_transcript_failed,
            "error": self._on_error,
            "rate_limits.updated": self._on_rate_limits,
        }

    async def _on_audio_delta(self, event: dict[str, Any]) -> None:
        arrived = time.perf_counter()
        item_id = event.get("item_id", "")
        audio = self.audio
        if audio is None or audio.item_id != item_id:
            audio = self.audio = AssistantAudio(item_id)
            await self._send({"type": "audio_item", "item_id": item_id})
            if self.turn_ended_at is not None:
                # Voice-to-voice latency as we can see it: caller stopped -> first audio out.
                waited = self.loop.time() - self.turn_ended_at
                latency = int(waited * 1000)
                metrics.VOICE_REPLY_SECONDS.observe(waited)
                self.turn_ended_at = None
                self.transcript.utterance(item_id, Message.Role.ASSISTANT).latency_ms = latency
            await self._set_state("speaking")
        pcm = base64.b64decode(event.get("delta") or "")
        audio.generated_bytes += len(pcm)
        if audio.flushed:
            return
        if audio.first_sent_at is None:
            audio.first_sent_at = self.loop.time()
        audio.sent_bytes += len(pcm)
        now = self.last_activity = self.loop.time()
        # The browser plays what it gets back to back, from when it arrives.
        self.playback_ends_at = max(self.playback_ends_at, now) + len(pcm) / (BYTES_PER_MS * 1000)
        if self.browser_open:
            try:
                await self.browser.send_audio(pcm)
            except Exception:
                self.browser_open = False
            metrics.RELAY_DOWNLINK.observe(time.perf_counter() - arrived)

    async def _on_audio_done(self, event: dict[str, Any]) -> None:
        audio = self.audio
        if audio is not None and audio.item_id == event.get("item_id"):
            audio.done = True
            await self._truncate(audio)

    async def _on_output_item_added(self, event: dict[str, Any]) -> None:
        item = event.get("item") or {}
        if item.get("type") == "message" and item.get("role") == "assistant" and item.get("id"):
            self.transcript.utterance(item["id"], Message.Role.ASSISTANT)

    async def _on_assistant_transcript_delta(self, event: dict[str, Any]) -> None:
        item_id = event.get("item_id", "")
        delta = event.get("delta") or ""
        self.transcript.utterance(item_id, Message.Role.ASSISTANT).partial += delta
        if not (self.audio is not None and self.audio.item_id == item_id and self.audio.flushed):
            await self._send_transcript("assistant", item_id, delta, final=False)

    async def _on_assistant_transcript_done(self, event: dict[str, Any]) -> None:
        item_id = event.get("item_id", "")
        utterance = self.transcript.utterance(item_id, Message.Role.ASSISTANT)
        utterance.text = event.get("transcript") or utterance.partial
        await self._send_transcript(
            "assistant", item_id, utterance.spoken(), final=True, interrupted=utterance.interrupted
        )
        self.transcript.settle()

    async def _on_committed(self, event: dict[str, Any]) -> None:
        if event.get("item_id"):
            self.transcript.utterance(event["item_id"], Message.Role.CUSTOMER)

    async def _on_customer_transcript_delta(self, event: dict[str, Any]) -> None:
        item_id = event.get("item_id", "")
        delta = event.get("delta") or ""
        self.transcript.utterance(item_id, Message.Role.CUSTOMER).partial += delta
        await self._send_transcript("customer", item_id, delta, final=False)

    async def _on_customer_transcript_done(self, event: dict[str, Any]) -> None:
        item_id = event.get("item_id", "")
        utterance = self.transcript.utterance(item_id, Message.Role.CUSTOMER)
        utterance.text = (event.get("transcript") or "").strip()
        await self._send_transcript("customer", item_id, utterance.text, final=True)
        self.transcript.settle()
        usage = transcription_usage(settings.OPENAI_REALTIME_TRANSCRIPTION_MODEL, event.get("usage"))
        if (usage.cost or usage.price_missing) and self.start_info is not None and self.writer is not None:
            self.spent += usage.cost
            self.writer.put(add_usage, conversation_id=self.start_info.conversation_id, usage=usage)

    async def _on_customer_transcript_failed(self, event: dict[str, Any]) -> None:
        utterance = self.transcript.utterance(event.get("item_id", ""), Message.Role.CUSTOMER)
        utterance.text = utterance.partial.strip()
        logger.info("Input transcription failed: %s", (event.get("error") or {}).get("message"))
        self.transcript.settle()

    async def _on_speech_started(self, event: dict[str, Any]) -> None:
        """Barge-in: the browser drops queued audio at once; the model is told what was heard."""
        self.last_activity = self.loop.time()
        await self._send({"type": "flush"})
        self.playback_ends_at = 0.0  # the browser dropped what it had queued
        audio = self.audio
        if audio is not None and not audio.flushed and audio.sent_bytes:
            audio.flushed = True
            audio.flushed_at = self.loop.time()
            audio.complete_at_flush = audio.done
            # Wait for the browser's playback report, but not forever.
            audio.timer = self.loop.call_later(PLAYBACK_REPORT_WAIT_SECONDS, self._stop_waiting, audio)
        await self._set_state("listening")

    def _stop_waiting(self, audio: AssistantAudio) -> None:
        audio.timer = None
        audio.reported = True
        self._spawn(self._truncate(audio))

    async def _truncate(self, audio: AssistantAudio) -> None:
        """After a barge-in, tell the model how much of its answer the caller heard, and keep
        only that much as the assistant's line.

        Sent once both the browser's playback report is in (or we stopped waiting for it) and the
        item's stream is over: the API only truncates audio it has finished (or cancelled), and
        only up to its end. Sent even at 0 ms: without a truncate the model believes the caller
        heard everything it generated.
        """
        if not audio.flushed or not audio.reported or not audio.done or audio.decided or self.ended:
            return
        audio.decided = True
        if audio.timer is not None:
            audio.timer.cancel()
            audio.timer = None
        played_ms, heard = cut_audio(audio)
        if audio.complete_at_flush and played_ms >= audio.sent_bytes // BYTES_PER_MS:
            return  # the caller heard all of it: a new turn, not an interruption
        await self._mark_interrupted(audio.item_id, heard)
        if self.upstream is not None:
            await self.upstream.send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": audio.item_id,
                    "content_index": 0,
                    "audio_end_ms": played_ms,
                }
            )

    async def _on_speech_stopped(self, event: dict[str, Any]) -> None:
        now = self.loop.time()
        self.turn_ended_at = now
        self.last_activity = now
        self.caller_waiting = True
        self.tool_rounds = 0
        self.tool_calls_in_turn = 0
        await self._set_state("thinking")

    async def _on_response_created(self, event: dict[str, Any]) -> None:
        self.response_active = True

    async def _on_response_done(self, event: dict[str, Any]) -> None:
        self.response_active = False
        if self.audio is not None and not self.audio.done:
            self.audio.done = True  # a cancelled response may not finish its audio stream
            await self._truncate(self.audio)
        response = event.get("response") or {}
        status = response.get("status")
        output = response.get("output") or []
        waiters, self.response_done_waiters = self.response_done_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(status or "")
        usage = realtime_usage(settings.OPENAI_REALTIME_MODEL, response.get("usage"))
        if self.start_info is not None and self.writer is not None and (usage.input_tokens or usage.output_tokens):
            self.writer.put(add_usage, conversation_id=self.start_info.conversation_id, usage=usage)
        self.spent += usage.cost
        # A response's cost goes on what it said; a tool-calling response's on the next answer.
        spoken = [item for item in output if item.get("type") == "message" and item.get("id") in self.transcript]
        if spoken:
            self.transcript.update(self.transcript.get(spoken[-1]["id"]), cost=self.carried_cost + usage.cost)
            self.carried_cost = Decimal("0")
        else:
            self.carried_cost += usage.cost

        calls = [item for item in output if item.get("type") == "function_call"]
        if self.caller_waiting and not (status == "completed" and calls):
            # The caller's turn got its answer (a tool-calling response is a step towards it).
            self.caller_waiting = False
            outcome = VOICE_TURN_OUTCOMES.get(status or "", "other")
            metrics.count_turn(channel=Conversation.ChannelKind.VOICE, mode=Conversation.Mode.MODEL, outcome=outcome)
        if status == "failed":
            error = (response.get("status_details") or {}).get("error") or {}
            await self._reply_failed(f"{error.get('code')}: {error.get('message')}")
            if self.ended:
                return
        elif status == "completed":
            self.failed_responses = 0
        if self.spent >= settings.VOICE_SPEND_CAP_USD:
            message = "This call reached its length limit. You can continue by typing."
            await self.end("limit_reached", MAX_DURATION, error=("limit_reached", message))
            return
        # Only a completed response's calls are real: a cancelled one's arguments may be cut off.
        if status == "completed" and calls:
            self.tools_running += 1
            self._spawn(self._run_tools(calls))
        elif self.response_wanted:
            self.response_wanted = False
            await self._request_response()
        else:
            await self._set_state("listening")

    async def _on_rate_limits(self, event: dict[str, Any]) -> None:
        # Stored off the audio path: the next call (on any worker) is admitted against it.
        # Not one of the call's own tasks: a hang-up right after the greeting cancels those, and
        # the fleet must still learn what this call was told (found by the full suite under load).
        windows = openai_budget.windows_from_realtime(event.get("rate_limits"))
        if windows:
            task = self.loop.create_task(openai_budget.arecord(settings.OPENAI_REALTIME_MODEL, windows))
            _BUDGET_RECORDS.add(task)
            task.add_done_callback(_BUDGET_RECORDS.discard)

    async def _on_error(self, event: dict[str, Any]) -> None:
        error = event.get("error") or {}
        if error.get("code") == "conversation_already_has_active_response":
            # The server started one itself (VAD); ask again when that one is done.
            self.response_active = True
            self.response_wanted = True
            return
        logger.warning("Realtime error event: %s %s", error.get("code"), error.get("message"))
        if error.get("type") == "server_error":
            # OpenAI failed on its side: whatever reply was coming will not come.
            self.response_active = False
            self.response_wanted = False
            await self._reply_failed(f"{error.get('code')}: {error.get('message')}")
            if not self.ended:
                await self._set_state("listening")

    async def _reply_failed(self, detail: str) -> None:
        """A reply failed: say sorry and listen again; after MAX_FAILED_RESPONSES in a row, end."""
        self.failed_responses += 1
        logger.warning("Realtime reply failed (%s in a row): %s", self.failed_responses, detail)
        metrics.count_model_error(api="realtime", kind=realtime_failure_kind(detail))
        if self.failed_responses >= MAX_FAILED_RESPONSES:
            await self.end(
                "upstream_error",
                UNAVAILABLE,
                error=UPSTREAM_LOST,
                failure="Realtime responses failed",
                failure_kind=realtime_failure_kind(detail),
            )
            return
        # The caller would otherwise hear silence and not know whether to speak.
        await self._send({"type": "notice", "code": "reply_failed", "message": REPLY_FAILED})
        if self.start_info is not None and self.writer is not None:
            self.writer.put(reply_failed, conversation_id=self.start_info.conversation_id, detail=detail)
