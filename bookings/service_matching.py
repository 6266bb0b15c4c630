"""Which service a customer means, from their own words ("my furnace is banging", "toliet clogged").

Each service lists what customers call it in `Service.keywords` (staff edit them in the
admin; seed_demo fills them). Matching forgives case, plurals, verb endings ("clogged",
"leaking", "sparkin") and a small typo, and prefers the longest phrase: "water heater"
is one match for the water heater service, not "heater" for the furnace. A word listed for
several services counts for each a share of one: "sink" alone makes a tie (the customer
is asked which one), "leak under the sink" goes to Leak Repair. A trade named on its own
("hvac", "a plumber") matches no service but names the trade, so the customer is shown
that trade's services rather than one picked for them.

`match_services` is pure (text and catalogue in, match out) so it can be measured against
a corpus (tests/guided_corpus.py) and reused by any door; `services_matching` reads the
catalogue from the database.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bookings.models import Service

# Words that carry no meaning for matching ("my", "the", "is"): dropped from both sides, so
# "replace my furnace" matches the keyword "replace furnace". "no", "not", "new", "up"
# and "hot" stay: "no heat", "new furnace", "backed up", "hot water".
STOPWORDS = frozenset(
    """a an the my our your his her their its it is are was were be been being am im i me we you u
    of in on at to for from with and or but so this that these those there theres here just really
    very some any please pls plz can could would will should do does did have has had got get
    getting also again still too like about need needs want wants someone somebody anyone guy guys
    one ones thing stuff kind sort keep keeps kept""".split()
)

# How people name a trade when they do not name a service. The trade's own name and slug
# always count; these are the other everyday words.
TRADE_WORDS = {
    "hvac": ("hvac", "heating and cooling", "heating cooling", "hvac tech", "hvac technician", "hvac company"),
    "plumbing": ("plumbing", "plumber", "plumbers"),
    "electrical": ("electrical", "electrician", "electricians", "electric company"),
}


@dataclass(frozen=True)
class ServiceTerms:
    """A service as the matcher and the guided chat need it."""

    service_id: str
    name: str
    trade: str
    trade_name: str
    emergency: bool
    price: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class ServiceMatch:
    # The best candidates, in catalogue order: one is a clear match, several a tie to ask about.
    services: tuple[str, ...] = ()
    # The trade of the candidates when they share one, or the trade named on its own.
    trade: str | None = None


def normalize(text: str) -> str:
    """Lower case, "a/c" as "ac", no apostrophes, punctuation as spaces."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"\ba\s*/\s*c\b|\ba\.c\.?(?=\s|$)", "ac", text)
    text = text.replace("&", " and ").replace("'", "")
    text = re.sub(r"[^a-z0-9]+", " ", text)
    return " ".join(text.split())


def stem(word: str) -> str:
    """A crude stem, the same on both sides: plurals and -ing/-ed/-in' endings off."""
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return stem(word[:-1]) if word[:-1].endswith(("ing", "ed")) else word[:-1]
    for ending, shortest in (("ing", 6), ("in", 6), ("ed", 5)):
        if word.endswith(ending) and len(word) >= shortest:
            base = word[: -len(ending)]
            # "clogging" -> "clogg" -> "clog", "tripped" -> "tripp" -> "trip"
            if len(base) > 3 and base[-1] == base[-2] and base[-1] not in "lsz":
                base = base[:-1]
            return base
    return word


def tokens(text: str) -> list[str]:
    return [stem(w) for w in normalize(text).split() if w not in STOPWORDS]


def _edits(a: str, b: str) -> int:
    """Optimal string alignment distance (Damerau-Levenshtein without re-edits)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def similar(said: str, known: str) -> bool:
    """Same word, or a small typo of a long enough one ("furnce", "toliet", "drian")."""
    if said == known:
        return True
    if said.isdigit() or known.isdigit() or abs(len(said) - len(known)) > 1:
        return False
    if len(known) >= 6:
        return _edits(said, known) <= 1
    if len(known) >= 4 and len(said) == len(known):
        # Short words forgive only two swapped letters: one substitution would turn
        # "later" into "water" and "train" into "drain".
        diff = [i for i in range(len(known)) if said[i] != known[i]]
        return len(diff) == 2 and diff[1] == diff[0] + 1 and said[diff[0]] == known[diff[1]]
    return False


@dataclass(frozen=True)
class _Phrase:
    words: tuple[str, ...]
    services: frozenset[str]
    trade: str | None = None  # set for a trade's own words


def _phrases(catalogue: Sequence[ServiceTerms]) -> list[_Phrase]:
    owners: dict[tuple[str, ...], set[str]] = {}
    for service in catalogue:
        for phrase in (service.name, *service.keywords):
            words = tuple(tokens(phrase))
            if words:
                owners.setdefault(words, set()).add(service.service_id)
    phrases = [_Phrase(words, frozenset(ids)) for words, ids in owners.items()]
    trades = {s.trade: s.trade_name for s in catalogue}
    for slug, name in trades.items():
        for phrase in {slug, name, *TRADE_WORDS.get(slug, ())}:
            words = tuple(tokens(phrase))
            if words and words not in owners:
                phrases.append(_Phrase(words, frozenset(), trade=slug))
    # Longest phrases first: they claim their words before shorter ones can.
    return sorted(phrases, key=lambda p: -len(p.words))


def match_services(text: str, catalogue: Sequence[ServiceTerms]) -> ServiceMatch:
    """The services (or the trade) `text` talks about; see the module docstring."""
    said = tokens(text)
    claimed = [False] * len(said)
    scores: dict[str, float] = {}
    named_trades: set[str] = set()
    for phrase in _phrases(catalogue):
        size = len(phrase.words)
        for start in range(len(said) - size + 1):
            if any(claimed[start : start + size]):
                continue
            if all(similar(said[start + k], phrase.words[k]) for k in range(size)):
                claimed[start : start + size] = [True] * size
                if phrase.trade:
                    named_trades.add(phrase.trade)
                for service_id in phrase.services:
                    scores[service_id] = scores.get(service_id, 0.0) + size / len(phrase.services)
    trade_of = {s.service_id: s.trade for s in catalogue}
    if scores:
        best = max(scores.values())
        winners = [s.service_id for s in catalogue if scores.get(s.service_id, 0) >= best - 1e-9]
        if len(named_trades) == 1:
            # "a plumber for the sink": of the tied services, the named trade's.
            in_trade = [w for w in winners if trade_of[w] in named_trades]
            winners = in_trade or winners
        trades = {trade_of[w] for w in winners}
        return ServiceMatch(tuple(winners), trades.pop() if len(trades) == 1 else None)
    if len(named_trades) == 1:
        return ServiceMatch((), named_trades.pop())
    return ServiceMatch()


def service_catalogue() -> list[ServiceTerms]:
    """The active services with what customers call them, in the order they are listed."""
    services = Service.objects.select_related("trade").filter(active=True).order_by("trade__name", "name")
    return [
        ServiceTerms(
            service_id=s.slug,
            name=s.name,
            trade=s.trade.slug,
            trade_name=s.trade.name,
            emergency=s.is_emergency,
            price=s.price_display,
            keywords=split_keywords(s.keywords),
        )
        for s in services
    ]


def split_keywords(text: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in re.split(r"[,;\n]", text or "") if k.strip())


def services_matching(text: str) -> ServiceMatch:
    return match_services(text, service_catalogue())
