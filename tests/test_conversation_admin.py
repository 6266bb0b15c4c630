"""The conversations admin: read-only transcripts, search, filters, totals, CSV, handoffs, groups.

Conversations are made the way the assistant makes them: conversation_start, messages in
order, and tool calls through execute_tool_call (which books through the services).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import SUCCESS, WARNING, get_messages
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from bookings.models import Booking, BookingEvent
from bookings.selectors import local_today
from bookings.services import Actor, booking_cancel, booking_create
from chatdesk.assistant.tools import ToolOutcome, execute_tool_call
from chatdesk.assistant.turns import conversation_start
from chatdesk.backoffice.conversation_admin import plain_text_matches, transcript_matches
from chatdesk.backoffice.pii import mask_text
from chatdesk.conversations.models import Conversation, HandoffRequest, Message
from chatdesk.conversations.services import conversation_close
from tests.conftest import MONDAY_NOON_UTC
from tests.staff import staff_groups

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:chatdesk_conversation_changelist"


# --- Building conversations (also used by test_dashboard and test_admin_browser) -----------


def customer_says(conversation: Conversation, text: str) -> Message:
    Conversation.objects.filter(pk=conversation.pk).update(message_count=F("message_count") + 1)
    return Message.objects.create(conversation=conversation, role=Message.Role.CUSTOMER, text=text)


def assistant_says(conversation: Conversation, text: str, *, latency_ms: int = 1200, cost: str = "0.000150") -> Message:
    Conversation.objects.filter(pk=conversation.pk).update(
        message_count=F("message_count") + 1,
        input_tokens=F("input_tokens") + 1000,
        cached_input_tokens=F("cached_input_tokens") + 400,
        output_tokens=F("output_tokens") + 100,
        cost_usd=F("cost_usd") + Decimal(cost),
    )
    return Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, text=text, latency_ms=latency_ms, cost_usd=Decimal(cost)
    )


def call_tool(conversation: Conversation, tool: str, call_id: str, /, **arguments: object) -> ToolOutcome:
    return execute_tool_call(conversation=conversation, call_id=call_id, name=tool, raw_arguments=json.dumps(arguments))


def converse(
    business,
    *,
    name: str = "Dana Whitfield",
    phone: str = "416-555-0142",
    problem: str = "My furnace is making a banging noise. Can someone come this week?",
    book: bool = True,
    tool_error: bool = False,
    handoff: bool = False,
    urgent: bool = False,
    channel: str = Conversation.ChannelKind.CHAT,
    tick=lambda: None,
) -> Conversation:
    """A whole conversation: greeting, question, slots, (a refused booking,) booking, close.

    `tick` moves the clock between steps, so rows get the order they would have for real.
    """
    conversation = conversation_start(channel=channel)
    tick()
    customer_says(conversation, f"{problem} This is {name}, call me at {phone}.")
    tick()
    today = local_today()
    slots = call_tool(
        conversation,
        "get_available_time_slots",
        "call_slots",
        service_id=business.repair.slug,
        date=(today + timedelta(days=1)).isoformat(),
        end_date=(today + timedelta(days=8)).isoformat(),
        technician_id=None,
    ).result["slots"]
    tick()
    slot = slots[0]
    assistant_says(conversation, f"I can send a technician {slot['weekday']} at {slot['time']}. Shall I book it?")
    tick()
    customer_says(conversation, "Yes please, at 12 Elm Street.")
    tick()
    booking_args = {
        "service_id": business.repair.slug,
        "start": slot["start"],
        "technician_id": None,
        "customer_name": name,
        "customer_phone": phone,
        "customer_email": f"{name.split()[0].lower()}@example.com",
        "address": "12 Elm Street, Toronto",
        "notes": problem,
    }
    if tool_error:
        call_tool(conversation, "create_booking", "call_unconfirmed", **booking_args, customer_confirmed=False)
        tick()
    if book:
        outcome = call_tool(conversation, "create_booking", "call_book", **booking_args, customer_confirmed=True)
        assert not outcome.error, outcome.result
        tick()
        assistant_says(conversation, f"You're booked: {outcome.result['booking']['booking_number']}.", latency_ms=2400)
    if handoff:
        call_tool(
            conversation,
            "request_human",
            "call_human",
            reason="Wants to talk about a warranty",
            name=name,
            phone=phone,
            urgent=urgent,
        )
        tick()
        assistant_says(conversation, "A colleague will call you back.", latency_ms=900)
    tick()
    conversation_close(session_id=conversation.session_id)
    conversation.refresh_from_db()
    return conversation


BULK_NUMBERS = itertools.count(90000)


def bulk_conversations(count: int, *, with_messages: int = 4) -> list[Conversation]:
    """Volume without the services: rows shaped like real ones, for query-count tests."""
    now = timezone.now()
    made = Conversation.objects.bulk_create(
        Conversation(
            number=f"INT-2026-{next(BULK_NUMBERS)}",
            channel=Conversation.ChannelKind.CHAT if i % 3 else Conversation.ChannelKind.VOICE,
            status=Conversation.Status.CLOSED,
            resolution=Conversation.Resolution.ANSWERED,
            message_count=with_messages,
            ended_at=now,
            cost_usd=Decimal("0.002"),
        )
        for i in range(count)
    )
    Message.objects.bulk_create(
        Message(conversation=conversation, role=Message.Role.CUSTOMER, text=f"Question {n} about a water heater")
        for conversation in made
        for n in range(with_messages)
    )
    return made


@pytest.fixture
def clock(time_machine):
    """Monday 2026-11-16 08:00 in Toronto; `clock()` moves it on a few seconds."""
    time_machine.move_to(MONDAY_NOON_UTC, tick=False)
    return lambda: time_machine.shift(timedelta(seconds=7))


@pytest.fixture(name="staff_groups")
def staff_groups_fixture(db) -> dict[str, Group]:
    """The groups as migrations 0003 and 0009 make them (tests/staff.py)."""
    return staff_groups()


def staff_member(django_user_model, username: str, group: Group):
    user = django_user_model.objects.create_user(username, password="pw-" + username, is_staff=True)
    user.groups.add(group)
    return user


# Registered under short names; the functions have other names so that other modules can
# import them (registering the fixtures there) without shadowing their test parameters.
@pytest.fixture(name="dispatcher")
def dispatcher_fixture(django_user_model, staff_groups):
    return staff_member(django_user_model, "dispatch", staff_groups["Dispatcher"])


@pytest.fixture(name="owner")
def owner_fixture(django_user_model, staff_groups):
    return staff_member(django_user_model, "owner", staff_groups["Owner"])


@pytest.fixture
def booked(business, clock) -> Conversation:
    return converse(business, tick=clock)


def listed(response) -> list[Conversation]:
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def change_url(conversation: Conversation) -> str:
    return reverse("admin:chatdesk_conversation_change", args=[conversation.pk])


# --- The list ----------------------------------------------------------------------------------


def test_list_shows_each_conversation_with_its_numbers(admin_client, booked):
    response = admin_client.get(reverse(CHANGELIST))
    content = response.content.decode()
    assert listed(response) == [booked]
    for text in [booked.number, "Dana Whitfield", "(416) 555-0142", "Booked", "Mon Nov 16 08:00 EST"]:
        assert text in content
    assert f"${booked.cost_usd:,.4f}" in content
    assert "<strong>1</strong> conversation" in content  # the totals line


def test_totals_line_counts_and_sums_the_filtered_set(admin_client, business, clock):
    converse(business, tick=clock)
    converse(business, name="Eli Novak", phone="416-555-0177", book=False, tick=clock)
    response = admin_client.get(reverse(CHANGELIST), {"booked": "yes"})
    totals = response.context["cl"].paginator.totals
    booked = Conversation.objects.get(booking_count=1)
    assert totals == {
        "conversations": 1,
        "tokens": booked.input_tokens + booked.output_tokens,
        "cost": booked.cost_usd,
    }
    assert "(filtered)" in response.content.decode()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"booked": "yes"}, {"booked"}),
        ({"booked": "no"}, {"refused", "escalated"}),
        ({"tool_error": "yes"}, {"refused"}),
        ({"tool_error": "no"}, {"booked", "escalated"}),
        ({"escalated": "yes"}, {"escalated"}),
        ({"channel__exact": "voice"}, {"escalated"}),
        ({"resolution__exact": "booked"}, {"booked"}),
        ({"started": "today"}, {"booked", "refused", "escalated"}),
        ({"started": "yesterday"}, set()),
    ],
)
def test_filters(admin_client, business, clock, params, expected):
    made = {
        "booked": converse(business, tick=clock),
        "refused": converse(business, name="Eli Novak", phone="416-555-0177", book=False, tool_error=True, tick=clock),
        "escalated": converse(
            business, name="Fay Ortiz", phone="416-555-0188", book=False, handoff=True, channel="voice", tick=clock
        ),
    }
    found = set(listed(admin_client.get(reverse(CHANGELIST), params)))
    assert found == {made[name] for name in expected}


def test_date_hierarchy_drills_into_business_days(admin_client, booked):
    params = {"started_at__year": 2026, "started_at__month": 11, "started_at__day": 16}
    assert listed(admin_client.get(reverse(CHANGELIST), params)) == [booked]
    params["started_at__day"] = 15
    assert listed(admin_client.get(reverse(CHANGELIST), params)) == []


# --- Search ------------------------------------------------------------------------------------


@pytest.fixture
def three(business, clock) -> dict[str, Conversation]:
    return {
        "furnace": converse(business, tick=clock),
        "drain": converse(
            business,
            name="Eli Novak",
            phone="416-555-0177",
            problem="The kitchen sink drains slowly and gurgles.",
            book=False,
            tick=clock,
        ),
        "leak": converse(
            business,
            name="Fay Ortiz",
            phone="416-555-0188",
            problem="Water is leaking under the boiler.",
            book=False,
            tick=clock,
        ),
    }


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("banging", {"furnace"}),
        ("bang", {"furnace"}),  # English stemming: "banging" matches
        ("gurgling sink", {"drain"}),
        ('"under the boiler"', {"leak"}),
        ("sink or boiler", {"drain", "leak"}),
        ("water -furnace", {"leak"}),
        ("boiler -water", set()),  # words of one message: the leak's says both
        ("chimney", set()),
    ],
)
def test_search_finds_transcript_text(admin_client, three, term, expected):
    found = set(listed(admin_client.get(reverse(CHANGELIST), {"q": term})))
    assert found == {three[name] for name in expected}


def test_search_finds_a_customer_by_name_and_by_phone_typed_any_way(admin_client, three):
    assert listed(admin_client.get(reverse(CHANGELIST), {"q": "whitfield"})) == [three["furnace"]]
    for typed in ["(416) 555-0142", "+1 416 555 0142", "4165550142"]:
        assert listed(admin_client.get(reverse(CHANGELIST), {"q": typed})) == [three["furnace"]], typed


def test_search_finds_a_callback_phone_typed_any_way(admin_client, business, clock):
    # No booking, so no customer: the number is on the handoff.
    escalated = converse(business, name="Eli Novak", phone="416-555-0177", book=False, handoff=True, tick=clock)
    assert listed(admin_client.get(reverse(CHANGELIST), {"q": "(416) 555 0177"})) == [escalated]


def test_search_by_phone_is_only_for_staff_who_may_see_contact_details(client, business, clock, dispatcher, owner):
    # A hit would confirm whose number it is, which the masked columns hide.
    escalated = converse(business, name="Eli Novak", phone="416-555-0177", book=False, handoff=True, tick=clock)
    client.force_login(dispatcher)
    assert listed(client.get(reverse(CHANGELIST), {"q": "(416) 555 0177"})) == []
    client.force_login(owner)
    assert listed(client.get(reverse(CHANGELIST), {"q": "(416) 555 0177"})) == [escalated]


def test_plain_search_words_phrases_and_exclusions(business, clock):
    # SQLite's search (no full-text there); the function runs on any database.
    furnace = converse(business, name="Ann Lee", problem="My furnace is banging loudly", book=False, tick=clock)
    drain = converse(
        business, name="Bo Chen", problem="The kitchen drain is slow, not the furnace", book=False, tick=clock
    )

    def found(term: str) -> set[int]:
        return set(plain_text_matches(term).values_list("conversation_id", flat=True))

    assert found("FURNACE") == {furnace.pk, drain.pk}
    assert found("furnace banging") == {furnace.pk}
    assert found("furnace -drain") == {furnace.pk}
    assert found('"drain is slow"') == {drain.pk}
    assert found('"is slow furnace') == {drain.pk}  # an unbalanced quote: the words as typed
    assert found("chimney") == set()


def test_search_finds_a_conversation_by_number(admin_client, three):
    number = three["leak"].number
    assert listed(admin_client.get(reverse(CHANGELIST), {"q": number})) == [three["leak"]]


def test_transcript_search_uses_the_gin_index():
    # The SearchVector must compile to the indexed expression (migration 0004), or the
    # planner can only scan every message. Small tables are seq-scanned, so forbid that.
    query = transcript_matches("furnace")
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "message_text_search" in plan, plan


# --- Query counts ------------------------------------------------------------------------------


def count_queries(client, url: str, params: dict | None = None) -> int:
    with CaptureQueriesContext(connection) as context:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return len(context)


@pytest.mark.parametrize("params", [{}, {"q": "water heater"}, {"tool_error": "no", "booked": "no"}])
def test_list_queries_do_not_grow_with_the_number_of_conversations(admin_client, business, clock, params):
    converse(business, tick=clock)
    bulk_conversations(2)
    url = reverse(CHANGELIST)
    admin_client.get(url)  # warm process-wide caches (content types)
    few = count_queries(admin_client, url, params)
    bulk_conversations(60)  # more than a page
    assert count_queries(admin_client, url, params) == few


def test_detail_queries_do_not_grow_with_the_length_of_the_conversation(admin_client, business, clock):
    short = converse(business, book=False, tick=clock)
    long = converse(business, name="Eli Novak", phone="416-555-0177", handoff=True, tool_error=True, tick=clock)
    for n in range(30):
        customer_says(long, f"And another thing, number {n}.")
        call_tool(long, "resolve_date", f"call_date_{n}", text="next friday")
        assistant_says(long, "Noted.")
    admin_client.get(change_url(short))
    assert count_queries(admin_client, change_url(short)) == count_queries(admin_client, change_url(long))


# --- The conversation page ---------------------------------------------------------------------


def test_transcript_renders_as_a_conversation_in_time_order(admin_client, business, clock):
    conversation = converse(business, tool_error=True, handoff=True, tick=clock)
    content = admin_client.get(change_url(conversation)).content.decode()
    call = {c.call_id: f'id="call-{c.pk}"' for c in conversation.tool_calls.all()}
    order = [
        'class="chat-row from-assistant"',  # the greeting
        'class="chat-row from-customer"',
        call["call_slots"],
        "I can send a technician",
        "Yes please, at 12 Elm Street.",
        call["call_unconfirmed"],  # the refused call, in its place
        "confirmation_required",
        call["call_book"],
        "You&#x27;re booked",
        call["call_human"],
        "A colleague will call you back.",
    ]
    positions = [content.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert "replied in 1.2 s" in content and "replied in 2.4 s" in content
    assert "Urgent handoff" not in content and "Wants to talk about a warranty" in content


def test_tool_calls_show_arguments_result_error_and_duration(admin_client, booked):
    content = admin_client.get(change_url(booked)).content.decode()
    call = booked.tool_calls.get(call_id="call_book")
    assert f'id="call-{call.pk}"' in content
    assert "customer_confirmed" in content  # arguments
    assert f"{call.duration_ms} ms" in content
    # The slot list is long: folded, not spread over the page.
    assert '<details class="json"><summary>result' in content


def test_the_page_links_the_bookings_the_conversation_made(admin_client, booked):
    booking = Booking.objects.get()
    content = admin_client.get(change_url(booked)).content.decode()
    assert reverse("admin:bookings_booking_change", args=[booking.pk]) in content
    assert f'{booking.number}</a> <span class="quiet">(booked)' in content


def test_what_people_typed_is_escaped(admin_client, business, clock):
    conversation = converse(business, problem="<script>alert('x')</script><b>bold</b>", book=False, tick=clock)
    content = admin_client.get(change_url(conversation)).content.decode()
    assert "<script>alert" not in content and "<b>bold</b>" not in content
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in content


def test_cost_is_broken_down_by_modality(admin_client, booked):
    Conversation.objects.filter(pk=booked.pk).update(
        cost_breakdown={"audio_input": "0.010000", "audio_output": "0.020000"}, cost_usd=F("cost_usd") + Decimal("0.03")
    )
    content = admin_client.get(change_url(booked)).content.decode()
    assert "<th>Audio input</th><td>$0.010000</td>" in content
    assert "<th>Audio output</th><td>$0.020000</td>" in content
    assert "<th>Text (chat model)</th><td>$0.000300</td>" in content  # two replies at 0.000150


def test_conversations_cannot_be_added_changed_or_deleted(admin_client, booked):
    assert admin_client.get(reverse("admin:chatdesk_conversation_add")).status_code == 403
    assert admin_client.post(change_url(booked), {"status": "open"}).status_code == 403
    delete = reverse("admin:chatdesk_conversation_delete", args=[booked.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    booked.refresh_from_db()
    assert booked.status == Conversation.Status.CLOSED


def test_the_page_is_read_only(admin_client, booked):
    content = admin_client.get(change_url(booked)).content.decode()
    assert 'name="_save"' not in content
    assert "session_id" not in content and booked.session_id not in content  # the customer's bearer token


# --- Permissions: dispatchers see neither costs nor customers' contact details -------------


def test_groups_have_the_intended_permissions(staff_groups):
    dispatcher = {f"{p.content_type.app_label}.{p.codename}" for p in staff_groups["Dispatcher"].permissions.all()}
    owner = {f"{p.content_type.app_label}.{p.codename}" for p in staff_groups["Owner"].permissions.all()}
    assert {"bookings.view_booking", "bookings.change_booking", "bookings.change_customer"} <= dispatcher
    assert {
        "chatdesk.view_conversation",
        "chatdesk.view_handoffrequest",
        "chatdesk.change_handoffrequest",
    } <= dispatcher
    assert "chatdesk.take_over_conversation" in dispatcher and "chatdesk.take_over_conversation" in owner
    assert not {p for p in dispatcher if p.startswith(("bookings.add_", "bookings.delete_"))}
    assert not {"chatdesk.view_costs", "chatdesk.view_customer_pii", "chatdesk.change_conversation"} & dispatcher
    assert {"chatdesk.view_costs", "chatdesk.view_customer_pii", "bookings.add_booking"} <= owner
    assert not {p for p in owner if p.startswith("auth.")}


PHONE_SPELLINGS = ["416-555-0142", "+14165550142", "(416) 555-0142", "dana@example.com"]


def test_a_dispatcher_sees_no_costs_or_phone_numbers_in_the_list(client, dispatcher, booked):
    client.force_login(dispatcher)
    response = client.get(reverse(CHANGELIST))
    content = response.content.decode()
    assert listed(response) == [booked]
    assert "Dana Whitfield" in content
    assert "$" not in content and "tokens" not in content
    assert not [p for p in PHONE_SPELLINGS if p in content]


def test_a_dispatcher_sees_no_costs_or_contact_details_in_a_transcript(client, dispatcher, booked):
    client.force_login(dispatcher)
    content = client.get(change_url(booked)).content.decode()
    assert "I can send a technician" in content
    assert "$" not in content and "Cost" not in content
    assert not [p for p in PHONE_SPELLINGS if p in content]
    assert "12 Elm Street, Toronto" not in content  # the address in the booking's arguments
    assert "call me at •••" in content


def test_an_owner_sees_costs_and_contact_details(client, owner, booked):
    client.force_login(owner)
    listing = client.get(reverse(CHANGELIST)).content.decode()
    assert "(416) 555-0142" in listing and f"${booked.cost_usd:,.4f}" in listing
    detail = client.get(change_url(booked)).content.decode()
    assert "call me at 416-555-0142" in detail and "dana@example.com" in detail
    assert "Cost by modality" in detail


def test_staff_without_permissions_cannot_see_conversations(client, django_user_model, booked):
    client.force_login(django_user_model.objects.create_user("nobody", password="pw", is_staff=True))
    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert client.get(change_url(booked)).status_code == 403


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("call me at 416-555-0142 please", "call me at ••• please"),
        ("or (416) 555 0142, or +1 416 555 0142.", "or •••, or •••."),
        ("mail dana.w+test@example.co.uk", "mail •••"),
        ("booking BK-2026-000042 on 2026-11-17 at 09:00 for $1200.00", None),
        ("conversation INT-2026-00012, 3 visits", None),
    ],
)
def test_masking_keeps_what_is_not_contact_details(text, masked):
    assert mask_text(text) == (masked or text)


# --- CSV export --------------------------------------------------------------------------------


def export(client, params: dict | None = None) -> list[dict]:
    response = client.get(reverse("admin:chatdesk_conversation_export"), params or {})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="conversations-')
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_csv_export_has_the_filtered_set(admin_client, business, clock):
    booked = converse(business, tick=clock)
    converse(business, name="Eli Novak", phone="416-555-0177", book=False, tick=clock)
    rows = export(admin_client, {"booked": "yes"})
    assert [row["number"] for row in rows] == [booked.number]
    row = rows[0]
    assert row["customer"] == "Dana Whitfield" and row["customer_phone"] == "+14165550142"
    assert row["bookings"] == "1" and Decimal(row["cost_usd"]) == booked.cost_usd
    assert row["started"] == "2026-11-16T08:00:00-05:00"


def test_csv_export_follows_the_search(admin_client, three):
    assert [row["number"] for row in export(admin_client, {"q": "gurgles"})] == [three["drain"].number]


def test_changelist_links_the_export_with_its_filters(admin_client, booked):
    content = admin_client.get(reverse(CHANGELIST), {"booked": "yes", "q": "furnace", "p": "1"}).content.decode()
    assert reverse("admin:chatdesk_conversation_export") + "?booked=yes&amp;q=furnace" in content


def test_csv_export_leaves_out_costs_and_contact_details_for_a_dispatcher(client, dispatcher, booked):
    client.force_login(dispatcher)
    rows = export(client)
    assert rows[0]["customer"] == "Dana Whitfield"
    assert not {"customer_phone", "customer_email", "cost_usd", "input_tokens"} & set(rows[0])


def test_csv_cells_that_a_spreadsheet_would_run_are_defused(admin_client, business, clock):
    converse(business, name="=HYPERLINK(1)", book=True, tick=clock)
    row = export(admin_client)[0]
    assert row["customer"] == "'=HYPERLINK(1)"
    assert row["customer_phone"] == "+14165550142"  # a phone number stays as it is


@pytest.mark.django_db(transaction=True)
async def test_csv_export_streams_asynchronously_under_asgi(async_client, admin_user):
    # Under ASGI a sync iterator would be read whole before the first byte went out.
    from asgiref.sync import sync_to_async

    made = await sync_to_async(bulk_conversations)(3)
    await async_client.aforce_login(admin_user)
    response = await async_client.get(reverse("admin:chatdesk_conversation_export"))
    assert response.status_code == 200 and response.is_async
    body = b"".join([chunk async for chunk in response.streaming_content]).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert {row["number"] for row in rows} == {i.number for i in made}


# --- Handoff queue -----------------------------------------------------------------------------


@pytest.fixture
def queue(business, clock, admin_user) -> dict[str, HandoffRequest]:
    def handoff(name: str, phone: str, urgent: bool) -> HandoffRequest:
        conversation = converse(business, name=name, phone=phone, book=False, handoff=True, urgent=urgent, tick=clock)
        return conversation.handoffs.get()

    made = {
        "old": handoff("Ann Old", "416-555-0101", False),
        "urgent": handoff("Bo Urgent", "416-555-0102", True),
        "handled": handoff("Cy Done", "416-555-0103", True),
        "new": handoff("Di New", "416-555-0104", False),
    }
    HandoffRequest.objects.filter(pk=made["handled"].pk).update(handled_at=timezone.now(), handled_by=admin_user)
    return made


def test_handoff_queue_puts_waiting_first_urgent_first_then_oldest(admin_client, queue):
    response = admin_client.get(reverse("admin:chatdesk_handoffrequest_changelist"))
    assert listed(response) == [queue["urgent"], queue["old"], queue["new"], queue["handled"]]
    content = response.content.decode()
    assert "Wants to talk about a warranty" in content and "Ann Old" in content and "(416) 555-0101" in content
    assert reverse("admin:chatdesk_conversation_change", args=[queue["old"].conversation_id]) in content


def test_mark_handled_records_who_and_when_and_leaves_handled_ones_alone(client, dispatcher, queue, admin_user):
    client.force_login(dispatcher)
    selected = [queue["old"].pk, queue["handled"].pk]
    before = HandoffRequest.objects.get(pk=queue["handled"].pk).handled_at
    response = client.post(
        reverse("admin:chatdesk_handoffrequest_changelist"), {"action": "mark_handled", "_selected_action": selected}
    )
    assert response.status_code == 302
    old = HandoffRequest.objects.get(pk=queue["old"].pk)
    assert old.handled_by == dispatcher and old.handled_at == timezone.now()
    handled = HandoffRequest.objects.get(pk=queue["handled"].pk)
    assert handled.handled_by == admin_user and handled.handled_at == before
    texts = {(m.level, m.message) for m in get_messages(response.wsgi_request)}
    assert texts == {(SUCCESS, "Marked 1 handoff(s) handled."), (WARNING, "1 were already handled.")}


def test_a_dispatcher_sees_the_callback_phone_in_the_queue(client, dispatcher, queue):
    # Calling back is the job: whoever may handle handoffs sees the number given for it.
    client.force_login(dispatcher)
    content = client.get(reverse("admin:chatdesk_handoffrequest_changelist")).content.decode()
    assert "(416) 555-0101" in content


def test_handoffs_cannot_be_added_or_deleted(admin_client, queue):
    assert admin_client.get(reverse("admin:chatdesk_handoffrequest_add")).status_code == 403
    delete = reverse("admin:chatdesk_handoffrequest_delete", args=[queue["old"].pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403


def test_handoff_page_offers_the_action_not_a_save(admin_client, queue):
    content = admin_client.get(reverse("admin:chatdesk_handoffrequest_change", args=[queue["old"].pk])).content.decode()
    assert 'name="_save"' not in content
    assert "mark_handled" in content


# --- Why does this booking exist ---------------------------------------------------------------


def test_booking_page_links_the_conversation_turn_and_tool_call(admin_client, booked):
    booking = Booking.objects.get()
    call = booked.tool_calls.get(call_id="call_book")
    content = admin_client.get(reverse("admin:bookings_booking_change", args=[booking.pk])).content.decode()
    assert "Why this booking exists" in content
    assert f"{change_url(booked)}#call-{call.pk}" in content
    assert "<q>Yes please, at 12 Elm Street.</q>" in content
    assert "<code>create_booking</code>" in content


def test_booking_page_names_the_staff_user_behind_a_change(admin_client, admin_user, booked):
    booking = Booking.objects.get()
    booking_cancel(booking=booking, actor=Actor.staff(admin_user), reason="Customer called")
    content = admin_client.get(reverse("admin:bookings_booking_change", args=[booking.pk])).content.decode()
    assert "Cancelled" in content and "by staff: admin" in content


def test_booking_made_by_staff_names_them(admin_client, admin_user, business, clock):
    booked_slot = converse(business, tick=clock)  # any free slot; cancel to reuse it
    booking = Booking.objects.get()
    booking_cancel(booking=booking, actor=Actor.system())
    staff_booking = booking_create(
        service=business.repair,
        start=booking.start,
        customer_name="Gil Staff",
        customer_phone="416-555-0199",
        address="1 Main St",
        channel="staff",
        actor=Actor.staff(admin_user),
    )
    assert BookingEvent.objects.filter(booking=staff_booking).exists() and booked_slot
    content = admin_client.get(reverse("admin:bookings_booking_change", args=[staff_booking.pk])).content.decode()
    assert "Created" in content and "by staff: admin" in content
