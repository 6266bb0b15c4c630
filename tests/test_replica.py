"""A real streaming read replica (issue 13): the heavy staff reads go to it, the booking path never.

The module starts a private PostgreSQL primary (initdb + pg_ctl on a free port, as the `postgres`
user, like tests/test_postgres_restart.py), migrates and seeds it, copies it with
`pg_basebackup -R` into a hot standby on another port that streams from it, and serves the app
from a daphne process with DATABASE_URL on the primary and DATABASE_REPLICA_URL on the standby,
the text model on the loopback fake.

Replica lag is made real by pausing the standby's replay (`pg_wal_replay_pause()`): whatever is
written then exists on the primary only. So a page that does not show it read the replica, a
page that shows it read the primary. While paused: a customer's conversation and a booking made
through the chat tools are found by the customer lookup at once (the booking path reads the
primary); the admin changelists, the dashboard, the analytics API and the CSV export still work
and do not show them (they read the replica); a staff member who just wrote (signed in: a POST)
reads the primary for REPLICA_STICKY_SECONDS; a changelist action (read-then-write) finds the new
booking on the primary. After replay resumes the replica shows everything. The commands
(export_transcripts, cost_report) read the replica too.

It needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin, pg_basebackup among them),
present wherever the suite's own PostgreSQL runs; without them it fails, it never skips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.error import HTTPError

import psycopg
import pytest
from django.conf import settings

from bookings.selectors import local_today
from chatdesk import replica
from tests.fake_openai import FakeOpenAI, last_function_call_output
from tests.servers import free_port, wait_for_port
from tests.test_postgres_restart import PrivatePostgres, _as_postgres, _bin

pytestmark = pytest.mark.replica

ROOT = Path(__file__).resolve().parent.parent
STAFF, STAFF_PASSWORD = "dispatch", "replica-test-pass-8812"
STICKY_SECONDS = 3


@dataclass
class Cluster:
    primary: PrivatePostgres
    standby: PrivatePostgres

    def in_sync(self, timeout: float = 20) -> None:
        """Wait until the standby has replayed everything the primary has written so far."""
        target = self.primary.query("SELECT pg_current_wal_lsn()")[0][0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.standby.query("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", target)[0][0]:
                return
            time.sleep(0.05)
        raise AssertionError(f"the standby did not reach {target} in {timeout} s")

    def pause_replay(self) -> None:
        self.in_sync()
        self.standby.query("SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + 10
        while self.standby.query("SELECT pg_get_wal_replay_pause_state()")[0][0] != "paused":
            assert time.monotonic() < deadline, "the standby's replay did not pause"
            time.sleep(0.05)

    def resume_replay(self) -> None:
        self.standby.query("SELECT pg_wal_replay_resume()")
        self.in_sync()

    def on_both(self, sql: str, *params: object) -> tuple[list[tuple], list[tuple]]:
        return self.primary.query(sql, *params), self.standby.query(sql, *params)


def _environment(cluster: Cluster, fake: FakeOpenAI, *, with_replica: bool = True) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "DATABASE_URL": cluster.primary.url,
        "DB_POOL_MIN": "1",
        "DB_POOL_MAX": "4",
        "REDIS_URL": "",
        "SECRET_KEY": "replica-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_TIMEOUT_SECONDS": "30",
        "LOG_LEVEL": "ERROR",
        "REPLICA_STICKY_SECONDS": str(STICKY_SECONDS),
    }
    env.pop("DATABASE_REPLICA_URL", None)
    if with_replica:
        env["DATABASE_REPLICA_URL"] = cluster.standby.url
    return env


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(fake: FakeOpenAI) -> Iterator[Cluster]:
    home = Path(tempfile.mkdtemp(prefix="chatdesk-replica-"))
    shutil.chown(home, "postgres") if os.geteuid() == 0 else None
    primary = PrivatePostgres(home / "primary", free_port())
    standby = PrivatePostgres(home / "standby", free_port())
    started: list[PrivatePostgres] = []
    try:
        subprocess.run(
            _as_postgres(_bin("initdb"), "-D", str(primary.data), "-A", "trust", "-U", "postgres", "--no-sync"),
            check=True,
            capture_output=True,
        )
        # initdb's pg_hba.conf already lets 127.0.0.1 connect for replication (trust); wal_level
        # is "replica" by default.
        primary.start()
        started.append(primary)
        with psycopg.connect(primary.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
            connection.execute("CREATE DATABASE chatdesk")
        cluster = Cluster(primary, standby)
        env = _environment(cluster, fake, with_replica=False)
        for command in (
            ["migrate", "-v", "0"],
            ["seed_demo", "--no-history", "--staff-user", STAFF, "--staff-password", STAFF_PASSWORD],
        ):
            subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)
        # The standby: a physical copy that streams from the primary (-R writes standby.signal
        # and primary_conninfo), a hot standby answering read-only queries.
        subprocess.run(
            _as_postgres(
                _bin("pg_basebackup"),
                *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
                *("-D", str(standby.data), "-R", "-X", "stream", "--no-sync"),
            ),
            check=True,
            capture_output=True,
        )
        standby.start()
        started.append(standby)
        assert standby.query("SELECT pg_is_in_recovery()") == [(True,)]
        cluster.in_sync()
        yield cluster
    finally:
        for server in reversed(started):
            try:
                server.pg_ctl("-m", "immediate", "stop")
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def app(cluster: Cluster, fake: FakeOpenAI) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port), "chatdesk.asgi:application"],
        cwd=ROOT,
        env=_environment(cluster, fake),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def lagging(cluster: Cluster) -> Iterator[Cluster]:
    """The standby stops replaying: what is written from now on is on the primary only."""
    cluster.pause_replay()
    try:
        yield cluster
    finally:
        cluster.resume_replay()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> dict:
        return json.loads(self.text)


class Browser:
    """A browser with cookies (the standard library only): a customer or a staff member."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(self.cookies)
        )

    def cookie(self, name: str) -> str:
        return next((cookie.value or "" for cookie in self.cookies if cookie.name == name), "")

    def forget(self, name: str) -> None:
        self.cookies.clear("127.0.0.1", "/", name)

    def request(self, method: str, path: str, *, body: dict | None = None, form: dict | None = None) -> Answer:
        headers = {"X-CSRFToken": self.cookie("csrftoken"), "Referer": self.base + "/"}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form, doseq=True).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif method == "POST":
            data = b""
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with self.opener.open(request, timeout=60) as response:
                return Answer(response.status, dict(response.headers), response.read().decode())
        except HTTPError as error:
            return Answer(error.code, dict(error.headers), error.read().decode())

    def get(self, path: str) -> Answer:
        answer = self.request("GET", path)
        assert answer.status == 200, (path, answer.status, answer.text[:500])
        return answer


def staff_signed_in(base: str) -> Browser:
    staff = Browser(base)
    staff.get("/admin/login/")
    answer = staff.request(
        "POST",
        "/admin/login/?next=/admin/",
        form={"username": STAFF, "password": STAFF_PASSWORD, "csrfmiddlewaretoken": staff.cookie("csrftoken")},
    )
    assert answer.status == 200 and "Log out" in answer.text, answer.text[:500]
    # Signing in wrote (last_login): this browser reads the primary for a few seconds.
    assert float(staff.cookie(replica.STICKY_COOKIE)) > time.time()
    return staff


def customer_chats(base: str, fake: FakeOpenAI, text: str) -> tuple[Browser, str, str]:
    """A customer who started a chat and said something; returns the browser, session id, number."""
    customer = Browser(base)
    customer.get("/")
    started = customer.request("POST", "/api/v1/chat/session/new")
    assert started.status == 201, started.text
    session_id = started.json()["session_id"]
    fake.queue_text("Happy to help. What do you need?")
    answer = customer.request("POST", "/api/v1/chat/message", body={"session_id": session_id, "message": text})
    assert answer.status == 200, answer.text
    return customer, session_id, answer.json()["conversation_number"]


def books_through_the_chat(customer: Browser, session_id: str, fake: FakeOpenAI, phone: str) -> str:
    first_day = date.today() + timedelta(days=2)
    last_day = first_day + timedelta(days=12)
    fake.queue_function_call(
        "get_available_time_slots",
        {
            "service_id": "hvac-repair",
            "date": first_day.isoformat(),
            "end_date": last_day.isoformat(),
            "technician_id": None,
        },
    )
    fake.queue_text("We can come. Shall I book it?")
    first = customer.request(
        "POST", "/api/v1/chat/message", body={"session_id": session_id, "message": "My furnace bangs, next week?"}
    )
    assert first.status == 200, first.text
    slots = last_function_call_output(fake.response_requests[-1])
    assert slots.get("slots"), slots
    fake.queue_function_call(
        "create_booking",
        {
            "service_id": "hvac-repair",
            "start": slots["slots"][0]["start"],
            "technician_id": None,
            "customer_name": "Robin Replica",
            "customer_phone": phone,
            "customer_email": None,
            "address": "12 Queen St W, Toronto",
            "notes": "Banging furnace",
            "customer_confirmed": True,
        },
    )
    fake.queue_text("You're booked!")
    second = customer.request(
        "POST", "/api/v1/chat/message", body={"session_id": session_id, "message": f"Yes. Robin Replica, {phone}."}
    )
    assert second.status == 200, second.text
    number = second.json()["bookings"][0]["booking_number"]
    assert number.startswith("BK-"), second.text
    return number


def test_the_replica_is_a_streaming_hot_standby(cluster: Cluster) -> None:
    # The premise of every test below: a real physical replica, read-only, fed by the primary.
    assert cluster.standby.query("SELECT pg_is_in_recovery()") == [(True,)]
    assert cluster.primary.query("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == [(1,)]
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        cluster.standby.query("CREATE TABLE nope (id int)")


def test_while_the_replica_lags_bookings_are_found_and_staff_pages_read_the_replica(
    app: str, lagging: Cluster, fake: FakeOpenAI
) -> None:
    cluster = lagging
    phone = "416-555-0177"
    customer, session_id, conversation = customer_chats(app, fake, "Hello, my furnace bangs")
    booking = books_through_the_chat(customer, session_id, fake, phone)
    # Written, on the primary only: the standby has not replayed it.
    on_primary, on_standby = cluster.on_both("SELECT count(*) FROM bookings_booking WHERE number = %s", booking)
    assert (on_primary, on_standby) == ([(1,)], [(0,)])

    # The booking just made is found at once by the customer lookup: the booking path reads
    # the primary, whatever the lag.
    fake.queue_function_call("get_booking_info", {"booking_number": booking, "phone": phone})
    fake.queue_text("Found it.")
    lookup = customer.request(
        "POST", "/api/v1/chat/message", body={"session_id": session_id, "message": f"Is {booking} still on?"}
    )
    assert lookup.status == 200, lookup.text
    found = last_function_call_output(fake.response_requests[-1])
    assert found.get("booking", {}).get("booking_number") == booking, found

    staff = staff_signed_in(app)
    # Just signed in (a write): sticky to the primary, the lists show the newest rows.
    assert conversation in staff.get("/admin/chatdesk/conversation/").text
    assert booking in staff.get("/admin/bookings/booking/").text

    # Some seconds later (the cookie's time is up): the heavy reads go to the lagging replica.
    staff.forget(replica.STICKY_COOKIE)
    conversations = staff.get("/admin/chatdesk/conversation/").text
    assert "Conversations" in conversations and conversation not in conversations
    bookings = staff.get("/admin/bookings/booking/").text
    assert booking not in bookings
    seeded = cluster.standby.query("SELECT number FROM bookings_booking ORDER BY id LIMIT 1")[0][0]
    assert seeded in bookings  # the list works, from the replica's rows
    staff.get("/admin/chatdesk/handoffrequest/")
    export = staff.get("/admin/chatdesk/conversation/export.csv")
    assert export.text.startswith("number,") and conversation not in export.text

    # The dashboard and the analytics API count what the replica has, not the primary.
    today = local_today().isoformat()  # a business day, as the analytics count them
    analytics = staff.get(f"/api/v1/chat/analytics?since={today}&until={today}").json()
    counted = "SELECT count(*) FROM chatdesk_interaction WHERE (started_at AT TIME ZONE %s)::date = %s::date"
    primary_count, standby_count = (rows[0][0] for rows in cluster.on_both(counted, settings.TIME_ZONE, today))
    assert analytics["totals"]["conversations"] == standby_count < primary_count
    dashboard = staff.get("/admin/chatdesk/conversation/dashboard/").text
    assert "Dashboard" in dashboard

    # A changelist action is a read-then-write: it stays on the primary and finds the booking
    # the replica does not have yet.
    booking_id = cluster.primary.query("SELECT id FROM bookings_booking WHERE number = %s", booking)[0][0]
    action = staff.request(
        "POST",
        "/admin/bookings/booking/",
        form={
            "action": "confirm",
            "_selected_action": [str(booking_id)],
            "csrfmiddlewaretoken": staff.cookie("csrftoken"),
        },
    )
    assert action.status == 200, action.text[:500]  # the redirect back to the list, followed
    # Read from the replica, the selection would be empty: "Items must be selected ...".
    assert "Items must be selected" not in action.text
    # ... and the write made the browser sticky again: the next list reads the primary.
    assert float(staff.cookie(replica.STICKY_COOKIE)) > time.time()
    assert conversation in staff.get("/admin/chatdesk/conversation/").text


def test_after_the_replica_catches_up_its_pages_show_everything(app: str, cluster: Cluster, fake: FakeOpenAI) -> None:
    cluster.pause_replay()
    try:
        _, _, conversation = customer_chats(app, fake, "Do you fix sinks?")
        staff = staff_signed_in(app)
        staff.forget(replica.STICKY_COOKIE)
        assert conversation not in staff.get("/admin/chatdesk/conversation/").text
    finally:
        cluster.resume_replay()
    assert conversation in staff.get("/admin/chatdesk/conversation/").text


def test_the_commands_read_the_replica(app: str, lagging: Cluster, fake: FakeOpenAI) -> None:
    cluster = lagging
    _, _, conversation = customer_chats(app, fake, "A dripping tap")
    today = local_today().isoformat()

    def export(with_replica: bool) -> str:
        env = _environment(cluster, fake, with_replica=with_replica)
        done = subprocess.run(
            [sys.executable, "manage.py", "export_transcripts", "--since", today, "--until", today, "--out", "-"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    assert conversation in export(with_replica=False)
    assert conversation not in export(with_replica=True)

    # cost_report: its read-only transaction runs on the hot standby; its numbers are the replica's.
    def conversations_costed(with_replica: bool) -> int:
        env = _environment(cluster, fake, with_replica=with_replica)
        done = subprocess.run(
            [sys.executable, "manage.py", "cost_report", "--since", today, "--until", today, "--format", "csv"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        total = [line for line in done.stdout.splitlines() if line.lower().startswith("total")]
        assert total, done.stdout
        return int(total[0].split(",")[1])

    assert conversations_costed(with_replica=True) < conversations_costed(with_replica=False)


# --- without a replica nothing changes; the mark and the router's rules ---------------------


def test_without_a_replica_every_read_uses_the_primary(rf) -> None:
    from chatdesk.conversations.models import Conversation
    from chatdesk.db_router import PrimaryUnlessMarked

    assert "replica" not in settings.DATABASES  # the suite runs without DATABASE_REPLICA_URL
    router = PrimaryUnlessMarked()
    with replica.use_replica(rf.get("/admin/")) as alias:
        assert alias == "default" == router.db_for_read(Conversation)
    assert router.db_for_write(Conversation) == "default"


# Only chatdesk.replica.configured() reads the added alias here: no connection is opened to it.
@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_the_mark_sends_reads_to_the_replica_only_for_get_and_not_after_a_write(rf, settings) -> None:
    from chatdesk.conversations.models import Conversation
    from chatdesk.db_router import PrimaryUnlessMarked

    settings.DATABASES = {**settings.DATABASES, "replica": dict(settings.DATABASES["default"])}
    router = PrimaryUnlessMarked()
    seen: list[tuple[str, str, str]] = []

    @replica.replica_reads
    def view(request):
        seen.append((replica.reads_alias(), router.db_for_read(Conversation), router.db_for_write(Conversation)))

    view(rf.get("/admin/chatdesk/conversation/"))
    view(rf.post("/admin/chatdesk/conversation/"))  # an action: read-then-write
    sticky = rf.get("/admin/chatdesk/conversation/")
    sticky.COOKIES[replica.STICKY_COOKIE] = f"{time.time() + 5}"
    view(sticky)
    expired = rf.get("/admin/chatdesk/conversation/")
    expired.COOKIES[replica.STICKY_COOKIE] = f"{time.time() - 1}"
    view(expired)
    mangled = rf.get("/admin/chatdesk/conversation/")
    mangled.COOKIES[replica.STICKY_COOKIE] = "not-a-time"
    view(mangled)
    assert seen == [
        ("replica", "replica", "default"),
        ("default", "default", "default"),
        ("default", "default", "default"),
        ("replica", "replica", "default"),
        ("replica", "replica", "default"),
    ]
    assert replica.reads_alias() == "default"  # the mark ends with the view
    assert not router.allow_migrate("replica", "chatdesk") and router.allow_migrate("default", "chatdesk")


def _settings_in_a_process(**env: str) -> subprocess.CompletedProcess:
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        "r = settings.DATABASES['replica']; d = settings.DATABASES['default']; "
        "print(json.dumps([r['PORT'], r['OPTIONS'] == d['OPTIONS'], r['CONN_MAX_AGE'], r['TEST']['MIRROR']]))"
    )
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_REPLICA_URL"}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "chatdesk.settings", "DEBUG": "1", **env},
        capture_output=True,
        text=True,
    )


def test_the_replica_alias_takes_the_primarys_options_and_pool() -> None:
    done = _settings_in_a_process(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/chatdesk",
        DATABASE_REPLICA_URL="postgres://postgres@127.0.0.1:5433/chatdesk",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [5433, True, 0, "default"]
    refused = _settings_in_a_process(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/chatdesk", DATABASE_REPLICA_URL="sqlite:///x.sqlite3"
    )
    assert refused.returncode != 0 and "same database engine" in refused.stderr
