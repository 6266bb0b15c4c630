# Chatdesk: `make run` to try it, `make test` to check it.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Django 6.1 needs Python >= 3.12: take the newest one we can find.
PYTHON ?= $(shell for p in python3.13 python3.12 $$HOME/.pyenv/versions/3.13*/bin/python3 $$HOME/.pyenv/versions/3.12*/bin/python3 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { command -v $$p; break; }; done)
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/chatdesk
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: run test lint format venv bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "Python 3.12 or newer is required (Django 6.1)." >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# `make run PORT=8001` when 8000 is taken.
HOST ?= 127.0.0.1
PORT ?= 8000
# The demo's limit on new conversations per IP is per minute, not production's per hour: a
# tester starting chat after chat is never locked out for half an hour. Set it to override.
DEMO_ENV := DEBUG=1 CHAT_RATE_SESSION_PER_IP=$${CHAT_RATE_SESSION_PER_IP:-30/m}

run: venv
	@# A taken port fails here, clearly, instead of daphne's reloader hanging on it later.
	@$(PY) -m chatdesk.devserver check $(HOST) $(PORT)
	DEBUG=1 $(PY) manage.py migrate --no-input
	DEBUG=1 $(PY) manage.py seed_demo --staff-user demo --staff-password chatdesk-demo
	@# The banner comes once the server answers, so its links work when they appear.
	@$(PY) -m chatdesk.devserver banner $(HOST) $(PORT) &
	@# daphne's runserver: the ASGI app (HTTP + WebSockets) under daphne, with static files in DEBUG.
	$(DEMO_ENV) $(PY) manage.py runserver $(HOST):$(PORT)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@# The layers: imports run downward only (contracts in pyproject.toml, [tool.importlinter]).
	$(VENV)/bin/lint-imports --no-cache

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL_FOR_TESTS=$${REDIS_URL_FOR_TESTS:-$(TEST_REDIS_URL)} \
		$(VENV)/bin/pytest

bench: venv
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) bench/availability.py
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) bench/chat_turns.py
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) bench/chat_floor.py
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) bench/voice_relay.py
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) bench/admin_pages.py
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) bench/dispatch_board.py
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) bench/dates_compare.py
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) bench/guided_corpus.py
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL_FOR_TESTS=$${REDIS_URL_FOR_TESTS:-$(TEST_REDIS_URL)} $(PY) bench/drain.py
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) bench/metrics.py
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) bench/streaming.py
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) bench/widget_load.py
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} $(PY) bench/openai_budget.py
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL_FOR_TESTS=$${REDIS_URL_FOR_TESTS:-$(TEST_REDIS_URL)} $(PY) bench/scale_out.py

clean:
	rm -rf $(VENV) var/*.sqlite3*
