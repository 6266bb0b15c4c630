"""Each rule is defined once, and every door that applies it agrees (issue 10, item 4).

For each rule: the doors that used to carry their own copy are driven side by side, and
must give the same answer for the same input.
"""

from __future__ import annotations

import json
import threading

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client, RequestFactory
from rest_framework.exceptions import Throttled

from bookings import limits
from bookings.errors import InvalidInput, json_error
from bookings.models import BookingEvent, YearlyCounter
from bookings.phones import looks_like_phone, normalize_phone, phone_display, phone_from_search
from bookings.serializers import BookingCreateIn
from bookings.services import customer_upsert
from chatdesk.api_errors import exception_handler
from chatdesk.assistant import guided, openai_client
from chatdesk.assistant.tools import TOOLS
from chatdesk.backoffice.booking_admin import BookingEventInline
from chatdesk.backoffice.booking_forms import BookingAddForm
from chatdesk.backoffice.handoffs import handoff_mark_handled
from chatdesk.backoffice.pii import MASK, mask_text
from chatdesk.conversations.models import Conversation, HandoffRequest, Message
from chatdesk.conversations.retention import REDACTED, scrub_text
from chatdesk.conversations.selectors import open_conversation_for
from tests.staff import grant

# --- Message length: the chat API, the no-JavaScript page and staff replies -------------------

LIMIT = 40


def _chat_api(client: Client, session_id: str, text: str):
    return client.post(
        "/api/v1/chat/message", json.dumps({"session_id": session_id, "message": text}), content_type="application/json"
    )


def _staff_reply(staff: Client, number: str, text: str):
    return staff.post(f"/api/v1/staff/conversations/{number}/messages", {"text": text}, content_type="application/json")


def test_every_door_refuses_the_same_over_long_message_the_same_way(business, settings):
    settings.CHAT_MAX_MESSAGE_CHARS = LIMIT
    sentence = f"Please keep messages under {LIMIT} characters."
    customer = Client()
    session_id = customer.post("/api/v1/chat/session/new").json()["session_id"]
    conversation = Conversation.objects.get(session_id=session_id)
    staff = Client()
    dispatch = get_user_model().objects.create_user("dispatch", password="pw-123456!", is_staff=True)
    staff.force_login(grant(dispatch, "chatdesk.view_conversation", "chatdesk.take_over_conversation"))
    assert staff.post(f"/api/v1/staff/conversations/{conversation.number}/takeover").status_code == 200
    stored = Message.objects.count()
    too_long = "x" * (LIMIT + 1)

    api = _chat_api(customer, session_id, too_long)
    page = customer.post("/send", {"message": too_long})
    reply = _staff_reply(staff, conversation.number, too_long)

    assert (api.status_code, page.status_code, reply.status_code) == (413, 413, 413)
    assert api.json() == {"error": "message_too_long", "message": sentence}
    assert reply.json() == {"error": "message_too_long", "message": sentence}
    assert sentence in page.content.decode()
    assert Message.objects.count() == stored  # none of them stored anything

    # One character less is fine everywhere (the staff reply, as staff have taken over), and
    # the staff reply box stops at the same length.
    assert _staff_reply(staff, conversation.number, "x" * LIMIT).status_code == 201
    assert f'maxlength="{LIMIT}"' in staff.get("/staff/live/").content.decode()


@pytest.mark.django_db(transaction=True)  # the chat API is async: its turn reads committed rows
def test_the_api_and_the_page_accept_a_message_exactly_at_the_limit(business, settings):
    settings.CHAT_MAX_MESSAGE_CHARS = LIMIT
    customer = Client()
    session_id = customer.post("/api/v1/chat/session/new").json()["session_id"]
    response = _chat_api(customer, session_id, "m" * LIMIT)
    assert response.status_code == 200, response.content
    assert customer.post("/send", {"message": "m" * LIMIT}).status_code == 302


# --- What counts as PII: the admin's masking and retention's scrubbing -------------------------

PHONES = [
    "555-0142",  # a local number as people say it, 7 digits
    "555 0142",
    "5550142",
    "416-555-0142",
    "(416) 555-0142",
    "416.555.0142",
    "+1 416 555 0142",
    "1-416-555-0142",
    "+14165550142",
    "+44 20 7946 0958",
    "+61 2 9374 4000",
]
NOT_PHONES = [
    "BK-2026-000123",
    "INT-2026-00012",
    "2026-11-17",
    "10:30",
    "$1,250.00",
    "149.99",
    "123456",  # six digits: a count or a postal code, not a phone
    "Unit 12, 450 Queen St",
]


@pytest.mark.parametrize("phone", PHONES)
def test_the_admin_and_retention_both_hide_a_phone_number_however_it_is_written(phone):
    text = f"Call me at {phone} after lunch."
    assert mask_text(text) == f"Call me at {MASK} after lunch."
    assert scrub_text(text) == f"Call me at {REDACTED} after lunch."


@pytest.mark.parametrize("kept", NOT_PHONES)
def test_the_admin_and_retention_both_keep_numbers_that_are_not_phones(kept):
    text = f"About {kept} please."
    assert mask_text(text) == text
    assert scrub_text(text) == text


def test_the_admin_and_retention_hide_the_same_spans_in_a_whole_message():
    text = (
        "Hi, dana@example.com here, 555-0142 or (416) 555-0199 work; booking BK-2026-000123 on 2026-11-17 "
        "at 10:30 for $149.99."
    )
    assert mask_text(text).replace(MASK, "#") == scrub_text(text).replace(REDACTED, "#")
    kept = "work; booking BK-2026-000123 on 2026-11-17 at 10:30 for $149.99."
    assert scrub_text(text) == f"Hi, {REDACTED} here, {REDACTED} or {REDACTED} {kept}"


# --- Name, address and the other booking fields: services, tool schema, guided, API, admin ------


def _tool_field(tool: str, field: str) -> int:
    return TOOLS[tool].parameters["properties"][field]["maxLength"]


def test_every_door_states_the_domain_limits():
    assert _tool_field("create_booking", "customer_name") == limits.MAX_NAME
    assert _tool_field("create_booking", "address") == limits.MAX_ADDRESS
    assert _tool_field("create_booking", "notes") == limits.MAX_NOTES
    assert _tool_field("create_booking", "customer_email") == limits.MAX_EMAIL
    assert _tool_field("create_booking", "customer_phone") == limits.MAX_PHONE_TYPED
    assert _tool_field("request_human", "name") == limits.MAX_NAME
    api = BookingCreateIn().fields
    assert (api["customer_name"].max_length, api["address"].max_length) == (limits.MAX_NAME, limits.MAX_ADDRESS)
    assert (api["notes"].max_length, api["customer_phone"].max_length) == (limits.MAX_NOTES, limits.MAX_PHONE_TYPED)
    form = BookingAddForm.base_fields
    assert (form["customer_name"].max_length, form["address"].max_length) == (limits.MAX_NAME, limits.MAX_ADDRESS)
    assert form["customer_phone"].max_length == limits.MAX_PHONE_TYPED


def test_the_service_and_the_guided_flow_draw_the_name_and_address_line_in_the_same_place(business):
    conversation = Conversation.objects.create(number="INT-2026-90001", mode=Conversation.Mode.GUIDED)
    flow = guided._Flow(conversation)
    at_limit, over = "A" + "n" * (limits.MAX_NAME - 1), "A" + "n" * limits.MAX_NAME

    assert flow.step_book_name(at_limit, None).startswith("Thanks")
    assert "at most 120 characters" in flow.step_book_name(over, None)
    assert customer_upsert(name=at_limit, phone="416-555-0142").name == at_limit
    with pytest.raises(InvalidInput, match="at most 120 characters"):
        customer_upsert(name=over, phone="416-555-0143")

    street = "12 Queen St W, Toronto "
    address_at_limit = street + "x" * (limits.MAX_ADDRESS - len(street))
    assert not flow.step_book_address(address_at_limit, None).startswith("Please give the street")
    assert flow.step_book_address(address_at_limit + "x", None).startswith("Please give the street")


# --- Phone format -------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["(416) 555-0123", "416.555.0123", "+1 416 555 0123", "4165550123"])
def test_a_phone_typed_any_way_searches_normalizes_and_reads_back_alike(typed):
    assert phone_from_search(f"  {typed} ") == normalize_phone(typed) == "+14165550123"
    assert phone_display(normalize_phone(typed)) == "(416) 555-0123"


@pytest.mark.parametrize("term", ["BK-2026-000123", "Dana", "555", "123-4567"])
def test_a_search_term_that_is_no_valid_phone_finds_no_phone(term):
    assert phone_from_search(term) is None


def test_a_stored_number_is_phone_shaped_for_the_csv_guard_and_not_a_formula():
    assert looks_like_phone("+14165550123")
    assert not looks_like_phone("+SUM(A1)")


# --- The open conversation of a session -------------------------------------------------------


def _call_session(client: Client, session_id: str) -> int:
    body = {"session_id": session_id}
    return client.post("/api/v1/chat/voice/session", body, content_type="application/json").status_code


def test_every_door_sees_the_same_open_conversation_of_a_session(business):
    customer = Client()
    session_id = customer.post("/api/v1/chat/session/new").json()["session_id"]
    conversation = Conversation.objects.get(session_id=session_id)
    Conversation.objects.filter(pk=conversation.pk).update(has_call=True)

    assert open_conversation_for(session_id).get() == conversation
    assert open_conversation_for("").count() == 0
    assert customer.get("/voice/").context["voice_session"] == session_id
    assert (
        customer.post(
            "/api/v1/chat/voice/session", {"session_id": session_id}, content_type="application/json"
        ).status_code
        == 200
    )

    Conversation.objects.filter(pk=conversation.pk).update(status=Conversation.Status.CLOSED)
    assert not open_conversation_for(session_id).exists()
    assert customer.get("/voice/").context["voice_session"] == ""
    assert (
        customer.post(
            "/api/v1/chat/voice/session", {"session_id": session_id}, content_type="application/json"
        ).status_code
        == 404
    )
    # The chat page starts over rather than showing the closed conversation's mode.
    assert customer.get("/").status_code == 200


# --- Is a key configured? ------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "sk-test"])
def test_the_pages_the_voice_relay_and_the_text_client_agree_whether_a_key_is_set(business, settings, key):
    settings.OPENAI_API_KEY = key
    client = Client()
    expected = bool(key)
    assert openai_client.is_configured() is expected
    assert client.get("/").context["voice_enabled"] is expected
    assert client.get("/voice/").context["voice_enabled"] is expected


# --- Retry-After ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("wait", "header"), [(0.4, "1"), (30, "30"), (29.2, "30"), (None, "60")])
def test_the_drf_views_and_the_plain_json_views_send_the_same_retry_after(wait, header):
    drf = exception_handler(Throttled(wait=wait), {})
    plain = json_error("rate_limited", "Too many requests.", 429, retry_after=wait)
    assert drf["Retry-After"] == plain["Retry-After"] == header


# --- Read-only admins ----------------------------------------------------------------------------


def test_rows_the_system_writes_are_read_only_even_for_a_superuser(db):
    superuser = get_user_model().objects.create_superuser("root", password="pw-123456!")
    request = RequestFactory().get("/admin/")
    request.user = superuser
    model_admins = [admin.site._registry[model] for model in (BookingEvent, YearlyCounter, Conversation)]
    inline = BookingEventInline(BookingEvent, admin.site)
    for model_admin in [*model_admins, inline]:
        assert not model_admin.has_add_permission(request, None), model_admin
        assert not model_admin.has_change_permission(request, None), model_admin
        assert not model_admin.has_delete_permission(request, None), model_admin


# --- The handoff "mark handled" audit row -----------------------------------------------------


def _waiting_handoff(number: str) -> HandoffRequest:
    conversation = Conversation.objects.create(number=number)
    return HandoffRequest.objects.create(
        conversation=conversation, reason="Wants a person", contact_phone="+14165550142"
    )


def test_marking_a_handoff_handled_writes_who_and_when_into_its_conversation(db):
    dispatcher = get_user_model().objects.create_user("dispatch", first_name="Pat", last_name="Lee", is_staff=True)
    first, second = _waiting_handoff("INT-2026-90011"), _waiting_handoff("INT-2026-90012")
    before = Message.objects.count()

    assert handoff_mark_handled(handoffs=HandoffRequest.objects.all(), user=dispatcher) == 2
    assert handoff_mark_handled(handoffs=HandoffRequest.objects.all(), user=dispatcher) == 0

    for handoff in (first, second):
        handoff.refresh_from_db()
        event = Message.objects.get(conversation=handoff.conversation_id, role=Message.Role.EVENT)
        assert event.text == "Pat Lee marked the callback request handled."
        assert handoff.handled_by == dispatcher and handoff.handled_at is not None
        assert abs((event.created_at - handoff.handled_at).total_seconds()) < 5
    assert Message.objects.count() == before + 2  # the second click recorded nothing
    assert Conversation.objects.get(pk=first.conversation_id).message_count == 1


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_marking_at_once_leave_one_audit_row():
    users = [get_user_model().objects.create_user(f"dispatch{i}", is_staff=True) for i in range(2)]
    handoff = _waiting_handoff("INT-2026-90021")
    start = threading.Barrier(2)
    changed: list[int] = []

    def click(user) -> None:
        try:
            start.wait()
            changed.append(handoff_mark_handled(handoffs=HandoffRequest.objects.filter(pk=handoff.pk), user=user))
        finally:
            connection.close()

    threads = [threading.Thread(target=click, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(changed) == [0, 1]
    assert Message.objects.filter(conversation=handoff.conversation_id, role=Message.Role.EVENT).count() == 1


# --- The client's IP: the chat API, the chat page, voice calls and the admin login throttle ----


@pytest.mark.django_db(transaction=True)  # the page's turn writes from a worker thread's connection
def test_every_door_keys_its_per_ip_limits_on_the_same_client_address(business, settings):
    from axes.helpers import get_client_ip_address

    from chatdesk.conversations.client_ip import scope_client_ip
    from chatdesk.conversations.services import hash_ip

    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    forwarded = "6.6.6.6, 203.0.113.9, 10.0.0.3"
    expected = "203.0.113.9"
    api = Client(REMOTE_ADDR="10.0.0.2")
    api.post("/api/v1/chat/session/new", HTTP_X_FORWARDED_FOR=forwarded)
    Client(REMOTE_ADDR="10.0.0.2").post("/send", {"message": "menu"}, HTTP_X_FORWARDED_FOR=forwarded)
    assert list(Conversation.objects.values_list("client_ip_hash", flat=True)) == [hash_ip(expected)] * 2
    voice_scope = {"client": ("10.0.0.2", 40000), "headers": [(b"x-forwarded-for", forwarded.encode())]}
    assert scope_client_ip(voice_scope) == expected
    login = RequestFactory().post("/admin/login/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)
    assert get_client_ip_address(login) == expected


# --- How long a rate limit lasts: said once, the same way at every door ---------------------------


def test_a_rate_limits_wait_is_said_once_in_words_people_read():
    from chatdesk.assistant.rate_limits import too_many_conversations, wait_phrase
    from chatdesk.assistant.turns import RateLimited

    assert [wait_phrase(s) for s in (1, 40, 89, 90, 2220, 5400, 7200)] == [
        "in 1 second",
        "in 40 seconds",
        "in 89 seconds",
        "in 2 minutes",
        "in 37 minutes",
        "in 2 hours",
        "in 2 hours",
    ]
    # One wait per message, no "wait a moment ... in 37 minutes".
    assert RateLimited(2220).message == "Too many messages. You can send again in 37 minutes."
    assert "moment" not in too_many_conversations(60) and too_many_conversations(60).count(" in ") == 1
