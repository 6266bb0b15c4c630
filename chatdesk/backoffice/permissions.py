"""The staff doors' permission checks, built from the one policy (chatdesk.conversations.access).

DRF views declare the model permissions each HTTP method needs in `required_permissions`
(one, or a tuple that must all be held);
`StaffPolicy` refuses anyone else with a JSON 403 (`not_authenticated` when not logged in,
`permission_denied` otherwise: chatdesk.api_errors). The live page, a plain Django view,
uses `staff_page`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from chatdesk.conversations import access

# HEAD and OPTIONS read what GET reads.
READ_METHODS = ("GET", "HEAD", "OPTIONS")


def required_permissions(view: APIView, method: str) -> tuple[str, ...] | None:
    """The permissions `method` needs at `view`; None for a method the view declares nothing for."""
    needed: dict[str, str | tuple[str, ...]] = getattr(view, "required_permissions", {})
    permissions = needed.get("GET" if method in READ_METHODS else method)
    if permissions is None:
        return None
    return (permissions,) if isinstance(permissions, str) else permissions


class StaffPolicy(BasePermission):
    """Active staff holding the permission the view names for the request's method."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not access.is_staff(request.user):
            return False
        method = request.method or "GET"
        permissions = required_permissions(view, method)
        if permissions is None:
            # A method the view does not serve: staff get its 405. One it serves without
            # declaring a permission is refused: forgetting fails closed.
            return not hasattr(view, method.lower())
        return all(access.may(request.user, permission) for permission in permissions)


def staff_page(permission: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """A staff page: the admin's login for anyone not staff, 403 for staff without `permission`."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not access.may(request.user, permission):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return staff_member_required(checked)

    return decorate
