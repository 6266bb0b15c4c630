"""The website widget on the server: widget.js, the framed pages' headers and cookies, the
conversation's record of where it came from, and the admin's snippet page.

The browser side (the launcher, the panel, a host page on another origin, third-party cookie
blocking) is tests/test_widget_browser.py.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils.html import escape

from chatdesk.backoffice.widget_snippet import deferred_snippet
from chatdesk.conversations.models import Conversation
from chatdesk.conversations.widget_pages import NotAWidgetPage, host_page, origin_allowed
from tests.staff import staff_groups

ROOT = Path(__file__).resolve().parent.parent
SITE = "https://www.maple-example.com"


@pytest.fixture(autouse=True)
def allowed_sites(settings):
    settings.WIDGET_ALLOWED_ORIGINS = [SITE, "https://*.maple-example.ca"]


def set_cookie_line(response, name: str) -> str:
    """The Set-Cookie header exactly as the server sends it."""
    return response.cookies[name].output(header="").strip()


def new_session(client: Client, body: dict | None = None, **extra):
    return client.post("/api/v1/chat/session/new", json.dumps(body or {}), content_type="application/json", **extra)


# --- widget.js ---------------------------------------------------------------------------------


def test_widget_js_is_small_cacheable_and_loadable_by_any_site(client) -> None:
    plain = client.get("/widget.js")
    assert plain.status_code == 200
    assert plain["Content-Type"] == "text/javascript; charset=utf-8"
    assert plain["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert "max-age=3600" in plain["Cache-Control"]
    body = plain.content
    assert b"attachShadow" in body

    compressed = client.get("/widget.js", headers={"Accept-Encoding": "gzip, br"})
    assert compressed["Content-Encoding"] == "gzip"
    assert gzip.decompress(compressed.content) == body
    # The budget: at most 8 KB gzipped.
    assert len(compressed.content) <= 8 * 1024, len(compressed.content)
    assert "Accept-Encoding" in compressed["Vary"]

    again = client.get("/widget.js", headers={"If-None-Match": plain["ETag"]})
    assert again.status_code == 304
    assert client.post("/widget.js").status_code == 405


def test_widget_js_makes_no_request_of_its_own_before_it_is_opened() -> None:
    """Read from the source: nothing is fetched at load; the frame's URL is only set in build()."""
    source = (ROOT / "static" / "widget.js").read_text()
    for loader in ("fetch(", "XMLHttpRequest", "new Image", "sendBeacon", "import(", "@import", "url("):
        assert loader not in source, loader
    build = source.index("function build()")
    assert source.index('src: origin + "/widget/') > build
    assert source.index("if (!panel) build();") > source.index("function open()")


# --- the framed pages --------------------------------------------------------------------------


def test_the_widget_page_may_be_framed_by_the_allowed_sites_only(client, business) -> None:
    response = client.get("/widget/", {"page": f"{SITE}/services/furnace?email=jane@example.com#top"})
    assert response.status_code == 200
    assert "X-Frame-Options" not in response
    csp = response["Content-Security-Policy"]
    assert f"frame-ancestors 'self' {SITE} https://*.maple-example.ca" in csp
    assert "script-src 'self'" in csp  # the rest of the policy is unchanged
    html = response.content.decode()
    assert '<html lang="en" class="widget">' in html
    # The host page as recorded: no query string or fragment (they may hold the visitor's data).
    assert f'data-widget-page="{SITE}/services/furnace"' in html
    assert 'action="/widget/send"' in html and 'action="/widget/restart"' in html
    assert "/api/v1/chat/voice/call?widget_page=https%3A%2F%2Fwww.maple-example.com%2Fservices%2Ffurnace" in html
    assert "widget-frame.js" in html


@pytest.mark.parametrize("path", ["/", "/voice/", "/admin/login/", "/api/docs/", "/staff/live/"])
def test_every_other_page_still_refuses_to_be_framed(client, business, path: str) -> None:
    response = client.get(path)
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_the_widget_pages_csrf_cookie_is_partitioned_and_the_chat_pages_is_not(client, business) -> None:
    framed = set_cookie_line(client.get("/widget/"), "csrftoken")
    assert "SameSite=None" in framed and "Secure" in framed and framed.endswith("; Partitioned")
    plain = set_cookie_line(Client().get("/"), "csrftoken")
    assert "SameSite=Lax" in plain and "Partitioned" not in plain


def test_a_page_from_a_site_not_allowed_is_not_recorded(client, business) -> None:
    response = client.get("/widget/", {"page": "https://evil.example.net/"})
    assert response.status_code == 200
    assert 'data-widget-page=""' in response.content.decode()


# --- starting a conversation from the widget ---------------------------------------------------


def test_a_conversation_started_in_the_widget_records_it_and_gets_a_partitioned_cookie(client, business) -> None:
    client.get("/widget/")
    response = new_session(client, {"widget_page": f"{SITE}/contact?utm_source=mail"})
    assert response.status_code == 201, response.content
    conversation = Conversation.objects.get(session_id=response.json()["session_id"])
    assert conversation.from_widget
    assert conversation.widget_page == f"{SITE}/contact"
    cookie = set_cookie_line(response, "chatdesk_session")
    assert "HttpOnly" in cookie and "SameSite=None" in cookie and "Secure" in cookie
    assert cookie.endswith("; Partitioned")


def test_a_subdomain_of_a_wildcard_origin_counts_and_an_unknown_page_is_still_a_widget_one(client, business) -> None:
    client.get("/widget/")
    on_subdomain = new_session(client, {"widget_page": "https://book.maple-example.ca/"})
    assert on_subdomain.status_code == 201
    assert Conversation.objects.get(session_id=on_subdomain.json()["session_id"]).widget_page == (
        "https://book.maple-example.ca/"
    )
    unknown = new_session(Client(), {"widget_page": ""})
    conversation = Conversation.objects.get(session_id=unknown.json()["session_id"])
    assert conversation.from_widget and conversation.widget_page == ""


def test_the_chat_page_still_starts_plain_conversations_with_a_lax_cookie(client, business) -> None:
    response = client.post("/api/v1/chat/session/new")  # no body at all, as before
    assert response.status_code == 201
    conversation = Conversation.objects.get(session_id=response.json()["session_id"])
    assert not conversation.from_widget and conversation.widget_page == ""
    cookie = set_cookie_line(response, "chatdesk_session")
    assert "SameSite=Lax" in cookie and "Partitioned" not in cookie


@pytest.mark.parametrize(
    "page",
    ["https://evil.example.net/", "javascript:alert(1)", "https://www.maple-example.com:99999/", "0" * 1500],
)
def test_a_page_that_is_not_usable_is_recorded_as_unknown(client, business, page: str) -> None:
    """What the browser says about the host page is checked, not trusted, and never refuses the chat."""
    response = new_session(client, {"widget_page": page})
    assert response.status_code == 201, response.content
    conversation = Conversation.objects.get(session_id=response.json()["session_id"])
    assert conversation.from_widget and conversation.widget_page == ""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"widget_page": 12}, "valid string"),
        ({"widget_page": "x" * 2001}, "no more than 2000"),
        (["not", "an", "object"], "Invalid data"),
    ],
)
def test_a_malformed_body_is_a_400_that_says_why(client, business, body, expected: str) -> None:
    response = new_session(client, body)
    assert response.status_code == 400, response.content
    data = response.json()
    assert data["error"] == "invalid_input"
    assert expected in json.dumps(data["fields"])
    assert not Conversation.objects.exists()


def test_requests_from_the_widget_keep_csrf_protection(business) -> None:
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/widget/", {"page": f"{SITE}/"})
    refused = new_session(browser, {"widget_page": f"{SITE}/"})
    assert refused.status_code == 403 and "CSRF" in refused.json()["message"]
    token = page.cookies["csrftoken"].value
    # A request from another origin is refused even with the token (Django's Origin check).
    forged = new_session(
        browser, {"widget_page": f"{SITE}/"}, headers={"X-CSRFToken": token, "Origin": SITE}, secure=True
    )
    assert forged.status_code == 403
    accepted = new_session(browser, {"widget_page": f"{SITE}/"}, headers={"X-CSRFToken": token})
    assert accepted.status_code == 201


@pytest.mark.django_db(transaction=True)
def test_the_widget_without_javascript_sends_and_restarts_in_its_own_layout(client, business) -> None:
    client.get("/widget/", {"page": f"{SITE}/"})
    sent = client.post("/widget/send", {"message": "1", "widget_page": f"{SITE}/heating?x=1"})
    assert sent.status_code == 302
    assert sent["Location"] == "/widget/?page=https%3A%2F%2Fwww.maple-example.com%2Fheating#latest"
    assert set_cookie_line(sent, "chatdesk_session").endswith("; Partitioned")
    assert "X-Frame-Options" not in sent
    conversation = Conversation.objects.get()
    assert conversation.from_widget and conversation.widget_page == f"{SITE}/heating"

    page = client.get(sent["Location"])
    assert "Which service do you need?" in page.content.decode()

    restarted = client.post("/widget/restart", {"widget_page": f"{SITE}/heating"})
    assert restarted["Location"] == "/widget/?page=https%3A%2F%2Fwww.maple-example.com%2Fheating"
    deleted = set_cookie_line(restarted, "chatdesk_session")
    assert "expires=Thu, 01 Jan 1970" in deleted and deleted.endswith("; Partitioned")
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.CLOSED


@pytest.mark.django_db(transaction=True)
def test_a_too_long_message_without_javascript_stays_in_the_widget_layout(client, business, settings) -> None:
    settings.CHAT_MAX_MESSAGE_CHARS = 10
    response = client.post("/widget/send", {"message": "x" * 11, "widget_page": f"{SITE}/"})
    assert response.status_code == 413
    assert 'class="widget"' in response.content.decode()
    assert "frame-ancestors 'self' https://www.maple-example.com" in response["Content-Security-Policy"]


def test_a_call_that_started_a_widget_conversation_gets_the_partitioned_cookie(client, business) -> None:
    from chatdesk.conversations.services import conversation_create

    call = conversation_create(channel="voice", mode="model", model="m", has_call=True, widget_page=f"{SITE}/")
    client.get("/widget/")
    response = client.post(
        "/api/v1/chat/voice/session", json.dumps({"session_id": call.session_id}), content_type="application/json"
    )
    assert response.status_code == 200
    assert set_cookie_line(response, "chatdesk_session").endswith("; Partitioned")


def test_a_call_placed_from_the_widget_reads_its_host_page_from_the_socket_url(settings) -> None:
    from voice.consumers import _widget_page

    headers = {b"host": b"chat.example.org"}

    def scope(query: bytes) -> dict:
        return {"scheme": "wss", "query_string": query}

    assert _widget_page(scope(b""), headers) is None
    assert _widget_page(scope(b"widget_page="), headers) == ""
    assert _widget_page(scope(b"widget_page=https%3A%2F%2Fwww.maple-example.com%2Fa%3Fq%3D1"), headers) == (f"{SITE}/a")
    assert _widget_page(scope(b"widget_page=https%3A%2F%2Fevil.example.net%2F"), headers) == ""
    # Our own origin (the admin's preview) counts too.
    assert _widget_page(scope(b"widget_page=https%3A%2F%2Fchat.example.org%2Fadmin%2F"), headers) == (
        "https://chat.example.org/admin/"
    )


# --- which sites -------------------------------------------------------------------------------


def test_origins_match_exactly_or_as_subdomains_of_a_wildcard() -> None:
    assert origin_allowed(SITE)
    assert origin_allowed("HTTPS://WWW.MAPLE-EXAMPLE.COM")
    assert not origin_allowed("http://www.maple-example.com")  # another scheme
    assert not origin_allowed("https://www.maple-example.com:8443")  # another port
    assert origin_allowed("https://a.b.maple-example.ca")
    assert not origin_allowed("https://maple-example.ca")  # the wildcard names subdomains only
    assert not origin_allowed("https://evilmaple-example.ca")
    with pytest.raises(NotAWidgetPage):
        host_page("https://user:pw@evil.example.net/", own_origin="https://chat.example.org")
    assert host_page("https://user:pw@www.maple-example.com", own_origin="x") == f"{SITE}/"
    assert host_page("https://www.maple-example.com:443/a#b", own_origin="x") == f"{SITE}/a"


@pytest.mark.parametrize(
    "value", ["www.example.com", "https://example.com/path", "ftp://example.com", "https://exa mple.com"]
)
def test_a_mistyped_allowed_origin_stops_startup(value: str) -> None:
    env = {**os.environ, "DEBUG": "1", "WIDGET_ALLOWED_ORIGINS": f"https://ok.example.com,{value}"}
    result = subprocess.run(
        [sys.executable, "-c", "import chatdesk.settings"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "WIDGET_ALLOWED_ORIGINS" in result.stderr and "is not an origin" in result.stderr


# --- staff -------------------------------------------------------------------------------------


@pytest.fixture
def dispatcher(db):
    user = get_user_model().objects.create_user("dee", password="pw-dispatcher-1", is_staff=True)
    user.groups.add(staff_groups()["Dispatcher"])
    return user


def test_the_admin_shows_the_snippet_with_a_copy_button_and_the_allowed_sites(client, dispatcher) -> None:
    client.force_login(dispatcher)
    index = client.get("/admin/")
    assert 'href="/admin/chatdesk/conversation/widget/"' in index.content.decode()
    response = client.get("/admin/chatdesk/conversation/widget/")
    assert response.status_code == 200
    html = response.content.decode()
    # The snippet to copy: widget.js inserted once the host page has loaded (or at once if it has).
    deferred = (
        '<script>(function(){function l(){var s=document.createElement("script");'
        's.src="http://testserver/widget.js";s.async=true;document.body.appendChild(s)}'
        'document.readyState=="complete"?l():addEventListener("load",l)})()</script>'
    )
    assert f">{escape(deferred)}</textarea>" in html
    assert 'data-copy="widget-snippet"' in html
    # The simpler alternative, with its own copy button.
    assert ">&lt;script src=&quot;http://testserver/widget.js&quot; async&gt;&lt;/script&gt;</textarea>" in html
    assert 'data-copy="widget-snippet-plain"' in html
    assert f"<code>{SITE}</code>" in html and "<code>https://*.maple-example.ca</code>" in html
    # Each option, written for either form.
    for name in ("color", "position", "greeting", "title"):
        assert f"<code>s.dataset.{name}=" in html and f"<code>data-{name}=" in html


def test_the_snippets_options_are_javascript_strings_that_cannot_end_the_script() -> None:
    snippet = deferred_snippet("https://chat.example.com/widget.js", {"greeting": 'Hi "there" </script><b>'})
    assert 's.dataset.greeting="Hi \\"there\\" <\\/script><b>";document.body.appendChild(s)' in snippet
    assert snippet.count("</script>") == 1 and snippet.endswith("</script>")


def test_the_admin_says_when_no_site_is_allowed_yet(client, dispatcher, settings) -> None:
    settings.WIDGET_ALLOWED_ORIGINS = []
    client.force_login(dispatcher)
    assert "No website is allowed yet" in client.get("/admin/chatdesk/conversation/widget/").content.decode()


def test_the_snippet_page_needs_the_conversations_permission(client, db) -> None:
    bare = get_user_model().objects.create_user("bare", password="pw-bare-1", is_staff=True)
    client.force_login(bare)
    assert client.get("/admin/chatdesk/conversation/widget/").status_code == 403


def test_conversations_show_where_they_came_from_and_filter_by_it(client, dispatcher, business) -> None:
    widget = new_session(Client(), {"widget_page": f"{SITE}/plumbing"}).json()
    plain = new_session(Client()).json()
    client.force_login(dispatcher)
    by_number = {c.number: c for c in Conversation.objects.all()}
    widget_pk = by_number[widget["conversation_number"]].pk
    page = client.get(f"/admin/chatdesk/conversation/{widget_pk}/change/").content.decode()
    assert f"Website widget, on {SITE}/plumbing" in page
    plain_pk = by_number[plain["conversation_number"]].pk
    assert "Our chat or voice page" in client.get(f"/admin/chatdesk/conversation/{plain_pk}/change/").content.decode()

    listed = client.get("/admin/chatdesk/conversation/", {"from_widget__exact": "1"}).content.decode()
    assert widget["conversation_number"] in listed and plain["conversation_number"] not in listed
    assert "By from the website widget" in client.get("/admin/chatdesk/conversation/").content.decode()


def test_the_set_cookie_line_parses_back() -> None:
    """The Partitioned attribute keeps the header parseable by ordinary cookie parsers."""
    from django.http import HttpResponse

    from chatdesk.conversations.session_cookie import set_session_cookie

    response = HttpResponse()
    set_session_cookie(response, "abc", embedded=True)
    parsed = SimpleCookie()
    parsed.load(set_cookie_line(response, "chatdesk_session").split("; Partitioned")[0])
    assert parsed["chatdesk_session"]["samesite"] == "None"
