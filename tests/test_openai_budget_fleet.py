"""The OpenAI budget across two worker processes (uvicorn), as behind a load balancer.

Both workers share PostgreSQL, Redis (REDIS_URL_FOR_TESTS, emptied first) and one fake OpenAI,
which sends OpenAI's x-ratelimit-* headers, enforces its limits and answers scripted 429s with
retry-after. What worker A learns from OpenAI holds worker B back: B's customer waits or gets
the guided flow, B's caller is refused politely, and the fake sees no request from B meanwhile.
A missing Redis fails these tests; they never skip.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import redis
from yarl import URL

from chatdesk.assistant.turns import BUSY_LEAD_IN
from chatdesk.conversations.models import Message
from tests.fake_openai import FakeOpenAI
from tests.servers import free_port, subprocess_database_url, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
WAIT_SECONDS = 2
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def workers(django_db_setup, django_db_blocker, fake) -> Iterator[list[str]]:
    """Two uvicorn workers with the model on, sharing Redis: their host:port."""
    redis_url = os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/0")
    with django_db_blocker.unblock():
        database_url = subprocess_database_url()
    env = {
        **os.environ,
        # The production settings: the test settings blank OPENAI_API_KEY.
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "budget-fleet-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_BUDGET_WAIT_SECONDS": str(WAIT_SECONDS),
        "NO_PROXY": "127.0.0.1,localhost",
        "LOG_LEVEL": "ERROR",
    }
    uvicorn = str(Path(sys.executable).parent / "uvicorn")
    processes = []
    for _ in range(2):
        port = free_port()
        command = [uvicorn, "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "chatdesk.asgi:application"]
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        processes.append((process, port))
    try:
        for process, port in processes:
            wait_for_port(port, process)
        yield [f"127.0.0.1:{port}" for _, port in processes]
    finally:
        for process, _ in processes:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
def fleet(workers, fake, business) -> list[str]:
    """The two workers, with an empty shared budget and a fresh fake."""
    redis.Redis.from_url(os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/0")).flushdb()
    fake.reset()
    return workers


class Browser:
    """A customer's browser on one worker: a chat session over HTTP, a call over WebSocket."""

    def __init__(self, session: aiohttp.ClientSession, host: str) -> None:
        self.session, self.host = session, host
        self.origin = {"Origin": f"http://{host}"}
        self.session_id = ""

    async def start_chat(self) -> None:
        async with self.session.get(f"http://{self.host}/") as page:
            assert page.status == 200
        async with self.session.post(f"http://{self.host}/api/v1/chat/session/new", headers=self.headers()) as response:
            assert response.status == 201, await response.text()
            self.session_id = (await response.json())["session_id"]

    def headers(self) -> dict[str, str]:
        token = self.session.cookie_jar.filter_cookies(URL(f"http://{self.host}/"))["csrftoken"].value
        return {"X-CSRFToken": token, **self.origin}

    async def send(self, text: str) -> str:
        async with self.session.post(
            f"http://{self.host}/api/v1/chat/message",
            json={"session_id": self.session_id, "message": text},
            headers=self.headers(),
        ) as response:
            assert response.status == 200, await response.text()
            return (await response.json())["reply"]

    async def call(self) -> tuple[list[dict], int | None]:
        """Place a call; what the server sent up to its close, and the close code."""
        messages = []
        async with self.session.ws_connect(f"ws://{self.host}/api/v1/chat/voice/call", headers=self.origin) as ws:
            async with asyncio.timeout(10):
                async for frame in ws:
                    if frame.type == aiohttp.WSMsgType.TEXT:
                        messages.append(frame.json())
            return messages, ws.close_code


def on(hosts: list[str], scenario) -> None:
    async def run() -> None:
        jars = [aiohttp.CookieJar(unsafe=True) for _ in hosts]  # unsafe: cookies for 127.0.0.1
        async with aiohttp.ClientSession(cookie_jar=jars[0]) as a, aiohttp.ClientSession(cookie_jar=jars[1]) as b:
            await scenario(Browser(a, hosts[0]), Browser(b, hosts[1]))

    asyncio.run(run())


def failure_kinds(session_id: str) -> list[str]:
    return list(
        Message.objects.filter(conversation__session_id=session_id, role=Message.Role.EVENT)
        .exclude(failure_kind="")
        .order_by("id")
        .values_list("failure_kind", flat=True)
    )


def test_a_429_seen_by_one_worker_pauses_the_other(fleet, fake):
    fake.queue_rate_limited(retry_after=30)
    seen = {}

    async def scenario(dana: Browser, eve: Browser) -> None:
        await dana.start_chat()
        await eve.start_chat()
        seen["dana"] = await dana.send("Can someone look at my furnace?")
        seen["sent"] = len(fake.response_requests)
        started = time.monotonic()
        seen["eve"] = await eve.send("My furnace is banging, can someone come tomorrow morning?")
        seen["eve_seconds"] = time.monotonic() - started
        seen["call"] = await eve.call()
        seen["sent_after"] = len(fake.response_requests)
        seen["ids"] = dana.session_id, eve.session_id

    on(fleet, scenario)
    assert "trouble" in seen["dana"]
    assert seen["sent"] == 1
    # Worker B sent nothing to OpenAI: its customer got the guided flow at once (the pause
    # outlasts the wait), and its caller was refused politely.
    assert seen["sent_after"] == 1
    assert seen["eve"].startswith(BUSY_LEAD_IN)
    assert seen["eve_seconds"] < WAIT_SECONDS
    messages, close_code = seen["call"]
    errors = [m for m in messages if m["type"] == "error"]
    assert [e["code"] for e in errors] == ["busy"]
    assert close_code == 4503
    assert fake.realtime.connections == []
    dana_id, eve_id = seen["ids"]
    assert failure_kinds(dana_id) == ["rate_limited"]
    assert failure_kinds(eve_id) == ["budget_exhausted"]


def test_near_limit_headers_seen_by_one_worker_make_the_other_wait_or_fall_back(fleet, fake):
    # 60 requests a minute and one left: after A's request, the headers say none is left and
    # one comes back each second. B's turn waits for it, then the model answers.
    fake.rate_limits.set(requests_limit=60, requests_remaining=1)
    fake.queue_text("Hello Dana.")
    fake.queue_text("Hello Eve.")
    seen = {}

    async def refill(dana: Browser, eve: Browser) -> None:
        await dana.start_chat()
        await eve.start_chat()
        seen["dana"] = await dana.send("Hi")
        started = time.monotonic()
        seen["eve"] = await eve.send("Hi")
        seen["eve_seconds"] = time.monotonic() - started
        seen["ids"] = dana.session_id, eve.session_id

    on(fleet, refill)
    assert (seen["dana"], seen["eve"]) == ("Hello Dana.", "Hello Eve.")
    assert 0.5 <= seen["eve_seconds"] < WAIT_SECONDS + 1
    assert fake.rate_limits.refused == 0  # B waited instead of being refused by OpenAI
    assert failure_kinds(seen["ids"][1]) == ["budget_wait"]

    # Two a minute: the next request fits only in 30 s, past B's wait. B's customer gets the
    # guided flow and the fake sees no request from B.
    redis.Redis.from_url(os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/0")).flushdb()
    fake.reset()
    fake.rate_limits.set(requests_limit=2, requests_remaining=1)

    async def used_up(dana: Browser, eve: Browser) -> None:
        await dana.start_chat()
        await eve.start_chat()
        seen["dana"] = await dana.send("Hi again")
        seen["sent"] = len(fake.response_requests)
        seen["eve"] = await eve.send("I need my drain cleaned")
        seen["sent_after"] = len(fake.response_requests)
        seen["ids"] = dana.session_id, eve.session_id

    on(fleet, used_up)
    assert seen["sent"] == seen["sent_after"] == 1
    assert seen["eve"].startswith(BUSY_LEAD_IN)
    assert "Drain Cleaning" in seen["eve"]
    assert failure_kinds(seen["ids"][1]) == ["budget_exhausted"]
