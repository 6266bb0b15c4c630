"""What a call leaves in the record: its channel, what the caller really heard, what it cost,
and how it ended. Browser side: WebsocketCommunicator on the real ASGI application; OpenAI side:
the loopback fake Realtime API through the unmodified openai SDK; real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.test import Client

from chatdesk.models import Interaction, Message
from tests.fake_openai import RealtimeReply, fake_openai_fixture  # noqa: F401
from tests.fake_openai.audio import sine_pcm16
from tests.test_voice_call import Caller, interaction_of, messages_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def voice(fake_openai, settings):
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = fake_openai.base_url
    settings.VOICE_GREET_FIRST = True
    settings.VOICE_MAX_FRAMES_PER_SECOND = 1000  # tests send audio faster than real time
    return fake_openai.realtime


async def wait_for(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# --- ending a call ----------------------------------------------------------------------------


async def test_hanging_up_mid_reply_frees_the_slot_for_the_next_call_at_once(voice, settings):
    settings.VOICE_MAX_CONCURRENT_CALLS_PER_IP = 1
    # Like the real API, the reply is generated faster than real time: a long one is still pouring
    # in when the caller hangs up.
    voice.audio_pacing = 0.0
    voice.close_delay = 30.0
    voice.queue_reply("Thanks for calling, let me tell you about everything we do, at length.", audio_ms=300_000)
    first = Caller(ip="198.51.100.20")
    ready = await first.connect()
    item = (await first.expect("audio_item"))["item_id"]
    await first.audio_ms(item, 300)
    started = time.monotonic()
    # The browser closes the socket (a hang-up) while the reply is still coming in.
    await first.ws.send_input({"type": "websocket.disconnect", "code": 1000})

    async def ended() -> bool:
        return bool((await interaction_of(ready["session_id"])).end_reason)

    await wait_for(ended, "the call's end record")
    print("end recorded after", time.monotonic() - started)
    second = Caller(ip="198.51.100.20")
    await second.connect()  # not "too many calls at once"
    print("second ready after", time.monotonic() - started)
    await second.hang_up()
    await first.ws.wait(timeout=10)  # the upstream close gives up quickly too
    assert (await interaction_of(ready["session_id"])).end_reason == "customer_hung_up"
