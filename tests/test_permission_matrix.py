"""Every staff door x every kind of visitor (issue 11 item 1): who gets in, and what they see.

Doors: each staff API route and method, the live monitor page, the staff WebSocket (connect,
watch, and the pushes), the admin's bookings, customers and conversations lists, a
booking's page and the conversations CSV. Visitors: anonymous, a logged-in customer account
that is not staff, staff with no permissions, a Dispatcher, an Owner (the groups as the
migrations make them) and a superuser.

The expectations are written out here, not derived from the policy under test: a
Dispatcher views and changes bookings, views conversations and takes them over, and sees
neither contact details nor costs; an Owner and a superuser do everything and see
everything. Where a door lets someone in, the answer is checked for masked or clear contact
details and for null or present costs.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from bookings.models import Booking, BookingStatus, Channel
from bookings.selectors import available_slots, local_today
from bookings.services import Actor, booking_create
from chatdesk.asgi import application
from chatdesk.conversations import live, services
from chatdesk.conversations.models import Conversation
from tests.staff import staff_groups
from tests.test_conversation_admin import converse

ROLES = ["anonymous", "customer", "bare_staff", "dispatcher", "owner", "superuser"]

VIEW_BOOKINGS, ADD_BOOKINGS, CHANGE_BOOKINGS = "view bookings", "add bookings", "change bookings"
VIEW_CONVERSATIONS, TAKE_OVER = "view conversations", "take over"
EVERYTHING = {VIEW_BOOKINGS, ADD_BOOKINGS, CHANGE_BOOKINGS, VIEW_CONVERSATIONS, TAKE_OVER}
# What each visitor may do, and whether they see contact details and costs.
MAY = {
    "anonymous": set(),
    "customer": set(),
    "bare_staff": set(),
    "dispatcher": {VIEW_BOOKINGS, CHANGE_BOOKINGS, VIEW_CONVERSATIONS, TAKE_OVER},
    "owner": EVERYTHING,
    "superuser": EVERYTHING,
}
SEES_ALL = {"owner", "superuser"}
STAFF = {"bare_staff", "dispatcher", "owner", "superuser"}

# Dana's details as the conversation (tests.test_conversation_admin.converse) records them.
PHONE_SPELLINGS = ["416-555-0142", "+14165550142", "(416) 555-0142", "4165550142"]
# Street addresses are masked where they are fields; typed into a message they cannot be told
# apart (chatdesk.conversations.pii), and the conversation has "at 12 Elm Street." typed.
CONTACT = [*PHONE_SPELLINGS, "dana@example.com", "12 Elm Street, Toronto"]
MASK = "•••"


@pytest.fixture
def scene(business, db):
    """Dana's conversation (open again, so the live doors list it) with her booking, a
    pending booking to confirm, and one signed-in client per visitor."""
    conversation = converse(business)
    Conversation.objects.filter(pk=conversation.pk).update(status=Conversation.Status.OPEN, ended_at=None)
    conversation.refresh_from_db()
    booking = Booking.objects.get()

    def free_slot():
        start = local_today() + timedelta(days=2)
        return available_slots(service=business.repair, start_date=start, end_date=start + timedelta(days=7))[-1]

    pending = booking_create(
        service=business.repair,
        start=free_slot().start,
        customer_name="Dana Whitfield",
        customer_phone="416-555-0142",
        address="12 Elm Street, Toronto",
        status=BookingStatus.PENDING,
        channel=Channel.STAFF,
        actor=Actor.system("test"),
    )
    groups = staff_groups()
    users = get_user_model().objects
    people = {
        "anonymous": None,
        "customer": users.create_user("carl"),
        "bare_staff": users.create_user("bare", is_staff=True),
        "dispatcher": users.create_user("dispatch", is_staff=True),
        "owner": users.create_user("owner", is_staff=True),
        "superuser": users.create_superuser("root"),
    }
    people["dispatcher"].groups.add(groups["Dispatcher"])
    people["owner"].groups.add(groups["Owner"])
    return {
        "business": business,
        "conversation": conversation,
        "booking": booking,
        "pending": pending,
        "free_slot": free_slot(),
        "people": people,
    }


def client_for(scene: dict, role: str) -> Client:
    client = Client()
    if scene["people"][role] is not None:
        client.force_login(scene["people"][role])
    return client


def assert_masked(text: str) -> None:
    assert not [spelling for spelling in CONTACT if spelling in text], text


# --- The staff API: every route and method --------------------------------------------------


def _new_booking(scene: dict) -> dict:
    return {
        "service": scene["business"].repair.slug,
        "start": scene["free_slot"].start.isoformat(),
        "customer_name": "Eli Novak",
        "customer_phone": "416-555-0177",
        "customer_email": "eli@example.com",
        "address": "9 Oak Avenue, Toronto",
    }


def _cost(path: tuple):
    def read(body: dict):
        for key in path:
            body = body[key]
        return body

    return read


# name: (method, path, what it needs, status when allowed, body, clear text only the allowed see, cost reader)
API = {
    "list bookings": ("get", "/api/v1/bookings/", VIEW_BOOKINGS, 200, None, "+14165550142", None),
    "book a visit": ("post", "/api/v1/bookings/", ADD_BOOKINGS, 201, _new_booking, "+14165550177", None),
    "read a booking": ("get", "/api/v1/bookings/{booking}", VIEW_BOOKINGS, 200, None, "+14165550142", None),
    "move a booking": (
        "post",
        "/api/v1/bookings/{booking}/reschedule",
        CHANGE_BOOKINGS,
        200,
        lambda scene: {"start": scene["free_slot"].start.isoformat(), "reason": "Dana asked, on 416-555-0142"},
        "Dana asked, on 416-555-0142",
        None,
    ),
    "cancel a booking": (
        "post",
        "/api/v1/bookings/{booking}/cancel",
        CHANGE_BOOKINGS,
        200,
        lambda scene: {"reason": "Called from 416-555-0142 to cancel"},
        "Called from 416-555-0142 to cancel",
        None,
    ),
    "confirm a booking": (
        "post",
        "/api/v1/bookings/{pending}/confirm",
        CHANGE_BOOKINGS,
        200,
        None,
        "12 Elm Street, Toronto",
        None,
    ),
    # The visit has not started: the permission lets staff through, the service refuses.
    "complete a booking": ("post", "/api/v1/bookings/{booking}/complete", CHANGE_BOOKINGS, 409, None, None, None),
    "mark a no-show": ("post", "/api/v1/bookings/{booking}/no-show", CHANGE_BOOKINGS, 409, None, None, None),
    "open conversations": (
        "get",
        "/api/v1/staff/conversations/open",
        VIEW_CONVERSATIONS,
        200,
        None,
        None,
        _cost(("conversations", 0, "cost_usd")),
    ),
    "a conversation": (
        "get",
        "/api/v1/staff/conversations/{conversation}",
        VIEW_CONVERSATIONS,
        200,
        None,
        "call me at 416-555-0142",
        _cost(("cost_usd",)),
    ),
    "take over": (
        "post",
        "/api/v1/staff/conversations/{conversation}/takeover",
        TAKE_OVER,
        200,
        None,
        None,
        _cost(("cost_usd",)),
    ),
    "hand back": (
        "post",
        "/api/v1/staff/conversations/{conversation}/release",
        TAKE_OVER,
        200,
        None,
        None,
        _cost(("cost_usd",)),
    ),
    "write to the customer": (
        "post",
        "/api/v1/staff/conversations/{conversation}/messages",
        TAKE_OVER,
        201,
        lambda scene: {"text": "Dana, we will call 416-555-0142 in five minutes."},
        "we will call 416-555-0142",
        None,
    ),
    "analytics": ("get", "/api/v1/chat/analytics", VIEW_CONVERSATIONS, 200, None, None, _cost(("totals", "cost_usd"))),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("door", list(API))
def test_staff_api(scene, door, role):
    method, path, needs, status, body, clear, cost = API[door]
    url = path.format(
        booking=scene["booking"].number, pending=scene["pending"].number, conversation=scene["conversation"].number
    )
    person = scene["people"][role]
    if door == "write to the customer" and role in STAFF:
        # Replying needs the conversation taken over by the one replying (a 409 otherwise);
        # the service, not the door, so the door's own check is what this cell tests.
        services.conversation_take_over(conversation=scene["conversation"], user=person)
    data = json.dumps(body(scene)) if body else None
    response = getattr(client_for(scene, role), method)(url, data, content_type="application/json")

    allowed = needs in MAY[role]
    assert response.status_code == (status if allowed else 403), response.content
    # Never a redirect or an HTML page: JSON, with the error envelope when refused.
    assert response["Content-Type"] == "application/json"
    payload = response.json()
    if not allowed:
        expected = "not_authenticated" if role == "anonymous" else "permission_denied"
        assert payload["error"] == expected
        return
    text = response.content.decode()
    if role in SEES_ALL:
        if clear:
            assert clear in text
        if cost:
            assert cost(payload) is not None
    else:
        assert_masked(text)
        if clear:
            assert MASK in text  # masked, not left out
        if cost:
            assert cost(payload) is None


# --- Pages: the live monitor, the admin's lists, a booking's page, the CSV -----------------------

# name: (url, what it needs, clear text only those with PII see, money only those with costs see)
PAGES = {
    "live monitor": (lambda s: reverse("staff-live"), VIEW_CONVERSATIONS, None, "$"),
    # Numbers are shown as a person reads them (bookings.phones.phone_display); the CSV keeps E.164.
    "bookings list": (lambda s: reverse("admin:bookings_booking_changelist"), VIEW_BOOKINGS, "(416) 555-0142", None),
    "a booking's page": (
        lambda s: reverse("admin:bookings_booking_change", args=[s["booking"].pk]),
        VIEW_BOOKINGS,
        "12 Elm Street, Toronto",
        None,
    ),
    "customers list": (lambda s: reverse("admin:bookings_customer_changelist"), VIEW_BOOKINGS, "(416) 555-0142", None),
    "conversations list": (
        lambda s: reverse("admin:chatdesk_conversation_changelist"),
        VIEW_CONVERSATIONS,
        "(416) 555-0142",
        "$",
    ),
    "conversations CSV": (
        lambda s: reverse("admin:chatdesk_conversation_export"),
        VIEW_CONVERSATIONS,
        "+14165550142",
        "cost_usd",
    ),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("door", list(PAGES))
def test_staff_page(scene, door, role):
    url, needs, clear, money = PAGES[door]
    response = client_for(scene, role).get(url(scene))
    if role not in STAFF:
        # Pages send whoever is not staff to the admin's login.
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
        return
    if needs not in MAY[role]:
        assert response.status_code == 403
        return
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()
    if door != "live monitor":  # which lists conversations by number
        assert "Dana Whitfield" in text  # names are shown to all staff, as the admin always has
    if role in SEES_ALL:
        assert clear is None or clear in text
        assert money is None or money in text
    else:
        assert_masked(text)
        assert money is None or money not in text


def test_the_dispatcher_s_csv_has_no_contact_or_cost_columns(scene):
    rows = list(
        csv.DictReader(
            io.StringIO(
                b"".join(
                    client_for(scene, "dispatcher").get(PAGES["conversations CSV"][0](scene)).streaming_content
                ).decode()
            )
        )
    )
    assert rows[0]["customer"] == "Dana Whitfield"
    assert not {"customer_phone", "customer_email", "cost_usd", "input_tokens"} & set(rows[0])


# --- The staff WebSocket: connect, watch, and what it pushes -------------------------------------


async def _staff_socket(scene: dict, role: str) -> tuple[WebsocketCommunicator, bool, int]:
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    client = await sync_to_async(client_for)(scene, role)
    if "sessionid" in client.cookies:
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    communicator = WebsocketCommunicator(application, "/api/v1/staff/live", headers=headers)
    connected, code = await communicator.connect()
    return communicator, connected, code


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("role", ROLES)
async def test_staff_socket_connect(scene, role):
    communicator, connected, code = await _staff_socket(scene, role)
    assert connected == (VIEW_CONVERSATIONS in MAY[role])
    if connected:
        await communicator.disconnect()
    else:
        assert code == 4403


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("role", ROLES)
async def test_staff_socket_watch_and_pushes(scene, role):
    communicator, connected, _ = await _staff_socket(scene, role)
    if VIEW_CONVERSATIONS not in MAY[role]:
        assert not connected  # nobody who may not watch gets as far as asking to
        return
    conversation = scene["conversation"]
    await communicator.send_json_to({"type": "watch", "conversation": conversation.number})
    assert await communicator.receive_json_from(timeout=5) == {"type": "watching", "conversation": conversation.number}

    said = "Dana again: call me at 416-555-0142 or dana@example.com"
    await sync_to_async(live.publish)(conversation, {"kind": "message", "role": "customer", "text": said})
    event = await communicator.receive_json_from(timeout=5)
    summary = await communicator.receive_json_from(timeout=5)
    assert (event["type"], summary["type"]) == ("event", "summary")
    if role in SEES_ALL:
        assert event["event"]["text"] == said
        assert summary["cost_usd"] is not None
    else:
        assert event["event"]["text"] == f"Dana again: call me at {MASK} or {MASK}"
        assert summary["cost_usd"] is None
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_permission_revoked_while_connected_stops_the_next_watch(scene):
    communicator, connected, _ = await _staff_socket(scene, "dispatcher")
    assert connected
    dispatcher = scene["people"]["dispatcher"]
    await sync_to_async(dispatcher.groups.clear)()
    await communicator.send_json_to({"type": "watch", "conversation": scene["conversation"].number})
    assert (await communicator.receive_json_from(timeout=5))["type"] == "error"
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
