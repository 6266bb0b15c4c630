"""Takeover across two server processes sharing PostgreSQL and Redis.

The customer is served by one daphne process and the staff member by another, as behind
a load balancer; only the Redis channel layer connects them. Needs Redis on
127.0.0.1:6379 (REDIS_URL_FOR_TESTS): a missing Redis fails this test, it never skips.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from yarl import URL

from tests.servers import free_port, wait_for_port
from tests.staff import grant

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis_url() -> str:
    base = os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/0")
    url = base.rsplit("/", 1)[0] + "/9"  # a database of its own, emptied first
    redis.Redis.from_url(url).flushdb()  # raises (fails the test) when Redis is unreachable
    return url


@pytest.fixture
def two_servers(business, redis_url):
    db = settings.DATABASES["default"]
    database_url = (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "OPENAI_API_KEY": "",
        "LOG_LEVEL": "WARNING",
    }
    daphne = str(Path(sys.executable).parent / "daphne")
    servers = []
    for _ in range(2):
        port = free_port()
        process = subprocess.Popen(
            [daphne, "-b", "127.0.0.1", "-p", str(port), "chatdesk.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        servers.append((process, port))
    try:
        for process, port in servers:
            wait_for_port(port, process)
        yield [f"127.0.0.1:{port}" for _, port in servers]
    finally:
        for process, _ in servers:
            process.terminate()
            process.wait(timeout=10)


async def receive_until(ws: aiohttp.ClientWebSocketResponse, predicate, timeout: float = 10) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.receive_json()
            if predicate(message):
                return message


async def scenario(customer_host: str, staff_host: str) -> None:
    customer_origin = {"Origin": f"http://{customer_host}"}
    staff_origin = {"Origin": f"http://{staff_host}"}
    # unsafe=True: aiohttp otherwise refuses cookies from IP-address hosts like 127.0.0.1.
    jars = aiohttp.CookieJar(unsafe=True), aiohttp.CookieJar(unsafe=True)
    async with (
        aiohttp.ClientSession(cookie_jar=jars[0]) as customer,
        aiohttp.ClientSession(cookie_jar=jars[1]) as staff,
    ):
        # The customer starts a chat on process A.
        async with customer.get(f"http://{customer_host}/") as page:
            assert page.status == 200
        token = customer.cookie_jar.filter_cookies(URL(f"http://{customer_host}/"))["csrftoken"].value
        async with customer.post(
            f"http://{customer_host}/api/v1/chat/session/new", headers={"X-CSRFToken": token, **customer_origin}
        ) as response:
            assert response.status == 201, await response.text()
            chat = await response.json()
        customer_ws = await customer.ws_connect(f"ws://{customer_host}/api/v1/chat/live", headers=customer_origin)
        assert (await customer_ws.receive_json())["taken_over"] is False

        # A dispatcher logs in on process B and watches it.
        async with staff.get(f"http://{staff_host}/admin/login/") as page:
            assert page.status == 200
        staff_token = staff.cookie_jar.filter_cookies(URL(f"http://{staff_host}/"))["csrftoken"].value
        async with staff.post(
            f"http://{staff_host}/admin/login/?next=/admin/",
            data={"username": "sam", "password": "dispatch-pass-123", "csrfmiddlewaretoken": staff_token},
            headers=staff_origin,
            allow_redirects=False,
        ) as response:
            assert response.status == 302, await response.text()
        staff_token = staff.cookie_jar.filter_cookies(URL(f"http://{staff_host}/"))["csrftoken"].value
        staff_headers = {"X-CSRFToken": staff_token, **staff_origin}
        staff_ws = await staff.ws_connect(f"ws://{staff_host}/api/v1/staff/live", headers=staff_origin)
        await staff_ws.send_json({"type": "watch", "conversation": chat["conversation_number"]})
        await receive_until(staff_ws, lambda m: m["type"] == "watching")

        base = f"http://{staff_host}/api/v1/staff/conversations/{chat['conversation_number']}"
        async with staff.post(f"{base}/takeover", headers=staff_headers) as response:
            assert response.status == 200, await response.text()
        assert (await receive_until(customer_ws, lambda m: m["type"] == "takeover"))["taken_over"] is True

        # The customer writes on A; the dispatcher sees it on B.
        async with customer.post(
            f"http://{customer_host}/api/v1/chat/message",
            json={"session_id": chat["session_id"], "message": "Is someone there?"},
            headers={"X-CSRFToken": token, **customer_origin},
        ) as response:
            assert (await response.json())["paused"] is True
        seen = await receive_until(staff_ws, lambda m: m["type"] == "event" and m["event"].get("role") == "customer")
        assert seen["event"]["text"] == "Is someone there?"

        # The dispatcher answers on B; the customer sees it on A.
        async with staff.post(f"{base}/messages", json={"text": "Yes, Sam here."}, headers=staff_headers) as response:
            assert response.status == 201, await response.text()
        reply = await receive_until(customer_ws, lambda m: m["type"] == "staff_message")
        assert reply["text"] == "Yes, Sam here."
        await customer_ws.close()
        await staff_ws.close()


def test_a_takeover_works_across_two_server_processes(two_servers):
    sam = get_user_model().objects.create_user("sam", password="dispatch-pass-123", is_staff=True)
    grant(sam, "chatdesk.view_conversation", "chatdesk.take_over_conversation")
    customer_host, staff_host = two_servers
    asyncio.run(scenario(customer_host, staff_host))
