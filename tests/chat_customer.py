"""A customer of the chat API, and the fake model it talks to, shared by the API-level tests.

from tests.chat_customer import Customer, model  # noqa: F401 (model is a fixture)
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from chatdesk.conversations.models import Conversation, Message


@pytest.fixture(name="model")
def model_fixture(fake_openai, settings):
    """The loopback fake OpenAI server, configured as the text model (`fake_openai` must be imported)."""
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = fake_openai.base_url
    settings.OPENAI_TIMEOUT_SECONDS = 10
    # The budgets the cut-off tests count on (800, retried at twice that, at most 2000).
    settings.OPENAI_MAX_OUTPUT_TOKENS = 800
    settings.OPENAI_RETRY_MAX_OUTPUT_TOKENS = 2000
    return fake_openai


class Customer:
    """A customer's browser session against the chat API, as static/chat.js uses it."""

    def __init__(self, client: Client | None = None, *, ip: str = "127.0.0.1") -> None:
        self.client = client or Client(REMOTE_ADDR=ip)
        response = self.client.post("/api/v1/chat/session/new")
        assert response.status_code == 201, response.content
        self.session = response.json()

    @property
    def session_id(self) -> str:
        return self.session["session_id"]

    def send(self, message: str, expect: int = 200) -> dict:
        response = self.client.post(
            "/api/v1/chat/message",
            json.dumps({"session_id": self.session_id, "message": message}),
            content_type="application/json",
        )
        assert response.status_code == expect, response.content
        return response.json()

    def history(self) -> dict:
        response = self.client.get(f"/api/v1/chat/session/{self.session_id}/history")
        assert response.status_code == 200, response.content
        return response.json()

    @property
    def conversation(self) -> Conversation:
        return Conversation.objects.get(session_id=self.session_id)

    def failure_kinds(self) -> list[str]:
        """The kinds of the model failures recorded in this conversation, oldest first."""
        return list(
            Message.objects.filter(conversation__session_id=self.session_id, role=Message.Role.EVENT)
            .exclude(failure_kind="")
            .order_by("created_at", "id")
            .values_list("failure_kind", flat=True)
        )
