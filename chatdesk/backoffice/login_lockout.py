"""The page a locked-out admin login gets (django-axes calls this: settings.AXES_LOCKOUT_CALLABLE).

Axes decides when a login is locked (settings: per username and per client IP, in the
database); this only says so plainly, in the admin's own look, with a 429 and Retry-After.
"""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def lockout_message() -> str:
    minutes = math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    return (
        "Too many failed login attempts for this account or from your network. "
        f"Login is locked for {minutes} minutes: try again later, or ask an administrator to unlock it."
    )


def lockout_response(
    request: HttpRequest, original_response: object = None, credentials: object = None
) -> HttpResponse:
    # Axes passes (request, response, credentials) on the sync path and (request, credentials) on
    # the async one; neither is needed to say the login is locked.
    context = {**admin.site.each_context(request), "title": "Login locked", "message": lockout_message()}
    response = render(request, "admin/login_locked.html", context, status=429)
    response["Retry-After"] = str(math.ceil(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response
