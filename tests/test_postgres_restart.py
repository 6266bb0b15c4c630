"""A real PostgreSQL restart under chat traffic: 503 + Retry-After, no duplicates, recovery.

The test starts a private PostgreSQL cluster (initdb + pg_ctl on a free port, run as the
`postgres` user), migrates it, and serves the app from a daphne process on it, with the
text model on the loopback fake. Four customers send a message each; while their turns wait
on the model (each message already stored), the database is stopped. The turns fail storing
their replies: each customer gets a 503 JSON error with Retry-After, never an HTML 500. They
retry with the same message ids, as static/chat.js does, while the database is down (503
again) and after it is started again: then each message is answered once, and stored once.
The connection pool recovers by itself (no restart of the app), and a new message works.

It needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin), present wherever the
suite's own PostgreSQL runs; without them it fails, it never skips.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.error import HTTPError

import psycopg
import pytest

from tests.fake_openai import fake_openai_fixture  # noqa: F401 (registers `fake_openai`)
from tests.fake_openai.responses_script import last_user_text
from tests.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    assert found, f"PostgreSQL's {name} is not installed (/usr/lib/postgresql/*/bin)"
    return found[-1]


def _as_postgres(*command: str) -> list[str]:
    # initdb and the server refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


@dataclass
class PrivatePostgres:
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/chatdesk"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres(_bin("pg_ctl"), "-D", str(self.data), "-w", "-t", "30", *args),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.pg_ctl("-o", options, "-l", str(self.data / "server.log"), "start")

    def stop(self) -> None:
        # "fast": the server ends every session, as a restart or a failover does.
        self.pg_ctl("-m", "fast", "stop")

    def query(self, sql: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.url, autocommit=True) as connection:
            return connection.execute(sql, params).fetchall()


@pytest.fixture
def database() -> Iterator[PrivatePostgres]:
    home = Path(tempfile.mkdtemp(prefix="chatdesk-pg-"))
    shutil.chown(home, "postgres") if os.geteuid() == 0 else None
    server = PrivatePostgres(home / "data", free_port())
    subprocess.run(
        _as_postgres(_bin("initdb"), "-D", str(server.data), "-A", "trust", "-U", "postgres", "--no-sync"),
        check=True,
        capture_output=True,
    )
    server.start()
    try:
        with psycopg.connect(server.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
            connection.execute("CREATE DATABASE chatdesk")
        yield server
    finally:
        try:
            server.pg_ctl("-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def app(database: PrivatePostgres, fake_openai) -> Iterator[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "DATABASE_URL": database.url,
        # Waiting for a connection while the database is down ends after this: a 503.
        "DB_POOL_MIN": "2",
        "DB_POOL_MAX": "6",
        "DB_POOL_TIMEOUT": "2",
        "REDIS_URL": "",
        "SECRET_KEY": "restart-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_TIMEOUT_SECONDS": "60",
        "LOG_LEVEL": "ERROR",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port), "chatdesk.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class Sent:
    """One customer message and every answer it got, first try and retries."""

    message_id: str
    text: str
    answers: list[Answer] = field(default_factory=list)
    reply: str = ""


@dataclass
class Answer:
    status: int
    content_type: str
    retry_after: str | None
    text: str


class Browser:
    """A customer's browser: cookies kept, the CSRF token sent back (the standard library only)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(self.cookies)
        )

    def csrf_token(self) -> str:
        return next((cookie.value or "" for cookie in self.cookies if cookie.name == "csrftoken"), "")

    def request(self, method: str, path: str, body: dict | None = None) -> Answer:
        request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
            self.base + path,
            data=json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None),
            method=method,
            headers={"Content-Type": "application/json", "X-CSRFToken": self.csrf_token()},
        )
        try:
            with self.opener.open(request, timeout=90) as response:
                status, headers, text = response.status, response.headers, response.read().decode()
        except HTTPError as error:
            status, headers, text = error.code, error.headers, error.read().decode()
        return Answer(status, headers.get("Content-Type", ""), headers.get("Retry-After"), text)


def customer(base: str, patience: float = 0) -> tuple[Browser, str]:
    """A customer who opened the page and started a conversation (retrying 503s for `patience` s)."""
    client = Browser(base)
    deadline = time.monotonic() + patience
    while True:
        page = client.request("GET", "/")  # the CSRF cookie
        started = client.request("POST", "/api/v1/chat/session/new") if page.status == 200 else page
        if started.status == 201:
            return client, json.loads(started.text)["session_id"]
        # A connection the restart broke, met once: the page's or the API's 503, not a 500.
        assert started.status == 503 and started.retry_after, started.text
        assert time.monotonic() < deadline, started.text
        time.sleep(0.5)


def send_until_answered(client: Browser, session_id: str, sent: Sent, deadline: float) -> None:
    """As static/chat.js, but patient: the same message id until it is answered."""
    while time.monotonic() < deadline:
        answer = client.request(
            "POST",
            "/api/v1/chat/message",
            {"session_id": session_id, "message": sent.text, "message_id": sent.message_id},
        )
        sent.answers.append(answer)
        if answer.status == 200:
            sent.reply = json.loads(answer.text)["reply"]
            return
        time.sleep(0.5)  # the test's clock; Retry-After is checked below


def test_a_postgres_restart_gives_503s_then_recovers_without_duplicates(database, app, fake_openai):
    cut = threading.Event()

    def answer_after_the_cut(request: dict) -> str:
        # The first turns wait here (each message already stored) until the database is down.
        cut.wait(60)
        return f"Answer to {last_user_text(request)}"

    fake_openai.respond_with(answer_after_the_cut)
    customers = [customer(app) for _ in range(4)]
    messages = [Sent(str(uuid.uuid4()), f"message {n}") for n in range(4)]
    deadline = time.monotonic() + 120
    threads = [
        threading.Thread(target=send_until_answered, args=(client, session_id, sent, deadline))
        for (client, session_id), sent in zip(customers, messages, strict=True)
    ]
    for thread in threads:
        thread.start()
    # Every message is stored before its turn asks the model.
    while time.monotonic() < deadline:
        if database.query("SELECT count(*) FROM chatdesk_message WHERE role = 'customer'")[0][0] == 4:
            break
        time.sleep(0.1)

    database.stop()
    cut.set()  # the turns now fail storing their replies
    outage_started = time.monotonic()
    # The page without JavaScript: a short HTML 503 with Retry-After, not a traceback.
    page = Browser(app).request("GET", "/")
    assert page.status == 503, page
    assert page.content_type.startswith("text/html")
    assert page.retry_after and int(page.retry_after) >= 1
    assert "Back in a moment" in page.text
    # Customers retry against the stopped database meanwhile.
    time.sleep(max(0.0, 3 - (time.monotonic() - outage_started)))
    database.start()
    for thread in threads:
        thread.join(130)
    fake_openai.respond_with(lambda request: f"Answer to {last_user_text(request)}")

    for sent in messages:
        assert sent.reply == f"Answer to {sent.text}", sent.answers
        failures = [answer for answer in sent.answers if answer.status != 200]
        # The first try of each failed with the database (its reply could not be stored).
        assert failures, sent.answers
        for failure in failures:
            assert failure.status == 503, failure
            assert failure.content_type.startswith("application/json"), failure
            assert json.loads(failure.text)["error"] == "service_unavailable"
            assert failure.retry_after and int(failure.retry_after) >= 1

    # Stored once each, answered once each: the retries found the message and answered it.
    rows = database.query(
        "SELECT client_message_id, role, text FROM chatdesk_message WHERE client_message_id IS NOT NULL ORDER BY id"
    )
    for sent in messages:
        mine = [(role, text) for message_id, role, text in rows if message_id == sent.message_id]
        assert mine == [("customer", sent.text), ("assistant", f"Answer to {sent.text}")], mine

    # The app recovered by itself (the pool drops the connections the restart broke as it
    # meets them): a new conversation and message work, without restarting it.
    client, session_id = customer(app, patience=20)
    fresh = Sent(str(uuid.uuid4()), "after the restart")
    send_until_answered(client, session_id, fresh, time.monotonic() + 20)
    assert fresh.reply == "Answer to after the restart", fresh.answers
    assert all(answer.status in (200, 503) for answer in fresh.answers), fresh.answers
    # Once recovered, it stays so.
    for n in range(3):
        again = Sent(str(uuid.uuid4()), f"later {n}")
        send_until_answered(client, session_id, again, time.monotonic() + 5)
        assert [answer.status for answer in again.answers] == [200]
