"""The Redis channel layer, receiving what waits for this process in one round trip.

channels_redis's RedisChannelLayer takes one message per four Redis round trips (a clean-up
script, BZPOPMIN, ZADD and ZPOPMIN of its in-flight backup), one message at a time for the
whole process: every socket of a worker waits behind that one loop. A worker relaying 100
streamed replies (about 2,500 `reply_delta` events a second) fell seconds behind, and pieces
came after the reply they belonged to (bench/streaming.py, BENCHMARKS.md "Replies that stream").

Here, whenever this process's queue in Redis has messages waiting, up to RECEIVE_BATCH of them
are taken with one ZPOPMIN and handed out from memory; only an empty queue waits in
channels_redis's own blocking receive (with its backup, unchanged). A group send takes two
round trips instead of four (the group's members in one pipeline, then one script that clears
expired messages and adds the new one where there is room); what it stores, the capacity and
expiry rules and the group bookkeeping are channels_redis's. A worker's connections to Redis
are a pool of POOL_CONNECTIONS that a burst waits for (redis-py's default pool refuses the
101st connection at once: 100 replies' sends at the same moment made "live updates
unavailable" and closed sockets). A Redis outage raises as before, so live sockets still close
with live.LIVE_UNAVAILABLE_CLOSE.

Written against channels_redis 4.3 (pinned in requirements.txt): its receive_single and
_map_channel_keys_to_connection are used as they are there; tests/test_channel_layer.py runs
both paths on a real Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque

from channels_redis import core
from redis import asyncio as aioredis

logger = logging.getLogger(__name__)

# A worker's connections to Redis: a send or read waits up to POOL_WAIT_SECONDS for a free one.
POOL_CONNECTIONS = 50
POOL_WAIT_SECONDS = 5

# Messages taken from Redis in one round trip: enough for a burst of every socket's next piece.
RECEIVE_BATCH = 200

# channels_redis's group-send script with its expiry clean-up folded in: per channel queue
# (KEYS), drop messages older than the expiry, then add this one (ARGV[i]) if the queue holds
# fewer than its capacity (ARGV[#KEYS + i]); returns how many queues were full.
GROUP_SEND_SCRIPT = """
local now, expiry, expired_before = ARGV[#ARGV - 2], ARGV[#ARGV - 1], ARGV[#ARGV]
local over_capacity = 0
for i = 1, #KEYS do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, expired_before)
    if redis.call('ZCARD', KEYS[i]) < tonumber(ARGV[i + #KEYS]) then
        redis.call('ZADD', KEYS[i], now, ARGV[i])
        redis.call('EXPIRE', KEYS[i], expiry)
    else
        over_capacity = over_capacity + 1
    end
end
return over_capacity
"""


class RedisChannelLayer(core.RedisChannelLayer):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # Taken from Redis, not yet handed out, by the channel they were read from.
        self.taken: defaultdict[str, deque[bytes]] = defaultdict(deque)

    def create_pool(self, index: int) -> aioredis.ConnectionPool:
        host = dict(self.hosts[index])
        if "address" not in host:  # Sentinel: channels_redis's own pool
            return super().create_pool(index)
        return aioredis.BlockingConnectionPool.from_url(
            host.pop("address"),
            max_connections=host.pop("max_connections", POOL_CONNECTIONS),
            timeout=host.pop("pool_timeout", POOL_WAIT_SECONDS),
            **host,
        )

    async def group_send(self, group: str, message: dict) -> None:
        key = self._group_key(group)
        pipe = self.connection(self.consistent_hash(group)).pipeline(transaction=False)
        pipe.zremrangebyscore(key, min=0, max=int(time.time()) - self.group_expiry)
        pipe.zrange(key, 0, -1)
        _, members = await pipe.execute()
        channels = [member.decode("utf8") for member in members]
        by_connection, messages, capacities = self._map_channel_keys_to_connection(channels, message)
        for index, keys in by_connection.items():
            now = time.time()
            arguments = [*(messages[k] for k in keys), *(capacities[k] for k in keys)]
            arguments += [now, self.expiry, int(now) - int(self.expiry)]
            full = await self.connection(index).eval(GROUP_SEND_SCRIPT, len(keys), *keys, *arguments)
            if full:
                # A worker's queue is full: it has stopped reading, or it is far behind.
                logger.warning("%s of %s channels in group %s were full: the message was dropped there",
                               full, len(channels), group)  # fmt: skip

    async def receive_single(self, channel: str) -> tuple[str, dict]:
        taken = self.taken[channel]
        if not taken:
            # Shielded: a socket that goes away mid-read cancels its receive, and the batch
            # (other sockets' messages, already gone from Redis) must land here all the same.
            await asyncio.shield(self._take_waiting(channel))
        if not taken:
            return await super().receive_single(channel)
        return self._unpacked(channel, taken.popleft())

    async def _take_waiting(self, channel: str) -> None:
        """Move what waits in Redis for `channel` (up to RECEIVE_BATCH, oldest first) to `taken`."""
        index = self.consistent_hash(channel) if "!" in channel else next(self._receive_index_generator)
        popped = await self.connection(index).zpopmin(self.prefix + channel, RECEIVE_BATCH)
        self.taken[channel].extend(content for content, _score in popped)

    def _unpacked(self, channel: str, content: bytes) -> tuple[str, dict]:
        # As channels_redis's receive_single: a message for one of this process's channels
        # names it in `__asgi_channel__`.
        message = self.deserialize(content)
        if "__asgi_channel__" in message:
            channel = message.pop("__asgi_channel__")
        return channel, message
