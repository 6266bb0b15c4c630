"""Realtime WebSocket fake (placeholder until the Realtime part lands)."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class FakeRealtime:
    """Script and recordings for `GET /v1/realtime`."""

    def __init__(self, owner: Any) -> None:
        self._owner = owner

    def reset(self) -> None:
        """Forget script and recordings."""

    async def _handle_websocket(self, request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "Realtime is not implemented yet"}}, status=404)

    async def _close_all(self) -> None:
        return None
