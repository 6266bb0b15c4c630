"""Real uvicorn worker processes for the drain and lease tests (tests/test_drain.py).

Each `Worker` is `uvicorn chatdesk.asgi:application` as production runs it (its lifespan
installs the drain on SIGTERM), on a free loopback port, on the test database, a Redis
database of the test's own and the loopback fake OpenAI. `Chat` is a customer speaking the chat
API over real HTTP to whichever worker it is told.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import redis
from django.conf import settings

from tests.servers import free_port, subprocess_database_url, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
UVICORN = str(Path(sys.executable).parent / "uvicorn")


def private_redis_url(number: int) -> str:
    """A database of the test Redis for these processes alone, emptied first (fails if Redis is down)."""
    base = os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/0")
    url = base.rsplit("/", 1)[0] + f"/{number}"
    redis.Redis.from_url(url).flushdb()
    return url


def worker_env(redis_url: str, **overrides: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": redis_url,
        "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "BUSINESS_TIMEZONE": settings.BUSINESS_TIMEZONE,
        # Every simulated customer is 127.0.0.1.
        "RATELIMIT_ENABLE": "0",
        "VOICE_LIMITS_ENABLE": "0",
        "DB_POOL_MIN": "1",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **overrides,
    }


class Worker:
    """One uvicorn process; its log is kept in `log_path` and printed when a test fails."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Worker:
        command = [UVICORN, "--host", "127.0.0.1", "--port", str(self.port), "--no-proxy-headers"]
        # Above DRAIN_SECONDS, so the drain's own deadline (a 503) comes first (chatdesk/drain.py).
        command += ["--timeout-graceful-shutdown", "60", "chatdesk.asgi:application"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.process)
        return self

    def sigterm(self) -> float:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return time.monotonic()

    def sigkill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Chat:
    """A customer's conversation over HTTP; each request goes to the worker named (or the first)."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.session_id = ""
        self.csrf = ""

    async def start(self) -> Chat:
        async with self.http.get(self.base + "/") as page:
            assert page.status == 200
        self.csrf = next(c.value for c in self.http.cookie_jar if c.key == "csrftoken")
        status, body, _ = await self.post(self.base, "/api/v1/chat/session/new", {})
        assert status == 201, body
        self.session_id = body["session_id"]
        return self

    async def post(self, base: str, path: str, body: dict) -> tuple[int, Any, dict[str, str]]:
        headers = {"X-CSRFToken": self.csrf, "Origin": base}
        async with self.http.post(base + path, json=body, headers=headers) as response:
            data = await response.json(content_type=None)
            return response.status, data, dict(response.headers)

    async def send(self, text: str, message_id: str, base: str | None = None) -> tuple[int, Any, dict[str, str]]:
        body = {"session_id": self.session_id, "message": text, "message_id": message_id}
        return await self.post(base or self.base, "/api/v1/chat/message", body)


def cookie_jar() -> aiohttp.CookieJar:
    # unsafe=True: aiohttp otherwise refuses cookies from IP-address hosts like 127.0.0.1.
    return aiohttp.CookieJar(unsafe=True)
