"""The Redis channel layer of production (chatdesk/channel_layer.py), on a real redis-server.

A worker's sockets share one queue in Redis: a burst for many of them must arrive whole and in
order, be read in one round trip, survive a socket going away mid-read, and a full queue or a
dead Redis must behave as channels_redis documents. Each test runs a redis-server of its own
(tests.servers.RedisServer); the layer is configured as `chatdesk.settings` configures it.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError

from chatdesk.channel_layer import POOL_CONNECTIONS, RECEIVE_BATCH, RedisChannelLayer
from tests.test_deploy_settings import manage, production_env


@pytest.fixture(scope="module")
def production_config() -> dict:
    """CHANNEL_LAYERS["default"] as a deployment with REDIS_URL gets it (a fresh process)."""
    shown = manage(
        "shell",
        "-c",
        "import json; from django.conf import settings; print(json.dumps(settings.CHANNEL_LAYERS['default'], "
        "default=str))",
        env=production_env(),
    )
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout.strip().splitlines()[-1])


@pytest.fixture
def layer(production_config, private_redis) -> RedisChannelLayer:
    assert production_config["BACKEND"] == "chatdesk.channel_layer.RedisChannelLayer"
    config = {key: value for key, value in production_config["CONFIG"].items() if key != "hosts"}
    return RedisChannelLayer(hosts=[private_redis.url], **config)


def queue_length(layer: RedisChannelLayer, url: str, channel: str) -> int:
    """How many messages wait in Redis for the worker that owns `channel`."""
    return redis.Redis.from_url(url).zcard(layer.prefix + layer.non_local_name(channel))


async def test_a_burst_for_every_socket_of_a_worker_arrives_whole_in_order_and_in_one_read(layer, private_redis):
    # 150 sockets on one worker, each in its conversation's group, three pieces each: 450
    # messages in one queue, above channels_redis's default capacity of 100 per worker.
    sockets = [await layer.new_channel() for _ in range(150)]
    for number, socket in enumerate(sockets):
        await layer.group_add(f"conversation-{number}", socket)
    for piece in range(3):
        for number in range(len(sockets)):
            await layer.group_send(f"conversation-{number}", {"type": "live.event", "piece": piece, "to": number})
    assert queue_length(layer, private_redis.url, sockets[0]) == 450

    first = await layer.receive(sockets[0])
    # That one read took the oldest RECEIVE_BATCH messages out of Redis (all of the first
    # round of pieces), not one: the rest wait there for the next read.
    assert queue_length(layer, private_redis.url, sockets[0]) == 450 - RECEIVE_BATCH
    received = {0: [first["piece"]]}
    for number, socket in enumerate(sockets):
        while len(received.setdefault(number, [])) < 3:
            message = await asyncio.wait_for(layer.receive(socket), 5)
            assert message["to"] == number
            received[number].append(message["piece"])
    assert all(pieces == [0, 1, 2] for pieces in received.values())
    assert queue_length(layer, private_redis.url, sockets[0]) == 0
    await layer.close_pools()


async def test_a_burst_of_sends_waits_for_the_workers_connections_instead_of_failing(layer, private_redis):
    # 100 replies' pieces at the same moment: redis-py's default pool refused the 101st
    # connection (MaxConnectionsError), and live updates were "unavailable" mid-burst.
    sockets = [await layer.new_channel() for _ in range(300)]
    for number, socket in enumerate(sockets):
        await layer.group_add(f"conversation-{number}", socket)
    await asyncio.gather(
        *(layer.group_send(f"conversation-{n}", {"type": "live.event", "n": n}) for n in range(len(sockets)))
    )
    assert queue_length(layer, private_redis.url, sockets[0]) == 300
    clients = redis.Redis.from_url(private_redis.url).client_list()
    assert len(clients) <= POOL_CONNECTIONS + 1  # the pool's, and this check's own
    got = await asyncio.gather(*(asyncio.wait_for(layer.receive(socket), 10) for socket in sockets))
    assert sorted(message["n"] for message in got) == list(range(300))
    await layer.close_pools()


async def test_a_socket_that_goes_away_mid_read_takes_no_other_sockets_messages(layer, private_redis):
    leaving, staying = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("leaving", leaving)
    await layer.group_add("staying", staying)
    waiting = asyncio.ensure_future(layer.receive(leaving))
    await asyncio.sleep(0.2)  # it holds the worker's read, blocked on the empty queue
    await layer.group_send("staying", {"type": "live.event", "n": 1})
    await layer.group_send("staying", {"type": "live.event", "n": 2})
    waiting.cancel()  # the socket closed
    with pytest.raises(asyncio.CancelledError):
        await waiting
    got = [await asyncio.wait_for(layer.receive(staying), 5) for _ in range(2)]
    assert [m["n"] for m in got] == [1, 2]
    await layer.close_pools()


async def test_a_full_worker_queue_drops_what_comes_and_says_so(production_config, private_redis, caplog):
    small = RedisChannelLayer(hosts=[private_redis.url], capacity=3)
    socket = await small.new_channel()
    await small.group_add("conversation-1", socket)
    with caplog.at_level(logging.WARNING, logger="chatdesk.channel_layer"):
        for n in range(5):
            await small.group_send("conversation-1", {"type": "live.event", "n": n})
    assert queue_length(small, private_redis.url, socket) == 3
    assert "1 of 1 channels in group conversation-1 were full" in caplog.text
    assert [(await small.receive(socket))["n"] for _ in range(3)] == [0, 1, 2]
    await small.close_pools()


async def test_expired_messages_are_cleared_before_a_group_send_counts_the_room(private_redis):
    quick = RedisChannelLayer(hosts=[private_redis.url], capacity=2, expiry=1)
    socket = await quick.new_channel()
    await quick.group_add("conversation-1", socket)
    await quick.group_send("conversation-1", {"type": "live.event", "n": 0})
    await quick.group_send("conversation-1", {"type": "live.event", "n": 1})
    await asyncio.sleep(2.1)  # both expired: the queue has room again
    await quick.group_send("conversation-1", {"type": "live.event", "n": 2})
    assert queue_length(quick, private_redis.url, socket) == 1
    assert (await quick.receive(socket))["n"] == 2
    await quick.close_pools()


async def test_a_group_send_reaches_every_member_on_every_worker(layer, private_redis):
    other_worker = RedisChannelLayer(hosts=[private_redis.url], capacity=layer.capacity)
    customer, staff_here, staff_there = (
        await layer.new_channel(),
        await layer.new_channel(),
        await other_worker.new_channel(),
    )
    for socket in (customer, staff_here):
        await layer.group_add("conversation-7", socket)
    await other_worker.group_add("conversation-7", staff_there)
    await layer.group_add("conversation-8", customer)  # another conversation's message must not reach them
    await layer.group_send("conversation-8", {"type": "live.event", "n": "elsewhere"})
    await layer.group_discard("conversation-8", customer)
    await layer.receive(customer)
    await layer.group_send("conversation-7", {"type": "live.event", "n": "everyone"})
    assert (await asyncio.wait_for(layer.receive(customer), 5))["n"] == "everyone"
    assert (await asyncio.wait_for(layer.receive(staff_here), 5))["n"] == "everyone"
    assert (await asyncio.wait_for(other_worker.receive(staff_there), 5))["n"] == "everyone"
    await layer.close_pools()
    await other_worker.close_pools()


async def test_without_redis_a_read_raises_so_live_sockets_close(layer, private_redis):
    socket = await layer.new_channel()
    await layer.group_add("conversation-1", socket)
    private_redis.stop()
    with pytest.raises((RedisConnectionError, OSError)):
        await asyncio.wait_for(layer.receive(socket), 10)
    with pytest.raises((RedisConnectionError, OSError)):
        await layer.group_send("conversation-1", {"type": "live.event"})
