"""How long a worker takes to drain on SIGTERM, and how soon another answers after a SIGKILL.

Starts real uvicorn workers (`uvicorn chatdesk.asgi:application`, the production command; its
lifespan installs the drain of chatdesk/drain.py) on a database of the benchmark's own, Redis
(REDIS_URL_FOR_TESTS, default redis://127.0.0.1:6379/0) and the loopback fake model with a fixed
latency, then prints:

- drain: N turns in flight (each model answer takes --latency s), SIGTERM after --after s:
  seconds from the signal to the process's exit, and how many turns were answered (200);
- takeover: a worker SIGKILLed mid-turn; the same message (same message_id) is sent to a second
  worker every 0.25 s: seconds from the kill until it is answered (the lease lapses after
  TURN_LEASE_SECONDS, 10 by default), and how many answers are stored for it (must be 1).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatdesk .venv/bin/python bench/drain.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import bench_database_url, free_port, recreate_database  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402


class Worker:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()
        command = [str(Path(sys.executable).parent / "uvicorn"), "--host", "127.0.0.1", "--port", str(self.port),
                   "--no-proxy-headers", "--timeout-graceful-shutdown", "60", "--log-level", "warning",
                   "chatdesk.asgi:application"]  # fmt: skip
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    async def ready(self) -> None:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(self.url + "/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        self.log.seek(0)
        raise RuntimeError("worker did not start:\n" + self.log.read().decode(errors="replace")[-3000:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


async def open_chat(http: aiohttp.ClientSession, base: str) -> tuple[dict[str, str], str]:
    async with http.get(base + "/") as page:
        token = page.cookies["csrftoken"].value
    headers = {"X-CSRFToken": token, "Cookie": f"csrftoken={token}", "Origin": base}
    async with http.post(base + "/api/v1/chat/session/new", headers=headers) as response:
        return headers, (await response.json())["session_id"]


async def send(http, base, headers, session_id, message_id) -> tuple[int | str, dict]:
    body = {"session_id": session_id, "message": "hello", "message_id": message_id}
    try:
        # The CSRF check wants the Origin of the worker asked (another worker: another port).
        async with http.post(base + "/api/v1/chat/message", json=body, headers={**headers, "Origin": base}) as response:
            return response.status, await response.json(content_type=None)
    except aiohttp.ClientError as error:
        return type(error).__name__, {}


async def drain_round(env: dict[str, str], fake: FakeOpenAI, turns: int, latency: float, after: float) -> None:
    fake.reset()
    fake.latency = latency
    worker = Worker(env)
    try:
        await worker.ready()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            chats = [await open_chat(http, worker.url) for _ in range(turns)]
            sending = [asyncio.ensure_future(send(http, worker.url, h, s, f"m-{n}")) for n, (h, s) in enumerate(chats)]
            await asyncio.sleep(after)
            signalled = time.monotonic()
            worker.process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(worker.process.wait, 120)
            took = time.monotonic() - signalled
            results = await asyncio.gather(*sending)
        answered = sum(1 for status, _ in results if status == 200)
        print(f"drain: {turns:>3} turns in flight ({latency:.1f} s model, SIGTERM after {after:.1f} s): "
              f"exited {took:.2f} s after SIGTERM (code {code}), {answered}/{turns} answered")  # fmt: skip
    finally:
        worker.stop()


async def takeover_round(env: dict[str, str], fake: FakeOpenAI) -> None:
    fake.reset()
    fake.latency = 0.0
    fake.queue_delay(60)
    fake.queue_text("never sent")
    doomed, survivor = Worker(env), Worker(env)
    try:
        await doomed.ready()
        await survivor.ready()
        async with aiohttp.ClientSession() as http:
            headers, session_id = await open_chat(http, doomed.url)
            first = asyncio.ensure_future(send(http, doomed.url, headers, session_id, "m-1"))
            while not fake.response_requests:
                await asyncio.sleep(0.02)
            await asyncio.sleep(1.0)
            doomed.process.kill()
            killed = time.monotonic()
            await first
            statuses = []
            while True:
                status, body = await send(http, survivor.url, headers, session_id, "m-1")
                statuses.append(status)
                if status != 409:
                    break
                await asyncio.sleep(0.25)
            took = time.monotonic() - killed
            again = await send(http, survivor.url, headers, session_id, "m-1")
        print(f"takeover: answered by the other worker {took:.2f} s after SIGKILL "
              f"({statuses.count(409)} x 409 turn_in_progress first, then {status}); "
              f"retry again identical: {again[1] == body}")  # fmt: skip
    finally:
        doomed.stop()
        survivor.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=2.0, help="model latency in seconds")
    parser.add_argument("--after", type=float, default=0.5, help="seconds between the turns' start and SIGTERM")
    args = parser.parse_args()
    database_url = bench_database_url("chatdesk_bench_drain")
    recreate_database(database_url)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/0"),
        "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "RATELIMIT_ENABLE": "0",
        "LOG_LEVEL": "WARNING",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    with FakeOpenAI() as fake:
        env.update(OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=fake.base_url)
        for turns in (0, 1, 50):
            asyncio.run(drain_round(env, fake, turns, args.latency, args.after))
        asyncio.run(takeover_round(env, fake))


if __name__ == "__main__":
    main()
