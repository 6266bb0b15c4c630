"""The guided chat's shared parts: its words (the menu, yes and no, examples), and the plumbing
every step uses (`FlowBase`: the flow's state, and tools run as the model would run them).

The steps themselves are chatdesk/assistant/guided.py (the menu, safety, a person),
guided_booking.py (a new booking) and guided_lookup.py (look up, cancel, move).
"""

from __future__ import annotations

import json
import re

from bookings.selectors import local_today
from bookings.service_matching import ServiceTerms, service_catalogue
from chatdesk.assistant.tools import ToolOutcome, execute_tool_call
from chatdesk.assistant.understanding import BOOK, CANCEL, HUMAN, LOOKUP, RESCHEDULE, Understanding, understand
from chatdesk.conversations.models import Conversation

MENU_CHOICES = [
    (BOOK, "Book a visit"),
    (LOOKUP, "Look up a booking"),
    (CANCEL, "Cancel a visit"),
    (RESCHEDULE, "Move a visit"),
    (HUMAN, "Talk to a person"),
]
MENU_LIST = "\n".join(f"{i}. {label}" for i, (_, label) in enumerate(MENU_CHOICES, 1))
MENU = (
    'What would you like to do? Tell me in your own words (for example: "my AC stopped working, can someone '
    f'come tomorrow morning?"), or reply with a number:\n{MENU_LIST}'
)
SHORT_MENU = f"Anything else? Tell me, or reply with a number:\n{MENU_LIST}"
YES = re.compile(
    r"^\s*(y|ya|yes|yeah|yea|yep|yup|sure|ok|okay|k|confirm|confirmed|correct|right|thats right|please do|"
    r"go ahead|do it|book it|sounds good|perfect|great|absolutely|of course|please)\b",
    re.I,
)
NO = re.compile(r"^\s*(n|no|nah|nope|not really|dont|do not|wrong|thats wrong|not right)\b", re.I)
SKIP = re.compile(
    r"^(skip|no|nope|none|n a|na|no thanks|no thank you|no email|dont have one|i dont have one|i dont have email|"
    r"pass|not now|rather not|id rather not)$"
)
DAY_EXAMPLES = "(for example 'tomorrow', 'Friday' or 'December 18')"


class FlowBase:
    """The flow's state and plumbing; the steps are mixed in by chatdesk.assistant.guided._Flow."""

    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation
        self.state = {"step": "menu", **(conversation.guided_state or {})}
        self.outcomes: list[ToolOutcome] = []
        self._catalogue: list[ServiceTerms] | None = None

    # --- plumbing -----------------------------------------------------------------------

    def call(self, tool: str, **args: object) -> dict:
        """Run a tool as the model would, recorded as a ToolCall row."""
        n = self.state.get("calls", 0) + 1
        self.state["calls"] = n
        outcome = execute_tool_call(
            conversation=self.conversation, call_id=f"guided-{n}", name=tool, raw_arguments=json.dumps(args)
        )
        self.outcomes.append(outcome)
        return outcome.result

    @property
    def catalogue(self) -> list[ServiceTerms]:
        if self._catalogue is None:
            self._catalogue = service_catalogue()
        return self._catalogue

    def service(self, service_id: str) -> ServiceTerms | None:
        return next((s for s in self.catalogue if s.service_id == service_id), None)

    def go(self, step: str, **data: object) -> None:
        self.state["step"] = step
        self.state.update(data)

    def reset(self) -> None:
        self.state = {"step": "menu", "calls": self.state.get("calls", 0)}

    def understand(self, text: str) -> Understanding:
        return understand(text, self.catalogue, today=local_today())
