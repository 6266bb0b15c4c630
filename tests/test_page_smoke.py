"""Every page a person opens, on both databases, as superuser and as Dispatcher.

Features tested only on PostgreSQL once crashed on `make run`'s SQLite (the dashboard, the
admin search). This walks every admin page the admin site registers (list, list with a
search, add, one object's page) plus the custom staff pages and the customer pages, on the
demo data with its history, and checks each answer: 200 where the account may look, 403
where it may not, a redirect only where a page sends you on, and never a 5xx. The same
`walk` runs here on PostgreSQL and in a subprocess on a fresh SQLite file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import NoReverseMatch, reverse

from bookings.models import Booking, Technician
from tests.staff import staff_groups

ROOT = Path(__file__).resolve().parent.parent

# Searches that once broke one engine or the other: a phone typed with punctuation, a colon
# (SQLite's full-text syntax), a conversation number, words.
SEARCHES = ["(416) 555-0142", "a:b", "INT-2026", "furnace repair"]


def clients() -> dict[str, Client]:
    users = get_user_model().objects
    superuser = users.create_superuser("smoke-root", password="pw-smoke-root-1")
    dispatcher = users.create_user("smoke-dispatch", password="pw-smoke-disp-1", is_staff=True)
    dispatcher.groups.add(staff_groups()["Dispatcher"])
    made = {}
    for name, user in (("superuser", superuser), ("dispatcher", dispatcher)):
        client = Client()
        client.force_login(user)
        made[name] = client
    return made


def admin_url(name: str, *args: object) -> str | None:
    """The admin page's address, or None where the model's admin does not offer that page
    (the calendar feeds have one page of their own instead of add and change)."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def admin_pages() -> list[tuple[str, str]]:
    """(url, what it needs) for every registered model's pages, and the custom staff pages."""
    pages = [("/admin/", "")]
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        base = f"admin:{meta.app_label}_{meta.model_name}"
        view = f"{meta.app_label}.view_{meta.model_name}"
        changelist = reverse(f"{base}_changelist")
        pages.append((changelist, view))
        if model_admin.search_fields:
            pages += [(f"{changelist}?q={term}", view) for term in SEARCHES]
        add = admin_url(f"{base}_add")
        if add:
            pages.append((add, f"{meta.app_label}.add_{meta.model_name}"))
        first = model.objects.order_by("pk").first()
        change = admin_url(f"{base}_change", first.pk) if first is not None else None
        if change:
            pages.append((change, view))
    booking = Booking.objects.order_by("pk").first()
    pages += [
        (reverse("admin:bookings_dispatch_board"), "bookings.view_booking"),
        (reverse("admin:bookings_dispatch_board") + "?view=week", "bookings.view_booking"),
        (reverse("admin:bookings_booking_move", args=[booking.pk]), "bookings.change_booking"),
        (reverse("admin:chatdesk_dashboard"), "chatdesk.view_conversation"),
        (reverse("staff-live"), "chatdesk.view_conversation"),
        (reverse("staff-live") + "?quiet=1", "chatdesk.view_conversation"),
    ]
    return pages


# The filtered lists walked, so a test can tell the filters were really followed.
FILTERED: list[str] = []


def filter_links(changelist, url: str, most: int = 60) -> list[str]:
    """The query strings of the list's sidebar filter choices."""
    links = []
    for spec in changelist.filter_specs:
        links += [choice["query_string"] for choice in spec.choices(changelist)]
    return [url + link for link in dict.fromkeys(links) if link and link != "?"][:most]


CUSTOMER_PAGES = ["/", "/voice/", "/api/docs/", "/api/schema/"]


def walk() -> list[str]:
    """Request every page; the problems found (an empty list when all is well)."""
    call_command("seed_demo", verbosity=0)
    assert Booking.objects.exists() and Technician.objects.exists()
    problems = []
    staff = clients()
    pages = admin_pages()
    for who, client in staff.items():
        user = client.get("/admin/").wsgi_request.user
        for url, permission in pages:
            answer = client.get(url)
            if answer.status_code == 200 and answer.context and "cl" in answer.context and "?" not in url:
                # Every choice of every filter the list offers, as a click on it would ask.
                pages_filtered = filter_links(answer.context["cl"], url)
                FILTERED.extend(pages_filtered)
                for filtered in pages_filtered:
                    got = client.get(filtered)
                    if got.status_code != 200:
                        problems.append(f"{who} {filtered}: {got.status_code}, expected [200]")
            allowed = not permission or user.has_perm(permission)
            # An add page the admin refuses (read-only rows) is a 403, as for a missing
            # permission; a page that sends you on (the add page of a singleton) redirects.
            expected = {200, 302} if allowed else {403}
            if "_add" in url or url.endswith("/add/"):
                expected = {200, 302, 403}
            if answer.status_code not in expected:
                problems.append(f"{who} {url}: {answer.status_code}, expected {sorted(expected)}")
    anonymous = Client()
    for url in CUSTOMER_PAGES:
        answer = anonymous.get(url)
        if answer.status_code != 200:
            problems.append(f"anonymous {url}: {answer.status_code}")
    for url, _ in pages[:3]:
        answer = anonymous.get(url)
        if answer.status_code != 302:
            problems.append(f"anonymous {url}: {answer.status_code}, expected the login redirect")
    return problems


@pytest.mark.django_db
def test_every_page_answers_on_postgresql():
    assert walk() == []
    # The bookings list's status, channel and technician filters, the conversations' own.
    assert any("/bookings/booking/?" in url and "status" in url for url in FILTERED)
    assert any("/chatdesk/conversation/?" in url for url in FILTERED)


def test_every_page_answers_on_sqlite(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "DEBUG": "1",
        "OPENAI_API_KEY": "",
    }
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    script = textwrap.dedent(
        """
        from django.test.utils import setup_test_environment
        setup_test_environment()  # responses carry their context (the lists' filters), as in pytest
        from tests import test_page_smoke as t
        problems = t.walk()
        assert len(t.FILTERED) > 20, t.FILTERED
        print("\\n".join(problems) or "sqlite ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("sqlite ok"), done.stdout[-3000:]
