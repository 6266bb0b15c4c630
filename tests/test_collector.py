"""Full garbage collections at quiet moments (chatdesk/collector.py), with the real collector.

Generation 2's collections are counted with gc.callbacks, as CPython reports them.
"""

from __future__ import annotations

import asyncio
import gc
import signal

import pytest

from chatdesk import collector, lifecycle
from chatdesk.drain import lifespan


@pytest.fixture
def full_collections_seen():
    seen: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "stop" and info["generation"] == 2:
            seen.append(1)

    gc.callbacks.append(count)
    yield seen
    gc.callbacks.remove(count)


def make_garbage_reach_generation_2() -> None:
    """Cycles that outlive two young collections, as a finished turn's objects do."""
    for _ in range(3):
        cycles = []
        for _ in range(2_000):
            node: dict = {}
            node["self"] = node
            cycles.append(node)
        gc.collect(1)
        del cycles


async def test_while_work_is_in_flight_the_full_collection_waits_until_it_is_due(full_collections_seen):
    thresholds = gc.get_threshold()
    scheduled = collector.FullCollections(1.5, quiet_seconds=0.2, quiet_min_seconds=0.2, check_seconds=0.05)
    scheduled.start(asyncio.get_running_loop())
    try:
        assert gc.get_threshold()[2] == collector.OUT_OF_REACH  # CPython's own schedule is off
        with lifecycle.in_flight():  # a turn runs for the whole time
            make_garbage_reach_generation_2()
            await asyncio.sleep(1.0)
            assert scheduled.collections == 0 and not full_collections_seen
            await asyncio.sleep(1.0)  # past the 1.5 s limit: collected even though busy
            assert scheduled.collections == 1 and full_collections_seen
    finally:
        await scheduled.stop()
    assert gc.get_threshold() == thresholds


async def test_once_the_worker_is_quiet_what_reached_generation_2_is_collected(full_collections_seen):
    scheduled = collector.FullCollections(60, quiet_seconds=0.2, quiet_min_seconds=0.2, check_seconds=0.05)
    scheduled.start(asyncio.get_running_loop())
    try:
        with lifecycle.in_flight():
            make_garbage_reach_generation_2()
            await asyncio.sleep(0.5)
            assert scheduled.collections == 0
        await asyncio.sleep(0.6)  # quiet for longer than 0.2 s
        assert scheduled.collections >= 1 and full_collections_seen
    finally:
        await scheduled.stop()


def test_zero_leaves_cpythons_schedule_alone():
    thresholds = gc.get_threshold()
    assert collector.start(asyncio.new_event_loop(), 0) is None
    assert gc.get_threshold() == thresholds


async def test_the_servers_lifespan_schedules_them_and_restores_cpythons_at_shutdown(settings):
    settings.FULL_COLLECTION_MAX_SECONDS = 30
    thresholds = gc.get_threshold()
    sigterm = signal.getsignal(signal.SIGTERM)  # the lifespan installs the drain: put it back after
    inbox: asyncio.Queue = asyncio.Queue()
    outbox: asyncio.Queue = asyncio.Queue()
    running = asyncio.ensure_future(lifespan({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await asyncio.wait_for(outbox.get(), 5))["type"] == "lifespan.startup.complete"
    assert gc.get_threshold()[2] == collector.OUT_OF_REACH
    await inbox.put({"type": "lifespan.shutdown"})
    assert (await asyncio.wait_for(outbox.get(), 5))["type"] == "lifespan.shutdown.complete"
    await running
    signal.signal(signal.SIGTERM, sigterm)
    assert gc.get_threshold() == thresholds
