"""/api/docs/ in headless Chromium, under the site's CSP: Swagger UI draws the API.

The page's start-up script and style are inline, allowed by the request's nonce (never
'unsafe-inline'); Swagger UI's files are self-hosted (drf-spectacular-sidecar). A CSP
violation shows in the console, and fails the test.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from playwright.sync_api import Browser, expect

from tests.browser import chromium_fixture  # noqa: F401  (registers `chromium`)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_docs_page_carries_a_nonce_and_no_unsafe_inline(db):
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    nonce = re.search(r"script-src 'self' 'nonce-([^']+)'", policy).group(1)
    html = response.content.decode()
    assert html.count(f'nonce="{nonce}"') == 2  # the inline <style> and <script>, nothing else
    assert "cdn" not in html and "//" not in html.replace("http://", "").split("<script", 1)[0]
    # Other pages keep the strict policy: no nonce where none is used.
    assert "nonce-" not in Client().get("/").headers["Content-Security-Policy"]


def test_swagger_ui_draws_every_operation_without_a_csp_violation(live_server, chromium: Browser):
    page = chromium.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(f"{live_server.url}/api/docs/")
    expect(page.locator(".opblock-tag-section")).to_have_count(3)
    for tag in ("chat", "staff", "bookings"):
        expect(page.locator(f"#operations-tag-{tag}")).to_be_visible()
    expect(page.locator(".opblock")).to_have_count(19)
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    # The WebSocket protocols are in the description above the operations.
    expect(page.locator(".info").get_by_text("/api/v1/chat/live").first).to_be_visible()
    page.locator("#operations-chat-v1_chat_message_create").click()
    expect(page.locator("#operations-chat-v1_chat_message_create .opblock-body")).to_be_visible()
    assert problems == []
