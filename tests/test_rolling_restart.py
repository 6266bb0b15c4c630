"""A rolling restart under continuous chat traffic, through the production recipe (tests/fleet.py):
nginx in front of two uvicorn workers. Each worker in turn gets SIGTERM (as `systemctl restart`
sends it), drains (chatdesk/drain.py), exits and starts again, and must be ready before the next
one goes down (deploy/rolling-restart.sh's rule). Meanwhile customers keep chatting, each message
sent as static/chat.js sends it: one message id for every try of it; 409 turn_in_progress: wait
Retry-After and ask again; 503 server_draining: send again after Retry-After; a network error or
another 5xx: send again once.

The goal of issue 13: 0 failed requests (no customer is shown an error) and 0 lost messages
(every message stored exactly once and answered exactly once). The test prints what the clients
saw and how long each worker took to drain (the figures in BENCHMARKS).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import pytest
from yarl import URL

from chatdesk.conversations.models import Message
from tests.fake_openai import last_user_text
from tests.fleet import Fleet, fleet_fixture, fleet_servers_fixture  # noqa: F401 (the fixtures)

pytestmark = [pytest.mark.fleet, pytest.mark.django_db(transaction=True)]

# chat.js's limits (static/chat.js: IN_PROGRESS_MAX_WAITS, DRAINING_MAX_RETRIES, the one resend).
IN_PROGRESS_MAX_WAITS = 30
DRAINING_MAX_RETRIES = 5
RESEND_DELAY_SECONDS = 1.5
RESEND_MAX_DELAY_SECONDS = 10
CUSTOMERS = 6
MESSAGES_PER_CONVERSATION = 8  # well inside CHAT_MAX_MESSAGES
MODEL_SECONDS = 0.5  # each answer takes this long: turns are always in flight
# Every simulated customer is 127.0.0.1 behind nginx: the per-IP chat limits would stop the test.
FLEET_ENV = {"RATELIMIT_ENABLE": "0"}
# nginx leaves a worker that refused a connection out for fail_timeout (5 s, deploy/nginx/): the
# next worker may go down only after that, or nginx, seeing the restarted one still "failed" and
# the other refusing, answers "no live upstreams" (a 502, which it turns into the JSON 503).
NGINX_FAIL_TIMEOUT = 5


@dataclass
class Traffic:
    sent: dict[str, str] = field(default_factory=dict)  # message id -> text
    answered: dict[str, str] = field(default_factory=dict)  # message id -> the reply the client got
    failed: list[tuple[str, object]] = field(default_factory=list)  # what a customer would see as an error
    answers: Counter = field(default_factory=Counter)  # every HTTP answer (or error) the clients got
    served_by: Counter = field(default_factory=Counter)


class Customer:
    def __init__(self, fleet: Fleet, http: aiohttp.ClientSession, traffic: Traffic) -> None:
        self.fleet = fleet
        self.http = http
        self.traffic = traffic
        self.session_id = ""

    async def request(self, path: str, body: dict) -> tuple[int | str, dict, float | None]:
        """One POST through nginx: (status or error kind, JSON body, Retry-After)."""
        token = self.http.cookie_jar.filter_cookies(URL(self.fleet.url + "/"))["csrftoken"].value
        headers = {"X-CSRFToken": token, "Origin": self.fleet.url}
        try:
            async with self.http.post(self.fleet.url + path, json=body, headers=headers) as response:
                data = json.loads(await response.text() or "{}")
                self.traffic.served_by[response.headers.get("X-Served-By", "nginx")] += 1
                wait = response.headers.get("Retry-After") or data.get("retry_after")
                status: int | str = response.status
                if status >= 400:
                    status = f"{status} {data.get('error')}"
                self.traffic.answers[status] += 1
                return response.status, data, float(wait) if wait else None
        except (aiohttp.ClientError, TimeoutError) as error:
            self.traffic.answers[type(error).__name__] += 1
            return "network", {}, None

    async def start(self) -> bool:
        async with self.http.get(self.fleet.url + "/") as page:
            await page.read()
        status, data, _ = await self.request("/api/v1/chat/session/new", {})
        if status != 201:
            self.traffic.failed.append(("session/new", status))
            return False
        self.session_id = data["session_id"]
        return True

    async def send(self, text: str) -> None:
        """One message, as static/chat.js sends it (sendMessage)."""
        message_id = str(uuid.uuid4())
        self.traffic.sent[message_id] = text
        body = {"session_id": self.session_id, "message": text, "message_id": message_id}
        waits = draining = 0
        resent = False
        while True:
            status, data, retry_after = await self.request("/api/v1/chat/message", body)
            if status == 200:
                self.traffic.answered[message_id] = data["reply"]
                return
            error = data.get("error")
            if status == 409 and error == "turn_in_progress" and waits < IN_PROGRESS_MAX_WAITS:
                waits += 1
                await asyncio.sleep(retry_after or 2)
            elif status == 503 and error == "server_draining" and draining < DRAINING_MAX_RETRIES:
                draining += 1
                await asyncio.sleep(retry_after or 1)
            elif (status == "network" or (isinstance(status, int) and status >= 500)) and not resent:
                resent = True
                await asyncio.sleep(min(retry_after, RESEND_MAX_DELAY_SECONDS) if retry_after else RESEND_DELAY_SECONDS)
            else:
                self.traffic.failed.append((text, status))
                return

    async def chat(self, number: int, stop: asyncio.Event) -> None:
        conversation = 0
        while not stop.is_set():
            conversation += 1
            if not await self.start():
                return
            for turn in range(MESSAGES_PER_CONVERSATION):
                if stop.is_set():
                    return
                await self.send(f"customer {number} conversation {conversation} message {turn}")


async def wait_ready(worker_url: str, timeout: float = 30) -> None:
    """Until the worker's own /readyz is 200, as deploy/rolling-restart.sh waits."""
    async with aiohttp.ClientSession() as http, asyncio.timeout(timeout):
        while True:
            try:
                async with http.get(worker_url + "/readyz", headers={"Host": "127.0.0.1"}) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


def test_a_rolling_restart_under_chat_traffic_fails_no_request_and_loses_no_message(fleet, business):
    for worker in fleet.workers:
        worker.restart(FLEET_ENV)
    fleet.fake.latency = MODEL_SECONDS
    fleet.fake.respond_with(lambda body: f"Re: {last_user_text(body)}")
    traffic = Traffic()
    drains: list[tuple[str, float, int | None]] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        sessions = [
            aiohttp.ClientSession(
                cookie_jar=aiohttp.CookieJar(unsafe=True), connector=aiohttp.TCPConnector(force_close=True)
            )
            for _ in range(CUSTOMERS)
        ]
        try:
            customers = [
                asyncio.create_task(Customer(fleet, http, traffic).chat(n, stop)) for n, http in enumerate(sessions)
            ]
            await asyncio.sleep(2)  # both workers busy
            for worker in fleet.workers:
                signalled = time.monotonic()
                worker.terminate()
                code = await asyncio.to_thread(worker.wait)
                drains.append((worker.name, time.monotonic() - signalled, code))
                await asyncio.to_thread(worker.start, FLEET_ENV)
                await wait_ready(worker.url)
                # nginx tries the restarted worker again only after fail_timeout.
                await asyncio.sleep(NGINX_FAIL_TIMEOUT + 1)
            stop.set()
            await asyncio.gather(*customers)
        finally:
            for http in sessions:
                await http.close()

    try:
        asyncio.run(scenario())
    finally:
        fleet.fake.latency = 0.0
    print(f"rolling restart: {len(traffic.sent)} messages, answers {dict(traffic.answers)}")
    print(f"served by {dict(traffic.served_by)}; drains {[(n, round(s, 2), c) for n, s, c in drains]}")

    assert traffic.failed == [], (traffic.failed, fleet.logs())
    assert len(traffic.sent) > 100  # traffic throughout, not a handful of messages
    # nginx itself never had to say "unavailable": a stopped worker's connections went to the other.
    assert not any(str(answer).startswith(("502", "503 service_unavailable")) for answer in traffic.answers), (
        traffic.answers,
        fleet.nginx.error_log()[-3000:],
    )
    assert set(traffic.answered) == set(traffic.sent)
    assert all(traffic.answered[m] == f"Re: {text}" for m, text in traffic.sent.items())
    # Stored exactly once, answered exactly once.
    rows = Message.objects.filter(client_message_id__in=list(traffic.sent))
    customer_rows = Counter(rows.filter(role=Message.Role.CUSTOMER).values_list("client_message_id", flat=True))
    reply_rows = Counter(rows.filter(role=Message.Role.ASSISTANT).values_list("client_message_id", flat=True))
    assert customer_rows == Counter(traffic.sent.keys()), "a message stored twice or not at all"
    assert reply_rows == Counter(traffic.sent.keys()), "a message answered twice or not at all"
    # Each worker drained (its turns finished) and exited soon after SIGTERM, well inside the budget.
    assert [name for name, _, _ in drains] == ["w1", "w2"]
    assert all(seconds < 5 for _, seconds, _ in drains), drains
    assert {"w1", "w2"} <= set(traffic.served_by)
