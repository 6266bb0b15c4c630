"""The base of every DRF view of the API, customer and staff doors alike: HTTP plumbing, no rules.

Here, below every door, so the chat API (chatdesk.web) and the staff APIs
(chatdesk.backoffice) share it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.request import Request
from rest_framework.views import APIView


class SchemaFor(APIView):
    """The OpenAPI schema of a plain (async) Django view that DRF does not run.

    Subclasses set `routed` (a staticmethod) and document the view's methods with
    extend_schema on stubs; `as_view()` returns the real view, carrying the class where
    drf-spectacular looks for the schema.
    """

    routed: Callable

    @classmethod
    def as_view(cls, **initkwargs: object) -> Callable:  # type: ignore[override]
        view = cls.routed
        view.cls = cls  # type: ignore[attr-defined]  # drf-spectacular finds the schema here
        view.initkwargs = initkwargs  # type: ignore[attr-defined]
        return view


class MethodFirstAPIView(APIView):
    """An API view that refuses a wrong method (405) and a body too large (413) before the rest.

    DRF authenticates (checking CSRF: a 403) and checks permissions before it looks for the
    method's handler, so PUT or QUERY on a GET-only route was a 403. The schema lists each
    route's methods, so any other is a 405, with the Allow header, for everyone. A body over
    DATA_UPLOAD_MAX_MEMORY_SIZE is a 413 whatever its media type, unread (a form body would
    otherwise be a 415, a JSON one read whole first).
    """

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            raise MethodNotAllowed(request.method)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        length = request.META.get("CONTENT_LENGTH") or "0"
        if limit is not None and length.isdigit() and int(length) > limit:
            raise RequestDataTooBig("The request is too large.")  # chatdesk.api_errors: 413 too_large
        super().initial(request, *args, **kwargs)
