"""Metrics and logs of two real uvicorn workers sharing one PROMETHEUS_MULTIPROC_DIR.

As in production (README, "Metrics and logs"): each worker writes its counts to the shared
directory, and one scrape of either worker reports both. A chat turn on each, a model failure
on one and a voice call on the other go through the real servers, the unmodified SDK and the
loopback fake OpenAI; then the worker holding the call is killed (SIGKILL) and the next scrape
no longer counts its call, but keeps its turns. Both workers' stderr must be JSON lines with
the request id and the conversation number, and no session id anywhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import websockets
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from chatdesk.metrics_view import sweep_dead_workers
from tests.fake_openai import fake_openai_fixture  # noqa: F401
from tests.servers import free_port, subprocess_database_url, wait_for_port

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "scrape-token-0123456789abcdef0123"


class Worker:
    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log = log
        self.host = f"127.0.0.1:{self.port}"
        uvicorn = str(Path(sys.executable).parent / "uvicorn")
        # As production runs it (deploy/systemd): lifespan on (the drain), proxy headers off.
        command = [uvicorn, "--host", "127.0.0.1", "--port", str(self.port), "--no-proxy-headers"]
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(
                [*command, "chatdesk.asgi:application"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr
            )

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def workers(business, fake_openai, tmp_path):
    shared = tmp_path / "metrics"
    shared.mkdir()
    env = {
        **os.environ,  # the fake_openai fixture put OPENAI_API_KEY and OPENAI_BASE_URL here
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "DATABASE_URL": subprocess_database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
        "METRICS_TOKEN": TOKEN,
        "LOG_LEVEL": "INFO",
        # As behind nginx on the same host: its X-Request-ID is believed.
        "TRUSTED_PROXIES": "127.0.0.1",
        "VOICE_GREET_FIRST": "0",
    }
    env.pop("LOG_FORMAT", None)  # production's default: JSON
    started = [Worker(name, env, tmp_path / f"{name}.log") for name in ("a", "b")]
    try:
        for worker in started:
            wait_for_port(worker.port, worker.process)
        yield shared, started
    finally:
        for worker in started:
            worker.stop()


async def chat_turn(host: str, message: str, request_id: str) -> tuple[dict, dict, str]:
    """A new conversation on `host` and one message in it: (session, reply, echoed request id)."""
    origin = {"Origin": f"http://{host}"}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(f"http://{host}/") as page:
            assert page.status == 200
        csrf = {"X-CSRFToken": browser.cookie_jar.filter_cookies(URL(f"http://{host}/"))["csrftoken"].value}
        async with browser.post(f"http://{host}/api/v1/chat/session/new", headers={**csrf, **origin}) as response:
            assert response.status == 201, await response.text()
            session = await response.json()
        async with browser.post(
            f"http://{host}/api/v1/chat/message",
            json={"session_id": session["session_id"], "message": message},
            headers={**csrf, **origin, "X-Request-ID": request_id},
        ) as response:
            assert response.status == 200, await response.text()
            return session, await response.json(), response.headers["X-Request-ID"]


async def scrape(host: str) -> dict[tuple[str, tuple], float]:
    async with aiohttp.ClientSession() as client:
        async with client.get(f"http://{host}/metrics") as response:
            assert response.status == 404  # no token
        async with client.get(f"http://{host}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            assert response.status == 200
            text = await response.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scenario(a, b, fake_openai) -> dict:
    fake_openai.default_text = "Happy to help."
    first, reply, echoed = await chat_turn(a.host, "Do you fix furnaces?", "proxy-req-a1")
    assert (reply["reply"], echoed) == ("Happy to help.", "proxy-req-a1")
    second, reply, _ = await chat_turn(b.host, "Do you clear drains?", "proxy-req-b1")
    assert reply["reply"] == "Happy to help."
    fake_openai.queue_error(500, "upstream exploded")
    failed, reply, _ = await chat_turn(b.host, "My sink is leaking", "proxy-req-b2")
    assert "trouble" in reply["reply"]
    async with aiohttp.ClientSession() as client:  # the customer's transcript: its path holds the token
        async with client.get(f"http://{a.host}/api/v1/chat/session/{first['session_id']}/history") as response:
            assert response.status == 200

    async with websockets.connect(f"ws://{b.host}/api/v1/chat/voice/call", origin=f"http://{b.host}") as call:
        async with asyncio.timeout(10):
            while json.loads(await call.recv())["type"] != "ready":
                pass
        during_call = await scrape(a.host)
        b.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(b.process.wait, 10)
    after_kill = await scrape(a.host)
    return {
        "during_call": during_call,
        "after_kill": after_kill,
        "sessions": [first, second, failed],
    }


def test_one_scrape_counts_both_workers_and_forgets_a_killed_workers_call(workers, fake_openai):
    shared, (a, b) = workers
    seen = asyncio.run(scenario(a, b, fake_openai))
    answered = ("chatdesk_turns_total", (("channel", "chat"), ("mode", "model"), ("outcome", "answered")))
    failed = ("chatdesk_turns_total", (("channel", "chat"), ("mode", "model"), ("outcome", "model_failed")))
    server_errors = ("chatdesk_model_errors_total", (("api", "responses"), ("kind", "server_error")))
    model_requests = ("chatdesk_model_request_seconds_count", (("outcome", "ok"),))
    active_calls = ("chatdesk_voice_calls_active", ())

    during = seen["during_call"]
    assert during[answered] == 2  # one turn on each worker, one scrape of worker a
    assert during[failed] == 1 and during[server_errors] == 1
    assert during[model_requests] == 2
    assert during[active_calls] == 1  # the call is on worker b
    assert during[("chatdesk_conversations_open", (("channel", "chat"),))] == 3
    assert during[("chatdesk_conversations_open", (("channel", "voice"),))] == 1

    after = seen["after_kill"]
    assert after[active_calls] == 0  # b was killed: its call is over
    assert after[answered] == 2 and after[failed] == 1  # b's counts are kept
    assert not list(shared.glob(f"gauge_livesum_{b.process.pid}.db"))

    # uvicorn ends a worker on SIGTERM by re-raising the signal once it has shut down, so no
    # exit hook runs: the next scrape's sweep forgets it, as it did the killed one.
    a.stop()
    assert sweep_dead_workers(str(shared)) == [a.process.pid]
    assert not list(shared.glob("gauge_livesum_*.db"))

    # The logs: JSON lines (parsing each proves it), request id and conversation, no session id.
    lines = a.lines() + b.lines()
    fields = {"time", "level", "logger", "message", "request_id", "conversation"}
    assert lines and all(fields <= set(line) for line in lines)
    failure = next(line for line in b.lines() if line["message"].startswith("Model unavailable"))
    assert failure["request_id"] == "proxy-req-b2"
    assert failure["conversation"] == seen["sessions"][2]["conversation_number"]
    assert failure["level"] == "WARNING"
    access = [line for line in a.lines() if line["logger"] == "uvicorn.access"]
    assert any("/api/v1/chat/session/•••/history" in line["message"] for line in access)
    everything = a.log.read_text() + b.log.read_text()
    for session in seen["sessions"]:
        assert session["session_id"] not in everything
