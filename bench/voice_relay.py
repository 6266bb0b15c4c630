"""Voice relay under load: how much delay and CPU does our server add to a call's audio?

N simulated browsers each stream 40 ms microphone frames (PCM16 24 kHz) in real time through
the server, which relays them to the loopback fake Realtime API (tests.fake_openai, in its own
process); the fake streams 40 ms of assistant audio back every 40 ms, which the server relays
to the browser. Every frame carries its send time (CLOCK_MONOTONIC is system-wide on Linux),
so each direction's latency is measured end to end:

- uplink: browser send -> the fake receives `input_audio_buffer.append`
- downlink: the fake sends `response.output_audio.delta` -> the browser receives the PCM

The same run measures a minimal relay written with `websockets` (bare: base64 + JSON only,
no Django, no Channels, no SDK) as the floor, and prints our/bare ratios; plus the server
process's CPU per call (from /proc/<pid>/stat) and the largest N whose p95 stays within
--max-p95-ms in both directions. Loopback only; every loop is bounded by --seconds.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatdesk .venv/bin/python bench/voice_relay.py

Options: --servers daphne,uvicorn,bare  --steps 10,25,50,75,100,150,200  --seconds 10
--wait-idle 1.0 (wait until the 1-minute load average is below this before starting).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    bench_database_url,
    cpu_seconds,
    free_port,
    percentile,
    recreate_database,
    server_command,
    stop_server,
)

FRAME_MS = 40
FRAME_BYTES = FRAME_MS * 48
PLAYBACK_EVERY = 0.25
STAMP = struct.Struct("<d")


def stamped_pcm(ms: float) -> bytes:
    pcm = bytearray(round(ms * 48) // 2 * 2)
    STAMP.pack_into(pcm, 0, time.monotonic())
    return bytes(pcm)


# --- the fake Realtime API, in its own process ------------------------------------------------


def fake_process(control: multiprocessing.connection.Connection) -> None:
    """Run tests.fake_openai with stamped audio both ways; answer 'collect' with uplink latencies."""
    import tests.fake_openai.realtime as fake_realtime
    from tests.fake_openai import FakeOpenAI, RealtimeReply

    uplink: list[tuple[float, float]] = []

    async def on_append(self, event):  # replaces the fake's VAD: only the relay is measured here
        received = time.monotonic()
        pcm = base64.b64decode(event["audio"])
        if len(pcm) >= STAMP.size:
            (sent,) = STAMP.unpack_from(pcm)
            uplink.append((sent, received - sent))

    fake_realtime._Session.on_append = on_append
    fake_realtime.sine_pcm16 = lambda ms, **_: stamped_pcm(ms)

    fake = FakeOpenAI().start()
    fake.realtime.chunk_ms = FRAME_MS
    fake.realtime.audio_pacing = 1.0
    # Every response.create gets a long silent answer: 25 audio deltas a second until hang-up.
    fake.realtime.respond_with(lambda items: RealtimeReply(text="", audio_ms=600_000))
    stop = threading.Event()

    def forget() -> None:
        # The fake records every event for tests; a benchmark would run out of memory.
        while not stop.wait(1.0):
            fake.realtime.events.clear()
            fake.realtime.sent.clear()
            for record in list(fake.realtime.connections):
                record.events.clear()
                record.sent.clear()
                record.items.clear()

    threading.Thread(target=forget, daemon=True).start()
    control.send(fake.base_url)
    while True:
        command = control.recv()
        if command == "collect":
            control.send(list(uplink))
            uplink.clear()
        else:
            break
    stop.set()
    fake.stop()


# --- the floor: a minimal relay -----------------------------------------------------------------


async def bare_forwarder(port: int, upstream_url: str) -> None:
    """Browser binary PCM <-> Realtime JSON, and nothing else."""

    async def handle(browser) -> None:
        async with websockets.connect(
            upstream_url, additional_headers={"Authorization": "Bearer sk-bench"}, max_size=None, compression=None
        ) as upstream:
            await upstream.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
            await upstream.send('{"type":"response.create"}')
            await browser.send('{"type":"ready"}')

            async def up() -> None:
                async for message in browser:
                    if isinstance(message, bytes):
                        audio = base64.b64encode(message).decode()
                        await upstream.send('{"type":"input_audio_buffer.append","audio":"' + audio + '"}')
                    elif json.loads(message).get("type") == "hangup":
                        return

            async def down() -> None:
                async for message in upstream:
                    event = json.loads(message)
                    if event.get("type") == "response.output_audio.delta":
                        await browser.send(base64.b64decode(event["delta"]))

            tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()

    async with websockets.serve(handle, "127.0.0.1", port, compression=None, max_size=2**20):
        await asyncio.Future()


# --- browsers ------------------------------------------------------------------------------------


@dataclass
class Round:
    server: str
    calls: int
    seconds: float
    ready: int = 0
    failed: int = 0
    downlink: list[float] = field(default_factory=list)
    uplink: list[float] = field(default_factory=list)
    downlink_at: list[float] = field(default_factory=list)
    uplink_at: list[float] = field(default_factory=list)
    frames_sent: int = 0
    frames_received: int = 0
    window: tuple[float, float] = (0.0, 0.0)
    cpu_cores_per_call: float = float("nan")
    server_cpu: float = float("nan")
    load: float = 0.0

    def p(self, which: str, q: float) -> float:
        return percentile(getattr(self, which), q / 100) * 1000

    def line(self) -> str:
        up = f"up p50/p95 {self.p('uplink', 50):5.1f}/{self.p('uplink', 95):5.1f} ms"
        down = f"down {self.p('downlink', 50):5.1f}/{self.p('downlink', 95):5.1f} ms"
        cpu = f"cpu {self.server_cpu:.2f} cores ({self.cpu_cores_per_call * 1000:.1f} mcores/call)"
        return f"{up}  {down}  {cpu}  failed {self.failed}  load {self.load:.2f}"

    @property
    def worst_p95(self) -> float:
        return max(self.p("uplink", 95), self.p("downlink", 95))


async def browser(url: str, origin: str, result: Round, all_ready: asyncio.Event, window: list[float]) -> None:
    try:
        async with websockets.connect(
            url, origin=origin, compression=None, max_size=2**20, open_timeout=60, close_timeout=5
        ) as ws:
            item = ""
            async with asyncio.timeout(60):
                while True:
                    message = await ws.recv()
                    if isinstance(message, str) and json.loads(message).get("type") == "ready":
                        break
            result.ready += 1
            await all_ready.wait()

            async def receive() -> None:
                nonlocal item
                async for message in ws:
                    if isinstance(message, bytes):
                        (sent,) = STAMP.unpack_from(message)
                        if window[0] <= sent <= window[1]:
                            result.downlink.append(time.monotonic() - sent)
                            result.downlink_at.append(sent)
                            result.frames_received += 1
                    else:
                        event = json.loads(message)
                        if event.get("type") == "audio_item":
                            item = event["item_id"]

            receiver = asyncio.ensure_future(receive())
            loop = asyncio.get_running_loop()
            # Real-time pacing on an absolute schedule, from a random phase like real microphones.
            next_frame = loop.time() + (hash(id(ws)) % FRAME_MS) / 1000
            next_playback = next_frame + PLAYBACK_EVERY
            played = 0
            while next_frame < window[1] + 0.5:
                await asyncio.sleep(max(0.0, next_frame - loop.time()))
                await ws.send(stamped_pcm(FRAME_MS))
                if window[0] <= time.monotonic() <= window[1]:
                    result.frames_sent += 1
                next_frame += FRAME_MS / 1000
                if next_frame >= next_playback and item:
                    played += int(PLAYBACK_EVERY * 1000)
                    await ws.send(json.dumps({"type": "playback", "item_id": item, "played_ms": played}))
                    next_playback += PLAYBACK_EVERY
            await ws.send('{"type":"hangup"}')
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await receiver
            receiver.cancel()
    except Exception as error:  # a refused or dropped call counts as a failure of the round
        result.failed += 1
        if result.failed <= 3:
            print(f"    call failed: {type(error).__name__}: {error}", file=sys.stderr)


async def run_round(url: str, server: str, pid: int, calls: int, seconds: float) -> Round:
    result = Round(server=server, calls=calls, seconds=seconds, load=os.getloadavg()[0])
    origin = "http://" + urlparse(url).netloc
    all_ready = asyncio.Event()
    window = [float("inf"), float("-inf")]
    tasks = []
    for index in range(calls):
        tasks.append(asyncio.ensure_future(browser(url, origin, result, all_ready, window)))
        if index % 10 == 9:
            await asyncio.sleep(0.05)  # browsers arrive over a moment, not in one instant
    async with asyncio.timeout(120):
        while result.ready + result.failed < calls:
            await asyncio.sleep(0.05)
    # Let the audio flow settle, then measure.
    start = time.monotonic() + 1.5
    window[0], window[1] = start, start + seconds
    all_ready.set()
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    cpu_before = cpu_seconds(pid)
    await asyncio.sleep(seconds)
    cpu_after = cpu_seconds(pid)
    await asyncio.gather(*tasks)
    result.window = (window[0], window[1])
    result.server_cpu = (cpu_after - cpu_before) / seconds
    result.cpu_cores_per_call = result.server_cpu / max(1, result.ready)
    return result


# --- servers ---------------------------------------------------------------------------------------


def wait_for_port(port: int, process: subprocess.Popen) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


def start_server(kind: str, port: int, env: dict[str, str], fake_url: str) -> subprocess.Popen:
    if kind in ("daphne", "uvicorn"):
        command = server_command(kind, port, "--lifespan", "off")
    else:
        upstream = fake_url.replace("http://", "ws://") + "/realtime?model=gpt-realtime-2.1-mini"
        command = [sys.executable, __file__, "--bare-forwarder", str(port), upstream]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_port(port, process)
    return process


def wait_until_idle(limit: float, max_wait: float) -> None:
    deadline = time.monotonic() + max_wait
    while os.getloadavg()[0] > limit and time.monotonic() < deadline:
        print(f"  waiting for a quiet machine: load {os.getloadavg()[0]:.2f} > {limit}", file=sys.stderr)
        time.sleep(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="bare,daphne,uvicorn")
    parser.add_argument("--steps", default="10,25,50,75,100,150,200")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per round")
    parser.add_argument("--max-p95-ms", type=float, default=20.0)
    parser.add_argument("--wait-idle", type=float, default=0.0, help="wait for a 1-min load below this")
    parser.add_argument("--repeat", type=int, default=1, help="rounds per server and N (the median counts)")
    parser.add_argument("--dump", help="write each round's raw latencies to this directory")
    parser.add_argument("--bare-forwarder", nargs=2, metavar=("PORT", "UPSTREAM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_forwarder:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(bare_forwarder(int(args.bare_forwarder[0]), args.bare_forwarder[1]))
        return

    steps = [int(n) for n in args.steps.split(",")]
    database_url = bench_database_url("chatdesk_bench_voice")
    recreate_database(database_url)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "VOICE_LIMITS_ENABLE": "0",  # every simulated browser shares one IP (the per-IP call limits)
        "LOG_LEVEL": "WARNING",
        "DB_POOL_MAX": "20",
        "VOICE_GREET_FIRST": "1",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [python, "manage.py", "seed_demo", "--no-bookings"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    if args.wait_idle:
        wait_until_idle(args.wait_idle, max_wait=900)

    control, child = multiprocessing.Pipe()
    fake = multiprocessing.get_context("spawn").Process(target=fake_process, args=(child,), daemon=True)
    fake.start()
    fake_url = control.recv()
    env.update(OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=fake_url)
    print(f"{os.cpu_count()} cores; load average at start {os.getloadavg()[0]:.2f}; {args.seconds:.0f} s per round")
    results: list[Round] = []
    # All servers run side by side and take turns at each N, so background load on this
    # shared machine hits them alike; a server stops stepping after its first failed round.
    servers: dict[str, tuple[subprocess.Popen, str]] = {}
    try:
        for kind in args.servers.split(","):
            port = free_port()
            servers[kind] = (start_server(kind, port, env, fake_url), f"ws://127.0.0.1:{port}/api/v1/chat/voice/call")
            asyncio.run(run_round(servers[kind][1], kind, servers[kind][0].pid, 5, 2.0))  # warm up imports, pools
        control.send("collect")
        control.recv()
        running = list(servers)
        for calls in steps:
            for repeat in range(args.repeat):
                for kind in running:
                    process, url = servers[kind]
                    result = asyncio.run(run_round(url, kind, process.pid, calls, args.seconds))
                    control.send("collect")
                    first, last = result.window
                    samples = [(sent, latency) for sent, latency in control.recv() if first <= sent <= last]
                    result.uplink_at = [sent for sent, _ in samples]
                    result.uplink = [latency for _, latency in samples]
                    if args.dump:
                        dump(Path(args.dump) / f"{kind}-{calls}-{repeat}.json", result)
                    results.append(result)
                    print(f"  {kind:>7} N={calls:>3}: {result.line()}", file=sys.stderr)
            for kind in list(running):
                if not sustained([r for r in results if r.server == kind and r.calls == calls], args.max_p95_ms):
                    running.remove(kind)
            if not running:
                break
    finally:
        for process, _ in servers.values():
            stop_server(process, timeout=20)
        control.send("stop")
        fake.join(timeout=10)
    report(results, args.max_p95_ms)


def dump(path: Path, result: Round) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    start = result.window[0]
    path.write_text(
        json.dumps(
            {
                "uplink": [
                    [round(at - start, 4), round(lat * 1000, 3)]
                    for at, lat in zip(result.uplink_at, result.uplink, strict=True)
                ],
                "downlink": [
                    [round(at - start, 4), round(lat * 1000, 3)]
                    for at, lat in zip(result.downlink_at, result.downlink, strict=True)
                ],
            }
        )
    )


def median_round(rounds: list[Round]) -> Round:
    """The round with the median worst-direction p95 (bursts of background load hit single rounds)."""
    return sorted(rounds, key=lambda r: r.worst_p95)[(len(rounds) - 1) // 2]


def sustained(rounds: list[Round], limit: float) -> bool:
    return all(not r.failed for r in rounds) and median_round(rounds).worst_p95 <= limit


def report(results: list[Round], limit: float) -> None:
    groups: dict[tuple[str, int], list[Round]] = {}
    for r in results:
        groups.setdefault((r.server, r.calls), []).append(r)
    print()
    print("Median round of each (server, N); latency in ms; ratio = ours / bare at the same N")
    print("server   calls  up p50  up p95  down p50  down p95  ratio p50 up/down  ratio p95 up/down  "
          "server cores  mcores/call  p95s of all rounds (worst direction)")  # fmt: skip
    for (server, calls), rounds in groups.items():
        r = median_round(rounds)
        floor = median_round(groups[("bare", calls)]) if ("bare", calls) in groups else None
        ratios = f"{'-':>17}  {'-':>17}"
        if floor and server != "bare":

            def ratio(which: str, q: float, r: Round = r, floor: Round = floor) -> float:
                return r.p(which, q) / floor.p(which, q)

            ratios = f"{ratio('uplink', 50):8.2f}/{ratio('downlink', 50):<8.2f}"
            ratios += f"  {ratio('uplink', 95):8.2f}/{ratio('downlink', 95):<8.2f}"
        latencies = f"{r.p('uplink', 50):6.1f}  {r.p('uplink', 95):6.1f}  {r.p('downlink', 50):8.1f}"
        latencies += f"  {r.p('downlink', 95):8.1f}"
        cpu = f"{statistics.median(x.server_cpu for x in rounds):12.2f}"
        cpu += f"  {statistics.median(x.cpu_cores_per_call for x in rounds) * 1000:11.1f}"
        spread = " ".join(f"{x.worst_p95:.1f}" + ("!" if x.failed else "") for x in rounds)
        print(f"{server:<7} {calls:>6}  {latencies}  {ratios}  {cpu}  {spread}")
    print()
    for server in dict.fromkeys(r.server for r in results):
        ok = [calls for (name, calls), rounds in groups.items() if name == server and sustained(rounds, limit)]
        print(f"{server}: largest N with a median p95 <= {limit:.0f} ms both ways: {max(ok) if ok else 'none'}")


if __name__ == "__main__":
    main()
