"""Service keywords: staff edit them in the admin, seed_demo fills them, the guided chat matches on them."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from bookings.models import Service
from bookings.service_matching import service_catalogue, services_matching

pytestmark = pytest.mark.django_db


def test_services_match_on_the_keywords_in_the_database(business):
    assert services_matching("my furnace is banging").services == ()  # no keywords yet
    business.repair.keywords = "furnace, banging"
    business.repair.save()
    assert services_matching("my furnace is banging").services == ("hvac-repair",)
    assert services_matching("FURNACES").services == ("hvac-repair",)


def test_inactive_services_are_never_matched(business):
    business.drain.keywords = "drain"
    business.drain.active = False
    business.drain.save()
    assert [s.service_id for s in service_catalogue()] == ["hvac-repair"]
    assert services_matching("clogged drain").services == ()


def test_staff_edit_the_keywords_in_the_service_admin(admin_client, business):
    url = reverse("admin:bookings_service_change", args=[business.drain.pk])
    form = admin_client.get(url).content.decode()
    assert 'name="keywords"' in form
    assert "What customers call it" in form
    data = {
        "trade": business.plumbing.pk,
        "name": "Drain Cleaning",
        "slug": "drain-cleaning",
        "description": "",
        "active": "on",
        "keywords": "clogged drain, toilet, slow sink",
        "price_min": "175",
        "price_max": "",
        "currency": "CAD",
        "duration_minutes": "60",
        "buffer_before_minutes": "30",
        "buffer_after_minutes": "15",
        "min_notice_minutes": "120",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    business.drain.refresh_from_db()
    assert business.drain.keywords == "clogged drain, toilet, slow sink"
    assert services_matching("my toilet is blocked").services == ("drain-cleaning",)
    found = admin_client.get(reverse("admin:bookings_service_changelist"), {"q": "slow sink"}).content.decode()
    assert "Drain Cleaning" in found


def test_seed_demo_gives_every_service_keywords_and_keeps_what_staff_wrote(time_machine):
    call_command("seed_demo", "--no-bookings", stdout=StringIO())
    assert not Service.objects.filter(keywords="").exists()
    assert "furnace" in Service.objects.get(slug="hvac-repair").keywords
    assert Service.objects.filter(is_emergency=True).count() == 3  # one per trade

    Service.objects.filter(slug="hvac-repair").update(keywords="our own words")
    Service.objects.filter(slug="leak-repair").update(keywords="")  # seeded before keywords existed
    call_command("seed_demo", "--no-bookings", stdout=StringIO())
    assert Service.objects.get(slug="hvac-repair").keywords == "our own words"
    assert "faucet" in Service.objects.get(slug="leak-repair").keywords
