"""Does the configured OpenAI account answer? Used by `manage.py check_openai`.

Uses chatdesk.assistant.openai_client's client (same key, base URL, timeout, no retries), so what is
checked is what the chat uses. `openai` is imported here only for its error classes.

Each model is looked up with GET /v1/models/{id} (free). Some servers speaking the API
(proxies, gateways, our test fake) do not serve that endpoint; then the text model is
asked for a minimal response (max_output_tokens=16, a fraction of a cent) and the
realtime model gets a session opened and closed, and the check says it did so.
"""

from __future__ import annotations

import asyncio
import time as clock
from dataclasses import dataclass

import openai
from django.conf import settings

from chatdesk.assistant import openai_client


@dataclass
class Check:
    what: str
    ok: bool
    detail: str


class Unreachable(Exception):
    """Nothing after this can work (no connection, key refused): stop checking."""


def _api_message(error: openai.APIStatusError) -> str:
    # The API's own sentence, without the SDK's "Error code: 404 - " prefix.
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return error.message


def _describe(error: Exception) -> tuple[str, bool]:
    """A sentence an operator can act on, and whether further checks are pointless."""
    base_url = settings.OPENAI_BASE_URL or "https://api.openai.com/v1"
    if isinstance(error, openai.APITimeoutError) and openai_client.is_timeout(error):
        return f"no answer from {base_url} within {settings.OPENAI_TIMEOUT_SECONDS:g} s (OPENAI_TIMEOUT_SECONDS)", True
    if isinstance(error, openai.APIConnectionError | OSError):
        return f"cannot connect to {base_url} (check OPENAI_BASE_URL and the network): {error}", True
    if isinstance(error, openai.AuthenticationError):
        return "the API key was refused (401): check OPENAI_API_KEY", True
    if isinstance(error, openai.PermissionDeniedError):
        return f"this key may not use it (403): {_api_message(error)}", False
    if isinstance(error, openai.NotFoundError):
        return f"not found (404): {_api_message(error)}", False
    if isinstance(error, openai.RateLimitError):
        return f"rate limited or out of quota (429): {_api_message(error)}", False
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code}: {_api_message(error)}", False
    return f"{type(error).__name__}: {error}", False


def _endpoint_missing(error: openai.NotFoundError) -> bool:
    # The API answers "Invalid URL (GET /v1/models/x)" for an endpoint it does not serve,
    # and code "model_not_found" for a model that does not exist.
    return error.code != "model_not_found" and _api_message(error).startswith("Invalid URL")


async def _text_probe(model: str) -> str:
    started = clock.perf_counter()
    response = await openai_client.client().responses.create(
        model=model, input="Reply with the word OK.", max_output_tokens=16, store=False
    )
    ms = int((clock.perf_counter() - started) * 1000)
    return f"answered a 16-token test response in {ms} ms ({response.status}; the server has no models endpoint)"


async def _realtime_probe(model: str) -> str:
    async with openai_client.client().realtime.connect(model=model, max_retries=0) as connection:
        event = await asyncio.wait_for(connection.recv(), timeout=settings.OPENAI_TIMEOUT_SECONDS)
    if event.type == "error":
        raise RuntimeError(f"the server refused a session: {event.error.message}")
    if event.type != "session.created":
        raise RuntimeError(f"unexpected first event {event.type!r}")
    return "opened and closed a Realtime session (the server has no models endpoint)"


async def _check_model(what: str, model: str, probe) -> Check:
    label = f"{what} {model}"
    try:
        try:
            found = await openai_client.client().models.retrieve(model)
            return Check(label, True, f"available (owned by {found.owned_by or 'unknown'})")
        except openai.NotFoundError as error:
            if not _endpoint_missing(error):
                raise
        return Check(label, True, await probe(model))
    except Exception as error:  # every failure becomes a line of the report
        detail, fatal = _describe(error)
        if fatal:
            raise Unreachable(detail) from error
        return Check(label, False, detail)


async def openai_checks() -> list[Check]:
    """Key, base URL, the text model and the realtime model, stopping at the first fatal problem."""
    checks: list[Check] = []
    try:
        for what, model, probe in (
            ("Text model", settings.OPENAI_MODEL, _text_probe),
            ("Realtime model", settings.OPENAI_REALTIME_MODEL, _realtime_probe),
        ):
            checks.append(await _check_model(what, model, probe))
    except Unreachable as error:
        checks.append(Check("OpenAI", False, str(error)))
    finally:
        await openai_client.client().close()
    return checks


def run_openai_checks() -> list[Check]:
    return asyncio.run(openai_checks())
