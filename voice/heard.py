"""What the caller heard, and the call's transcript in the order it was spoken.

Split from voice/calls.py, whose `VoiceCall` (the state machine) drives these: it creates the
utterances as Realtime events name them, and says when the caller cut in. This module works
out what of an interrupted line was heard (`heard_part`, `cut_audio`) and hands finished
utterances, in spoken order, to the call's background writer (voice/records.py).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chatdesk.conversations.models import Message
from voice.records import CallWriter, save_utterance, trim_utterance, update_utterance

# PCM16 mono 24 kHz: played_ms = bytes / 48.
BYTES_PER_MS = 48
# An assistant utterance waits this long for the transcript of the customer's words before
# it (transcription is asynchronous), so the stored transcript stays in spoken order.
TRANSCRIPT_WAIT_SECONDS = 5.0


# --- what the caller heard -------------------------------------------------------------


def heard_part(text: str, fraction: float) -> str:
    """The start of `text` the caller heard when `fraction` of its audio had played.

    The Realtime API gives no word timings for its audio, only the transcript and the audio
    itself, so the transcript is taken to be spread evenly over the audio (speech runs at a
    fairly steady rate) and cut at that share of its characters. The cut goes back to the last
    whole word: a word the caller heard only half of is not claimed as heard.
    """
    if fraction >= 1:
        return text
    if fraction <= 0:
        return ""
    cut = int(len(text) * fraction)
    if cut < len(text) and not text[cut].isspace():
        cut = text.rfind(" ", 0, cut + 1)
    return text[: max(cut, 0)].rstrip()


def cut_audio(audio: AssistantAudio) -> tuple[int, float]:
    """(audio_end_ms for the truncate, share of the item's audio heard) after a barge-in.

    The browser's playback report is the truth. Without one (a browser that never reports),
    the best server-side estimate is the time between the item's first audio leaving for the
    browser and the barge-in, since the browser plays in real time from about when it arrives.
    Clamped to the audio sent: the API refuses a truncation past the audio it produced.
    """
    sent_ms = audio.sent_bytes // BYTES_PER_MS
    if audio.ever_reported:
        played = audio.played_ms
    elif audio.first_sent_at is not None and audio.flushed_at is not None:
        played = int((audio.flushed_at - audio.first_sent_at) * 1000)
    else:
        played = 0
    played_ms = max(0, min(played, sent_ms))
    generated_ms = audio.generated_bytes / BYTES_PER_MS
    return played_ms, (min(played_ms / generated_ms, 1.0) if generated_ms else 0.0)


# --- the transcript ---------------------------------------------------------------------


@dataclass
class Utterance:
    """A customer or assistant utterance, from its Realtime item until it is stored."""

    item_id: str
    role: str
    since: float
    text: str | None = None  # None until its final transcript arrives
    partial: str = ""
    latency_ms: int | None = None
    cost: Decimal | None = None
    interrupted: bool = False
    # Barge-in: the share of the item's audio the caller heard (None: all of it, or not known).
    heard: float | None = None
    settled: bool = False  # left the ordering queue
    saved: bool = False  # a Message row exists (or is queued)

    def spoken(self) -> str:
        """What the caller heard of it (the whole text unless they cut in)."""
        text = self.text or ""
        return text if self.heard is None else heard_part(text, self.heard)


@dataclass
class AssistantAudio:
    """The assistant audio item being played in the browser."""

    item_id: str
    sent_bytes: int = 0
    # All the audio the model generated for the item, including what arrived after a flush.
    generated_bytes: int = 0
    first_sent_at: float | None = None
    flushed_at: float | None = None
    played_ms: int = 0
    ever_reported: bool = False  # the browser sent a playback report for it
    done: bool = False  # its stream is over (response.output_audio.done or response.done)
    flushed: bool = False  # barge-in: the browser dropped it, later deltas are dropped too
    complete_at_flush: bool = False
    reported: bool = False  # the browser said what it played after the flush (or we stopped waiting)
    decided: bool = False  # truncated (or found fully heard) after the barge-in
    timer: asyncio.TimerHandle | None = None  # stops waiting for the playback report


class Transcript:
    """The call's utterances, stored in the order they were spoken.

    `sink()` says where rows go: (the call's writer, its conversation's id), or None before
    the call has a conversation (nothing is stored then, as before the split).
    """

    def __init__(self, clock: Callable[[], float], sink: Callable[[], tuple[CallWriter, int] | None]) -> None:
        self.clock = clock
        self.sink = sink
        self.ledger: deque[Utterance] = deque()
        self.utterances: dict[str, Utterance] = {}

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.utterances

    def get(self, item_id: str) -> Utterance | None:
        return self.utterances.get(item_id)

    def utterance(self, item_id: str, role: str) -> Utterance:
        """The utterance of a Realtime item, created (and queued in spoken order) when first named."""
        utterance = self.utterances.get(item_id)
        if utterance is None:
            utterance = Utterance(item_id=item_id, role=role, since=self.clock())
            self.utterances[item_id] = utterance
            self.ledger.append(utterance)
        return utterance

    def settle(self, *, final: bool = False) -> None:
        """Store finished utterances in spoken order.

        An utterance whose transcript is still pending holds back the ones after it for up to
        TRANSCRIPT_WAIT_SECONDS; at the end of the call everything is stored, partial
        transcripts included (an assistant sentence cut off by a drop is marked interrupted).
        """
        now = self.clock()
        while self.ledger:
            head = self.ledger[0]
            if head.text is None and not final and now - head.since < TRANSCRIPT_WAIT_SECONDS:
                break
            self.ledger.popleft()
            head.settled = True
            if head.text is None and final:
                head.text = head.partial.strip()
                if head.role == Message.Role.ASSISTANT and head.text:
                    head.interrupted = True
            if head.text is not None:
                self._save(head)
        for utterance in self.utterances.values():
            # Gave up waiting for it earlier; store it now, out of order, rather than never.
            if utterance.settled and not utterance.saved and utterance.text is not None:
                self._save(utterance)

    def _save(self, utterance: Utterance) -> None:
        utterance.saved = True
        sink = self.sink()
        if not utterance.text or sink is None:
            return
        writer, conversation_id = sink
        spoken = utterance.spoken()
        writer.put(
            save_utterance,
            conversation_id=conversation_id,
            role=utterance.role,
            text=spoken,
            item_id=utterance.item_id,
            latency_ms=utterance.latency_ms,
            cost=utterance.cost,
            interrupted=utterance.interrupted,
            generated=utterance.text if spoken != utterance.text else "",
        )

    def update(self, utterance: Utterance, **fields: Any) -> None:
        """Set fields of an utterance, and of its row if it is already stored."""
        for name, value in fields.items():
            setattr(utterance, name, value)
        sink = self.sink()
        if utterance.saved and utterance.text and sink is not None:
            writer, conversation_id = sink
            column = {"cost": "cost_usd"}
            writer.put(
                update_utterance,
                conversation_id=conversation_id,
                item_id=utterance.item_id,
                **{column.get(name, name): value for name, value in fields.items()},
            )

    def interrupt(self, item_id: str, heard: float) -> Utterance | None:
        """The caller cut in after hearing `heard` of the item's audio: keep only that part.

        Returns the utterance when this changed it (None if unknown or already cut), so the
        caller can resend a transcript that already went out.
        """
        utterance = self.utterances.get(item_id)
        if utterance is None or utterance.interrupted:
            return None
        utterance.heard = heard
        sink = self.sink()
        if utterance.saved and utterance.text and sink is not None:
            writer, conversation_id = sink
            utterance.interrupted = True
            writer.put(
                trim_utterance,
                conversation_id=conversation_id,
                item_id=item_id,
                heard=utterance.spoken(),
                generated=utterance.text,
            )
        else:
            self.update(utterance, interrupted=True)
        return utterance
