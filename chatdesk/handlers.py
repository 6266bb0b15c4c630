"""The ASGI handler: Django's own, with the standard middleware's hooks run on the event loop.

Under ASGI, Django runs every hook of a `MiddlewareMixin` middleware through
`sync_to_async(thread_sensitive=True)`: about 16 trips per request to one shared thread
that every request in the process queues for. Measured with bench/chat_turns.py, those
trips were the largest single cost of a chat turn after the model call.

The middleware listed in INLINE_MIDDLEWARE do no I/O in their hooks (they read headers
and cookies, set headers and make lazy objects), so their hooks run inline on the event
loop. The two that can touch the database still go to the thread, but only when they
would: SessionMiddleware when it is about to save a modified session, MessageMiddleware
when flash messages were read or added. Any other middleware is adapted exactly as Django
does it. settings.MIDDLEWARE is unchanged, so Django's system and deploy checks see the
same middleware by the same names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponseBase
from django.utils.module_loading import import_string


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
    "django.contrib.sessions.middleware.SessionMiddleware": _session_will_save,
    "django.middleware.common.CommonMiddleware": _never,
    "django.middleware.csrf.CsrfViewMiddleware": _never,
    "django.contrib.auth.middleware.AuthenticationMiddleware": _never,
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
    """Runs a MiddlewareMixin instance's request/response hooks on the event loop."""

    def __init__(
        self,
        middleware: object,
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]],
        response_needs_thread: Callable[[HttpRequest], bool],
    ) -> None:
        self.middleware = middleware
        self.get_response = get_response
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


def _inline_view_hook(process_view: Callable) -> Callable:
    async def hook(request: HttpRequest, view_func: Callable, view_args: tuple, view_kwargs: dict):
        return process_view(request, view_func, view_args, view_kwargs)

    return hook


class ChatdeskASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        """Django's BaseHandler.load_middleware, with INLINE_MIDDLEWARE's hooks not sent to a thread."""
        if not is_async:
            return super().load_middleware(is_async)
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        inline = inline_middleware()
        self.inlined: list[str] = []  # the middleware whose hooks run on the event loop, outermost first

        handler = convert_exception_to_response(self._get_response_async)
        handler_is_async = True
        for middleware_path in reversed(settings.MIDDLEWARE):
            middleware = import_string(middleware_path)
            runs_inline = middleware_path in inline and handler_is_async
            can_sync = getattr(middleware, "sync_capable", True)
            can_async = getattr(middleware, "async_capable", False)
            if not can_sync and not can_async:
                raise RuntimeError(
                    f"Middleware {middleware_path} must have at least one of sync_capable/async_capable set to True."
                )
            middleware_is_async = can_async if handler_is_async or not can_sync else False
            try:
                adapted_handler = handler if runs_inline else self.adapt_method_mode(
                    middleware_is_async, handler, handler_is_async
                )  # fmt: skip
                instance = middleware(adapted_handler)
            except MiddlewareNotUsed:
                continue
            handler = adapted_handler
            if instance is None:
                raise ImproperlyConfigured(f"Middleware factory {middleware_path} returned None.")

            if hasattr(instance, "process_view"):
                hook = (
                    _inline_view_hook(instance.process_view)
                    if runs_inline
                    else self.adapt_method_mode(True, instance.process_view)
                )
                self._view_middleware.insert(0, hook)
            if hasattr(instance, "process_template_response"):
                self._template_response_middleware.append(
                    self.adapt_method_mode(True, instance.process_template_response)
                )
            if hasattr(instance, "process_exception"):
                # Django's exception-handling stack is always synchronous.
                self._exception_middleware.append(self.adapt_method_mode(False, instance.process_exception))

            if runs_inline:
                handler = convert_exception_to_response(InlineHooks(instance, handler, inline[middleware_path]))
                self.inlined.insert(0, middleware_path)
                handler_is_async = True
            else:
                handler = convert_exception_to_response(instance)
                handler_is_async = middleware_is_async

        self._middleware_chain = self.adapt_method_mode(True, handler, handler_is_async)


def get_asgi_application() -> ChatdeskASGIHandler:
    """Like django.core.asgi.get_asgi_application, with our handler."""
    import django

    django.setup(set_prefix=False)
    return ChatdeskASGIHandler()
