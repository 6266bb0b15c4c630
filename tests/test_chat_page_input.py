"""Bad input on the no-JavaScript page gets a clear 4xx, never a 500 (Django's test client)."""

from __future__ import annotations

import pytest
from django.test import Client

from chatdesk.conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_nul_character_without_javascript_is_refused_with_a_400_and_nothing_is_stored(business):
    client = Client()
    response = client.post("/send", {"message": "my furnace\x00 is banging"})
    assert response.status_code == 400
    assert "cannot store" in response.content.decode()
    assert not Message.objects.filter(role=Message.Role.CUSTOMER).exists()


def test_the_same_page_takes_the_message_once_the_nul_is_gone(business):
    client = Client()
    response = client.post("/send", {"message": "my furnace is banging"})
    assert response.status_code == 302
    conversation = Conversation.objects.get()
    assert conversation.messages.filter(role=Message.Role.CUSTOMER, text="my furnace is banging").exists()
