"""The production recipe, started for real (tests/fleet.py): nginx from deploy/nginx/ in front of two
uvicorn workers on PostgreSQL and Redis, with the fake OpenAI behind both.

Through nginx: health and readiness, the voice page's scripts, a chat booking, a live takeover and
a voice call, each served by both workers (every answer's X-Served-By names its worker); a worker
that is down is skipped; the client address nginx passes is the one the app believes.
Select with `-m fleet`. Needs nginx (Debian's nginx-light): a missing nginx fails, never skips.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from django.contrib.auth import get_user_model
from django.utils import timezone
from yarl import URL

from bookings.models import Booking
from chatdesk.conversations.models import Conversation, Message
from deploy.render import render_site, render_standalone
from tests.fake_openai import last_function_call_output
from tests.fake_openai.audio import silence_pcm16, sine_pcm16
from tests.fleet import (  # noqa: F401 (the fixtures)
    DRAIN_SECONDS,
    NGINX,
    ROOT,
    Fleet,
    Worker,
    fleet_fixture,
    fleet_servers_fixture,
)
from tests.servers import free_port
from tests.staff import grant

pytestmark = [pytest.mark.fleet, pytest.mark.django_db(transaction=True)]
WORKERS = {"w1", "w2"}


def served_by(response: aiohttp.ClientResponse) -> str:
    return response.headers.get("X-Served-By", "")


class Browser:
    """One browser's cookies and CSRF token against the fleet, through nginx."""

    def __init__(self, fleet: Fleet, session: aiohttp.ClientSession) -> None:
        self.fleet = fleet
        self.http = session
        self.served: list[str] = []

    @property
    def origin(self) -> dict[str, str]:
        return {"Origin": self.fleet.url}

    def cookie(self, name: str) -> str:
        return self.http.cookie_jar.filter_cookies(URL(self.fleet.url + "/"))[name].value

    def cookie_header(self) -> str:
        jar = self.http.cookie_jar.filter_cookies(URL(self.fleet.url + "/"))
        return "; ".join(f"{name}={morsel.value}" for name, morsel in jar.items())

    async def get(self, path: str, expect: int = 200, **kwargs: Any) -> aiohttp.ClientResponse:
        async with self.http.get(self.fleet.url + path, **kwargs) as response:
            await response.read()
            assert response.status == expect, (path, response.status, await response.text())
            self.served.append(served_by(response))
            return response

    async def post(self, path: str, expect: int = 200, **kwargs: Any) -> Any:
        headers = {"X-CSRFToken": self.cookie("csrftoken"), **self.origin, **kwargs.pop("headers", {})}
        async with self.http.post(self.fleet.url + path, headers=headers, **kwargs) as response:
            body = await response.text()
            assert response.status == expect, (path, response.status, body)
            self.served.append(served_by(response))
            return json.loads(body) if response.content_type == "application/json" else body

    async def websocket(self, path: str) -> websockets.ClientConnection:
        return await websockets.connect(
            self.fleet.ws_url + path,
            additional_headers={**self.origin, "Cookie": self.cookie_header()},
            proxy=None,
            open_timeout=10,
        )


def browser_session(**connector: Any) -> aiohttp.ClientSession:
    # unsafe=True: aiohttp otherwise refuses cookies from IP-address hosts like 127.0.0.1.
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), connector=aiohttp.TCPConnector(force_close=True, **connector)
    )


async def receive_until(ws: websockets.ClientConnection, predicate: Callable[[dict], bool], timeout: float = 10):
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.recv()
            if isinstance(message, bytes):
                continue
            data = json.loads(message)
            if predicate(data):
                return data


# --- health, readiness, static files --------------------------------------------------------------


def test_health_readiness_and_static_files_through_nginx(fleet):
    async def scenario() -> None:
        async with browser_session() as session:
            browser = Browser(fleet, session)
            for _ in range(4):
                alive = await browser.get("/healthz")
                assert await alive.json() == {"status": "alive", "draining": False}
            for _ in range(2):
                ready = await browser.get("/readyz")
                checks = (await ready.json())["checks"]
                assert checks["database"]["ok"] and checks["migrations"] == {"ok": True, "pending": []}
                assert checks["redis"] == {"ok": True, "ms": checks["redis"]["ms"]}
            assert set(browser.served) == WORKERS  # nginx spread them over both workers

            # The voice page's scripts and styles load through nginx, from STATIC_ROOT on disk.
            async with session.get(fleet.url + "/voice/") as page:
                html = await page.text()
            assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
            assert any(a.endswith(".js") for a in assets) and any("voice" in a for a in assets), assets
            for asset in assets:
                async with session.get(fleet.url + asset) as response:
                    body = await response.read()
                    assert response.status == 200, asset
                    assert served_by(response) == "", "nginx serves static files itself"
                    assert body == (fleet.static_root / asset.removeprefix("/static/")).read_bytes()
                    if asset.endswith(".js"):
                        assert response.content_type in {"application/javascript", "text/javascript"}
                    assert response.headers["X-Content-Type-Options"] == "nosniff"
            async with session.get(fleet.url + "/static/no-such-file.js") as response:
                assert response.status == 404

            # A worker without nginx in front serves the same files (WhiteNoise): what plain uvicorn lacked.
            worker = fleet.workers[0]
            async with session.get(f"{worker.url}{assets[0]}", headers={"Host": "127.0.0.1"}) as response:
                assert response.status == 200 and served_by(response) == worker.name
                assert await response.read() == (fleet.static_root / assets[0].removeprefix("/static/")).read_bytes()

    asyncio.run(scenario())


def test_readyz_is_503_on_the_worker_whose_redis_is_unreachable(fleet):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    fleet.worker("w2").restart(env={"REDIS_URL": dead})

    async def scenario() -> dict[str, tuple[int, dict]]:
        answers: dict[str, tuple[int, dict]] = {}
        async with browser_session() as session:
            for _ in range(4):
                async with session.get(fleet.url + "/readyz") as response:
                    answers[served_by(response)] = (response.status, await response.json())
        return answers

    answers = asyncio.run(scenario())
    assert set(answers) == WORKERS
    status, body = answers["w2"]
    assert status == 503 and body["status"] == "not_ready"
    assert body["checks"]["redis"]["ok"] is False and body["checks"]["database"]["ok"] is True
    assert answers["w1"][0] == 200  # the other worker is ready; nginx passed each answer as it was


# --- failover -------------------------------------------------------------------------------------


def test_a_stopped_worker_is_skipped_and_with_none_the_api_says_503_with_retry_after(fleet):
    async def new_chats(count: int) -> list[str]:
        async with browser_session() as session:
            browser = Browser(fleet, session)
            await browser.get("/")
            for _ in range(count):
                await browser.post("/api/v1/chat/session/new", expect=201)
            return browser.served

    fleet.worker("w1").stop()
    # POSTs too: nginx resends a request that never reached a worker (connection refused).
    assert asyncio.run(new_chats(4)) == ["w2"] * 5

    fleet.worker("w2").stop()

    async def nobody() -> tuple[int, dict, str]:
        async with browser_session() as session:
            async with session.get(fleet.url + "/api/v1/chat/session/x/history") as response:
                return response.status, await response.json(), response.headers.get("Retry-After", "")

    status, body, retry_after = asyncio.run(nobody())
    assert (status, body["error"], body["retry_after"], retry_after) == (503, "service_unavailable", 5, "5")

    fleet.worker("w1").start()
    fleet.worker("w2").start()

    async def pages(count: int) -> list[tuple[int, str]]:
        async with browser_session() as session:
            answers = []
            for _ in range(count):
                async with session.get(fleet.url + "/healthz") as response:
                    answers.append((response.status, served_by(response)))
            return answers

    # With every worker marked failed, nginx keeps answering that 503 until fail_timeout (5 s)
    # has passed, then tries them again: both serve.
    answers: list[tuple[int, str]] = []
    deadline = time.monotonic() + 15
    while {worker for status, worker in answers if status == 200} != WORKERS and time.monotonic() < deadline:
        answers += asyncio.run(pages(2))
        time.sleep(0.2)
    assert {worker for status, worker in answers if status == 200} == WORKERS
    assert {status for status, _ in answers} <= {200, 503}


# --- the client address ---------------------------------------------------------------------------


def test_the_client_address_is_the_one_nginx_saw_not_the_one_the_client_claims(fleet):
    """TRUSTED_PROXIES=127.0.0.1 (nginx): the address nginx appends counts, a forged header does not."""
    from axes.models import AccessAttempt

    get_user_model().objects.create_user("sam", password="dispatch-pass-123", is_staff=True)

    async def failed_login() -> None:
        # The browser connects from 127.0.0.5, an address of its own (not nginx's 127.0.0.1).
        async with browser_session(local_addr=("127.0.0.5", 0)) as session:
            browser = Browser(fleet, session)
            await browser.get("/admin/login/")
            await browser.post(
                "/admin/login/?next=/admin/",
                data={"username": "sam", "password": "wrong", "csrfmiddlewaretoken": browser.cookie("csrftoken")},
                headers={"X-Forwarded-For": "203.0.113.9"},
            )

    asyncio.run(failed_login())
    attempt = AccessAttempt.objects.get(username="sam")
    assert attempt.ip_address == "127.0.0.5"


# --- a chat booking, a live takeover, a voice call ----------------------------------------------


def test_a_chat_booking_through_nginx_served_by_both_workers(fleet, business):
    model = fleet.fake
    # Real time in the workers (they cannot be frozen): the next two weeks from the day after tomorrow.
    today = timezone.localdate()
    first_day, last_day = (today + timedelta(days=2)).isoformat(), (today + timedelta(days=14)).isoformat()

    async def scenario() -> tuple[Browser, dict]:
        async with browser_session() as session:
            dana = Browser(fleet, session)
            await dana.get("/")
            chat = await dana.post("/api/v1/chat/session/new", expect=201)
            assert chat["mode"] == "model"
            model.queue_function_call(
                "get_available_time_slots",
                {"service_id": "hvac-repair", "date": first_day, "end_date": last_day, "technician_id": None},
            )
            model.queue_text("Alice T. can come. Shall I book it?")
            first = await dana.post(
                "/api/v1/chat/message",
                json={"session_id": chat["session_id"], "message": "My furnace bangs, next Monday?"},
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            assert first["tool_calls"][0]["name"] == "get_available_time_slots", first
            slots = last_function_call_output(model.response_requests[-1])
            assert slots.get("slots"), slots
            model.queue_function_call(
                "create_booking",
                {
                    "service_id": "hvac-repair",
                    "start": slots["slots"][0]["start"],
                    "technician_id": None,
                    "customer_name": "Dana Customer",
                    "customer_phone": "416-555-0123",
                    "customer_email": None,
                    "address": "12 Queen St W, Toronto",
                    "notes": "Banging furnace",
                    "customer_confirmed": True,
                },
            )
            model.queue_text("You're booked!")
            second = await dana.post(
                "/api/v1/chat/message",
                json={"session_id": chat["session_id"], "message": "Yes please. Dana Customer, 416-555-0123."},
            )
            assert second["bookings"][0]["booking_number"].startswith("BK-"), second
            async with session.get(f"{fleet.url}/api/v1/chat/session/{chat['session_id']}/history") as response:
                history = await response.json()
                dana.served.append(served_by(response))
            return dana, {"chat": chat, "second": second, "history": history}

    dana, seen = asyncio.run(scenario())
    assert set(dana.served) == WORKERS, dana.served  # the conversation moved between workers
    booking = Booking.objects.get()
    assert booking.number == seen["second"]["bookings"][0]["booking_number"]
    assert booking.channel == "chat" and booking.customer.name == "Dana Customer"
    assert [m["role"] for m in seen["history"]["messages"]][-2:] == ["customer", "assistant"]
    conversation = Conversation.objects.get(session_id=seen["chat"]["session_id"])
    assert conversation.booking_count == 1


def test_a_live_takeover_through_nginx_customer_and_staff_on_different_workers(fleet, business):
    sam = get_user_model().objects.create_user("sam", password="dispatch-pass-123", is_staff=True)
    grant(sam, "chatdesk.view_conversation", "chatdesk.take_over_conversation")

    async def scenario() -> tuple[str, str]:
        async with browser_session() as customer_http, browser_session() as staff_http:
            customer, staff = Browser(fleet, customer_http), Browser(fleet, staff_http)
            await customer.get("/")
            chat = await customer.post("/api/v1/chat/session/new", expect=201)
            await staff.get("/admin/login/")
            await staff.post(
                "/admin/login/?next=/admin/",
                data={
                    "username": "sam",
                    "password": "dispatch-pass-123",
                    "csrfmiddlewaretoken": staff.cookie("csrftoken"),
                },
                allow_redirects=False,
                expect=302,
            )
            customer_ws = await customer.websocket("/api/v1/chat/live")
            assert json.loads(await customer_ws.recv())["taken_over"] is False
            customer_worker = customer_ws.response.headers["X-Served-By"]
            # The staff socket on the other worker: only Redis (the channel layer) connects them.
            for _ in range(4):
                staff_ws = await staff.websocket("/api/v1/staff/live")
                if staff_ws.response.headers["X-Served-By"] != customer_worker:
                    break
                await staff_ws.close()
            staff_worker = staff_ws.response.headers["X-Served-By"]
            number = chat["conversation_number"]
            await staff_ws.send(json.dumps({"type": "watch", "conversation": number}))
            await receive_until(staff_ws, lambda m: m["type"] == "watching")

            base = f"/api/v1/staff/conversations/{number}"
            await staff.post(f"{base}/takeover")
            taken = await receive_until(customer_ws, lambda m: m["type"] == "takeover")
            assert taken["taken_over"] is True

            paused = await customer.post(
                "/api/v1/chat/message", json={"session_id": chat["session_id"], "message": "Is someone there?"}
            )
            assert paused["paused"] is True
            seen = await receive_until(
                staff_ws, lambda m: m["type"] == "event" and m["event"].get("role") == "customer"
            )
            assert seen["event"]["text"] == "Is someone there?"
            await staff.post(f"{base}/messages", json={"text": "Yes, Sam here."}, expect=201)
            reply = await receive_until(customer_ws, lambda m: m["type"] == "staff_message")
            assert reply["text"] == "Yes, Sam here."
            await customer_ws.close()
            await staff_ws.close()
            return customer_worker, staff_worker

    customer_worker, staff_worker = asyncio.run(scenario())
    assert {customer_worker, staff_worker} == WORKERS
    assert fleet.fake.response_requests == []  # taken over: the model was never asked


async def call(fleet: Fleet, line: str) -> tuple[str, dict, list[dict]]:
    """One voice call through nginx: greeting, one caller turn, hang up. (worker, ready, messages)."""
    async with websockets.connect(
        fleet.ws_url + "/api/v1/chat/voice/call", additional_headers={"Origin": fleet.url}, proxy=None
    ) as ws:
        worker = ws.response.headers["X-Served-By"]
        ready = await receive_until(ws, lambda m: m["type"] == "ready")
        greeting = await receive_until(ws, lambda m: m["type"] == "transcript" and m["final"])
        played = {"type": "playback", "item_id": greeting["item_id"], "played_ms": 300}
        await ws.send(json.dumps(played))
        pcm = sine_pcm16(600) + silence_pcm16(700)
        for start in range(0, len(pcm), 1920):  # 40 ms frames, as the browser sends
            await ws.send(pcm[start : start + 1920])
        said = await receive_until(ws, lambda m: m["type"] == "transcript" and m["role"] == "customer" and m["final"])
        assert said["text"] == line
        answer = await receive_until(
            ws, lambda m: m["type"] == "transcript" and m["role"] == "assistant" and m["final"]
        )
        await ws.send(json.dumps({"type": "hangup"}))
        ended = await receive_until(ws, lambda m: m["type"] == "ended")
        assert ended["reason"] == "customer_hung_up"
        return worker, ready, [greeting, said, answer]


def spoken(conversation: Conversation) -> list[tuple[str, str]]:
    return list(Message.objects.filter(conversation=conversation).exclude(role="event").values_list("role", "text"))


def test_voice_calls_through_nginx_on_both_workers(fleet, business):
    voice = fleet.fake.realtime
    workers = []
    for caller in ("Ana", "Ben"):
        voice.queue_reply("Maple Home Services, how can I help?", audio_ms=300)
        voice.queue_turn(f"This is {caller}, my sink is blocked.", f"Sorry to hear that, {caller}.", audio_ms=300)
        worker, ready, transcript = asyncio.run(call(fleet, f"This is {caller}, my sink is blocked."))
        workers.append(worker)
        assert transcript[2]["text"] == f"Sorry to hear that, {caller}."
        conversation = Conversation.objects.get(session_id=ready["session_id"])
        assert conversation.channel == "voice"
        expected = [
            ("assistant", "Maple Home Services, how can I help?"),
            ("customer", f"This is {caller}, my sink is blocked."),
            ("assistant", f"Sorry to hear that, {caller}."),
        ]
        # The call's background writer stores the last utterance as the call closes: allow it a moment.
        deadline = time.monotonic() + 5
        while spoken(conversation) != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert spoken(conversation) == expected
    assert set(workers) == WORKERS


# --- the recipe's files (no servers) ----------------------------------------------------------------


@pytest.mark.django_db(transaction=False)
def test_the_tested_worker_command_is_the_systemd_units(tmp_path):
    unit = (ROOT / "deploy" / "systemd" / "chatdesk@.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*?)(?<!\\)$", unit, re.S | re.M).group(1)
    unit_args = exec_start.replace("\\\n", " ").replace("%i", "8001").split()
    worker = Worker("8001", 8001, {}, tmp_path)
    assert unit_args[0].endswith("/.venv/bin/uvicorn")
    assert unit_args[1:] == [arg for arg in worker.command()[1:] if arg != "--no-access-log"]
    budget = int(unit_args[unit_args.index("--timeout-graceful-shutdown") + 1])
    assert budget == DRAIN_SECONDS
    assert int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1)) > budget


@pytest.mark.django_db(transaction=False)
def test_the_site_with_tls_passes_nginx_own_check(tmp_path):
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=chatdesk.test"),
            *("-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")),
        ],
        check=True,
        capture_output=True,
    )
    site = render_site(
        ports=[8001, 8002, 8003],
        static_root=tmp_path / "static",
        server_name="chatdesk.test",
        tls_certificate=str(tmp_path / "cert.pem"),
        tls_key=str(tmp_path / "key.pem"),
    )
    assert "listen 443 ssl" in site and "return 301 https://$host$request_uri;" in site
    assert site.count("server 127.0.0.1:800") == 3
    config = render_standalone(tmp_path / "nginx", site=site)
    done = subprocess.run(
        [NGINX, "-t", "-p", str(config.parent), "-c", str(config), "-e", "/dev/stderr"], text=True, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    with pytest.raises(ValueError, match="both"):
        render_site(ports=[8001], static_root="/s", tls_certificate="/c.pem")


def test_render_cli_defaults_to_one_worker_per_core(tmp_path):
    import os

    from deploy.render import default_workers, main

    assert default_workers() == len(os.sched_getaffinity(0))
    assert main(["standalone", "--dir", str(tmp_path), "--listen", "127.0.0.1:8080"]) == 0
    site = (tmp_path / "chatdesk.conf").read_text()
    assert site.count("server 127.0.0.1:") == default_workers()
    assert Path(tmp_path / "nginx.conf").exists()
