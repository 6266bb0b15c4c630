"""Real-sounding customer messages and what the guided chat should understand from each.

Written as customers type (lower case, typos, slang, run-on sentences), against the demo
business of `manage.py seed_demo` (its services and their keywords). Each entry says:

- intent: book / lookup / reschedule / cancel / human, or None for no request ("hi");
- service: the one service meant; or services: the ones to ask between; or trade: a trade
  named alone (the customer is shown its services); none of them when nothing was named;
- date: the words about the day passed to the date resolver, or None;
- urgent (default False), and where it matters gas, part (of day) and time.

`today` is a Monday in November (heating season) unless an entry says otherwise.
Scored by tests/test_guided_understanding.py and bench/guided_corpus.py.
"""

from __future__ import annotations

from datetime import date

from bookings.service_matching import ServiceTerms, split_keywords

TODAY = date(2026, 11, 16)
SUMMER = date(2026, 7, 15)


def demo_catalogue() -> list[ServiceTerms]:
    """The seed_demo services with their keywords, without a database."""
    from bookings.demo import KEYWORDS, SERVICES, TRADES

    terms = [
        ServiceTerms(
            service_id=slug,
            name=name,
            trade=trade,
            trade_name=TRADES[trade][0],
            emergency=emergency,
            price=pmin,
            keywords=split_keywords(KEYWORDS[slug]),
        )
        for slug, (trade, name, _desc, _minutes, pmin, _pmax, _before, _after, _notice, emergency) in SERVICES.items()
    ]
    return sorted(terms, key=lambda s: (s.trade_name, s.name))


def case(text: str, intent: str | None, **expected: object) -> dict:
    return {"text": text, "intent": intent, **expected}


CORPUS: list[dict] = [
    # --- booking, HVAC --------------------------------------------------------------------
    case(
        "hi my furnace is banging can someone come tomorrow morning",
        "book",
        service="hvac-repair",
        date="tomorrow",
        part="morning",
    ),
    case("My furnace stopped working, can someone come tomorrow?", "book", service="hvac-repair", date="tomorrow"),
    case("furnace", "book", service="hvac-repair"),
    case("furnace repair", "book", service="hvac-repair"),
    case("heating", "book", service="hvac-repair"),
    case("ac not workin", "book", service="hvac-repair"),
    case("my AC is blowing warm air", "book", service="hvac-repair"),
    case("air conditioner wont turn on", "book", service="hvac-repair"),
    case("need my furnace tuned up before winter", "book", service="hvac-maintenance"),
    case("furnace tune up please", "book", service="hvac-maintenance"),
    case("annual maintenance on my furnace", "book", service="hvac-maintenance"),
    case("can you guys do a furnace inspection", "book", service="hvac-maintenance"),
    case("i need a new furnace installed", "book", service="hvac-installation"),
    case("how much to replace my air conditioner", "book", service="hvac-installation"),
    case("looking to get a quote on a new ac unit", "book", service="hvac-installation"),
    case("thermostat is blank and house is cold", "book", service="hvac-repair"),
    case("no heat!! its freezing in here", "book", service="emergency-hvac", urgent=True),
    case("we have no heat and a baby at home", "book", service="emergency-hvac", urgent=True),
    case("heat pump making a weird noise", "book", service="hvac-repair"),
    case("boiler is leaking", "book", services=["hvac-repair", "leak-repair"]),
    case("my radiator is cold", "book", service="hvac-repair"),
    case("the vents are blowing cold air", "book", service="hvac-repair"),
    case("furnace making a burning smell", "book", service="emergency-hvac", urgent=True),
    case("theres no heat in the house", "book", service="emergency-hvac", urgent=True),
    case("the heat isnt working", "book", service="emergency-hvac", urgent=True),
    case("furnace died and its freezing", "book", service="emergency-hvac", urgent=True),
    case("got no heat since last night", "book", service="emergency-hvac", urgent=True),
    case("my furnce is making a loud noise", "book", service="hvac-repair"),
    case("furnance wont turn on", "book", service="hvac-repair"),
    case("air conditionner broke", "book", service="hvac-repair"),
    case("a/c is out", "book", service="hvac-repair"),
    case("furnace is kaput", "book", service="hvac-repair"),
    case("yo my ac is trippin", "book", service="hvac-repair"),
    case("need heat fixed asap", "book", service="hvac-repair", time="earliest"),
    case("my husband says the furnace filter needs changing, can you do that", "book", service="hvac-maintenance"),
    case("we're moving into a new house and need the furnace checked", "book", service="hvac-maintenance"),
    case("thermostat says heat on but nothing happens", "book", service="hvac-repair"),
    case("pilot light keeps going out", "book", service="hvac-repair"),
    case("central air making a humming sound", "book", service="hvac-repair"),
    case("Furnace is short cycling every few minutes", "book", service="hvac-repair"),
    case("install a heat pump", "book", service="hvac-installation"),
    case("blower runs nonstop", "book", service="hvac-repair"),
    case("need ac serviced before summer", "book", service="hvac-maintenance"),
    case("squealing noise from furnace when it starts", "book", service="hvac-repair"),
    # --- booking, plumbing ----------------------------------------------------------------
    case("water everywhere under my sink!!", "book", service="emergency-plumbing", urgent=True),
    case("my kitchen sink is clogged", "book", service="drain-cleaning"),
    case("toilet keeps clogging", "book", service="drain-cleaning"),
    case("bathtub draining super slow", "book", service="drain-cleaning"),
    case("shower drain backed up, gross", "book", service="drain-cleaning"),
    case("main sewer line backing up into basement", "book", service="emergency-plumbing", urgent=True),
    case("leaky faucet in the bathroom", "book", service="leak-repair"),
    case("dripping tap driving me nuts", "book", service="leak-repair"),
    case("pipe under the sink is leaking", "book", service="leak-repair"),
    case("burst pipe in the basement!!!", "book", service="emergency-plumbing", urgent=True),
    case("basement is flooding help", "book", service="emergency-plumbing", urgent=True),
    case("water coming through the ceiling", "book", service="emergency-plumbing", urgent=True),
    case("no hot water since this morning", "book", service="water-heater-install"),
    case("hot water tank is leaking", "book", service="water-heater-install"),
    case("need a new water heater", "book", service="water-heater-install"),
    case("want to switch to a tankless water heater", "book", service="water-heater-install"),
    case("toilet running all night", "book", service="leak-repair"),
    case("the toilet is overflowing", "book", service="drain-cleaning"),
    case("garbage disposal jammed", "book", service="drain-cleaning"),
    case("need a plumber", "book", trade="plumbing"),
    case("plumber pls", "book", trade="plumbing"),
    case("toliet clogged again ugh", "book", service="drain-cleaning"),
    case("sink is clogged up bad", "book", service="drain-cleaning"),
    case("leaking pipe in basment", "book", service="leak-repair"),
    case("watr heater busted", "book", service="water-heater-install"),
    case("tenant reports no hot water and a leak under the tank", "book", service="water-heater-install"),
    case("sink", "book", services=["drain-cleaning", "leak-repair"]),
    case("the drain in the laundry room smells and is slow", "book", service="drain-cleaning"),
    case("frozen pipes in the garage", "book", service="emergency-plumbing", urgent=True),
    case("shut off valve wont close all the way", "book", service="leak-repair"),
    case("theres a wet spot on the ceiling below the bathroom", "book", service="leak-repair"),
    case("sewage coming up through the floor drain", "book", service="emergency-plumbing", urgent=True),
    # --- booking, electrical --------------------------------------------------------------
    case("i need an electrician", "book", trade="electrical"),
    case("outlet in kitchen stopped working", "book", service="outlet-repair"),
    case("half my outlets are dead", "book", service="outlet-repair"),
    case("light switch sparks when i flip it", "book", service="emergency-electrical", urgent=True),
    case("breaker keeps tripping", "book", service="outlet-repair"),
    case("need to upgrade my panel to 200 amp", "book", service="panel-upgrade"),
    case("old fuse box needs replacing", "book", service="panel-upgrade"),
    case("install an ev charger in my garage", "book", service="ev-charger-install"),
    case("can you put in a tesla charger", "book", service="ev-charger-install"),
    case("lights keep flickering in the living room", "book", service="outlet-repair"),
    case("burning smell from an outlet", "book", service="emergency-electrical", urgent=True),
    case("GFCI in bathroom wont reset", "book", service="outlet-repair"),
    case("outlets not working and i smell burning", "book", service="emergency-electrical", urgent=True),
    case("plug is loose and sparking", "book", service="emergency-electrical", urgent=True),
    case("electrical outlet sparkin", "book", service="emergency-electrical", urgent=True),
    case("dimmer switch buzzing", "book", service="outlet-repair"),
    case("just bought an electric car, need a charger put in", "book", service="ev-charger-install"),
    case("got a shock from the light switch", "book", service="emergency-electrical", urgent=True),
    # --- trades named alone, and choices --------------------------------------------------
    case("hvac", "book", trade="hvac"),
    case("HVAC service", "book", service="hvac-maintenance"),  # servicing is the maintenance visit
    case("heating and cooling", "book", trade="hvac"),
    case("electrician please", "book", trade="electrical"),
    case("install", "book", services=["hvac-installation", "water-heater-install", "ev-charger-install"]),
    case(
        "Hi there, I was wondering if you could help me, our upstairs toilet keeps running and the downstairs one "
        "is clogged",
        "book",
        services=["drain-cleaning", "leak-repair"],
    ),
    case("need the ac looked at and also a couple outlets replaced", "book", services=["hvac-repair", "outlet-repair"]),
    case(
        "its an emergency",
        "book",
        services=["emergency-hvac", "emergency-electrical", "emergency-plumbing"],
        urgent=True,
    ),
    # --- gas: safety first ----------------------------------------------------------------
    case("i smell gas", "book", service="emergency-hvac", urgent=True, gas=True),
    case("smells like rotten eggs in the basement", "book", service="emergency-hvac", urgent=True, gas=True),
    case("gas smell near furnace what do i do", "book", service="emergency-hvac", urgent=True, gas=True),
    case("I think theres a gas leak", "book", service="emergency-hvac", urgent=True, gas=True),
    case("smell of gas in the kitchen, stove is off", "book", service="emergency-hvac", urgent=True, gas=True),
    # --- booking with a day ---------------------------------------------------------------
    case("can someone look at my ac on friday", "book", service="hvac-repair", date="friday"),
    case("need a plumber next tuesday afternoon", "book", trade="plumbing", date="next tuesday", part="afternoon"),
    case("drain cleaning dec 18", "book", service="drain-cleaning", date="dec 18"),
    case("book hvac maintenance for the 18th", "book", service="hvac-maintenance", date="the 18th"),
    case("furnace checkup friday the 18th?", "book", service="hvac-maintenance", date="friday the 18th"),
    case("electrician this weekend?", "book", trade="electrical", date="this weekend"),
    case("is anyone free today for a leaky pipe", "book", service="leak-repair", date="today"),
    case("could u send someone in 2 days for my toilet", "book", service="drain-cleaning", date="in 2 days"),
    case("ac repair a week from friday", "book", service="hvac-repair", date="a week from friday"),
    case(
        "book me for the day after tomorrow, furnace is noisy",
        "book",
        service="hvac-repair",
        date="the day after tomorrow",
    ),
    case("tomorrow", "book", date="tomorrow"),
    case(
        "first monday of january for a furnace tune up",
        "book",
        service="hvac-maintenance",
        date="first monday of january",
    ),
    case("can you come christmas eve? no heat", "book", service="emergency-hvac", date="christmas eve", urgent=True),
    case("sometime next week for a drain cleaning", "book", service="drain-cleaning", date="sometime next week"),
    case("early next week, outlet repair", "book", service="outlet-repair", date="early next week"),
    case("12/18 works for the panel upgrade", "book", service="panel-upgrade", date="12/18"),
    case("18 december please, ev charger install", "book", service="ev-charger-install", date="18 december"),
    case(
        "in a couple of days is fine, leak under kitchen sink",
        "book",
        service="leak-repair",
        date="in a couple of days",
    ),
    case("the friday after next for my ac", "book", service="hvac-repair", date="the friday after next"),
    case(
        "this saturday morning for a clogged toilet",
        "book",
        service="drain-cleaning",
        date="this saturday",
        part="morning",
    ),
    case("monday at 9am furnace service", "book", service="hvac-maintenance", date="monday", time="09:00"),
    case("asap! no hot water", "book", service="water-heater-install", time="earliest"),
    case("tonight if possible, toilet overflowing", "book", service="drain-cleaning", date="tonight"),
    case("next thurs for ac maintenance", "book", service="hvac-maintenance", date="next thursday"),
    case("2 weeks from now to install a new furnace", "book", service="hvac-installation", date="2 weeks from now"),
    case("on the 3rd, drain", "book", service="drain-cleaning", date="the 3rd"),
    case(
        "could somebody come out wednesday for my electrical panel",
        "book",
        service="panel-upgrade",
        date="wednesday",
    ),
    case(
        "after the weekend is best for the water heater",
        "book",
        service="water-heater-install",
        date="after the weekend",
    ),
    case("end of the week, furnace clean", "book", service="hvac-maintenance", date="end of the week"),
    case("boxing day??", "book", date="boxing day"),
    case(
        "plz send sum1 2morrow for my drain",
        "book",
        service="drain-cleaning",
        date="tomorrow",
    ),
    case(
        "hey so my basement drain is backing up and it smells really bad can you send someone today or tomorrow",
        "book",
        service="drain-cleaning",
        date="today",
    ),
    case(
        "hello i need to book a furnace repair for next monday morning please my name is john",
        "book",
        service="hvac-repair",
        date="next monday",
        part="morning",
    ),
    case(
        "Good morning! Could I book someone to look at our AC sometime Thursday?",
        "book",
        service="hvac-repair",
        date="thursday",
    ),
    case("tmrw afternoon ok for the outlet?", "book", service="outlet-repair", date="tomorrow", part="afternoon"),
    case("wensday for the leak", "book", service="leak-repair", date="wednesday"),
    case("can u come tmr at 2 for my sink drain", "book", service="drain-cleaning", date="tomorrow", time="14:00"),
    case(
        "dec 21 around 10 for the ev charger quote", "book", service="ev-charger-install", date="dec 21", time="10:00"
    ),
    case("i want to book an appointment", "book"),
    case("book", "book"),
    case("need someone to come out", "book"),
    case("can i schedule a visit", "book"),
    case("can you send a tech tomorrow", "book", date="tomorrow"),
    case("I'd like to get someone out to look at something", "book"),
    case("the electrician that came last week didnt finish, need someone back", "book", trade="electrical"),
    case("asap please", "book", time="earliest"),
    case("whats the earliest you can come", "book", time="earliest"),
    # --- look up --------------------------------------------------------------------------
    case("what time is my appointment", "lookup"),
    case("when is the technician coming", "lookup"),
    case("check my booking", "lookup"),
    case("can you look up my booking BK-2026-000123", "lookup"),
    case("did my booking go through?", "lookup"),
    case("is my appointment still on for tomorrow", "lookup", date="tomorrow"),
    case("status of my repair", "lookup"),
    case("whens my plumber coming", "lookup", trade="plumbing"),
    case("confirm my appointment", "lookup"),
    case("i have a booking number BK-2026-000042", "lookup"),
    case("where is my tech??", "lookup"),
    case("can you tell me what day i booked", "lookup"),
    case("BK-2026-000077", "lookup"),
    case("lookup booking", "lookup"),
    # --- move (reschedule) ----------------------------------------------------------------
    case("i need to move my appointment", "reschedule"),
    case("can I reschedule", "reschedule"),
    case("need to change the time of my booking", "reschedule"),
    case("can we push my visit to next week", "reschedule", date="next week"),
    case("something came up, can we do friday instead", "reschedule", date="friday"),
    case("i cant make it tomorrow can we do another day", "reschedule", date="tomorrow"),
    case("reschedule BK-2026-000123 to thursday", "reschedule", date="thursday"),
    case("postpone my furnace appointment", "reschedule", service="hvac-repair"),
    case("move my booking to the 18th", "reschedule", date="the 18th"),
    case("different day for my appt please", "reschedule"),
    case("rescheduel", "reschedule"),
    case("change my appointment date", "reschedule"),
    case("need a new date for my visit", "reschedule"),
    case("Can I move it to later in the day?", "reschedule"),
    # --- cancel ---------------------------------------------------------------------------
    case("cancel my appointment", "cancel"),
    case("i want to cancel", "cancel"),
    case("please cancel BK-2026-000123", "cancel"),
    case("don't need the plumber anymore, cancel it", "cancel", trade="plumbing"),
    case("cancle my booking", "cancel"),
    case("we fixed it ourselves, call off the visit", "cancel"),
    case("no longer need the appointment", "cancel"),
    case("cancel tomorrows visit", "cancel", date="tomorrow"),
    case("pls cancel, found someone else", "cancel"),
    # --- a person -------------------------------------------------------------------------
    case("can i talk to a real person", "human"),
    case("talk to a person", "human"),
    case("human please", "human"),
    case("agent", "human"),
    case("i want to speak with someone", "human"),
    case("can someone call me back", "human"),
    case("this bot is useless, get me a manager", "human"),
    case("speak to a representative", "human"),
    case("i have a question about my bill", "human"),
    case("i want to make a complaint", "human"),
    case("operator", "human"),
    case("can i get a call back about a quote for a new furnace", "human", service="hvac-installation"),
    case("is there a live person i can chat with", "human"),
    # --- no request yet -------------------------------------------------------------------
    case("hi", None),
    case("hello?", None),
    case("thanks", None),
    case("what are your hours", None),
    case("asdfgh", None),
    case("ok", None),
    case("Good afternoon", None),
    # --- out of season --------------------------------------------------------------------
    case("no heat in the house", "book", service="hvac-repair", today=SUMMER),
    case("ac is out and its 35 degrees in here", "book", service="hvac-repair", today=SUMMER),
]


def misses(entry: dict, catalogue: list[ServiceTerms]) -> list[str]:
    """What `understand` got wrong for one entry (empty when it understood it)."""
    from chatdesk.assistant.understanding import understand

    got = understand(entry["text"], catalogue, today=entry.get("today", TODAY))
    wrong = []

    def check(what: str, expected: object, actual: object) -> None:
        if expected != actual:
            wrong.append(f"{what}: expected {expected!r}, got {actual!r}")

    check("intent", entry["intent"], got.intent)
    if "service" in entry:
        check("service", (entry["service"],), got.services)
    elif "services" in entry:
        check("services", sorted(entry["services"]), sorted(got.services))
    elif "trade" in entry:
        check("trade", (entry["trade"], ()), (got.trade, got.services))
    else:
        check("service", ((), None), (got.services, got.trade))
    check("date", entry.get("date"), got.date_phrase)
    check("urgent", entry.get("urgent", False), got.urgent)
    check("gas", entry.get("gas", False), got.gas)
    for key, attribute in (("part", "part_of_day"), ("time", "time")):
        if key in entry:
            check(key, entry[key], getattr(got, attribute))
    return wrong


def score(corpus: list[dict] | None = None) -> tuple[float, list[tuple[str, list[str]]]]:
    """(share understood, [(text, what was wrong), ...])."""
    corpus = ALL if corpus is None else corpus
    catalogue = demo_catalogue()
    failed = [(e["text"], m) for e in corpus if (m := misses(e, catalogue))]
    return 1 - len(failed) / len(corpus), failed


# Written after the first round of keyword tuning and scored once before any further change
# (the held-out figure in the report); then kept in the corpus like the rest.
HELD_OUT: list[dict] = [
    case("my furnace is making a clicking sound but no heat comes out", "book", service="emergency-hvac", urgent=True),
    case("AC unit outside is frozen over", "book", service="hvac-repair"),
    case("can i get my ducts cleaned", "book", service="hvac-maintenance"),
    case("thermostat needs replacing", "book", service="hvac-repair"),
    case("humidifier on furnace leaking", "book", service="hvac-repair"),
    case("want a quote for central air installation", "book", service="hvac-installation"),
    case("furnace is 25 years old, time for a new one", "book", service="hvac-installation"),
    case("the upstairs is way hotter than downstairs", "book"),
    case("kitchen faucet wont stop dripping", "book", service="leak-repair"),
    case("clogged bathroom sink, water wont go down", "book", service="drain-cleaning"),
    case("tub is backing up when i run the washer", "book", service="drain-cleaning"),
    case("water heater making popping noises", "book", service="water-heater-install"),
    case("leak in the ceiling of the kitchen", "book", service="leak-repair"),
    case("pipes are frozen!", "book", service="emergency-plumbing", urgent=True),
    case("toilet wont flush", "book", service="drain-cleaning"),
    case("we need a plumber friday morning", "book", trade="plumbing", date="friday", part="morning"),
    case("outlet by the bathroom sink stopped working", "book", service="outlet-repair"),
    case("power keeps cutting out in the basement", "book", service="outlet-repair"),
    case("want to add a level 2 charger for my new car", "book", service="ev-charger-install"),
    case("panel is buzzing and warm", "book", service="panel-upgrade"),
    case("my lights dim when the ac kicks on", "book", services=["hvac-repair", "outlet-repair"]),
    case("smoke coming out of the outlet!!", "book", service="emergency-electrical", urgent=True),
    case("can an electrician come tomorrow at 3", "book", trade="electrical", date="tomorrow", time="15:00"),
    case(
        "next friday at 10am for a furnace tune-up",
        "book",
        service="hvac-maintenance",
        date="next friday",
        time="10:00",
    ),
    case("december 2nd for drain cleaning", "book", service="drain-cleaning", date="december 2nd"),
    case("is saturday possible? leaking pipe", "book", service="leak-repair", date="saturday"),
    case(
        "need someone out to look at the water heater this week",
        "book",
        service="water-heater-install",
        date="this week",
    ),
    case("when will the plumber arrive", "lookup", trade="plumbing"),
    case("what's the status of BK-2026-000311", "lookup"),
    case("i booked something last week and forgot the time", "lookup"),
    case("please reschedule my visit", "reschedule"),
    case("can we do tuesday instead of monday", "reschedule", date="tuesday"),
    case("i need to change my booking to the afternoon", "reschedule", part="afternoon"),
    case("cancel the furnace repair", "cancel", service="hvac-repair"),
    case("i dont need the visit anymore thanks", "cancel"),
    case("please cancel my visit for friday", "cancel", date="friday"),
    case("let me talk to a human", "human"),
    case("can your office call me", "human"),
    case("i got charged twice", "human"),
    case("hey", None),
]

ALL = CORPUS + HELD_OUT
