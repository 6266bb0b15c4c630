"""Helpers for tests that start real server processes (daphne, uvicorn) on loopback."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request

from django.conf import settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    """Until the server answers HTTP; fails with its stderr if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"server exited: {stderr[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/schema/", timeout=5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def subprocess_database_url() -> str:
    """The test database (test_<name>), for a server process to use the same data."""
    db = settings.DATABASES["default"]
    auth = (db["USER"] or "postgres") + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
