"""What every benchmark script needs: its own database, free ports, percentiles, CPU time, and
a server process that says why it failed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/chatdesk"


def bench_database_url(name: str) -> str:
    """The caller's DATABASE_URL pointed at a database of the benchmark's own, which it may drop."""
    parts = urlsplit(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        sys.exit("Set DATABASE_URL to a PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/chatdesk")
    return urlunsplit(parts._replace(path=f"/{name}"))


def recreate_database(url: str) -> None:
    """Drop and create the database named in `url` (through the server's `postgres` database)."""
    import psycopg
    from psycopg import sql

    name = urlsplit(url).path.lstrip("/")
    maintenance = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile, `fraction` in [0, 1]; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    # Fields after the command name (which may contain spaces): utime is 14th, stime 15th overall.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def setup_django(database: str, **env: str) -> str:
    """Recreate the benchmark's own database, set up Django on it with `env`, migrate; its URL.

    SECRET_KEY is only needed to import the settings (nothing is signed for real) and logs
    are kept to warnings; `env` adds or overrides settings variables.
    """
    url = bench_database_url(database)
    recreate_database(url)
    os.environ.update(
        {
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
            "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-secret-key-not-for-production-0123456789abcdef",
            "LOG_LEVEL": os.environ.get("LOG_LEVEL") or "WARNING",
            **env,
        }
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    return url


@contextmanager
def server_process(command: list[str], env: Mapping[str, str], cwd: Path) -> Iterator[subprocess.Popen]:
    """The server started from `command` for the block. If the block fails, the end of the
    server's stderr is printed; at the end it is stopped (stop_server)."""
    server_log = tempfile.TemporaryFile()
    server = subprocess.Popen(command, cwd=cwd, env=env, stderr=server_log, stdout=subprocess.DEVNULL)
    try:
        yield server
    except Exception:
        server_log.seek(0)
        sys.stderr.write(server_log.read().decode(errors="replace")[-5000:])
        raise
    finally:
        stop_server(server)


def stop_server(server: subprocess.Popen, timeout: float = 10) -> None:
    """SIGINT, and SIGKILL after `timeout` seconds (SIGINT is ignored in a background job)."""
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def server_command(server: str, port: int, *uvicorn_options: str) -> list[str]:
    """daphne or uvicorn (with `uvicorn_options`) from this venv, serving the app on 127.0.0.1:`port`."""
    venv_bin = Path(sys.executable).parent
    if server == "daphne":
        return [str(venv_bin / "daphne"), "-b", "127.0.0.1", "-p", str(port), "chatdesk.asgi:application"]
    return [str(venv_bin / "uvicorn"), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            *uvicorn_options, "chatdesk.asgi:application"]  # fmt: skip
