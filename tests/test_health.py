"""/healthz and /readyz (chatdesk/health.py) against the real services: the test database on
PostgreSQL, a real Redis (private, stopped and started here), a closed port for "unreachable",
and SQLite in a process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

from chatdesk import lifecycle
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def not_draining():
    lifecycle.stop_draining()
    yield
    lifecycle.stop_draining()


def get(path: str, **extra) -> tuple[int, dict, object]:
    answer = Client().get(path, **extra)
    return answer.status_code, json.loads(answer.content), answer


@pytest.mark.django_db
def test_healthz_is_alive_without_touching_the_database(django_assert_num_queries):
    with django_assert_num_queries(0):
        status, body, answer = get("/healthz")
    assert (status, body) == (200, {"status": "alive", "draining": False})
    assert answer["Cache-Control"] == "no-store"
    lifecycle.start_draining()
    assert get("/healthz")[:2] == (200, {"status": "alive", "draining": True})  # alive while draining


@pytest.mark.django_db(transaction=True)
def test_readyz_checks_postgresql_migrations_and_redis(settings, private_redis):
    settings.REDIS_URL = private_redis.url
    status, body, _ = get("/readyz")
    assert status == 200, body
    assert body["status"] == "ready" and body["draining"] is False
    checks = body["checks"]
    assert checks["database"]["ok"] is True and checks["database"]["ms"] >= 0
    assert checks["migrations"] == {"ok": True, "pending": []}
    assert checks["redis"]["ok"] is True

    private_redis.stop()
    status, body, answer = get("/readyz")
    assert status == 503 and body["status"] == "not_ready"
    assert body["checks"]["redis"]["ok"] is False and body["checks"]["redis"]["error"] == "ConnectionError"
    assert body["checks"]["database"]["ok"] is True  # only the failing check says so
    assert answer["Retry-After"] == "5"

    private_redis.start()  # back on the same port: ready again, no restart of anything
    assert get("/readyz")[0] == 200


@pytest.mark.django_db(transaction=True)
def test_readyz_without_redis_configured_reports_the_in_memory_backend(settings):
    settings.REDIS_URL = ""
    status, body, _ = get("/readyz")
    assert status == 200 and body["checks"]["redis"]["ok"] is True
    assert body["checks"]["redis"]["backend"] == "in-memory"


@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_when_postgresql_cannot_be_reached(monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "PORT", str(free_port()))  # nothing listens there
    status, body, _ = get("/readyz")
    assert status == 503
    assert body["checks"]["database"] == {
        "ok": False,
        "error": "OperationalError",
        "ms": body["checks"]["database"]["ms"],
    }
    assert body["checks"]["migrations"]["ok"] is False
    # Said by kind only: no host or port in a public answer.
    assert "127.0.0.1" not in json.dumps(body)


@pytest.mark.django_db(transaction=True)
def test_readyz_lists_a_migration_not_applied():
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, app, name, applied FROM django_migrations WHERE app = 'chatdesk' ORDER BY id DESC")
        row = cursor.fetchone()
        cursor.execute("DELETE FROM django_migrations WHERE id = %s", [row[0]])
    try:
        status, body, _ = get("/readyz")
        assert status == 503
        assert body["checks"]["migrations"]["ok"] is False
        assert body["checks"]["migrations"]["pending"] == [f"chatdesk.{row[2]}"]
        assert body["checks"]["database"]["ok"] is True
    finally:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO django_migrations (id, app, name, applied) VALUES (%s, %s, %s, %s)", row)
    assert get("/readyz")[0] == 200


@pytest.mark.django_db
def test_readyz_is_503_at_once_while_draining(django_assert_num_queries):
    lifecycle.start_draining()
    with django_assert_num_queries(0):
        status, body, _ = get("/readyz")
    assert (status, body) == (503, {"status": "draining", "draining": True, "checks": {}})


@pytest.mark.django_db
def test_probes_take_get_and_head_only_and_skip_the_https_redirect(settings):
    settings.SECURE_SSL_REDIRECT = True  # production: a plain-HTTP probe straight to a worker
    client = Client()
    assert client.get("/healthz").status_code == 200
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405
    assert client.get("/").status_code == 301  # everything else still goes to HTTPS


def test_readyz_on_sqlite_before_and_after_migrate(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "DEBUG": "1",
    }
    env.pop("REDIS_URL", None)
    script = textwrap.dedent(
        """
        import json
        from django.test import Client
        answer = Client().get("/readyz")
        print(json.dumps({"status": answer.status_code, "body": json.loads(answer.content)}))
        """
    )

    def probe() -> dict:
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    before = probe()
    assert before["status"] == 503 and before["body"]["checks"]["database"]["ok"] is True
    assert "chatdesk.0001_initial" in before["body"]["checks"]["migrations"]["pending"]
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    after = probe()
    assert after["status"] == 200, after
    assert after["body"]["checks"]["migrations"] == {"ok": True, "pending": []}
