"""The customer's chat page: server-rendered, usable without JavaScript.

Without JavaScript the form posts here and we redirect back (post/redirect/get); the
conversation is identified by a signed, HttpOnly cookie. With JavaScript, static/chat.js
talks to the JSON API instead, with the same cookie and CSRF token.

The website widget frames the same page in its compact layout (`/widget/`, with its own
send and restart routes so the no-JavaScript path returns to it); chatdesk.web.widget says
what differs for framed pages.
"""

from __future__ import annotations

import uuid

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from bookings import identifiers
from bookings.errors import DomainError, retry_after_header
from chatdesk.assistant import openai_client, turns
from chatdesk.assistant.prompts import hours_text
from chatdesk.assistant.rate_limits import new_conversation_wait, too_many_conversations
from chatdesk.conversations import services
from chatdesk.conversations.client_ip import client_ip
from chatdesk.conversations.limits import MessageTooLong, message_length_check
from chatdesk.conversations.models import Conversation
from chatdesk.conversations.selectors import open_conversation_for
from chatdesk.conversations.session_cookie import delete_session_cookie, session_id_from_request, set_session_cookie
from chatdesk.web.widget import page_from, widget_frame

# Where the no-JavaScript form returns to: the newest message (templates/chat.html). Not
# #composer: the composer is sticky, and a browser scrolling to it while it is stuck at the
# bottom of the viewport hardly scrolls at all, leaving the new reply below it.
NEWEST = "/#latest"
# A second submit of the same form (a double click, a resend after an error page) waits this
# long at most for the first one's turn, then shows the transcript as it is.
SAME_MESSAGE_WAIT_SECONDS = 30


def _page_context(session_id: str, widget_page: str | None = None) -> dict:
    """What chat.html shows; `widget_page` (the host page, or "") renders the widget's compact layout."""
    conversation = open_conversation_for(session_id).first()
    mode = (
        conversation.mode
        if conversation
        else (Conversation.Mode.MODEL if openai_client.is_configured() else Conversation.Mode.GUIDED)
    )
    return {
        "business_name": settings.BUSINESS_NAME,
        "business_phone": settings.BUSINESS_PHONE,
        "hours": hours_text(),
        "conversation": conversation,
        # Each message carries the cards of its turn's bookings, in their current state.
        "messages": services.history(conversation) if conversation else [],
        "greeting": turns.greeting(mode),
        "mode": mode,
        "max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
        "voice_enabled": openai_client.is_configured(),
        # The form's id for the next message: sending the same form twice stores it once.
        "message_id": uuid.uuid4().hex,
        "widget": widget_page is not None,
        "widget_page": widget_page or "",
        # A call placed from the widget starts its conversation as a widget one (voice.records).
        "call_query": "?" + urlencode({"widget_page": widget_page}) if widget_page is not None else "",
    }


def _widget_url(widget_page: str, anchor: str = "") -> str:
    return reverse("widget") + ("?" + urlencode({"page": widget_page}) if widget_page else "") + anchor


@require_GET
@ensure_csrf_cookie
def chat_page(request: HttpRequest) -> HttpResponse:
    return render(request, "chat.html", _page_context(session_id_from_request(request)))


@require_GET
@widget_frame
def widget_chat_page(request: HttpRequest) -> HttpResponse:
    """The chat page in the widget's compact layout; `?page=` is the business's page it is shown on."""
    widget_page = page_from(request.GET.get("page", ""), request)
    return render(request, "chat.html", _page_context(session_id_from_request(request), widget_page))


async def _page_with_error(
    request: HttpRequest, session_id: str, draft: str, error: str, wait: int, widget_page: str | None
) -> HttpResponse:
    """A 429 that keeps what the customer typed in the box (the no-JavaScript path)."""
    context = await sync_to_async(_page_context)(session_id, widget_page)
    context.update(error=error, draft=draft)
    response = render(request, "chat.html", context, status=429)
    response["Retry-After"] = retry_after_header(wait)
    return response


@require_POST
async def chat_page_send(request: HttpRequest, widget: bool = False) -> HttpResponse:
    """No-JavaScript path: run the turn, then redirect back to the transcript."""
    # In the widget: the host page the form came from (checked; "" when unusable).
    widget_page = page_from(request.POST.get("widget_page", ""), request) if widget else None
    newest = _widget_url(widget_page or "", "#latest") if widget else NEWEST
    text = (request.POST.get("message") or "").strip()
    if not text:
        return redirect(newest)
    if "\x00" in text:
        # PostgreSQL text cannot hold NUL; the JSON API refuses it too (DRF's CharField).
        context = await sync_to_async(_page_context)(session_id_from_request(request), widget_page)
        context.update(error="Your message contains a character we cannot store. Please retype it.", draft="")
        return render(request, "chat.html", context, status=400)
    try:
        message_length_check(text)
    except MessageTooLong as error:
        context = await sync_to_async(_page_context)(session_id_from_request(request), widget_page)
        context.update(error=error.message, draft=text)
        return render(request, "chat.html", context, status=error.http_status)
    session_id = session_id_from_request(request)
    open_session = await open_conversation_for(session_id).aexists()
    response = redirect(newest)
    if not open_session:
        wait = await sync_to_async(new_conversation_wait)(ip=client_ip(request))
        if wait:
            return await _page_with_error(request, "", text, too_many_conversations(wait), wait, widget_page)
        conversation = await services.db(
            turns.conversation_start,
            ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", ""),
            widget_page=widget_page,
        )
        session_id = conversation.session_id
        set_session_cookie(response, session_id, embedded=widget)
    message_id = request.POST.get("message_id") or ""
    try:
        await _send(session_id, text, client_ip(request), message_id if identifiers.is_identifier(message_id) else None)
    except turns.TurnInProgress as error:
        # The same form sent twice: the first submit's turn is running; show its answer.
        await error.finished(SAME_MESSAGE_WAIT_SECONDS)
        return response
    except turns.RateLimited as error:
        wait = error.retry_after
        return await _page_with_error(request, session_id, text, error.message, wait, widget_page)
    except DomainError as error:
        context = await sync_to_async(_page_context)(session_id, widget_page)
        context.update(error=error.message, draft=text)
        return render(request, "chat.html", context, status=error.http_status)
    return response


async def _send(session_id: str, text: str, ip: str, message_id: str | None) -> None:
    try:
        await turns.chat_turn(session_id=session_id, text=text, client_ip=ip, message_id=message_id)
    except turns.MessageIdReused:
        # The form went back in history and was edited before sending: a new message.
        await turns.chat_turn(session_id=session_id, text=text, client_ip=ip)


@widget_frame
async def widget_send(request: HttpRequest) -> HttpResponse:
    return await chat_page_send(request, widget=True)


@require_POST
def chat_page_restart(request: HttpRequest, widget: bool = False) -> HttpResponse:
    session_id = session_id_from_request(request)
    if session_id:
        try:
            services.conversation_close(session_id=session_id)
        except DomainError:
            pass  # already closed or unknown: starting over is what they want anyway
    if widget:
        response = redirect(_widget_url(page_from(request.POST.get("widget_page", ""), request)))
    else:
        response = redirect("/")
    delete_session_cookie(response, embedded=widget)
    return response


@widget_frame
def widget_restart(request: HttpRequest) -> HttpResponse:
    return chat_page_restart(request, widget=True)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF failures as JSON for the API, a short page elsewhere (never Django's debug page)."""
    message = "Your session expired or the request did not come from our page. Reload the page and try again."
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "csrf_failed", "message": message}, status=403)
    return HttpResponse(message, status=403, content_type="text/plain")
