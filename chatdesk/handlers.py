"""The ASGI handler: Django's own, with the standard middleware's hooks run on the event loop.

Under ASGI, Django runs every hook of a `MiddlewareMixin` middleware through
`sync_to_async(thread_sensitive=True)`: about 16 trips per request to one shared thread
that every request in the process queues for. Measured with bench/chat_floor.py, an empty
view costs 2.5-3 times the CPU that way (BENCHMARKS.md, "Chat turns").

Django builds the middleware chain itself: `BaseHandler.load_middleware` runs unchanged,
with its checks, its adaptation of sync-only middleware, its debug log and its handling of
MiddlewareNotUsed. Only then, walking the chain Django built from the outside in, each
middleware listed in INLINE_MIDDLEWARE that Django set up in async mode gets its
process_request/process_response called on the event loop instead of in the thread. Their
process_view (CSRF's) is called on the loop wherever the middleware sits, through
adapt_method_mode. Those hooks do no I/O (they read headers and cookies, set headers and make
lazy objects). The three that can touch the database still go to the thread, but only when
they would: SessionMiddleware when it is about to save a modified session, MessageMiddleware
when flash messages were read or added, StickToPrimary on a write with a read replica. Any
other middleware, and everything inside one the walk cannot see through (a sync-only or
function middleware), stays exactly as Django built it. settings.MIDDLEWARE is unchanged, so
Django's system and deploy checks see the same middleware by the same names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string

from chatdesk.db_router import may_stick


def _never(request: HttpRequest) -> bool:
    return False


def _session_will_save(request: HttpRequest) -> bool:
    # SessionMiddleware.process_response writes to the session store only in this case.
    session = getattr(request, "session", None)
    return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


def _messages_will_store(request: HttpRequest) -> bool:
    # MessageMiddleware.process_response loads/stores messages (maybe in the session) only then.
    storage = getattr(request, "_messages", None)
    return storage is not None and (storage.used or storage.added_new)


# Middleware whose hooks may run inline -> when its process_response must still run in
# Django's sync thread (because it would do I/O for this request).
INLINE_MIDDLEWARE: dict[str, Callable[[HttpRequest], bool]] = {
    "django.middleware.security.SecurityMiddleware": _never,
    "django.middleware.csp.ContentSecurityPolicyMiddleware": _never,
    "chatdesk.api_errors.ApiErrors": _never,
    "django.contrib.sessions.middleware.SessionMiddleware": _session_will_save,
    "django.middleware.common.CommonMiddleware": _never,
    "django.middleware.csrf.CsrfViewMiddleware": _never,
    "django.contrib.auth.middleware.AuthenticationMiddleware": _never,
    # Loads the user (session, user row) only for a write with a read replica configured.
    "chatdesk.db_router.StickToPrimary": may_stick,
    "django.contrib.messages.middleware.MessageMiddleware": _messages_will_store,
    "django.middleware.clickjacking.XFrameOptionsMiddleware": _never,
}


def inline_middleware() -> dict[str, Callable[[HttpRequest], bool]]:
    """The inline policy for this configuration (CSRF in the session would read the session store)."""
    policy = dict(INLINE_MIDDLEWARE)
    if settings.CSRF_USE_SESSIONS:
        policy.pop("django.middleware.csrf.CsrfViewMiddleware")
    return policy


class InlineHooks:
    """Runs an async-mode MiddlewareMixin instance's request/response hooks on the event loop.

    The same steps as `MiddlewareMixin.__acall__`, without `sync_to_async` around the hooks.
    """

    def __init__(self, middleware: MiddlewareMixin, response_needs_thread: Callable[[HttpRequest], bool]) -> None:
        self.middleware = middleware
        self.get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = middleware.get_response
        self.process_request = getattr(middleware, "process_request", None)
        self.process_response = getattr(middleware, "process_response", None)
        self.response_needs_thread = response_needs_thread
        markcoroutinefunction(self)

    def __repr__(self) -> str:
        return f"<InlineHooks {self.middleware.__class__.__qualname__}>"

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.process_request(request) if self.process_request else None
        response = response or await self.get_response(request)
        if self.process_response:
            if self.response_needs_thread(request):
                return await sync_to_async(self.process_response, thread_sensitive=True)(request, response)
            response = self.process_response(request, response)
        return response


def _on_the_loop(process_view: Callable) -> Callable:
    async def hook(request: HttpRequest, view_func: Callable, view_args: tuple, view_kwargs: dict) -> Any:
        return process_view(request, view_func, view_args, view_kwargs)

    return hook


class ChatdeskASGIHandler(ASGIHandler):
    """Django's ASGIHandler; INLINE_MIDDLEWARE's hooks run on the event loop."""

    inlined: list[str]  # the middleware whose hooks run on the event loop, outermost first
    _inline: dict[type, tuple[str, Callable[[HttpRequest], bool]]] = {}  # class -> (path, needs thread)

    def load_middleware(self, is_async: bool = False) -> None:
        """Django's load_middleware, then the inline middleware's hooks taken off the thread."""
        self._inline = {import_string(path): (path, needs) for path, needs in inline_middleware().items()}
        self.inlined = []
        super().load_middleware(is_async)
        if is_async:
            self._middleware_chain = self._run_hooks_inline(self._middleware_chain)

    def adapt_method_mode(
        self,
        is_async: bool,
        method: Callable,
        method_is_async: bool | None = None,
        debug: bool = False,
        name: str | None = None,
    ) -> Callable:
        """Django's, except that an inline middleware's process_view is called on the event loop."""
        owner = getattr(method, "__self__", None)
        if is_async and getattr(method, "__name__", None) == "process_view" and type(owner) in self._inline:
            return _on_the_loop(method)
        return super().adapt_method_mode(is_async, method, method_is_async, debug=debug, name=name)

    def _run_hooks_inline(self, handler: Callable) -> Callable:
        """`handler` and what it calls, with each inline middleware's hooks run on the loop.

        Django wraps each middleware instance in `convert_exception_to_response`, whose
        `functools.wraps` leaves the instance in `__wrapped__`; the instance's `get_response`
        is the next handler inwards. The walk stops at the first handler that is not an
        inline middleware in async mode (the view, or a middleware Django adapted).
        """
        middleware = getattr(handler, "__wrapped__", None)
        policy = self._inline.get(type(middleware))
        if policy is None or not middleware.async_mode:
            return handler
        path, response_needs_thread = policy
        middleware.get_response = self._run_hooks_inline(middleware.get_response)
        self.inlined.insert(0, path)
        return convert_exception_to_response(InlineHooks(middleware, response_needs_thread))


def get_asgi_application() -> ChatdeskASGIHandler:
    """Like django.core.asgi.get_asgi_application, with our handler."""
    import django

    django.setup(set_prefix=False)
    return ChatdeskASGIHandler()
