"""Reads of the conversation record that several doors share."""

from __future__ import annotations

from django.db.models import QuerySet

from chatdesk.conversations.models import Interaction


def open_interaction_for(session_id: str) -> QuerySet[Interaction]:
    """The open conversation of a browser session (from its signed cookie), as a query.

    At most one row (session_id is unique). A query rather than a row, so each door reads
    only what it needs: `.first()` for the page and the live socket, `.exists()` when the
    voice page only asks whether there is one, `.filter(has_call=True)` for a call's cookie.
    No session, no conversation.
    """
    if not session_id:
        return Interaction.objects.none()
    return Interaction.objects.filter(session_id=session_id, status=Interaction.Status.OPEN)
