"""The `chatdesk` app's models live in the conversation record (chatdesk.conversations.models).

Django imports each installed app's `models` module; importing them here registers them
under the app label `chatdesk` (the package that contains them), so the tables and
chatdesk/migrations stay where they were.
"""

from chatdesk.conversations.models import Conversation, HandoffRequest, Message, ToolCall, new_session_id

# new_session_id: migration 0001 names the field default by this path.
__all__ = ["Conversation", "HandoffRequest", "Message", "ToolCall", "new_session_id"]
