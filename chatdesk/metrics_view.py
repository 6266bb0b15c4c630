"""GET /metrics: the Prometheus endpoint, for the operator only.

Who may read it: whoever sends `Authorization: Bearer <METRICS_TOKEN>`. Without the setting,
or with a missing or wrong token, the answer is the site's ordinary 404, as for any path that
does not exist: nobody learns that there is something to guess. The token is compared in
constant time.

What it reports: the counters and histograms of chatdesk.observability.metrics, added up over
every worker process of this host when PROMETHEUS_MULTIPROC_DIR is set (one scrape of any
worker covers them all), and facts read from the database at scrape time (open conversations,
handoffs waiting; chatdesk.conversations.selectors.workload), plus the OpenAI budget left when
chatdesk.assistant.openai_budget offers `budget_snapshot()`.
"""

from __future__ import annotations

import glob
import hmac
import importlib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from numbers import Real

from django.conf import settings
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from chatdesk.conversations.selectors import workload
from chatdesk.conversations.services import db
from chatdesk.observability.metrics import MULTIPROCESS_DIR

logger = logging.getLogger(__name__)

LIVE_GAUGE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db")


def authorized(request: HttpRequest) -> bool:
    """Whether the request carries the operator's token (False when none is configured)."""
    expected = settings.METRICS_TOKEN
    if not expected:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode())


async def metrics(request: HttpRequest) -> HttpResponse:
    if not authorized(request) or request.method != "GET":
        raise Http404
    body = await db(render)
    # The classic text format: every Prometheus reads it (our names need none of 1.0.0's escaping).
    return HttpResponse(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)


def render() -> bytes:
    """The exposition text: this host's processes (or this process alone), then the database's facts."""
    registry = CollectorRegistry()
    if MULTIPROCESS_DIR:
        sweep_dead_workers(MULTIPROCESS_DIR)
        multiprocess.MultiProcessCollector(registry, MULTIPROCESS_DIR)
    else:
        registry.register(ThisProcess())
    registry.register(DatabaseFacts())
    return generate_latest(registry)


def sweep_dead_workers(path: str) -> list[int]:
    """Forget the live gauges of worker processes that are gone: the pids that were killed
    (SIGKILL, OOM) and so could not remove their own at exit. Their counters stay: totals
    never go down. Returns the pids forgotten."""
    gone = set()
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        found = LIVE_GAUGE_FILE.fullmatch(os.path.basename(name))
        if found and not _alive(int(found.group(1))):
            gone.add(int(found.group(1)))
    for pid in gone:
        multiprocess.mark_process_dead(pid, path)
    return sorted(gone)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process holds that pid now
    return True


class ThisProcess:
    """The default registry's metrics (ours, plus process and GC), for a single process."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


class DatabaseFacts:
    """Gauges read from the database (and the OpenAI budget) at scrape time."""

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: the names are ours alone

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "chatdesk_database_facts_up", "1 when the gauges read from the database below could be read."
        )
        try:
            now = workload()
        except DatabaseError as error:
            logger.warning("Metrics: the database could not be read: %s", error)
            up.add_metric([], 0)
            yield up
        else:
            up.add_metric([], 1)
            yield up
            open_conversations = GaugeMetricFamily(
                "chatdesk_conversations_open", "Open conversations, by the channel they started on.", labels=["channel"]
            )
            for channel, count in now.open_by_channel.items():
                open_conversations.add_metric([channel], count)
            yield open_conversations
            yield GaugeMetricFamily(
                "chatdesk_handoffs_waiting", "Requests for a person not yet handled.", value=now.handoffs_waiting
            )
            yield GaugeMetricFamily(
                "chatdesk_handoff_oldest_wait_seconds",
                "How long the oldest unhandled request for a person has waited (0 when none waits).",
                value=now.oldest_handoff_waiting_seconds,
            )
        yield from budget_gauges()


def budget_gauges() -> Iterator[Metric]:
    """The fleet's OpenAI budget, from chatdesk.assistant.openai_budget.budget_snapshot().

    Its shape: {"paused_seconds", "shared", "models": {model: {"requests"|"tokens": {"limit",
    "remaining", "reset_seconds", "source"}}}}. A kind whose remaining is unknown (no headers
    seen yet and no configured limit) is left out rather than reported as 0. Nothing is
    reported while that module is not installed.
    """
    try:
        module = importlib.import_module("chatdesk.assistant.openai_budget")
    except ImportError:
        return
    snapshot = getattr(module, "budget_snapshot", None)
    if snapshot is None:
        return
    try:
        budget = snapshot()
    except Exception as error:  # an unreachable Redis must not cost the whole scrape
        logger.warning("Metrics: the OpenAI budget could not be read: %s", error)
        return
    if not isinstance(budget, Mapping):
        return
    yield GaugeMetricFamily(
        "chatdesk_openai_budget_paused_seconds",
        "Seconds the whole fleet still waits after OpenAI's last 429 (0 when not paused).",
        value=_number(budget.get("paused_seconds")) or 0.0,
    )
    yield GaugeMetricFamily(
        "chatdesk_openai_budget_shared",
        "1 while the budget is shared through Redis; 0 while Redis is down and each worker counts alone.",
        value=1.0 if budget.get("shared") else 0.0,
    )
    families = {
        field: GaugeMetricFamily(f"chatdesk_openai_budget_{name}", help_text, labels=["model", "kind"])
        for field, name, help_text in (
            ("remaining", "remaining", "Requests or tokens left in the account's current window, by model."),
            ("limit", "limit", "The account's requests or tokens per minute, by model."),
            ("reset_seconds", "reset_seconds", "Seconds until the current window resets, by model."),
        )
    }
    models = budget.get("models")
    for model, kinds in models.items() if isinstance(models, Mapping) else ():
        for kind, window in kinds.items() if isinstance(kinds, Mapping) else ():
            if not isinstance(window, Mapping) or _number(window.get("remaining")) is None:
                continue
            for field, family in families.items():
                value = _number(window.get(field))
                if value is not None:
                    family.add_metric([str(model), str(kind)], value)
    yield from families.values()


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, Real) and not isinstance(value, bool) else None
