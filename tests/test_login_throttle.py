"""Admin login throttling (issue 11 item 3): django-axes, per username and per client IP, in the database.

The probe: 60 wrong passwords in 22 s were all answered normally, then the right one logged in.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from asgiref.sync import sync_to_async
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from tests.test_asgi_handler import cookie_header, cookies_of, request

PASSWORD = "a-long-pass-phrase"
LOCKED = "Too many failed login attempts for this account or from your network."


@pytest.fixture
def staff(db):
    User = get_user_model()
    User.objects.create_superuser("owner", "owner@example.com", PASSWORD)
    User.objects.create_user("dispatch", password=PASSWORD, is_staff=True)


def login(username: str, password: str, ip: str = "198.51.100.7", **headers: str):
    return Client(REMOTE_ADDR=ip, **headers).post(
        "/admin/login/", {"username": username, "password": password, "next": "/admin/"}
    )


def logged_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


def assert_locked(response) -> None:
    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert "Login is locked for 15 minutes" in response.content.decode()
    assert response["Retry-After"] == "900"


def test_wrong_passwords_lock_the_account_and_the_right_one_is_then_refused(staff, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    answers = [login("owner", f"guess-{n}").status_code for n in range(4)]
    assert answers == [200] * 4  # the login form again, with Django's own error
    assert_locked(login("owner", "guess-4"))  # the fifth failure locks
    assert_locked(login("owner", PASSWORD))
    # Another account from another network is not affected.
    assert logged_in(login("dispatch", PASSWORD, ip="192.0.2.20"))


def test_an_account_is_locked_whatever_network_the_guesses_come_from(staff):
    for n in range(5):
        login("owner", "wrong", ip=f"203.0.113.{n}")
    assert_locked(login("owner", PASSWORD, ip="192.0.2.99"))
    assert logged_in(login("dispatch", PASSWORD, ip="192.0.2.99"))


def test_a_network_guessing_many_accounts_is_locked_for_every_account(staff):
    for n in range(5):
        login(f"user{n}", "wrong", ip="198.51.100.66")
    assert_locked(login("dispatch", PASSWORD, ip="198.51.100.66"))
    assert logged_in(login("dispatch", PASSWORD, ip="192.0.2.20"))


def test_the_lock_ends_after_the_cool_off_and_tries_during_it_do_not_extend_it(staff):
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        for _ in range(5):
            login("owner", "wrong")
        clock.shift(timedelta(minutes=10))
        assert_locked(login("owner", PASSWORD))  # still locked; this try is not counted
        clock.shift(timedelta(minutes=4, seconds=59))
        assert_locked(login("owner", PASSWORD))
        clock.shift(timedelta(seconds=2))  # 15 minutes after the failure that locked it
        assert logged_in(login("owner", PASSWORD))


def test_a_successful_login_clears_the_earlier_failures(staff):
    for _ in range(4):
        login("owner", "wrong")
    assert logged_in(login("owner", PASSWORD))
    for _ in range(4):
        login("owner", "wrong")
    assert logged_in(login("owner", PASSWORD))  # 8 failures in all, never 5 in a row


def test_a_superuser_unlocks_an_account_from_the_admin(staff):
    for _ in range(5):
        login("dispatch", "wrong", ip="203.0.113.5")
    assert_locked(login("dispatch", PASSWORD, ip="192.0.2.8"))
    boss = Client(REMOTE_ADDR="192.0.2.1")
    assert logged_in(boss.post("/admin/login/", {"username": "owner", "password": PASSWORD, "next": "/admin/"}))
    changelist = boss.get("/admin/axes/accessattempt/")
    assert changelist.status_code == 200 and "dispatch" in changelist.content.decode()
    ids = [str(pk) for pk in AccessAttempt.objects.filter(username="dispatch").values_list("pk", flat=True)]
    done = boss.post(
        "/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": ids, "post": "yes"}
    )
    assert done.status_code == 302
    assert not AccessAttempt.objects.filter(username="dispatch").exists()
    assert logged_in(login("dispatch", PASSWORD, ip="192.0.2.8"))


def test_the_network_is_the_client_ip_every_door_uses(staff, settings):
    # Rotating X-Forwarded-For from an untrusted client does not escape the network's lock.
    for n in range(5):
        login(f"user{n}", "wrong", ip="198.51.100.66", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
    assert_locked(login("dispatch", PASSWORD, ip="198.51.100.66", HTTP_X_FORWARDED_FOR="203.0.113.77"))
    # Behind a trusted proxy, the lock is the forwarded client's, not the proxy's.
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    for n in range(5):
        login(f"user{n}", "wrong", ip="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.50")
    assert set(AccessAttempt.objects.filter(username="user0").values_list("ip_address", flat=True)) == {
        "198.51.100.66",
        "203.0.113.50",
    }
    assert_locked(login("dispatch", PASSWORD, ip="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.50"))
    assert logged_in(login("dispatch", PASSWORD, ip="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.51"))


def test_no_password_is_stored_with_the_failed_attempts(staff):
    login("owner", "hunter2-secret")
    attempt = AccessAttempt.objects.get(username="owner")
    assert "hunter2-secret" not in attempt.post_data


@pytest.mark.django_db(transaction=True)
async def test_the_lockout_page_through_the_asgi_handler():
    """The server's path (async middleware chain, chatdesk.handlers), CSRF and all."""
    await sync_to_async(get_user_model().objects.create_superuser)("boss", "boss@example.com", PASSWORD)

    async def post(password: str) -> dict:
        page = await request("GET", "/admin/login/")
        cookies = cookies_of(page)
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page["body"]).group(1).decode()
        return await request(
            "POST",
            "/admin/login/",
            body=f"csrfmiddlewaretoken={token}&username=boss&password={password}&next=/admin/".encode(),
            headers=[
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"origin", b"http://testserver"),
                cookie_header(cookies),
            ],
        )

    statuses = [(await post(f"wrong-{n}"))["status"] for n in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    refused = await post(PASSWORD)
    assert refused["status"] == 429
    assert LOCKED in refused["body"].decode()
    assert refused["header_map"]["retry-after"] == ["900"]
    assert "content-security-policy" in refused["header_map"]  # still the site's headers
