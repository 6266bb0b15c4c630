"""Replies that stream: how soon the model's first words reach the customer's page.

Starts the app in one server process (uvicorn by default) on PostgreSQL, with the loopback
fake model streaming its replies at a model's pace (a pause before the first word, then one
word every `--word-ms`). Each simulated customer holds the page's two connections: the live
WebSocket (`/api/v1/chat/live`, with the session cookie) and the chat API. Then N customers
send a message at once, and for each reply it measures:

- first token -> client: from the moment the fake wrote the reply's first text delta (it
  timestamps it, `first_text_at`) to the moment the customer's WebSocket got the first
  `reply_delta` of that reply. The fake and the clients run in this process, on one clock.
- time to first word, streamed: from sending the message to that first `reply_delta`.
- time to first word, not streamed: from sending the message to the API's answer, which is
  when a page that does not stream shows the reply's first word (the whole reply at once).

Rounds: one customer at a time (`--solo` turns in a row) and `--customers` at once
(`--rounds` times). Goal: first token -> client p95 <= 50 ms on one worker.

The customers send at once, but their replies' first words are spread out by the server's own
work before each model call (a span the output reports). `--aligned` takes that away: the
fake holds every reply until all the round's requests have come, then writes all their first
words in the same instant, the worst case for the relay. `--workers N` runs the production
recipe instead of one process: nginx in front of N uvicorn workers on the Redis channel layer.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatdesk .venv/bin/python bench/streaming.py
    ... --redis redis://127.0.0.1:6379/8   # the Redis channel layer instead of the in-memory one
    ... --aligned --workers 2              # every first word at once, through nginx on 2 workers

Rate limits are switched off for the run (every simulated customer shares one IP).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from yarl import URL

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chat_turns import wait_for_server  # noqa: E402
from bench.common import (  # noqa: E402
    bench_database_url,
    cpu_seconds,
    free_port,
    percentile,
    recreate_database,
    server_command,
    server_process,
)
from tests.fake_openai import FakeOpenAI, last_user_text  # noqa: E402

# A reply of a usual length (30 words), tagged with its customer so its stream can be found.
REPLY = (
    "Sure, we can send a technician on Friday morning between nine and eleven. The visit for a "
    "furnace repair takes about an hour. Would you like me to book it for you?"
)
TAG = re.compile(r"customer (\d+)")


@dataclass
class Turn:
    customer: int
    sent_at: float = 0.0
    first_text_at: float = 0.0  # when the fake wrote the reply's first text delta
    first_piece_at: float | None = None
    answered_at: float = 0.0


def responder(body: dict) -> str:
    """The reply starts with the customer's tag, so each stream is matched to its customer."""
    match = TAG.search(last_user_text(body) or "")
    return f"[{match.group(1) if match else '?'}] {REPLY}"


class Customer:
    """One customer's page: its own cookies, the live socket and the chat API."""

    def __init__(self, base: str, number: int) -> None:
        self.base = base
        self.number = number
        self.http = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), connector=aiohttp.TCPConnector(limit=0)
        )
        self.socket: aiohttp.ClientWebSocketResponse | None = None
        self.session_id = ""
        self.headers: dict[str, str] = {}
        self.waiting: dict[str, Turn] = {}
        self.listener: asyncio.Task | None = None

    async def open(self) -> None:
        async with self.http.get(f"{self.base}/") as page:
            await page.read()
        token = self.http.cookie_jar.filter_cookies(URL(self.base))["csrftoken"].value
        self.headers = {"X-CSRFToken": token, "Origin": self.base}
        async with self.http.post(f"{self.base}/api/v1/chat/session/new", headers=self.headers) as response:
            assert response.status == 201, await response.text()
            self.session_id = (await response.json())["session_id"]
        self.socket = await self.http.ws_connect(
            f"{self.base.replace('http', 'ws')}/api/v1/chat/live", headers={"Origin": self.base}
        )
        hello = await self.socket.receive_json(timeout=10)
        assert hello["type"] == "takeover", hello
        self.listener = asyncio.create_task(self.listen())

    async def listen(self) -> None:
        assert self.socket is not None
        async for frame in self.socket:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            data = frame.json()
            turn = self.waiting.get(data.get("message_id", ""))
            if data.get("type") == "reply_delta" and turn is not None and turn.first_piece_at is None:
                turn.first_piece_at = time.monotonic()

    async def turn(self) -> Turn:
        message_id = uuid.uuid4().hex
        turn = Turn(self.number)
        self.waiting[message_id] = turn
        body = {"session_id": self.session_id, "message": f"I am customer {self.number}.", "message_id": message_id}
        turn.sent_at = time.monotonic()
        async with self.http.post(f"{self.base}/api/v1/chat/message", json=body, headers=self.headers) as response:
            answer = await response.json()
            turn.answered_at = time.monotonic()
        assert response.status == 200, answer
        assert answer["reply"] == f"[{self.number}] {REPLY}", answer
        return turn

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self.listener is not None:
            await self.listener
        await self.http.close()


def first_text_times(fake: FakeOpenAI) -> dict[int, float]:
    """When the fake wrote each customer's first text delta, by customer."""
    times = {}
    for reply in fake.replies:
        text = reply["json"]["output"][0]["content"][0]["text"]
        times[int(text[1 : text.index("]")])] = reply["first_text_at"]
    return times


def burst_shape(turns: list[Turn]) -> tuple[float, int]:
    """How the round's replies overlapped: the span (ms) in which the middle 90% of first words
    were written, and the most replies being written at one time (first word -> answer)."""
    firsts = [t.first_text_at for t in turns]
    span = (percentile(firsts, 0.95) - percentile(firsts, 0.05)) * 1000
    edges = sorted([(t.first_text_at, 1) for t in turns] + [(t.answered_at, -1) for t in turns])
    writing = peak = 0
    for _, step in edges:
        writing += step
        peak = max(peak, writing)
    return span, peak


async def run_round(base: str, fake: FakeOpenAI, customers: int, solo_turns: int, pids: list[int]) -> dict:
    people = [Customer(base, n) for n in range(customers)]
    await asyncio.gather(*(c.open() for c in people))
    fake.replies.clear()
    server_cpu = sum(cpu_seconds(pid) for pid in pids)
    try:
        if solo_turns:
            turns = []
            for _ in range(solo_turns):
                fake.replies.clear()
                turn = await people[0].turn()
                turn.first_text_at = first_text_times(fake)[0]
                turns.append(turn)
        else:
            turns = list(await asyncio.gather(*(c.turn() for c in people)))
            written = first_text_times(fake)
            for turn in turns:
                turn.first_text_at = written[turn.customer]
        server_cpu = sum(cpu_seconds(pid) for pid in pids) - server_cpu
        # Pieces still on their way when the answer came are waited for, briefly.
        await asyncio.sleep(0.2)
    finally:
        await asyncio.gather(*(c.close() for c in people))
    missing = [t.customer for t in turns if t.first_piece_at is None]
    assert not missing, f"no reply_delta reached customers {missing}"
    relay = [(t.first_piece_at - t.first_text_at) * 1000 for t in turns]  # type: ignore[operator]
    streamed = [(t.first_piece_at - t.sent_at) * 1000 for t in turns]  # type: ignore[operator]
    whole = [(t.answered_at - t.sent_at) * 1000 for t in turns]
    span, peak = burst_shape(turns) if not solo_turns else (0.0, 1)
    return {
        "label": f"1 at a time x{solo_turns}" if solo_turns else f"{customers} at once",
        "turns": len(turns),
        "relay": relay,
        "streamed": streamed,
        "whole": whole,
        "server_cpu_ms_per_turn": server_cpu * 1000 / len(turns),
        "span": span,
        "peak": peak,
    }


@contextmanager
def one_process(args: argparse.Namespace, env: dict[str, str]) -> Iterator[tuple[str, FakeOpenAI, list[int]]]:
    """The app in one server process, the clients talking to it directly; the fake in this process."""
    python = sys.executable
    with FakeOpenAI() as fake:
        env = {**env, "OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": fake.base_url, "REDIS_URL": args.redis}
        port = free_port()
        deflate = str(not args.no_deflate).lower()
        command = server_command(args.server, port, "--no-proxy-headers", "--ws-per-message-deflate", deflate)
        if os.environ.get("BENCH_PROFILE"):  # e.g. BENCH_PROFILE=/tmp/streaming.prof: the server under cProfile
            command = [python, "-m", "cProfile", "-o", os.environ["BENCH_PROFILE"], "-m", args.server, *command[1:]]
        with server_process(command, env, ROOT) as server:
            base = f"http://127.0.0.1:{port}"
            asyncio.run(wait_for_server(f"{base}/"))
            yield base, fake, [server.pid]


@contextmanager
def behind_nginx(args: argparse.Namespace, env: dict[str, str]) -> Iterator[tuple[str, FakeOpenAI, list[int]]]:
    """The production recipe (tests/fleet.py): nginx in front of `--workers` uvicorn workers on the
    Redis channel layer (a customer's socket and their chat request may reach different workers)."""
    import redis

    from tests.fleet import Fleet

    redis_url = args.redis or os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/8")
    redis.Redis.from_url(redis_url).flushdb()  # fails (never skips) when Redis is unreachable
    keep = ("RATELIMIT_ENABLE", "CHAT_MAX_MESSAGES", "DB_POOL_MAX")
    with tempfile.TemporaryDirectory(prefix="chatdesk-streaming-") as directory, Fleet(
        directory,
        database_url=env["DATABASE_URL"],
        redis_url=redis_url,
        workers=args.workers,
        env={key: env[key] for key in keep},
    ) as fleet:  # fmt: skip
        yield fleet.url, fleet.fake, [w.pid for w in fleet.workers if w.pid]


def timed_round(base: str, fake: FakeOpenAI, customers: int, solo_turns: int, pids: list[int]) -> dict:
    """One measured round, with this process's garbage collector held off: the customers and the
    fake model live here, and a full collection (60-150 ms with 100 customers) would be counted
    against the server. What the round left is collected after it."""
    gc.collect()
    gc.disable()
    try:
        return asyncio.run(run_round(base, fake, customers, solo_turns, pids))
    finally:
        gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100, help="concurrent conversations in the big round")
    parser.add_argument("--rounds", type=int, default=3, help="how many big rounds")
    parser.add_argument("--solo", type=int, default=30, help="turns of one customer, one after another")
    parser.add_argument("--think-ms", type=float, default=600, help="the model's pause before its first word")
    parser.add_argument("--word-ms", type=float, default=30, help="time between two stream events of the model")
    parser.add_argument(
        "--aligned",
        action="store_true",
        help="big rounds: the fake starts every reply in the same instant (the worst case)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="0: one server process, clients direct; N: nginx in front of N uvicorn workers, Redis layer",
    )
    parser.add_argument("--server", choices=["uvicorn", "daphne"], default="uvicorn")
    parser.add_argument("--redis", default="", help="REDIS_URL for the channel layer (default: in-memory)")
    parser.add_argument(
        "--no-deflate",
        action="store_true",
        help="uvicorn: no permessage-deflate on WebSockets (--ws-per-message-deflate)",
    )
    args = parser.parse_args()

    database_url = bench_database_url("chatdesk_bench_streaming")
    recreate_database(database_url)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "RATELIMIT_ENABLE": "0",
        "CHAT_MAX_MESSAGES": "1000",  # the solo round's turns all go to one conversation
        "LOG_LEVEL": "WARNING",
        "DB_POOL_MAX": "20",
    }
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [python, "manage.py", "seed_demo", "--no-bookings", "--no-history"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )

    serving = behind_nginx if args.workers else one_process
    print(f"load average at start {os.getloadavg()[0]:.2f}", file=sys.stderr)
    with serving(args, env) as (base, fake, pids):
        fake.latency = args.think_ms / 1000
        fake.stream_event_delay = args.word_ms / 1000
        fake.respond_with(responder)
        # Warm up with a round of the big rounds' size, not counted: the first burst also grows
        # every pool (database, Redis) to its size and imports what the first turn needs.
        asyncio.run(run_round(base, fake, args.customers, 0, pids))
        results = [timed_round(base, fake, 1, args.solo, pids)]
        fake.start_together = args.customers if args.aligned else 0
        for _ in range(args.rounds):
            results.append(timed_round(base, fake, args.customers, 0, pids))
            print(f"  round done, load average {os.getloadavg()[0]:.2f}", file=sys.stderr)

    big = results[1:]
    if big:
        results.append(
            {
                "label": f"{args.customers} at once, all rounds",
                "turns": sum(r["turns"] for r in big),
                "relay": [v for r in big for v in r["relay"]],
                "streamed": [v for r in big for v in r["streamed"]],
                "whole": [v for r in big for v in r["whole"]],
                "server_cpu_ms_per_turn": sum(r["server_cpu_ms_per_turn"] for r in big) / len(big),
                "span": sum(r["span"] for r in big) / len(big),
                "peak": min(r["peak"] for r in big),
            }
        )
    words = len(REPLY.split()) + 1
    where = (
        f"nginx + {args.workers} uvicorn worker(s), Redis channel layer"
        if args.workers
        else f"{args.server}, one process, channel layer: {'Redis' if args.redis else 'in-memory'}"
    )
    print(
        f"server: {where}; {os.cpu_count()} cores; fake model: {args.think_ms:.0f} ms before its first word"
        f"{' (big rounds: every reply starts in the same instant)' if args.aligned else ''}, "
        f"then {args.word_ms:.0f} ms between stream events, {words}-word reply"
    )
    print(
        "                          turns   first token -> client ms   first word ms: streamed   "
        "not streamed   server CPU   first words   most replies"
    )
    print(
        "                                    p50    p95    max              p50    p95           p50    p95"
        "    ms/turn      within ms   written at once"
    )
    for r in results:
        relay, streamed, whole = r["relay"], r["streamed"], r["whole"]
        print(
            f"{r['label']:>26}  {r['turns']:>5}  "
            f"{percentile(relay, 0.5):>6.1f} {percentile(relay, 0.95):>6.1f} {max(relay):>6.1f}           "
            f"{percentile(streamed, 0.5):>6.0f} {percentile(streamed, 0.95):>6.0f}        "
            f"{percentile(whole, 0.5):>6.0f} {percentile(whole, 0.95):>6.0f}   {r['server_cpu_ms_per_turn']:>8.1f}"
            f"   {r['span']:>11.0f}   {r['peak']:>15}"
        )
    print("first token -> client: the fake writes the first text delta -> the customer's socket gets it.")
    print("first word: message sent -> first reply_delta (streamed) / the API's answer (not streamed).")
    print("first words within: the span of the middle 90% of the round's first-delta writes.")
    print("most replies written at once: the peak count of replies between first delta and answer.")


if __name__ == "__main__":
    main()
