"""`manage.py check_openai`: key, base URL and both models, with a reason to act on when something is wrong.

The loopback fake (tests/fake_openai) does not serve GET /v1/models/{id}, like some proxies:
against it the check falls back to a 16-token response and a Realtime session. A small stub
below serves the models endpoint the way the real API does.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.cmd_fixtures import help_text
from tests.fake_openai import fake_openai_fixture  # noqa: F401


def check() -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command("check_openai", stdout=out, stderr=StringIO())
    except CommandError as error:
        return out.getvalue(), error
    return out.getvalue(), None


@pytest.fixture
def configured(settings):
    settings.OPENAI_API_KEY = "sk-test-0123456789"
    settings.OPENAI_MODEL = "gpt-6-luna"
    settings.OPENAI_REALTIME_MODEL = "gpt-realtime-2.1-mini"
    settings.OPENAI_TIMEOUT_SECONDS = 5
    return settings


@pytest.fixture
def model(fake_openai, configured):
    configured.OPENAI_BASE_URL = fake_openai.base_url
    return fake_openai


class ModelsAPI(BaseHTTPRequestHandler):
    """GET /v1/models/{id} as the real API answers it; models listed in `known`."""

    known: set[str] = set()

    def do_GET(self) -> None:
        name = self.path.removeprefix("/v1/models/")
        if name in self.known:
            self.reply(200, {"id": name, "object": "model", "created": 0, "owned_by": "openai"})
        else:
            error = {"message": f"The model '{name}' does not exist", "type": "invalid_request_error"}
            self.reply(404, {"error": {**error, "param": None, "code": "model_not_found"}})

    def reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def models_api(configured) -> Iterator[type[ModelsAPI]]:
    handler = type("Handler", (ModelsAPI,), {"known": set()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    configured.OPENAI_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield handler
    server.shutdown()
    server.server_close()


def test_without_a_key_it_says_so(settings):
    settings.OPENAI_API_KEY = ""
    with pytest.raises(CommandError, match="OPENAI_API_KEY is not set"):
        call_command("check_openai", stdout=StringIO())


def test_against_a_server_without_a_models_endpoint_it_probes_both_models(model):
    output, error = check()
    assert error is None, error
    assert "Base URL: http://127.0.0.1:" in output
    assert "sk-...6789" in output
    assert "Text model gpt-6-luna: answered a 16-token test response" in output
    assert "the server has no models endpoint" in output
    assert "Realtime model gpt-realtime-2.1-mini: opened and closed a Realtime session" in output
    assert "OpenAI is reachable and both models are available." in output
    (probe,) = model.response_requests
    assert (probe["model"], probe["max_output_tokens"], probe["store"]) == ("gpt-6-luna", 16, False)
    (session,) = model.realtime.connections
    assert session.query["model"] == "gpt-realtime-2.1-mini"


def test_a_missing_text_model_fails_with_the_reason(model):
    model.queue_error(
        404, "The model 'gpt-6-luna' does not exist or you do not have access to it.", code="model_not_found"
    )
    output, error = check()
    assert error is not None
    assert "Text model gpt-6-luna: not found (404)" in str(error)
    assert "FAIL Text model gpt-6-luna" in output
    # The other model is still checked, so one run shows every problem.
    assert "ok   Realtime model gpt-realtime-2.1-mini" in output


def test_a_refused_key_stops_the_check_with_what_to_fix(model):
    model.queue_error(401, "Incorrect API key provided: sk-test-0123456789.")
    _, error = check()
    assert error is not None
    assert "the API key was refused (401): check OPENAI_API_KEY" in str(error)
    assert model.realtime.connections == []


def test_an_unreachable_base_url_fails_with_the_url(configured):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    configured.OPENAI_BASE_URL = f"http://127.0.0.1:{port}/v1"
    _, error = check()
    assert error is not None
    assert f"cannot connect to http://127.0.0.1:{port}/v1" in str(error)


def test_a_server_that_does_not_answer_in_time_fails(model, configured):
    configured.OPENAI_TIMEOUT_SECONDS = 0.5
    model.queue_delay(3)
    _, error = check()
    assert error is not None
    assert "no answer from" in str(error)
    assert "OPENAI_TIMEOUT_SECONDS" in str(error)


def test_with_a_models_endpoint_it_looks_the_models_up(models_api):
    models_api.known = {"gpt-6-luna", "gpt-realtime-2.1-mini"}
    output, error = check()
    assert error is None, error
    assert "Text model gpt-6-luna: available (owned by openai)" in output
    assert "Realtime model gpt-realtime-2.1-mini: available" in output


def test_with_a_models_endpoint_a_missing_model_fails(models_api):
    models_api.known = {"gpt-6-luna"}
    output, error = check()
    assert error is not None
    assert (
        "Realtime model gpt-realtime-2.1-mini: not found (404): The model 'gpt-realtime-2.1-mini' does not exist"
        in (str(error))
    )
    assert "ok   Text model gpt-6-luna" in output


def test_help_says_what_is_checked():
    text = help_text("check_openai")
    assert "OPENAI_MODEL" in text
    assert "OPENAI_REALTIME_MODEL" in text
    assert "non-zero" in text
