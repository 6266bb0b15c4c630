"""Draining a worker on SIGTERM, and a worker killed mid-turn, with real uvicorn processes.

Each test starts `uvicorn chatdesk.asgi:application` workers (tests/drain_workers.py) on the test
database, a Redis database of their own and the loopback fake OpenAI, then signals them as a
process manager would: SIGTERM for a restart (chatdesk/drain.py), SIGKILL for a crash. A missing
PostgreSQL or Redis fails these tests; nothing is skipped.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator

import aiohttp
import pytest

from chatdesk.conversations.models import Conversation, Message
from tests.drain_workers import Chat, Worker, cookie_jar, private_redis_url, worker_env
from tests.fake_openai import fake_openai_fixture  # noqa: F401 (registers `fake_openai`)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.fleet]

CALL_PATH = "/api/v1/chat/voice/call"


@pytest.fixture
def workers(business, fake_openai, tmp_path) -> Iterator[Callable[..., Worker]]:
    """Starts workers (settings as keyword arguments); kills what is left, and shows their logs."""
    redis_url = private_redis_url(11)
    started: list[Worker] = []

    def start(**overrides: str) -> Worker:
        worker = Worker(worker_env(redis_url, **overrides), tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker.start()

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()
        for number, worker in enumerate(started):
            print(f"--- worker {number} log (tail) ---\n{worker.log()[-4000:]}")


async def model_requests(fake, count: int, timeout: float = 10) -> None:
    """Until the fake model has received `count` Responses API requests (the turns are in flight)."""
    async with asyncio.timeout(timeout):
        while len(fake.response_requests) < count:
            await asyncio.sleep(0.02)


def stored(role: str) -> list[str]:
    return list(Message.objects.filter(role=role).order_by("id").values_list("text", flat=True))


# --- SIGTERM ----------------------------------------------------------------------------------


def test_sigterm_lets_the_turns_in_flight_finish_refuses_new_work_and_exits(workers, fake_openai):
    fake_openai.latency = 2.0  # each model answer takes 2 s
    worker = workers(DRAIN_SECONDS="20")

    async def scenario():
        async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as http:
            chat = await Chat(http, worker.url).start()
            turns = [asyncio.create_task(chat.send(f"question {n}", f"m-{n}")) for n in range(5)]
            await model_requests(fake_openai, 5)
            sent_at = worker.sigterm()
            await asyncio.sleep(0.5)
            # The listening socket is closed: nginx gets "connection refused" and tries the next worker.
            async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as late:
                with pytest.raises(aiohttp.ClientConnectionError):
                    await late.get(worker.url + "/")
            results = await asyncio.gather(*turns)
            code = await asyncio.to_thread(worker.wait, 30)
            return results, time.monotonic() - sent_at, code

    results, took, code = asyncio.run(scenario())
    assert [status for status, _, _ in results] == [200] * 5, results
    assert all(body["reply"] == "OK" for _, body, _ in results)
    # It exits as the last turn ends (about 1.5 s after the signal), not at a timeout.
    assert took < 4.0, took
    assert code == -signal.SIGTERM  # uvicorn re-raises the signal once it has shut down
    assert sorted(stored("customer")) == [f"question {n}" for n in range(5)]
    assert stored("assistant").count("OK") == 5
    assert "Drained in" in worker.log()


def test_sigterm_during_a_call_says_goodbye_keeps_the_transcript_and_refuses_new_turns(workers, fake_openai):
    realtime = fake_openai.realtime
    realtime.audio_pacing = 1.0  # audio streams in real time, as from OpenAI
    realtime.queue_reply("Maple Home Services, how can I help?", audio_ms=600)
    goodbye = "I'm sorry, we need to end this call now. Everything is saved; please call back in a minute."
    realtime.queue_reply(goodbye, audio_ms=2500)
    fake_openai.latency = 1.5  # a chat turn in flight meanwhile
    worker = workers(VOICE_GREET_FIRST="1", VOICE_GOODBYE_SECONDS="8")

    async def scenario():
        async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as http:
            ws = await http.ws_connect(worker.url.replace("http", "ws") + CALL_PATH, headers={"Origin": worker.url})
            frames: list = []
            # The greeting first: the call is up and the assistant has spoken.
            async with asyncio.timeout(10):
                while True:
                    message = await ws.receive()
                    frames.append(message)
                    if message.type == aiohttp.WSMsgType.TEXT:
                        data = message.json()
                        if data.get("type") == "transcript" and data["role"] == "assistant" and data["final"]:
                            break
            async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as other:
                chat = await Chat(other, worker.url).start()
                in_flight = asyncio.create_task(chat.send("Do you fix boilers?", "m-1"))
                await model_requests(fake_openai, 1)
                sent_at = worker.sigterm()
                after: list = []
                audio_bytes = 0

                async def listen():
                    nonlocal audio_bytes
                    async for message in ws:
                        if message.type == aiohttp.WSMsgType.BINARY:
                            audio_bytes += len(message.data)
                        else:
                            after.append(message.json())
                    return ws.close_code, time.monotonic() - sent_at

                listening = asyncio.create_task(listen())
                await asyncio.sleep(0.7)
                # While the goodbye plays the worker still listens, but takes no new turn.
                refused = await chat.send("One more thing", "m-2")
                readiness = None
                async with other.get(worker.url + "/readyz") as response:
                    readiness = response.status
                answered = await in_flight
                close_code, call_ended_after = await listening
                code = await asyncio.to_thread(worker.wait, 30)
                return after, audio_bytes, close_code, call_ended_after, refused, readiness, answered, code

    after, audio_bytes, close_code, call_ended_after, refused, readiness, answered, code = asyncio.run(scenario())
    # The page says why at once (state changes aside), then the assistant says goodbye.
    told = [m for m in after if m["type"] != "state"]
    assert told[0]["type"] == "notice" and told[0]["code"] == "server_shutdown", after
    said = [m["text"] for m in after if m["type"] == "transcript" and m["role"] == "assistant" and m["final"]]
    assert said == [goodbye]
    assert audio_bytes >= 2500 * 48 * 0.9  # the goodbye's audio reached the caller
    assert [m["code"] for m in after if m["type"] == "error"] == ["server_shutdown"]
    assert after[-1] == {"type": "ended", "reason": "server_shutdown"}
    assert close_code == 1012
    # The socket stayed open until the goodbye had played (2.5 s of audio), not cut at once.
    assert 2.5 <= call_ended_after < 8, call_ended_after
    # What the model was asked: a goodbye, no tools.
    create = realtime.client_events("response.create")[-1]["response"]
    assert "call back" in create["instructions"] and create["tool_choice"] == "none"
    status, body, headers = refused
    assert status == 503 and body["error"] == "server_draining", body
    assert int(headers["Retry-After"]) >= 1
    assert readiness == 503  # readiness turned false at once (chatdesk/health.py)
    assert answered[0] == 200 and answered[1]["reply"] == "OK"
    assert code == -signal.SIGTERM
    # The call's record: the greeting and the goodbye as heard, and why it ended.
    call = Conversation.objects.get(channel=Conversation.ChannelKind.VOICE)
    assert call.end_reason == "server_shutdown"
    lines = list(call.messages.filter(role=Message.Role.ASSISTANT).order_by("id").values_list("text", flat=True))
    assert lines == ["Maple Home Services, how can I help?", goodbye]
    # The refused turn stored nothing; the one in flight was answered.
    assert stored("customer") == ["Do you fix boilers?"]


def test_a_turn_still_running_at_the_drain_deadline_answers_503_and_another_worker_answers_its_retry(
    workers, fake_openai
):
    fake_openai.queue_delay(30)
    fake_openai.queue_text("Never sent: the worker went away.")
    fake_openai.queue_text("Answered by the other worker.")
    leaving = workers(DRAIN_SECONDS="1", TURN_LEASE_SECONDS="2")
    staying = workers(TURN_LEASE_SECONDS="2")

    async def scenario():
        async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as http:
            chat = await Chat(http, leaving.url).start()
            first = asyncio.create_task(chat.send("My furnace is banging", "m-1"))
            await model_requests(fake_openai, 1)
            sent_at = leaving.sigterm()
            cut = await first
            cut_after = time.monotonic() - sent_at
            code = await asyncio.to_thread(leaving.wait, 30)
            exited_after = time.monotonic() - sent_at
            retries = []
            async with asyncio.timeout(15):
                while True:
                    retry = await chat.send("My furnace is banging", "m-1", base=staying.url)
                    retries.append(retry[0])
                    if retry[0] != 409:
                        break
                    await asyncio.sleep(int(retry[2]["Retry-After"]) / 4)
            again = await chat.send("My furnace is banging", "m-1", base=staying.url)
            return cut, cut_after, code, exited_after, retries, retry, again

    cut, cut_after, code, exited_after, retries, retry, again = asyncio.run(scenario())
    status, body, headers = cut
    assert status == 503 and body["error"] == "server_draining", body
    assert "Retry-After" in headers
    assert 1.0 <= cut_after < 3.0, cut_after  # at DRAIN_SECONDS, not the model's 30 s
    assert code == -signal.SIGTERM and exited_after < 5.0
    # The cut turn's lease is left to lapse (its last write might still land), then the retry
    # is answered, once.
    assert retries[-1] == 200 and set(retries[:-1]) <= {409}, retries
    assert retry[1]["reply"] == "Answered by the other worker."
    assert again[1] == retry[1]
    assert stored("customer") == ["My furnace is banging"]
    assert stored("assistant")[1:] == ["Answered by the other worker."]


# --- SIGKILL ----------------------------------------------------------------------------------


def test_a_retry_after_a_worker_is_killed_mid_turn_is_answered_once_by_the_other_worker(workers, fake_openai):
    fake_openai.queue_delay(30)
    fake_openai.queue_text("Never sent: the worker died.")
    fake_openai.queue_text("Answered by the other worker.")
    doomed = workers(TURN_LEASE_SECONDS="2")
    survivor = workers(TURN_LEASE_SECONDS="2")

    async def scenario():
        async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as http:
            chat = await Chat(http, doomed.url).start()
            first = asyncio.create_task(chat.send("My furnace is banging", "m-1"))
            await model_requests(fake_openai, 1)
            await asyncio.sleep(1.0)  # the lease has been refreshed at least once
            doomed.sigkill()
            killed_at = time.monotonic()
            with pytest.raises(aiohttp.ClientConnectionError):
                await first
            # At once, the other worker sees the dead worker's lease: still "in progress".
            early = await chat.send("My furnace is banging", "m-1", base=survivor.url)
            statuses = [early[0]]
            async with asyncio.timeout(15):
                while True:
                    retry = await chat.send("My furnace is banging", "m-1", base=survivor.url)
                    statuses.append(retry[0])
                    if retry[0] != 409:
                        break
                    await asyncio.sleep(0.25)
            answered_after = time.monotonic() - killed_at
            again = await chat.send("My furnace is banging", "m-1", base=survivor.url)
            return early, statuses, retry, answered_after, again

    early, statuses, retry, answered_after, again = asyncio.run(scenario())
    assert early[0] == 409 and early[1]["error"] == "turn_in_progress", early
    assert statuses[-1] == 200 and set(statuses[:-1]) == {409}, statuses
    assert retry[1]["reply"] == "Answered by the other worker."
    assert answered_after < 2 + 1.5, answered_after  # TURN_LEASE_SECONDS after the last refresh
    assert again[1] == retry[1]
    # The message typed before the crash was stored once, and is answered exactly once.
    assert stored("customer") == ["My furnace is banging"]
    assert stored("assistant")[1:] == ["Answered by the other worker."]
