"""The two doors a customer uses to reach the guided chat, driven the same way by the tests.

- `ApiDoor`: the JSON chat API (/api/v1/chat/...), as static/chat.js uses it.
- `PageDoor`: the page without JavaScript: the form posts to /send, is redirected back,
  and the reply is read from the rendered transcript (li.msg.assistant p.text).

Every reply that comes through either door is checked for words meant for the model
(tool names, "Ask for...", "Offer...", argument names): the customer must never see them.
"""

from __future__ import annotations

import json
import re
from html import unescape
from html.parser import HTMLParser

from django.test import Client

from chatdesk.conversations.models import Conversation
from chatdesk.conversations.session_cookie import SESSION_COOKIE, session_id_from_cookies

# Words from tool messages written for the model, which a customer must never be shown.
MODEL_FACING = re.compile(
    r"\b(Ask (for|the customer)|Offer (a|another)|call resolve_date|resolve_date|get_available|customer_confirmed|"
    r"service_id|technician_id|function|tool call|the model)\b"
)


def flat(text: str) -> str:
    return " ".join(text.split())


class _Transcript(HTMLParser):
    """The assistant's messages in the chat page's transcript."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: list[str] = []
        self._in_assistant_li = False
        self._in_text = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "li":
            self._in_assistant_li = "msg" in classes and "assistant" in classes
        elif tag == "p" and self._in_assistant_li and "text" in classes:
            self._in_text = True
            self.replies.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self._in_text = False
        elif tag == "li":
            self._in_assistant_li = False

    def handle_data(self, data: str) -> None:
        if self._in_text:
            self.replies[-1] += data


class Door:
    name = ""

    def __init__(self) -> None:
        self.client = Client()
        self.replies: list[str] = []

    def send(self, text: str) -> str:
        reply = flat(self._send(text))
        assert not MODEL_FACING.search(reply), f"model-facing words shown to the customer: {reply!r}"
        self.replies.append(reply)
        return reply

    def _send(self, text: str) -> str:
        raise NotImplementedError

    @property
    def conversation(self) -> Conversation:
        raise NotImplementedError


class ApiDoor(Door):
    name = "api"

    def __init__(self) -> None:
        super().__init__()
        response = self.client.post("/api/v1/chat/session/new")
        assert response.status_code == 201, response.content
        self.session = response.json()
        self.greeting = flat(self.session["greeting"])

    def _send(self, text: str) -> str:
        response = self.client.post(
            "/api/v1/chat/message",
            json.dumps({"session_id": self.session["session_id"], "message": text}),
            content_type="application/json",
        )
        assert response.status_code == 200, response.content
        return response.json()["reply"]

    @property
    def conversation(self) -> Conversation:
        return Conversation.objects.get(session_id=self.session["session_id"])


class PageDoor(Door):
    name = "page"

    def __init__(self) -> None:
        super().__init__()
        page = self.client.get("/")
        assert page.status_code == 200
        self.greeting = flat(self._assistant_messages(page.content.decode())[0])

    @staticmethod
    def _assistant_messages(html: str) -> list[str]:
        parser = _Transcript()
        parser.feed(html)
        return [unescape(r) for r in parser.replies]

    def _send(self, text: str) -> str:
        response = self.client.post("/send", {"message": text})
        assert response.status_code == 302, response.content[:500]
        page = self.client.get(response["Location"].split("#")[0])
        assert page.status_code == 200
        return self._assistant_messages(page.content.decode())[-1]

    @property
    def conversation(self) -> Conversation:
        cookie = self.client.cookies[SESSION_COOKIE].value
        return Conversation.objects.get(session_id=session_id_from_cookies({SESSION_COOKIE: cookie}))
