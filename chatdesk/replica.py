"""Which database the heavy reads of this request or command may use: the replica, or not.

With DATABASE_REPLICA_URL set, settings add a second alias, "replica", a streaming copy of
the primary that lags it by some milliseconds (or more, under load or a paused replay).
chatdesk.db_router sends reads there ONLY inside `use_replica()`: the admin changelists, the
dashboard, the staff analytics API, the exports and the cost report enter it. Everything else
(the booking path, every write, every read-then-write, every customer lookup) reads the
primary, so a booking just made is always found, whatever the lag.

A staff member who has just changed something (a POST, in the last REPLICA_STICKY_SECONDS)
reads the primary too: the cookie set by db_router.StickToPrimary says so, and the list they
land on after saving shows their change even if the replica has not replayed it yet.

It imports nothing of the project, so any layer (the back office, the commands) may mark its
heavy reads without breaking the layer contracts; a contextvar carries the mark across the
thread a sync view runs on under ASGI.
"""

from __future__ import annotations

import contextvars
import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.http import HttpRequest
from django.template.response import SimpleTemplateResponse

REPLICA = "replica"
PRIMARY = "default"
# Set on a response to a staff write: until the time it holds (epoch seconds), read the primary.
STICKY_COOKIE = "chatdesk_primary_until"

_reads: contextvars.ContextVar[str] = contextvars.ContextVar("chatdesk_reads", default=PRIMARY)


def configured() -> bool:
    """True when settings define the replica alias (DATABASE_REPLICA_URL was set)."""
    return REPLICA in settings.DATABASES


def reads_alias() -> str:
    """The alias plain reads use here and now: "replica" inside use_replica(), else "default"."""
    return _reads.get()


def sticks_to_primary(request: HttpRequest | None) -> bool:
    """Did this browser write in the last few seconds (its sticky cookie is still in the future)?"""
    if request is None:
        return False
    try:
        until = float(request.COOKIES.get(STICKY_COOKIE, "0"))
    except ValueError:
        return False  # a mangled cookie only costs the stickiness, never a 500
    return until > time.time()


@contextmanager
def use_replica(request: HttpRequest | None = None) -> Iterator[str]:
    """Send the plain reads inside to the replica, if there is one; yields the alias chosen.

    Only for reads that may be a little stale: lists, totals, exports, reports. Writes inside
    still go to the primary (the router), but a read-then-write must not be inside at all.
    """
    alias = REPLICA if configured() and not sticks_to_primary(request) else PRIMARY
    token = _reads.set(alias)
    try:
        yield alias
    finally:
        _reads.reset(token)


def replica_reads[**P, R](view: Callable[P, R]) -> Callable[P, R]:
    """A view (function or method) whose GET/HEAD reads go to the replica; other methods don't.

    A POST to a changelist runs admin actions and list edits (read-then-write): primary.
    """

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        request = _request_among(args)
        if request is None or request.method not in ("GET", "HEAD"):
            return view(*args, **kwargs)
        with use_replica(request):
            response = view(*args, **kwargs)
            # A TemplateResponse reads its rows while it renders (the changelist's page of
            # results is a lazy queryset): render it here, inside, not later in the handler.
            # (Only one with a template: DRF's Response renders once DRF has negotiated.)
            if isinstance(response, SimpleTemplateResponse) and response.template_name and not response.is_rendered:
                response.render()
            return response

    return wrapper


def _request_among(args: tuple) -> HttpRequest | None:
    for arg in args:
        if isinstance(arg, HttpRequest):
            return arg
        wrapped = getattr(arg, "_request", None)  # a DRF Request wraps Django's
        if isinstance(wrapped, HttpRequest):
            return wrapped
    return None
