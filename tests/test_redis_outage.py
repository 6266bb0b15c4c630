"""Redis goes away and comes back: the app degrades instead of failing, and recovers by itself.

Every test here runs its own redis-server on a free port (tests.servers.RedisServer) and
stops and starts it: the shared Redis of the test run is never touched. In this process
first (the shared cache's fallback, the voice limits, the live layer check, the staff API),
then a daphne process served by that Redis, as in production.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import aiohttp
import pytest
import redis
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.test import Client
from yarl import URL

from chatdesk.assistant.rate_limits import message_wait
from chatdesk.conversations import live
from chatdesk.conversations.models import Conversation
from chatdesk.fallback_cache import FallbackRedisCache
from tests.fake_openai import fake_openai_fixture  # noqa: F401  (registers `fake_openai`)
from tests.servers import RedisServer
from tests.staff import grant
from tests.test_voice_call import Caller
from voice.limits import call_admit, call_release

ROOT = Path(__file__).resolve().parent.parent
RETRY_SECONDS = 3.0


@pytest.fixture
def fallback_cache(private_redis, settings) -> FallbackRedisCache:
    settings.CACHES = {
        "default": {
            "BACKEND": "chatdesk.fallback_cache.FallbackRedisCache",
            "LOCATION": private_redis.url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
            "RETRY_SECONDS": RETRY_SECONDS,
        }
    }
    cache = caches["default"]
    assert isinstance(cache, FallbackRedisCache)
    return cache


def redis_keys(server: RedisServer) -> list[str]:
    return [key.decode() for key in redis.Redis.from_url(server.url).keys("*")]


# --- the shared cache's fallback, in this process ------------------------------------------


def test_counters_go_on_in_this_process_while_redis_is_down_and_back_to_redis_after(
    fallback_cache, private_redis, caplog
):
    cache = fallback_cache
    assert cache.add("counter", 0, 60)
    assert cache.incr("counter") == 1
    assert any(key.endswith(":counter") for key in redis_keys(private_redis))
    assert not cache.degraded

    private_redis.stop()
    caplog.set_level(logging.WARNING, logger="chatdesk.fallback_cache")
    failed_at = time.monotonic()
    # The same calls answer, from this process's own counters (Redis's counter is out of reach).
    assert cache.add("counter", 0, 60)
    assert [cache.incr("counter") for _ in range(3)] == [1, 2, 3]
    assert cache.get("counter") == 3
    assert cache.degraded
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, "logged once per outage, not once per call"
    assert "Redis is unreachable" in errors[0].getMessage()

    # Back, but within the back-off Redis is left alone: the write stays in this process.
    private_redis.start()
    cache.set("during-backoff", 1, 60)
    assert time.monotonic() - failed_at < RETRY_SECONDS, "the machine was too slow to check the back-off"
    assert not any(key.endswith(":during-backoff") for key in redis_keys(private_redis))

    # After it, the next call goes to Redis again, says so once, and the local counts are dropped.
    time.sleep(RETRY_SECONDS - (time.monotonic() - failed_at) + 0.2)
    cache.set("after", 1, 60)
    assert any(key.endswith(":after") for key in redis_keys(private_redis))
    assert not cache.degraded
    assert cache.get("counter") is None  # Redis came back empty (no persistence); local 3 is gone
    recovered = [r for r in caplog.records if r.levelno == logging.WARNING and "back" in r.getMessage()]
    assert len(recovered) == 1
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


def test_a_cache_answer_is_not_an_outage(fallback_cache):
    # incr of a missing key raises ValueError from Redis itself: passed on, no fallback.
    with pytest.raises(ValueError):
        fallback_cache.incr("missing")
    assert not fallback_cache.degraded


def test_rate_limits_apply_per_process_at_the_same_rate_while_redis_is_down(fallback_cache, private_redis, settings):
    settings.CHAT_RATE_MESSAGE_PER_SESSION = "3/d"
    assert [message_wait(ip="203.0.113.5", session_id="s-1") for _ in range(2)] == [None, None]
    private_redis.stop()
    # Counted again from zero in this process, at the same rate: three go, the fourth waits.
    assert [message_wait(ip="203.0.113.5", session_id="s-1") for _ in range(3)] == [None, None, None]
    wait = message_wait(ip="203.0.113.5", session_id="s-1")
    assert wait is not None and wait > 0
    assert message_wait(ip="203.0.113.5", session_id="s-2") is None  # another session is not limited


def test_voice_admission_counts_in_this_process_while_redis_is_down(fallback_cache, private_redis, settings):
    settings.VOICE_MAX_CONCURRENT_CALLS_PER_IP = 1
    private_redis.stop()
    assert call_admit("ip-hash-1") == ""
    assert "Too many calls at once" in call_admit("ip-hash-1")
    call_release("ip-hash-1")
    assert call_admit("ip-hash-1") == ""


@pytest.mark.django_db(transaction=True)
async def test_a_call_goes_ahead_under_per_process_limits_while_redis_is_down(
    fallback_cache, private_redis, fake_openai, settings
):
    # Before: accepted, then ended with server_error when the call counters raised.
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = fake_openai.base_url
    settings.VOICE_GREET_FIRST = False
    settings.VOICE_MAX_CONCURRENT_CALLS_PER_IP = 1
    private_redis.stop()
    first = Caller(ip="198.51.100.20")
    await first.connect()
    second = Caller(ip="198.51.100.20")
    await second.ws.connect()
    error = await second.expect("error")
    assert error["code"] == "rate_limited" and "at once" in error["message"]
    assert await second.closed() == 4429
    await second.leave()
    await first.hang_up()
    again = Caller(ip="198.51.100.20")
    await again.connect()  # the hang-up freed the slot, in this process's counters
    await again.hang_up()
    assert len(fake_openai.realtime.connections) == 2


# --- live updates: unavailable without Redis, in this process ------------------------------


@pytest.fixture
def redis_layer(private_redis, settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "chatdesk.channel_layer.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": private_redis.url, "socket_timeout": 15, "socket_connect_timeout": 2}]},
        }
    }
    return private_redis


def test_the_layer_check_follows_redis(redis_layer):
    live.require_live()
    redis_layer.stop()
    with pytest.raises(live.LiveUnavailable):
        live.require_live()
    redis_layer.start()
    live.require_live()


@pytest.mark.django_db
def test_takeover_and_staff_replies_answer_503_while_live_updates_are_down(business, redis_layer):
    customer = Client()
    chat = customer.post("/api/v1/chat/session/new").json()
    staff = Client()
    sam = get_user_model().objects.create_user("sam", password="pw-123456!", is_staff=True)
    staff.force_login(grant(sam, "chatdesk.view_conversation", "chatdesk.take_over_conversation"))
    base = f"/api/v1/staff/conversations/{chat['conversation_number']}"

    redis_layer.stop()
    refused = staff.post(f"{base}/takeover")
    assert refused.status_code == 503
    assert refused.json()["error"] == "live_unavailable"
    assert "unavailable" in refused.json()["message"]
    assert refused["Retry-After"] == str(live.LIVE_RETRY_AFTER_SECONDS)
    assert not Conversation.objects.get(number=chat["conversation_number"]).taken_over_by_id

    redis_layer.start()
    assert staff.post(f"{base}/takeover").status_code == 200
    redis_layer.stop()
    said = staff.post(f"{base}/messages", {"text": "Hello?"}, content_type="application/json")
    assert said.status_code == 503
    assert said.json()["error"] == "live_unavailable"
    assert said["Retry-After"] == str(live.LIVE_RETRY_AFTER_SECONDS)
    assert not Conversation.objects.get(number=chat["conversation_number"]).messages.filter(role="staff").exists()
    # Handing back needs no live update: the assistant answers through the chat API.
    assert staff.post(f"{base}/release").status_code == 200


# --- a server process on that Redis: stop it, use the app, start it ------------------------


def server_log(log) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")


class Customer:
    """A customer's browser without JavaScript's page logic: cookies, CSRF and the API."""

    def __init__(self, http: aiohttp.ClientSession, host: str) -> None:
        self.http, self.host = http, host
        self.origin = {"Origin": f"http://{host}"}

    def csrf(self) -> str:
        return self.http.cookie_jar.filter_cookies(URL(f"http://{self.host}/"))["csrftoken"].value

    async def start(self) -> dict:
        async with self.http.get(f"http://{self.host}/") as page:
            assert page.status == 200
        async with self.http.post(
            f"http://{self.host}/api/v1/chat/session/new", headers={"X-CSRFToken": self.csrf(), **self.origin}
        ) as response:
            assert response.status == 201, await response.text()
            self.chat = await response.json()
        return self.chat

    async def say(self, text: str) -> tuple[int, dict, str | None]:
        async with self.http.post(
            f"http://{self.host}/api/v1/chat/message",
            json={"session_id": self.chat["session_id"], "message": text},
            headers={"X-CSRFToken": self.csrf(), **self.origin},
        ) as response:
            return response.status, await response.json(), response.headers.get("Retry-After")

    async def say_without_js(self, text: str) -> int:
        async with self.http.post(
            f"http://{self.host}/send",
            data={"message": text, "csrfmiddlewaretoken": self.csrf()},
            headers=self.origin,
            allow_redirects=False,
        ) as response:
            return response.status

    async def listen(self) -> aiohttp.ClientWebSocketResponse:
        return await self.http.ws_connect(f"ws://{self.host}/api/v1/chat/live", headers=self.origin)


async def staff_login(http: aiohttp.ClientSession, host: str) -> dict:
    origin = {"Origin": f"http://{host}"}
    async with http.get(f"http://{host}/admin/login/") as page:
        assert page.status == 200
    token = http.cookie_jar.filter_cookies(URL(f"http://{host}/"))["csrftoken"].value
    async with http.post(
        f"http://{host}/admin/login/?next=/admin/",
        data={"username": "sam", "password": "dispatch-pass-123", "csrfmiddlewaretoken": token},
        headers=origin,
        allow_redirects=False,
    ) as response:
        assert response.status == 302, await response.text()
    token = http.cookie_jar.filter_cookies(URL(f"http://{host}/"))["csrftoken"].value
    return {"X-CSRFToken": token, **origin}


async def closed_with(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> int | None:
    """Read until the socket closes; its close code."""
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.receive()
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return ws.close_code


async def receive_until(ws: aiohttp.ClientWebSocketResponse, predicate, timeout: float = 10) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.receive_json()
            if predicate(message):
                return message


async def until_ok(attempt, timeout: float = 15):
    """Retry `attempt` (an async callable returning a truthy result when done) until it is."""
    deadline = time.monotonic() + timeout
    while True:
        result = await attempt()
        if result:
            return result
        assert time.monotonic() < deadline, "did not recover in time"
        await asyncio.sleep(0.5)


async def outage_scenario(host: str, private_redis: RedisServer, log) -> None:
    jars = aiohttp.CookieJar(unsafe=True), aiohttp.CookieJar(unsafe=True)
    async with (
        aiohttp.ClientSession(cookie_jar=jars[0]) as customer_http,
        aiohttp.ClientSession(cookie_jar=jars[1]) as staff_http,
    ):
        customer = Customer(customer_http, host)
        chat = await customer.start()
        customer_ws = await customer.listen()
        assert (await customer_ws.receive_json())["type"] == "takeover"
        staff_headers = await staff_login(staff_http, host)
        staff_ws = await staff_http.ws_connect(f"ws://{host}/api/v1/staff/live", headers={"Origin": f"http://{host}"})
        base = f"http://{host}/api/v1/staff/conversations/{chat['conversation_number']}"

        private_redis.stop()

        # Open live sockets are told, with the code the pages know, instead of dying with 1006.
        assert await closed_with(customer_ws) == live.LIVE_UNAVAILABLE_CLOSE
        assert await closed_with(staff_ws) == live.LIVE_UNAVAILABLE_CLOSE
        # New ones too, instead of a 500 on the handshake.
        assert await closed_with(await customer.listen()) == live.LIVE_UNAVAILABLE_CLOSE

        # Chat turns go on (JSON and the no-JavaScript form), under the per-session limit of
        # 6 a day, counted in this process from the start of the outage.
        statuses = [(await customer.say(f"message {n}"))[0] for n in range(5)]
        assert statuses == [200] * 5
        assert await customer.say_without_js("6") == 302
        status, body, retry_after = await customer.say("one too many")
        assert status == 429 and body["error"] == "rate_limited" and int(retry_after) > 0

        # Taking over says live updates are unavailable.
        async with staff_http.post(f"{base}/takeover", headers=staff_headers) as response:
            assert response.status == 503
            assert (await response.json())["error"] == "live_unavailable"
            assert response.headers["Retry-After"] == str(live.LIVE_RETRY_AFTER_SECONDS)

        # Loud, but once per outage: not per message, socket or retry.
        assert server_log(log).count("Redis is unreachable") == 1, server_log(log)[-3000:]
        assert server_log(log).count("Live updates unavailable") == 1, server_log(log)[-3000:]
        assert "Traceback" not in server_log(log), server_log(log)[-3000:]

        private_redis.start()

        # Everything comes back by itself: the counters are shared again (in Redis) ...
        async def counted_in_redis():
            status, _, _ = await customer.say("back again")
            return status == 200 and any("chat-message" in key or "rl:" in key for key in redis_keys(private_redis))

        await until_ok(counted_in_redis)

        # ... and live updates: a new socket stays open, takeover and replies reach the customer.
        async def live_again():
            ws = await customer.listen()
            first = await ws.receive()
            if first.type == aiohttp.WSMsgType.TEXT:
                return ws
            await ws.close()
            return None

        customer_ws = await until_ok(live_again)
        staff_ws = await staff_http.ws_connect(f"ws://{host}/api/v1/staff/live", headers={"Origin": f"http://{host}"})
        await staff_ws.send_json({"type": "watch", "conversation": chat["conversation_number"]})
        await receive_until(staff_ws, lambda m: m["type"] == "watching")

        async def taken_over():
            async with staff_http.post(f"{base}/takeover", headers=staff_headers) as response:
                return response.status == 200

        await until_ok(taken_over)
        assert (await receive_until(customer_ws, lambda m: m["type"] == "takeover"))["taken_over"] is True
        said = {"text": "Back online."}
        async with staff_http.post(f"{base}/messages", json=said, headers=staff_headers) as response:
            assert response.status == 201, await response.text()
        assert (await receive_until(customer_ws, lambda m: m["type"] == "staff_message"))["text"] == "Back online."
        seen = await receive_until(staff_ws, lambda m: m["type"] == "event" and m["event"].get("role") == "staff")
        assert seen["event"]["text"] == "Back online."
        await customer_ws.close()
        await staff_ws.close()
    assert "Redis is back after" in server_log(log)
    assert server_log(log).count("Live updates are back") == 1, server_log(log)[-3000:]


@pytest.mark.django_db(transaction=True)
def test_a_redis_outage_degrades_the_app_and_it_recovers_by_itself(server_on_private_redis, private_redis):
    sam = get_user_model().objects.create_user("sam", password="dispatch-pass-123", is_staff=True)
    grant(sam, "chatdesk.view_conversation", "chatdesk.take_over_conversation")
    host, log = server_on_private_redis
    asyncio.run(outage_scenario(host, private_redis, log))


# --- idle live sockets stay up ---------------------------------------------------------------


async def idle_scenario(host: str) -> None:
    jars = aiohttp.CookieJar(unsafe=True), aiohttp.CookieJar(unsafe=True)
    async with (
        aiohttp.ClientSession(cookie_jar=jars[0]) as customer_http,
        aiohttp.ClientSession(cookie_jar=jars[1]) as staff_http,
    ):
        customer = Customer(customer_http, host)
        chat = await customer.start()
        customer_ws = await customer.listen()
        assert (await customer_ws.receive_json())["type"] == "takeover"
        staff_headers = await staff_login(staff_http, host)
        staff_ws = await staff_http.ws_connect(f"ws://{host}/api/v1/staff/live", headers={"Origin": f"http://{host}"})
        await staff_ws.send_json({"type": "watch", "conversation": chat["conversation_number"]})
        await receive_until(staff_ws, lambda m: m["type"] == "watching")

        # Idle for 13 s: past redis-py's 5 s read timeout and channels_redis' 5 s blocking
        # read, twice. Nothing may arrive, and above all no close (it came at 5 s before).
        async def stays_quiet(ws: aiohttp.ClientWebSocketResponse) -> None:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(13):
                    message = await ws.receive()
                    raise AssertionError(f"the idle socket got {message.type} {message.data!r}")

        await asyncio.gather(stays_quiet(customer_ws), stays_quiet(staff_ws))
        assert not customer_ws.closed and not staff_ws.closed

        # And both still deliver.
        base = f"http://{host}/api/v1/staff/conversations/{chat['conversation_number']}"
        async with staff_http.post(f"{base}/takeover", headers=staff_headers) as response:
            assert response.status == 200, await response.text()
        async with staff_http.post(f"{base}/messages", json={"text": "Still here."}, headers=staff_headers) as response:
            assert response.status == 201, await response.text()
        assert (await receive_until(customer_ws, lambda m: m["type"] == "staff_message"))["text"] == "Still here."
        seen = await receive_until(staff_ws, lambda m: m["type"] == "event" and m["event"].get("role") == "staff")
        assert seen["event"]["text"] == "Still here."
        await customer_ws.close()
        await staff_ws.close()


@pytest.mark.django_db(transaction=True)
def test_idle_live_sockets_stay_open_past_the_redis_timeouts_and_still_deliver(server_on_private_redis):
    sam = get_user_model().objects.create_user("sam", password="dispatch-pass-123", is_staff=True)
    grant(sam, "chatdesk.view_conversation", "chatdesk.take_over_conversation")
    host, log = server_on_private_redis
    asyncio.run(idle_scenario(host))
    assert "TimeoutError" not in server_log(log), server_log(log)[-3000:]
