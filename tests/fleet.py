"""The production recipe, started for real for a test: nginx in front of uvicorn workers.

What runs (all on loopback, all stopped afterwards):
- nginx (Debian's), configured from deploy/nginx/ by deploy/render.py exactly as in production,
  as a standalone nginx.conf in a temp folder: its own port, pid, logs and temp paths;
- two uvicorn workers (by default), each on its own port with the systemd unit's options
  (--no-proxy-headers, --header x-served-by:<name>, --timeout-graceful-shutdown), against the
  test database on PostgreSQL and a Redis database of their own (REDIS_URL_FOR_TESTS), with
  TRUSTED_PROXIES=127.0.0.1 as nginx needs;
- the loopback fake OpenAI server (text and Realtime), which both workers call;
- collectstatic's output in a temp STATIC_ROOT, served by nginx (and by each worker).

Every answer names its worker in `X-Served-By` (uvicorn's --header, also on WebSocket handshakes),
so a test can tell which worker served what.

Use::

    from tests.fleet import fleet_fixture, fleet_servers_fixture  # noqa: F401 (the fixtures)

    pytestmark = [pytest.mark.fleet, pytest.mark.django_db(transaction=True)]

    def test_something(fleet, business):
        fleet.fake.queue_text("Hello")            # the model both workers call
        fleet.url                                 # http://127.0.0.1:<nginx port>
        fleet.workers[0].kill()                   # SIGKILL; .terminate() SIGTERM; .stop(); .start()

`fleet_servers` is module-scoped (starting everything takes a few seconds); `fleet` is the same
object per test, after making sure every worker is up again and emptying Redis and the fake's
script. Data lives in the test database: use `django_db(transaction=True)`, so the workers see
what the test wrote and the test sees what they wrote.

Outside pytest (a benchmark): `with Fleet(directory, database_url=..., redis_url=...) as fleet: ...`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

from deploy.render import render_site, render_standalone
from tests.fake_openai import FakeOpenAI
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NGINX = "/usr/sbin/nginx"
# Seconds a worker may drain on SIGTERM (the systemd unit's --timeout-graceful-shutdown).
DRAIN_SECONDS = 30


def _get(url: str, timeout: float = 2, host: str | None = None) -> tuple[int, Mapping[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})  # noqa: S310 (http on loopback)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http on loopback)
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


class Worker:
    """One uvicorn worker process on its own port, as `chatdesk@<port>.service` runs it."""

    def __init__(self, name: str, port: int, env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = port
        self.base_env = dict(env)
        self.env = dict(env)
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.alive else None

    def command(self) -> list[str]:
        return [
            str(BIN / "uvicorn"),
            "chatdesk.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-proxy-headers",
            "--header",
            f"x-served-by:{self.name}",
            "--timeout-graceful-shutdown",
            str(DRAIN_SECONDS),
            "--ws-per-message-deflate",
            "false",
            "--no-access-log",
        ]

    def start(self, env: Mapping[str, str] | None = None, *, wait: bool = True, timeout: float = 30) -> Self:
        """Start it (again), with `env` on top of the fleet's environment for this run only."""
        if self.alive:
            raise RuntimeError(f"{self.name} is already running")
        self.env = {**self.base_env, **(env or {})}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        if wait:
            self.wait_until_serving(timeout)
        return self

    def wait_until_serving(self, timeout: float = 30) -> None:
        """Until /healthz answers 200 on the worker's own port; fails with its log if it exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited ({self.process and self.process.returncode}):\n{self.log()}")
            try:
                if _get(f"{self.url}/healthz", timeout=1, host="127.0.0.1")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not answer within {timeout}s:\n{self.log()}")

    def signal(self, signum: int) -> None:
        if self.alive:
            self.process.send_signal(signum)

    def terminate(self) -> None:
        """SIGTERM, as systemd stops a unit: the worker drains and exits. Does not wait."""
        self.signal(signal.SIGTERM)

    def kill(self) -> int | None:
        """SIGKILL: the process dies at once, mid-request. Waits for it; its exit code."""
        self.signal(signal.SIGKILL)
        return self.wait(10)

    def wait(self, timeout: float = DRAIN_SECONDS + 15) -> int | None:
        """Until the process has exited (at most `timeout` s, then SIGKILL); its exit code."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def stop(self, timeout: float = DRAIN_SECONDS + 15) -> int | None:
        """SIGTERM and wait for the exit (SIGKILL after `timeout`), as `systemctl stop`."""
        self.terminate()
        return self.wait(timeout)

    def restart(self, env: Mapping[str, str] | None = None) -> Self:
        self.stop()
        return self.start(env)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


class Nginx:
    """nginx from deploy/nginx/, as the current user, everything under `directory`."""

    def __init__(self, directory: Path, worker_ports: list[int], static_root: Path) -> None:
        self.directory = directory
        self.port = free_port()
        site = render_site(ports=worker_ports, static_root=static_root, listen=f"127.0.0.1:{self.port}")
        self.config = render_standalone(directory, site=site, access_log=True)
        self.process: subprocess.Popen | None = None

    def command(self, *extra: str) -> list[str]:
        return [
            NGINX,
            "-p",
            str(self.directory),
            "-c",
            str(self.config),
            "-e",
            str(self.directory / "error.log"),
            *extra,
        ]

    def start(self, timeout: float = 10) -> Self:
        check = subprocess.run(self.command("-t"), capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t refused the rendered configuration:\n{check.stderr}")
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.process.stderr.read().decode()}\n{self.error_log()}")
            try:
                _get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not start:\n{self.error_log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finishes open requests
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def error_log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def access_log(self) -> str:
        path = self.directory / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""


class Fleet:
    """nginx, `workers` uvicorn workers, the fake OpenAI, on PostgreSQL and Redis (see the module doc)."""

    def __init__(
        self,
        directory: str | Path,
        *,
        database_url: str,
        redis_url: str,
        workers: int = 2,
        env: Mapping[str, str] | None = None,
        secret_key: str = "fleet-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",  # noqa: S107 (tests only)
    ) -> None:
        self.directory = Path(directory)
        self.database_url = database_url
        self.redis_url = redis_url
        self.static_root = self.directory / "static"
        self.fake = FakeOpenAI()
        self.worker_count = workers
        self.extra_env = dict(env or {})
        self.secret_key = secret_key
        self.workers: list[Worker] = []
        self.nginx: Nginx | None = None

    # --- addresses ---------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """host:port of nginx, as a browser would type it (Origin and Host)."""
        return f"127.0.0.1:{self.nginx.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}"

    def worker(self, name: str) -> Worker:
        return next(worker for worker in self.workers if worker.name == name)

    # --- lifecycle ---------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """What every worker runs with: deploy/chatdesk.env.example's shape, on loopback."""
        no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
            "DEBUG": "0",
            "SECRET_KEY": self.secret_key,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            # No TLS on loopback: nginx says http in X-Forwarded-Proto, and nothing redirects.
            "SECURE_SSL_REDIRECT": "0",
            "SECURE_COOKIES": "0",
            "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO",
            "TRUSTED_PROXIES": "127.0.0.1",
            "DATABASE_URL": self.database_url,
            "DB_POOL_MIN": "1",
            "REDIS_URL": self.redis_url,
            "REDIS_RETRY_SECONDS": "1",
            "STATIC_ROOT": str(self.static_root),
            "OPENAI_API_KEY": "sk-fleet",
            "OPENAI_BASE_URL": self.fake.base_url,
            "OPENAI_TIMEOUT_SECONDS": "10",
            # Test clients send audio faster than real time.
            "VOICE_MAX_FRAMES_PER_SECOND": "1000",
            "LOG_LEVEL": "WARNING",
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
            **self.extra_env,
        }

    def start(self) -> Self:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fake.start()
        try:
            self._collectstatic()
            env = self.environment()
            self.workers = [
                Worker(f"w{index + 1}", free_port(), env, self.directory) for index in range(self.worker_count)
            ]
            for worker in self.workers:
                worker.start(wait=False)
            for worker in self.workers:
                worker.wait_until_serving()
            self.nginx = Nginx(self.directory / "nginx", [w.port for w in self.workers], self.static_root).start()
        except BaseException:
            self.stop()
            raise
        return self

    def _collectstatic(self) -> None:
        env = {**self.environment(), "REDIS_URL": ""}
        done = subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"collectstatic failed:\n{done.stderr[-3000:]}")

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for worker in self.workers:
            if worker.alive:
                worker.signal(signal.SIGTERM)
        for worker in self.workers:
            worker.wait(15)
        self.fake.stop()

    def reset(self) -> None:
        """Between tests: every worker up with the fleet's environment, Redis empty, the fake's script empty."""
        import redis

        for worker in self.workers:
            if worker.alive and worker.env != worker.base_env:
                worker.stop()
            if not worker.alive:
                worker.start()
        redis.Redis.from_url(self.redis_url).flushdb()
        self.fake.reset()

    def logs(self) -> str:
        """Every worker's log and nginx's error log, for an assertion message."""
        parts = [f"--- {worker.name} (port {worker.port})\n{worker.log()}" for worker in self.workers]
        if self.nginx is not None:
            parts.append(f"--- nginx error.log\n{self.nginx.error_log()}")
        return "\n".join(parts)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def fleet_redis_url() -> str:
    """The Redis database of the test run (REDIS_URL_FOR_TESTS): each engineer and CI has their own."""
    return os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/0")


# Registered as `fleet_servers` and `fleet`; the functions have other names so that importing them
# into a test module does not shadow (ruff F811) the tests' `fleet` parameters.
@pytest.fixture(scope="module", name="fleet_servers")
def fleet_servers_fixture(django_db_setup) -> Iterator[Fleet]:
    """The fleet for a test module, on the test database (see the module doc)."""
    import redis
    from django.conf import settings

    from tests.servers import subprocess_database_url

    redis_url = fleet_redis_url()
    redis.Redis.from_url(redis_url).flushdb()  # fails (never skips) when Redis is unreachable
    with tempfile.TemporaryDirectory(prefix="chatdesk-fleet-") as directory:
        with Fleet(
            directory, database_url=subprocess_database_url(), redis_url=redis_url, secret_key=settings.SECRET_KEY
        ) as fleet:
            yield fleet


@pytest.fixture(name="fleet")
def fleet_fixture(fleet_servers: Fleet) -> Iterator[Fleet]:
    """The module's fleet, reset for this test: all workers up, Redis and the fake's script empty."""
    fleet_servers.reset()
    yield fleet_servers
