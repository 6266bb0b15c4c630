"""Live monitoring and takeover through the real ASGI application and Channels consumers."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.http import HttpResponse
from django.test import Client

from chatdesk.asgi import application
from chatdesk.conversations import access
from chatdesk.conversations.models import Conversation, Message
from chatdesk.conversations.session_cookie import SESSION_COOKIE, set_session_cookie
from tests.staff import grant

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = [(b"origin", b"http://testserver"), (b"host", b"testserver")]


def signed_session(session_id: str) -> str:
    response = HttpResponse()
    set_session_cookie(response, session_id)
    return response.cookies[SESSION_COOKIE].value


async def socket(path: str, cookie: str = "", origin: list | None = None) -> tuple[WebsocketCommunicator, bool, int]:
    headers = list(ORIGIN if origin is None else origin)
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect()
    return communicator, connected, code


def start_chat() -> tuple[Client, str]:
    client = Client()
    session_id = client.post("/api/v1/chat/session/new").json()["session_id"]
    return client, session_id


def staff_client() -> tuple[Client, object]:
    user = get_user_model().objects.create_user("dispatch", password="pw-123456!", is_staff=True)
    user = grant(user, access.VIEW_CONVERSATIONS, access.TAKE_OVER, access.VIEW_PII)
    client = Client()
    client.force_login(user)
    return client, user


def send(client: Client, session_id: str, text: str) -> dict:
    response = client.post(
        "/api/v1/chat/message", json.dumps({"session_id": session_id, "message": text}), content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return response.json()


async def receive_until(communicator: WebsocketCommunicator, predicate, limit: int = 20) -> dict:
    for _ in range(limit):
        message = await communicator.receive_json_from(timeout=5)
        if predicate(message):
            return message
    raise AssertionError("expected message never arrived")


async def test_the_staff_socket_refuses_anyone_but_staff(business):
    _, connected, code = await socket("/api/v1/staff/live")
    assert not connected
    assert code == 4403


async def test_the_customer_socket_needs_a_conversation():
    communicator, connected, _ = await socket("/api/v1/chat/live", cookie=f"{SESSION_COOKIE}=forged")
    assert connected  # accepted, so the browser sees the close code
    closed = await communicator.receive_output()
    assert closed == {"type": "websocket.close", "code": 4404}


async def test_a_foreign_origin_is_rejected(business):
    _, session_id = await sync_to_async(start_chat)()
    cookie = f"{SESSION_COOKIE}={signed_session(session_id)}"
    _, connected, _ = await socket("/api/v1/chat/live", cookie=cookie, origin=[(b"origin", b"https://evil.example")])
    assert not connected


async def test_takeover_pauses_the_assistant_and_staff_replies_reach_the_customer_live(business):
    customer, session_id = await sync_to_async(start_chat)()
    staff, _ = await sync_to_async(staff_client)()
    number = await sync_to_async(lambda: Conversation.objects.get(session_id=session_id).number)()

    customer_socket, connected, _ = await socket(
        "/api/v1/chat/live", cookie=f"{SESSION_COOKIE}={signed_session(session_id)}"
    )
    assert connected
    assert await customer_socket.receive_json_from() == {"type": "takeover", "taken_over": False}
    staff_socket, connected, _ = await socket(
        "/api/v1/staff/live", cookie=f"sessionid={staff.cookies['sessionid'].value}"
    )
    assert connected
    await staff_socket.send_json_to({"type": "watch", "conversation": number})
    assert (await staff_socket.receive_json_from())["type"] == "watching"

    taken = await sync_to_async(staff.post)(f"/api/v1/staff/conversations/{number}/takeover")
    assert taken.status_code == 200
    assert (await receive_until(customer_socket, lambda m: m["type"] == "takeover")) == {
        "type": "takeover",
        "taken_over": True,
    }

    # The customer writes; the assistant stays quiet and staff see it live.
    paused = await sync_to_async(send)(customer, session_id, "Can I talk to the person?")
    assert paused["paused"] is True
    assert paused["reply"] == ""
    seen = await receive_until(staff_socket, lambda m: m["type"] == "event" and m["event"].get("role") == "customer")
    assert seen["event"]["text"] == "Can I talk to the person?"
    summary = await receive_until(staff_socket, lambda m: m["type"] == "summary" and m["taken_over"])
    assert summary["conversation"] == number

    said = await sync_to_async(staff.post)(
        f"/api/v1/staff/conversations/{number}/messages",
        {"text": "Hi, this is Sam from dispatch."},
        content_type="application/json",
    )
    assert said.status_code == 201
    staff_message = await receive_until(customer_socket, lambda m: m["type"] == "staff_message")
    assert staff_message["text"] == "Hi, this is Sam from dispatch."

    released = await sync_to_async(staff.post)(f"/api/v1/staff/conversations/{number}/release")
    assert released.status_code == 200
    assert (await receive_until(customer_socket, lambda m: m["type"] == "takeover"))["taken_over"] is False
    resumed = await sync_to_async(send)(customer, session_id, "1")
    assert "Which service" in resumed["reply"]

    roles = await sync_to_async(lambda: list(Message.objects.values_list("role", flat=True)))()
    assert roles.count("staff") == 1
    assert roles.count("event") == 2  # took over, handed back
    # The model's history carries what staff said, so it can carry on after the handback.
    items = await sync_to_async(lambda: Conversation.objects.get(number=number).model_items)()
    assert {"role": "assistant", "content": "Hi, this is Sam from dispatch."} in items
    await customer_socket.disconnect()
    await staff_socket.disconnect()


def test_staff_must_take_over_before_replying(business):
    _, session_id = start_chat()
    staff, _ = staff_client()
    number = Conversation.objects.get(session_id=session_id).number
    response = staff.post(
        f"/api/v1/staff/conversations/{number}/messages", {"text": "hello"}, content_type="application/json"
    )
    assert response.status_code == 409
    assert not Message.objects.filter(role="staff").exists()


def test_the_staff_api_and_page_are_staff_only(business):
    _, session_id = start_chat()
    number = Conversation.objects.get(session_id=session_id).number
    anonymous = Client()
    assert anonymous.post(f"/api/v1/staff/conversations/{number}/takeover").status_code in (401, 403)
    assert anonymous.get("/api/v1/staff/conversations/open").status_code in (401, 403)
    assert anonymous.get("/staff/live/").status_code == 302
    staff, _ = staff_client()
    page = staff.get("/staff/live/")
    assert page.status_code == 200
    assert number.encode() in page.content
    listing = staff.get("/api/v1/staff/conversations/open").json()
    assert [c["number"] for c in listing["conversations"]] == [number]


def test_a_closed_conversation_cannot_be_taken_over(business):
    client, session_id = start_chat()
    client.post(f"/api/v1/chat/session/{session_id}/close", {}, content_type="application/json")
    staff, _ = staff_client()
    number = Conversation.objects.get(session_id=session_id).number
    assert staff.post(f"/api/v1/staff/conversations/{number}/takeover").status_code == 409
