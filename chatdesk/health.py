"""Liveness and readiness of one worker process: `/healthz` and `/readyz`.

- `/healthz`: the process answers HTTP. No database, no Redis: a liveness probe that failed
  because PostgreSQL is down would get every worker restarted for nothing. It stays 200 while
  the worker drains (the process is alive and finishing its work).
- `/readyz`: this worker may take new work. PostgreSQL reachable, every migration on disk
  applied, Redis reachable (when REDIS_URL is set), and not draining (chatdesk.lifecycle). The
  answer is JSON with one entry per check; 200 when all pass, else 503. Once draining it is 503
  `{"draining": true}` at once, without checking anything: the load balancer must stop sending
  new work whatever the services say.

Each check has its own bounded time (READY_CHECK_TIMEOUT) and runs on a small thread pool of
its own, never on Django's shared sync thread or the default executor the chat turns use, so a
probe during an outage answers within about that time and blocks nobody. PostgreSQL is checked
on a fresh connection with a short connect timeout rather than through the pool: the pool would
make the probe wait DB_POOL_TIMEOUT while the server is down, and a pool busy with turns is load,
not unreadiness. Errors are reported by kind only (no host names or addresses in a public answer).

django-health-check was considered: its checks run through the pooled connection and the cache
(no bounded time, a Redis outage hidden by the fallback cache), and it has no drain state, so
these few checks are written here instead.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.loader import MigrationLoader
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe

from chatdesk import lifecycle

# Seconds one check may take before it counts as failed.
READY_CHECK_TIMEOUT = 3.0
# Two checks per probe; room for a second probe while a first one is stuck on a dead host.
_checks_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")

NO_STORE = {"Cache-Control": "no-store"}


@require_safe
async def healthz(request: HttpRequest) -> JsonResponse:
    """200 while the process serves HTTP (also while draining)."""
    return JsonResponse({"status": "alive", "draining": lifecycle.draining()}, headers=NO_STORE)


@require_safe
async def readyz(request: HttpRequest) -> JsonResponse:
    """200 when this worker may take new work, else 503; per-check status in the body."""
    if lifecycle.draining():
        return JsonResponse(
            {"status": "draining", "draining": True, "checks": {}},
            status=503,
            headers={**NO_STORE, "Retry-After": "5"},
        )
    database, redis = await asyncio.gather(_bounded(_check_database), _bounded(_check_redis))
    migrations = database.pop("migrations", {"ok": False, "error": "database_unavailable"})
    checks = {"database": database, "migrations": migrations, "redis": redis}
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ready" if ready else "not_ready", "draining": False, "checks": checks},
        status=200 if ready else 503,
        headers=NO_STORE if ready else {**NO_STORE, "Retry-After": "5"},
    )


async def _bounded(check: Any) -> dict[str, Any]:
    """Run one blocking check on the readiness pool, timed and bounded."""
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    try:
        result = await asyncio.wait_for(loop.run_in_executor(_checks_pool, check), READY_CHECK_TIMEOUT)
    except TimeoutError:
        result = {"ok": False, "error": "timeout"}
    except Exception as error:  # any failure of a backing service is "not ready", never a 500
        result = {"ok": False, "error": type(error).__name__}
    result.setdefault("ms", round((time.perf_counter() - started) * 1000, 1))
    return result


@cache
def _migrations_on_disk() -> dict[tuple[str, str], tuple[tuple[str, str], ...]]:
    """Every migration the code has, (app, name) -> what it replaces, read once per process.

    Loaded without a connection, so a squashed migration stands for the ones it replaces.
    """
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return {key: tuple(loader.disk_migrations[key].replaces or ()) for key in loader.graph.nodes}


def _pending(applied: set[tuple[str, str]]) -> list[str]:
    """Migrations on disk not recorded as applied (a squash counts when all it replaces are)."""
    pending = []
    for key, replaces in _migrations_on_disk().items():
        if key in applied or (replaces and all(old in applied for old in replaces)):
            continue
        pending.append(f"{key[0]}.{key[1]}")
    return sorted(pending)


def _applied_migrations_postgresql() -> set[tuple[str, str]]:
    import psycopg
    from psycopg import errors

    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    params["connect_timeout"] = max(1, int(READY_CHECK_TIMEOUT) - 1)
    with psycopg.connect(**params, autocommit=True) as connection:
        connection.execute("SELECT set_config('statement_timeout', %s, false)", [str(int(READY_CHECK_TIMEOUT * 1000))])
        try:
            rows = connection.execute("SELECT app, name FROM django_migrations").fetchall()
        except errors.UndefinedTable:
            return set()  # a new, empty database: reachable, nothing applied
    return {(app, name) for app, name in rows}


def _applied_migrations_django() -> set[tuple[str, str]]:
    # SQLite (make run): a local file, no network to time out on; this thread's own connection.
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        with connection.cursor() as cursor:
            if "django_migrations" not in connection.introspection.table_names(cursor):
                return set()
            cursor.execute("SELECT app, name FROM django_migrations")
            return {(app, name) for app, name in cursor.fetchall()}
    finally:
        connection.close()


def _check_database() -> dict[str, Any]:
    started = time.perf_counter()
    if connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
        applied = _applied_migrations_postgresql()
    else:
        applied = _applied_migrations_django()
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    pending = _pending(applied)
    return {"ok": True, "ms": elapsed, "migrations": {"ok": not pending, "pending": pending}}


def _check_redis() -> dict[str, Any]:
    if not settings.REDIS_URL:
        # One process with the in-memory cache and channel layer (make run): nothing to reach.
        return {"ok": True, "backend": "in-memory"}
    import redis

    timeout = READY_CHECK_TIMEOUT - 1
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()
    return {"ok": True}
