"""The guided chat (no API key, or the model down), branch by branch, through both doors.

Every test runs twice: through the JSON chat API and through the page without JavaScript
(form post, redirect, rendered transcript); tests/guided_doors.py also checks every reply
for words meant for the model. Real PostgreSQL; the turn works on worker threads, so the
rows are committed (transaction=True). "Now" is Monday, November 16, 2026, 08:00 in Toronto.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.core.cache import cache
from django.urls import reverse

from bookings.models import Booking, BookingStatus, Service
from bookings.selectors import business_tz
from bookings.services import Actor, booking_create
from chatdesk.conversations.models import HandoffRequest, ToolCall
from tests.conftest import MONDAY_NOON_UTC
from tests.guided_doors import ApiDoor, Door, PageDoor

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(MONDAY_NOON_UTC, tick=False):
        yield


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> None:
    # Counters key on the client IP, and every test client is 127.0.0.1.
    cache.clear()


@pytest.fixture
def shop(business):
    """The conftest business, with keywords, and a maintenance, an emergency and a leak service."""
    business.repair.keywords = "furnace, heating, heat, no heat, banging, noise, ac, air conditioning"
    business.repair.save()
    business.drain.keywords = "drain, clogged drain, clog, clogged, toilet, sink"
    business.drain.save()

    def service(trade, name, slug, minutes, price, keywords, emergency=False, notice=120):
        return Service.objects.create(
            trade=trade,
            name=name,
            slug=slug,
            duration_minutes=minutes,
            price_min=Decimal(price),
            buffer_before_minutes=30,
            buffer_after_minutes=15,
            min_notice_minutes=notice,
            is_emergency=emergency,
            keywords=keywords,
        )

    business.maintenance = service(
        business.hvac, "HVAC Maintenance", "hvac-maintenance", 90, "150", "maintenance, tune up, inspection"
    )
    business.emergency = service(
        business.hvac, "Emergency HVAC", "emergency-hvac", 120, "300", "emergency hvac", emergency=True, notice=60
    )
    business.leak = service(business.plumbing, "Leak Repair", "leak-repair", 90, "180", "leak, leaking, faucet, sink")
    return business


@pytest.fixture(params=["api", "page"])
def door(request, shop) -> Door:
    return ApiDoor() if request.param == "api" else PageDoor()


def tools_called(door: Door) -> list[str]:
    return list(ToolCall.objects.filter(conversation=door.conversation).order_by("id").values_list("name", flat=True))


def at(day: str, hhmm: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=business_tz())


def a_booking(shop, *, start: datetime, technician=None) -> Booking:
    return booking_create(
        service=shop.repair,
        start=start,
        technician=technician or shop.alice,
        customer_name="Dana Whitfield",
        customer_phone="416-555-0123",
        customer_email="",
        address="12 Queen St W, Toronto",
        channel="chat",
        actor=Actor.system("test"),
    )


def give_details(door: Door, email: str = "dana@example.com", texts: str = "no thanks") -> str:
    assert "What is your full name?" in door.replies[-1]
    assert "What phone number" in door.send("Dana Whitfield")
    assert "May we text you the booking confirmation" in door.send("416 555 0123")
    assert "What is the address of the visit?" in door.send(texts)
    assert "What email should we send the confirmation to?" in door.send("12 Queen St W, Toronto")
    return door.send(email)


# --- free text first -------------------------------------------------------------------------


def test_the_greeting_offers_free_text_and_every_menu_choice(door):
    assert "Tell me in your own words" in door.greeting
    for number, label in enumerate(
        ["Book a visit", "Look up a booking", "Cancel a visit", "Move a visit", "Talk to a person"], 1
    ):
        assert f"{number}. {label}" in door.greeting


def test_a_furnace_banging_tomorrow_morning_books_with_what_was_said_carried_forward(door, shop):
    reply = door.send("hi my furnace is banging can someone come tomorrow morning")
    # Service, day and part of day understood: no question about any of them.
    assert reply.startswith("HVAC Repair. Free times on Tuesday, November 17, 2026:")
    assert "1. 8:30 AM with Alice T." in reply
    assert "PM" not in reply  # the morning only
    assert tools_called(door) == ["resolve_date", "get_available_time_slots"]

    assert "What is your full name?" in door.send("9am")
    readback = give_details(door)
    assert "HVAC Repair with Alice T. on Tuesday, November 17, 2026 at 9:00 AM" in readback
    assert "email the confirmation to dana@example.com" in readback
    done = door.send("yes")
    booking = Booking.objects.get()
    assert done.startswith(f"You're booked! Your booking number is {booking.number}")
    assert "A confirmation email is on its way to dana@example.com." in done
    assert booking.start == at("2026-11-17", "09:00")
    assert booking.customer.email == "dana@example.com"
    assert "furnace is banging" in booking.notes  # the technician reads what the customer said
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["dana@example.com"]
    assert booking.number in mail.outbox[0].subject
    assert tools_called(door)[-1] == "create_booking"


def test_menu_number_one_then_a_service_by_name_then_a_day(door):
    services = door.send("1")
    assert "Which service do you need?" in services
    # Emergency services are listed last, so "1" is never the emergency visit by accident.
    assert services.index("HVAC Repair") < services.index("Emergency HVAC")
    assert "HVAC Repair. Which day would suit you?" in door.send("HVAC Repair")
    slots = door.send("Wednesday")
    assert "Free times on Wednesday, November 18, 2026" in slots
    assert "1. 8:30 AM with Alice T." in slots


@pytest.mark.parametrize("number", ["10", "42", "0", "6"])
def test_a_menu_number_out_of_range_is_asked_again(door, number):
    reply = door.send(number)
    assert reply.startswith("Please reply with a number from 1 to 5")
    assert tools_called(door) == []
    assert door.conversation.guided_state["step"] == "menu"
    assert "Which service do you need?" in door.send("1")


def test_something_not_understood_gets_the_menu_again(door):
    assert door.send("asdfgh").startswith("Sorry, I didn't quite catch that.")
    assert "1. Book a visit" in door.replies[-1]
    assert door.send("hello").startswith("Hi!")


# --- services by what customers say -------------------------------------------------------------


def test_hvac_alone_lists_the_trades_services_instead_of_picking_the_emergency(door, shop):
    reply = door.send("hvac")
    assert reply.startswith("Which HVAC service do you need?")
    assert "1. HVAC Maintenance" in reply and "2. HVAC Repair" in reply and "3. Emergency HVAC" in reply
    assert door.conversation.guided_state["step"] == "book_service"
    assert "HVAC Repair. Which day would suit you?" in door.send("2")


def test_two_matching_services_are_listed_to_choose_from(door):
    reply = door.send("sink")
    assert reply.startswith("Which of these do you need?")
    assert "1. Drain Cleaning" in reply and "2. Leak Repair" in reply
    assert "Please reply with a number from 1 to 2" in door.send("3")
    assert "Leak Repair. Which day would suit you?" in door.send("the leaking one")


def test_urgent_words_lead_to_the_emergency_service_and_its_earliest_times(door):
    reply = door.send("no heat and it's freezing in here")
    assert reply.startswith("That sounds urgent, so let's find you the earliest visit: Emergency HVAC")
    # An hour's notice from 08:00 today, 30 minutes' travel: today's times.
    assert "Free times on Monday, November 16, 2026" in reply
    assert door.conversation.guided_state["service_id"] == "emergency-hvac"


def test_a_gas_smell_gets_safety_advice_before_anything_else(door, shop):
    reply = door.send("i smell gas in the basement, can someone come fix the furnace")
    assert reply.startswith("Safety first")
    assert "leave the house now" in reply and "911" in reply and "don't use your phone" in reply.lower()
    assert tools_called(door) == []
    # Then the customer chooses: a callback, flagged urgent for staff.
    assert "What phone number should our team call you back on?" in door.send("call me")
    door.send("647-555-0144")
    handoff = HandoffRequest.objects.get()
    assert handoff.urgent
    assert handoff.contact_phone == "+16475550144"


def test_after_the_gas_advice_book_goes_to_the_emergency_service(door):
    door.send("smells like rotten eggs")
    assert "Emergency HVAC" in door.send("book")
    assert door.conversation.guided_state["service_id"] == "emergency-hvac"


# --- times pick among the offered slots ------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "picked"),
    [
        ("9am", "9:00 AM"),
        ("2 pm", "2:00 PM"),
        ("the 8:30 one", "8:30 AM"),
        ("the earliest", "8:30 AM"),
        ("first one", "8:30 AM"),
        ("at 10", "10:00 AM"),
        ("3", "9:30 AM"),  # a number picks from the list
    ],
)
def test_a_time_picks_among_the_offered_slots_and_is_not_read_as_a_day(door, said, picked):
    door.send("furnace on wednesday")
    assert "What is your full name?" in door.send(said)
    assert door.conversation.guided_state["time"] == picked
    assert tools_called(door).count("resolve_date") == 1  # only "wednesday" went to the date resolver


def test_afternoon_narrows_the_offered_slots(door):
    door.send("furnace on wednesday")
    reply = door.send("afternoon")
    assert reply.startswith("In the afternoon: Free times on Wednesday, November 18, 2026:")
    assert "AM" not in reply.split(":", 1)[1].replace("a time like 9am", "")


def test_a_time_that_is_not_offered_or_a_number_out_of_range_is_asked_again(door):
    door.send("furnace on wednesday")
    assert door.send("7pm").startswith("Sorry, 7:00 PM isn't one of the free times on Wednesday, November 18, 2026.")
    assert door.send("12").startswith("Please reply with a number from 1 to 8")
    assert door.conversation.guided_state["step"] == "book_slot"


def test_another_day_at_the_time_step_offers_that_day(door):
    door.send("furnace on wednesday")
    assert "Free times on Thursday, November 19, 2026" in door.send("actually thursday")


def test_a_day_with_no_free_times_offers_the_next_free_day(door):
    # Carol, the only plumber, does not work on Saturdays although the business opens.
    reply = door.send("clogged drain on saturday")
    assert "Sorry, there are no free times on Saturday, November 21, 2026." in reply
    assert "The next free day is Monday, November 23, 2026." in reply
    assert "Free times on Monday, November 23, 2026" in reply


# --- days through the date resolver --------------------------------------------------------------


def test_a_closed_day_says_so_and_offers_the_next_open_day(door):
    reply = door.send("furnace on sunday")
    assert "closed" in reply.lower()
    assert "Shall I check Monday, November 23" in reply
    assert "Free times on Monday, November 23, 2026" in door.send("yes")


def test_an_ambiguous_day_lists_the_readings(door):
    # Said on a Monday, "next Friday" is this week's Friday or next week's.
    reply = door.send("furnace next friday")
    assert "Which day do you mean?" in reply
    assert "Friday, November 20" in reply and "Friday, November 27" in reply
    assert "Free times on Friday, November 27, 2026" in door.send("2")


def test_a_past_day_is_refused_with_the_resolvers_words(door):
    door.send("furnace")
    reply = door.send("last friday")
    assert "Friday, November 13, 2026 has already passed." in reply
    assert "Which other day would suit you?" in reply or "Shall I check" in reply


def test_words_that_are_no_day_are_asked_again_in_the_customers_terms(door):
    door.send("furnace")
    reply = door.send("whenever the moon is full")
    assert reply.startswith("Sorry, I couldn't tell which day you mean.")
    assert door.conversation.guided_state["step"] == "book_date"


# --- details, email, confirmation ------------------------------------------------------------------


def test_the_email_can_be_skipped_and_then_no_email_goes_out(door):
    door.send("furnace wednesday")
    door.send("1")
    readback = give_details(door, email="skip")
    assert "email the confirmation" not in readback
    assert "Shall I book it?" in readback
    door.send("yes")
    booking = Booking.objects.get()
    assert booking.customer.email == ""
    assert mail.outbox == []


def test_a_bad_phone_address_or_email_is_asked_again(door):
    door.send("furnace wednesday")
    door.send("1")
    door.send("Dana Whitfield")
    assert "Please type it with the area code" in door.send("12345")
    door.send("416-555-0123")
    assert "Please reply yes or no." in door.send("at home")
    door.send("nope")
    assert door.send("at home").startswith("Please give the street address with the house number")
    door.send("12 Queen St W")
    assert "Please type it again, or reply 'skip'" in door.send("dana at example dot com")
    assert "Shall I book it?" in door.send("dana@example.com")


def test_no_at_the_read_back_books_nothing(door):
    door.send("furnace wednesday")
    door.send("1")
    give_details(door)
    assert door.send("no").startswith("No problem, nothing was booked.")
    assert not Booking.objects.exists()


def test_a_slot_taken_meanwhile_is_offered_again_without_asking_the_details_twice(door, shop):
    door.send("furnace wednesday")
    door.send("1")  # 8:30 AM with Alice
    give_details(door)
    a_booking(shop, start=at("2026-11-18", "08:30"), technician=shop.alice)  # someone else was quicker
    reply = door.send("yes")
    assert reply.startswith("Sorry, that time was just taken. Free times on Wednesday, November 18, 2026")
    assert "Shall I book it?" in door.send("1")  # straight to the read-back
    door.send("yes")
    assert Booking.objects.count() == 2


@pytest.mark.parametrize("said", ["never mind", "cancel", "stop"])
def test_stop_in_the_middle_changes_nothing(door, said):
    door.send("furnace wednesday")
    assert door.send(said).startswith("No problem, I've stopped there and nothing was changed.")
    assert door.conversation.guided_state["step"] == "menu"
    assert not Booking.objects.exists()


# --- look up, cancel, move -------------------------------------------------------------------------


def test_look_up_by_menu_number(door, shop):
    booking = a_booking(shop, start=at("2026-11-18", "08:30"))
    assert "What is your booking number?" in door.send("2")
    assert "And the phone number on the booking?" in door.send(booking.number.lower())
    reply = door.send("(416) 555-0123")
    assert reply.startswith(f"{booking.number}: HVAC Repair with Alice T. on Wednesday November 18, 2026 at 8:30 AM")
    assert "(confirmed)" in reply


def test_a_wrong_phone_finds_nothing_and_asks_again(door, shop):
    booking = a_booking(shop, start=at("2026-11-18", "08:30"))
    door.send(f"where is my tech? {booking.number}")
    assert door.send("905-555-0100").startswith("Sorry, no booking matches that number and phone number.")
    assert door.conversation.guided_state["step"] == "booking_number"


def test_cancel_from_free_text_with_the_number_in_it(door, shop):
    booking = a_booking(shop, start=at("2026-11-18", "08:30"))
    assert "And the phone number on the booking?" in door.send(f"please cancel {booking.number}")
    assert "Do you want to cancel it?" in door.send("416-555-0123")
    assert f"Booking {booking.number} is cancelled." in door.send("yes")
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CANCELLED


def test_cancel_answered_no_keeps_the_booking(door, shop):
    booking = a_booking(shop, start=at("2026-11-18", "08:30"))
    door.send("3")
    door.send(booking.number)
    door.send("416-555-0123")
    assert door.send("no").startswith("Okay, the booking stays as it is.")
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED


def test_move_a_visit_with_number_and_phone_to_a_new_day_and_time(door, shop):
    booking = a_booking(shop, start=at("2026-11-18", "08:30"))
    assert "What is your booking number?" in door.send("i need to move my appointment")
    door.send(booking.number)
    reply = door.send("416-555-0123")
    assert reply.startswith(f"{booking.number}: HVAC Repair with Alice T. on Wednesday November 18, 2026 at 8:30 AM.")
    assert "Which day would you like instead?" in reply
    assert "Free times on Friday, November 20, 2026" in door.send("friday")
    confirm = door.send("10am")
    assert confirm == (
        f"Move booking {booking.number} from Wednesday November 18, 2026 at 8:30 AM to Friday, November 20, 2026 "
        "at 10:00 AM with Alice T.? (yes / no)"
    )
    done = door.send("yes")
    assert done.startswith(f"Done! Booking {booking.number} is moved to Friday November 20, 2026 at 10:00 AM")
    booking.refresh_from_db()
    assert booking.start == at("2026-11-20", "10:00")
    assert "reschedule_booking" in tools_called(door)


def test_move_with_the_number_and_day_in_one_message_and_menu_four(door, shop):
    booking = a_booking(shop, start=at("2026-11-18", "08:30"))
    assert "Move a visit" in door.greeting
    door.send(f"reschedule {booking.number} to thursday")
    reply = door.send("416-555-0123")
    assert "Free times on Thursday, November 19, 2026" in reply
    door.send("2")
    assert door.send("no").startswith("Okay, your visit stays on Wednesday November 18, 2026 at 8:30 AM.")
    booking.refresh_from_db()
    assert booking.start == at("2026-11-18", "08:30")


def test_a_cancelled_booking_cannot_be_moved(door, shop):
    booking = a_booking(shop, start=at("2026-11-18", "08:30"))
    booking.status = BookingStatus.CANCELLED
    booking.save(update_fields=["status"])
    door.send("4")
    door.send(booking.number)
    assert "That visit is cancelled, so it can't be changed here." in door.send("416-555-0123")


# --- a person ----------------------------------------------------------------------------------------


def test_talk_to_a_person_creates_a_handoff_that_shows_in_the_staff_queue(door, admin_client):
    assert door.send("5") == "Of course. What phone number should our team call you back on?"
    assert door.send("not a phone").startswith("That doesn't look like a phone number.")
    reply = door.send("416-555-0188")
    handoff = HandoffRequest.objects.get()
    assert reply.startswith("Thanks! I've asked our team to call you back at (416) 555-0188 during business hours.")
    assert f"Your reference is {door.conversation.number}-H{handoff.pk}." in reply
    assert handoff.contact_phone == "+14165550188"
    assert not handoff.urgent

    queue = admin_client.get(reverse("admin:chatdesk_handoffrequest_changelist")).content.decode()
    assert door.conversation.number in queue
    assert "Waiting" in queue
    assert "(416) 555-0188" in queue


def test_asking_for_a_real_person_in_free_text_keeps_what_they_said(door):
    door.send("can i talk to a real person about my warranty")
    door.send("416-555-0188")
    assert HandoffRequest.objects.get().reason.endswith("can i talk to a real person about my warranty")


def test_asking_for_a_person_in_the_middle_of_booking_is_heard(door):
    door.send("furnace")
    assert "What phone number should our team call you back on?" in door.send("can i speak to a human")


# --- the remaining branches ------------------------------------------------------------------------


def test_a_day_beyond_the_booking_horizon_is_refused_with_the_resolvers_words(door):
    door.send("furnace")
    reply = door.send("march 30")
    assert "March 30, 2027" in reply
    assert door.conversation.guided_state["step"] in ("book_date", "day_choice")
    assert "Free times on" not in reply


def test_no_to_the_offered_next_open_day_asks_for_another(door):
    door.send("furnace on sunday")
    assert door.send("no").startswith("Which day would suit you instead?")
    assert "Free times on Tuesday, November 17, 2026" in door.send("tomorrow")


def test_an_unclear_service_answer_and_an_unclear_confirmation_are_asked_again(door):
    door.send("1")
    assert door.send("something else").startswith("Sorry, which one?")
    door.send("HVAC Repair")
    door.send("wednesday")
    door.send("1")
    give_details(door)
    assert door.send("maybe").startswith("Please reply yes to book it, or no to start over.")
    assert not Booking.objects.exists()


def test_a_name_that_is_no_name_is_asked_again(door):
    door.send("furnace wednesday")
    door.send("1")
    assert door.send("416-555-0123").startswith("Sorry, what is your name?")
    assert door.send("my name is Dana Whitfield") == "Thanks, Dana. What phone number can the technician reach you on?"


def test_a_booking_the_business_refuses_sends_the_customer_to_a_person(door, settings):
    settings.CHAT_MAX_BOOKINGS = 0
    door.send("furnace wednesday")
    door.send("1")
    give_details(door)
    reply = door.send("yes")
    assert reply.startswith("Sorry, I couldn't do that here. Please call us at (416) 555-0100")
    assert not Booking.objects.exists()
    assert "What phone number should our team call you back on?" in door.send("5")


def test_a_cancelled_booking_cannot_be_cancelled_again(door, shop):
    booking = a_booking(shop, start=at("2026-11-18", "08:30"))
    booking.status = BookingStatus.CANCELLED
    booking.save(update_fields=["status"])
    door.send(f"cancel {booking.number}")
    assert "That visit is cancelled, so it can't be changed here." in door.send("416-555-0123")


def test_a_phone_in_the_request_for_a_person_is_used_at_once(door):
    reply = door.send("please call me back at 416-555-0188, it's about an invoice")
    assert reply.startswith("Thanks! I've asked our team to call you back at (416) 555-0188")
    assert HandoffRequest.objects.get().contact_phone == "+14165550188"


def test_a_person_without_a_phone_gets_ours(door, settings):
    door.send("talk to a person")
    assert door.send("skip").startswith("No problem. You can also call us at (416) 555-0100.")
    assert not HandoffRequest.objects.exists()


def test_thanks_is_answered_kindly(door):
    assert door.send("thanks!").startswith("You're welcome! Anything else?")


def test_no_after_the_gas_advice_ends_kindly(door):
    door.send("i smell gas")
    assert door.send("no").startswith("Okay. Please stay safe.")
    assert tools_called(door) == []


def test_after_several_wrong_lookups_the_customer_is_told_to_call(door, shop, settings):
    settings.CHAT_LOOKUP_FAILURES_PER_CONVERSATION = 2
    booking = a_booking(shop, start=at("2026-11-18", "08:30"))
    door.send(f"check my booking {booking.number}")
    assert door.send("905-555-0100").startswith("Sorry, no booking matches")
    door.send(booking.number)
    assert door.send("905-555-0101").startswith("Sorry, no booking matches")
    door.send(booking.number)
    reply = door.send("416-555-0123")  # even the right phone, once locked
    assert reply.startswith("For your security, booking lookups are paused")
    assert "(416) 555-0100" in reply


def test_a_weekday_that_does_not_match_the_date_is_said_and_both_days_offered(door):
    door.send("furnace")
    reply = door.send("friday the 19th")
    assert reply.startswith("November 19, 2026 is a Thursday, not a Friday. Which day do you mean?")
    assert "1. Thursday, November 19, 2026" in reply and "2. Friday, November 20, 2026" in reply
    assert "Free times on Friday, November 20, 2026" in door.send("2")


def test_the_resolvers_note_on_how_it_read_a_date_is_shown(door):
    door.send("furnace")
    assert door.send("12/3").startswith("I read that as month/day: Thursday, December 3, 2026. Free times on")


def test_a_new_urgent_problem_in_the_middle_of_booking_starts_over_with_it(door):
    door.send("furnace on wednesday")
    reply = door.send("wait, the faucet just burst, water everywhere!!")
    assert reply.startswith("That sounds urgent")
    assert door.conversation.guided_state["urgent"] is True
    assert door.conversation.guided_state["service_id"] == "leak-repair"  # no plumbing emergency service here
