"""The database router for DATABASE_REPLICA_URL, and the cookie that keeps a writer on the primary.

Primary by default: a read goes to the replica only when the code around it said it may
(chatdesk.replica.use_replica(), entered by the heavy staff reads). Every write, and every
read nobody marked, goes to "default". Migrations run on the primary only: the replica is a
physical copy and follows by itself.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db.models import Model
from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

from chatdesk import replica


class PrimaryUnlessMarked:
    def db_for_read(self, model: type[Model], **hints: object) -> str:
        # An instance fetched from the replica that is then saved or traversed for a write
        # still writes to the primary (db_for_write); its related reads follow the mark.
        return replica.reads_alias()

    def db_for_write(self, model: type[Model], **hints: object) -> str:
        return replica.PRIMARY

    def allow_relation(self, obj1: Model, obj2: Model, **hints: object) -> bool:
        # The same rows on both: an object read from the replica may point at one from the primary.
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: object) -> bool:
        return db == replica.PRIMARY


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class StickToPrimary(MiddlewareMixin):
    """After a signed-in user's successful write, their browser reads the primary for a few seconds.

    A staff member who saves a booking and lands on the list must see it there even while
    the replica lags: the response to the write carries a cookie with the time until which
    use_replica() picks the primary for them (REPLICA_STICKY_SECONDS). Without a replica the
    middleware does nothing. Customers never read the replica, so only signed-in users get it.

    A MiddlewareMixin listed in chatdesk.handlers.INLINE_MIDDLEWARE: its hook runs on the
    event loop, except when it may load the user (a write, with a replica): then in the thread.
    """

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if not may_stick(request) or response.status_code >= 400:
            return response
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            seconds = settings.REPLICA_STICKY_SECONDS
            response.set_cookie(
                replica.STICKY_COOKIE,
                f"{time.time() + seconds:.3f}",
                max_age=seconds,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Lax",
            )
        return response


def may_stick(request: HttpRequest) -> bool:
    """Only a write, with a replica configured, can set the cookie (and load the user to know)."""
    return request.method not in SAFE_METHODS and replica.configured()
