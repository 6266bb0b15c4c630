"""What the guided chat understands from free text: scored on the corpus, plus the rules one by one.

chatdesk.assistant.understanding.understand() is pure, so these run without a database against the
demo business's services and keywords (tests/guided_corpus.py).
"""

from __future__ import annotations

import pytest

from bookings.service_matching import match_services, similar, stem
from chatdesk.assistant.understanding import understand
from tests.guided_corpus import ALL, HELD_OUT, SUMMER, TODAY, demo_catalogue, score

CATALOGUE = demo_catalogue()


def heard(text: str, today=TODAY):
    return understand(text, CATALOGUE, today=today)


def test_the_corpus_is_at_least_150_real_sounding_messages():
    assert len(ALL) >= 150
    assert len({e["text"] for e in ALL}) == len(ALL)  # no duplicates padding the count
    intents = {e["intent"] for e in ALL}
    assert intents == {"book", "lookup", "reschedule", "cancel", "human", None}


def test_at_least_95_percent_of_the_corpus_is_understood():
    share, failed = score()
    assert share >= 0.95, "\n".join(f"{text}: {wrong}" for text, wrong in failed)


def test_the_later_written_batch_is_understood_too():
    # Written after the first tuning round; a drop here means tuning to the corpus.
    share, failed = score(HELD_OUT)
    assert share >= 0.85, "\n".join(f"{text}: {wrong}" for text, wrong in failed)


@pytest.mark.parametrize(("text", "number"), [("1", 1), ("10", 10), ("42", 42), (" 3. ", 3), ("option 2", 2)])
def test_a_bare_number_is_a_number_and_nothing_else(text, number):
    understood = heard(text)
    assert understood.number == number
    assert understood.intent is None and understood.date_phrase is None and understood.time is None


@pytest.mark.parametrize(
    ("text", "time"),
    [
        ("9am", "09:00"),
        ("2 pm", "14:00"),
        ("the 8:30 one", "08:30"),
        ("at 10", "10:00"),
        ("around 3", "15:00"),
        ("12 pm", "12:00"),
        ("the earliest", "earliest"),
        ("the last one", "latest"),
        ("asap", "earliest"),
    ],
)
def test_times_are_times_not_days(text, time):
    understood = heard(text)
    assert understood.time == time
    assert understood.date_phrase is None


def test_a_trade_alone_names_the_trade_and_no_service():
    understood = heard("hvac")
    assert (understood.trade, understood.services) == ("hvac", ())
    assert heard("need a plumber").trade == "plumbing"


def test_no_heat_is_urgent_in_the_heating_season_only():
    assert heard("no heat in the house").service == "emergency-hvac"
    summer = heard("no heat in the house", today=SUMMER)
    assert (summer.service, summer.urgent) == ("hvac-repair", False)


def test_not_an_emergency_is_not_urgent():
    assert not heard("leaky faucet, not an emergency").urgent


def test_gas_wins_over_a_leak_word():
    understood = heard("I think theres a gas leak")
    assert understood.gas and understood.service == "emergency-hvac"


def test_past_words_are_context_not_the_day_wanted():
    assert heard("no hot water since yesterday").date_phrase is None
    assert heard("the tech came last friday and it broke again").date_phrase is None
    assert heard("can you come friday").date_phrase == "friday"


def test_references_and_contacts_are_picked_out():
    understood = heard("cancel bk 2026 123, my number is (416) 555-0123, dana@example.com")
    assert understood.intent == "cancel"
    assert understood.booking_number == "BK-2026-000123"
    assert understood.phone == "(416) 555-0123"
    assert understood.email == "dana@example.com"
    assert understood.date_phrase is None and understood.time is None


@pytest.mark.parametrize(
    ("said", "known", "same"),
    [
        ("furnce", "furnace", True),
        ("toliet", "toilet", True),
        ("drian", "drain", True),
        ("later", "water", False),  # one substitution in a short word is another word
        ("train", "drain", False),
        ("ac", "ad", False),
    ],
)
def test_typos_are_forgiven_only_where_they_cannot_be_another_word(said, known, same):
    assert similar(said, known) is same


def test_plurals_and_verb_endings_meet_their_keyword():
    assert stem("outlets") == stem("outlet")
    assert stem("clogged") == stem("clogging") == stem("clog")
    assert stem("sparkin") == stem("sparks")


def test_the_longest_phrase_wins_and_shared_words_count_less():
    assert match_services("water heater", CATALOGUE).services == ("water-heater-install",)
    assert set(match_services("sink", CATALOGUE).services) == {"drain-cleaning", "leak-repair"}
    assert match_services("leak under the sink", CATALOGUE).services == ("leak-repair",)
