"""The fleet's OpenAI budget (chatdesk.assistant.openai_budget): its arithmetic on real Redis
(REDIS_URL_FOR_TESTS, through the same FallbackRedisCache production uses), what it reads from
OpenAI's headers and events, the bounded wait, and what it does while Redis is down.

Workers sharing it through Redis are tests/test_openai_budget_fleet.py; turns and calls that
wait and fall back are tests/test_openai_budget_turns.py.
"""

from __future__ import annotations

import asyncio
import os
import time
from email.utils import formatdate

import pytest
from django.core.cache import caches

from chatdesk.assistant import openai_budget
from chatdesk.assistant.openai_budget import (
    BudgetExhausted,
    Window,
    acquire,
    budget_snapshot,
    parse_duration,
    record,
    retry_after_seconds,
    try_take,
    windows_from_headers,
    windows_from_realtime,
)
from chatdesk.fallback_cache import FallbackRedisCache
from tests.servers import free_port

MODEL = "gpt-6-luna"


@pytest.fixture
def shared(settings) -> FallbackRedisCache:
    """The budget's cache on the real Redis, emptied."""
    settings.CACHES = {
        "default": {
            "BACKEND": "chatdesk.fallback_cache.FallbackRedisCache",
            "LOCATION": os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/0"),
        }
    }
    settings.OPENAI_LIMIT_RPM = 0
    settings.OPENAI_LIMIT_TPM = 0
    cache = caches["default"]
    assert isinstance(cache, FallbackRedisCache)
    cache.clear()
    assert not cache.degraded, "Redis at REDIS_URL_FOR_TESTS must be up"
    yield cache
    cache.clear()


def windows(requests: int, tokens: int, reset: float = 30.0, limit: int | None = None) -> list[Window]:
    return [Window("requests", limit, requests, reset), Window("tokens", None, tokens, reset)]


# --- reading OpenAI ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("12ms", 0.012), ("1s", 1.0), ("6m0s", 360.0), ("1h2m3.5s", 3723.5), ("0.5", 0.5), ("20ms", 0.02)],
)
def test_reads_openai_reset_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5x", "1s garbage"])
def test_an_unreadable_duration_is_none(text):
    assert parse_duration(text) is None


def test_reads_the_windows_in_response_headers():
    headers = {
        "x-ratelimit-limit-requests": "5000",
        "x-ratelimit-remaining-requests": "4999",
        "x-ratelimit-reset-requests": "12ms",
        "x-ratelimit-limit-tokens": "4000000",
        "x-ratelimit-remaining-tokens": "3999180",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert windows_from_headers(headers) == [
        Window("requests", 5000, 4999, 0.012),
        Window("tokens", 4000000, 3999180, 360.0),
    ]
    assert windows_from_headers({"x-ratelimit-remaining-requests": "many"}) == []


def test_reads_the_windows_of_a_realtime_rate_limits_event():
    event = [
        {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.06},
        {"name": "tokens", "limit": 50000, "remaining": 48976, "reset_seconds": 1.228},
        {"name": "other", "limit": 1, "remaining": 0, "reset_seconds": 1},
        {"name": "tokens", "remaining": "x", "reset_seconds": 1},
    ]
    assert windows_from_realtime(event) == [
        Window("requests", 1000, 999, 0.06),
        Window("tokens", 50000, 48976, 1.228),
    ]
    assert windows_from_realtime(None) == []


def test_retry_after_prefers_milliseconds_then_seconds_then_a_date():
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"retry-after": "9"}) == 9.0
    in_20_s = formatdate(time.time() + 20, usegmt=True)
    assert retry_after_seconds({"retry-after": in_20_s}) == pytest.approx(20, abs=1.5)
    assert retry_after_seconds({"retry-after": "whenever"}) is None
    assert retry_after_seconds({}) is None


# --- the arithmetic, on Redis ---------------------------------------------------------------------


def test_each_request_takes_its_share_until_the_window_is_used_up(shared):
    record(MODEL, windows(requests=2, tokens=10_000, reset=30))
    assert try_take(MODEL, 100).taken
    assert try_take(MODEL, 100).taken
    refused = try_take(MODEL, 100)
    assert refused.reason == "requests"
    assert refused.wait == pytest.approx(30, abs=1)
    # Refused requests took nothing: still none left, not -1.
    assert budget_snapshot([MODEL])["models"][MODEL]["requests"]["remaining"] == 0
    assert budget_snapshot([MODEL])["models"][MODEL]["tokens"]["remaining"] == 10_000 - 200


def test_a_request_refused_for_tokens_gives_its_request_back(shared):
    record(MODEL, windows(requests=5, tokens=1000))
    refused = try_take(MODEL, 1500)
    assert refused.reason == "tokens"
    left = budget_snapshot([MODEL])["models"][MODEL]
    assert (left["requests"]["remaining"], left["tokens"]["remaining"]) == (5, 1000)
    assert try_take(MODEL, 900).taken


def test_a_window_refills_at_the_rate_its_headers_imply(shared):
    # 60 a minute, none left, full in 60 s: one more request every second.
    record(MODEL, [Window("requests", 60, 0, 60.0)])
    refused = try_take(MODEL, 10)
    assert refused.reason == "requests"
    assert refused.wait == pytest.approx(1.0, abs=0.1)
    time.sleep(1.05)
    assert try_take(MODEL, 10).taken
    assert not try_take(MODEL, 10).taken
    assert budget_snapshot([MODEL])["models"][MODEL]["requests"]["remaining"] == 0


def test_fresh_headers_overwrite_the_count(shared):
    record(MODEL, windows(requests=1, tokens=10_000))
    assert try_take(MODEL, 10).taken
    assert not try_take(MODEL, 10).taken
    record(MODEL, windows(requests=40, tokens=10_000))  # another worker's response: refilled
    assert try_take(MODEL, 10).taken
    assert budget_snapshot([MODEL])["models"][MODEL]["requests"] == {
        "limit": None,
        "remaining": 39,
        "reset_seconds": pytest.approx(30, abs=1),
        "source": "headers",
    }


def test_a_window_past_its_reset_is_full_again(shared):
    record(MODEL, windows(requests=0, tokens=10_000, reset=0.2))
    assert try_take(MODEL, 10).reason == "requests"
    time.sleep(0.3)
    assert try_take(MODEL, 10).taken


def test_models_have_their_own_windows(shared):
    record(MODEL, windows(requests=0, tokens=10_000))
    assert not try_take(MODEL, 10).taken
    assert try_take("gpt-realtime-2.1-mini", 10).taken


def test_configured_limits_count_per_minute_until_headers_say_otherwise(shared, settings):
    settings.OPENAI_LIMIT_RPM = 3
    settings.OPENAI_LIMIT_TPM = 1_000_000
    if 60 - time.time() % 60 < 2:  # the minute must not turn over during the test
        time.sleep(2.1)
    assert all(try_take(MODEL, 100).taken for _ in range(3))
    refused = try_take(MODEL, 100)
    assert refused.reason == "requests"
    assert 0 < refused.wait <= 60
    snapshot = budget_snapshot([MODEL])["models"][MODEL]
    assert snapshot["requests"]["source"] == "configured"
    assert snapshot["requests"]["remaining"] == 0
    assert snapshot["tokens"]["remaining"] == 1_000_000 - 300
    record(MODEL, windows(requests=10, tokens=10_000))
    assert try_take(MODEL, 100).taken


def test_a_pause_stops_every_model_and_is_never_shortened(shared):
    openai_budget.pause(30)
    openai_budget.pause(2)
    refused = try_take(MODEL, 10)
    assert refused.reason == "paused"
    assert refused.wait == pytest.approx(30, abs=1)
    assert try_take("gpt-realtime-2.1-mini", 10).reason == "paused"
    assert budget_snapshot([MODEL])["paused_seconds"] == pytest.approx(30, abs=1)


def test_a_429_pauses_for_its_retry_after(shared):
    assert openai_budget.rate_limited(MODEL, {"retry-after-ms": "2500", "retry-after": "3"}) == 2.5
    assert try_take(MODEL, 10).wait == pytest.approx(2.5, abs=0.5)


def test_a_429_without_retry_after_pauses_until_the_used_up_window_resets(shared):
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "4s"}
    assert openai_budget.rate_limited(MODEL, headers) == 4.0
    assert try_take(MODEL, 10).reason == "paused"


def test_a_429_that_says_nothing_pauses_nothing(shared):
    headers = {"x-ratelimit-remaining-requests": "4000", "x-ratelimit-reset-requests": "10ms"}
    assert openai_budget.rate_limited(MODEL, headers) == 0.0
    assert try_take(MODEL, 10).taken


def test_a_bogus_retry_after_is_capped(shared):
    assert openai_budget.rate_limited(MODEL, {"retry-after": "86400"}) == openai_budget.MAX_PAUSE_SECONDS


# --- the bounded wait -------------------------------------------------------------------------------


async def test_a_request_waits_for_the_window_to_reset(shared):
    await asyncio.to_thread(record, MODEL, windows(requests=0, tokens=10_000, reset=0.6))
    waited, reason = await acquire(MODEL, 10, wait_until=time.monotonic() + 3)
    assert 0.5 <= waited < 1.5
    assert reason == "requests"


async def test_budget_already_there_costs_no_wait(shared):
    assert await acquire(MODEL, 10, wait_until=time.monotonic() + 3) == (0.0, "")


async def test_budget_that_returns_only_after_the_wait_gives_up_at_once(shared):
    await asyncio.to_thread(record, MODEL, windows(requests=0, tokens=10_000, reset=30))
    started = time.monotonic()
    with pytest.raises(BudgetExhausted) as exhausted:
        await acquire(MODEL, 10, wait_until=started + 3)
    assert time.monotonic() - started < 0.5
    assert not exhausted.value.paused


async def test_a_waiting_request_gives_up_when_fresher_headers_say_the_wait_is_longer(shared):
    await asyncio.to_thread(record, MODEL, windows(requests=0, tokens=10_000, reset=0.8))

    async def another_workers_response() -> None:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(record, MODEL, windows(requests=0, tokens=10_000, reset=30))

    other = asyncio.create_task(another_workers_response())
    started = time.monotonic()
    with pytest.raises(BudgetExhausted):
        await acquire(MODEL, 10, wait_until=started + 2)
    await other
    # After the fresher headers, well before the 2 s deadline (with room for a loaded machine).
    assert 0.25 <= time.monotonic() - started < 1.6


async def test_a_pause_longer_than_the_wait_gives_up_at_once(shared):
    await asyncio.to_thread(openai_budget.pause, 20)
    started = time.monotonic()
    with pytest.raises(BudgetExhausted) as exhausted:
        await acquire(MODEL, 10, wait_until=started + 5)
    assert time.monotonic() - started < 0.5
    assert exhausted.value.paused


async def test_a_short_pause_is_waited_out(shared):
    await asyncio.to_thread(openai_budget.pause, 0.7)
    waited, reason = await acquire(MODEL, 10, wait_until=time.monotonic() + 3)
    assert reason == "paused"
    assert 0.5 <= waited < 1.5


# --- Redis down ----------------------------------------------------------------------------------------


def test_with_redis_down_each_worker_keeps_its_own_budget(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "chatdesk.fallback_cache.FallbackRedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.5},
        }
    }
    record(MODEL, windows(requests=1, tokens=10_000))
    assert try_take(MODEL, 10).taken
    assert try_take(MODEL, 10).reason == "requests"
    openai_budget.pause(10)
    snapshot = budget_snapshot([MODEL])
    assert snapshot["shared"] is False
    assert snapshot["paused_seconds"] > 0
    caches["default"].clear()


def test_the_snapshot_says_what_is_unknown(shared):
    snapshot = budget_snapshot()
    assert snapshot["paused_seconds"] == 0.0
    assert snapshot["shared"] is True
    assert snapshot["configured"] == {"requests": 0, "tokens": 0}
    assert set(snapshot["models"]) == {"gpt-6-luna", "gpt-realtime-2.1-mini"}
    assert snapshot["models"][MODEL]["tokens"] == {
        "limit": None,
        "remaining": None,
        "reset_seconds": 0.0,
        "source": "unknown",
    }
