"""Test settings: the production settings module, with the environment a test run needs.

pytest-django imports settings before any conftest runs, so the environment defaults
live here. Everything else is chatdesk.settings unchanged.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdefghijklmnop")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("SECURE_COOKIES", "0")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chatdesk")
os.environ.setdefault("BUSINESS_TIMEZONE", "America/Toronto")
# Tests never talk to the real OpenAI; those that need a model point at the loopback fake.
os.environ["OPENAI_API_KEY"] = ""

from chatdesk.settings import *  # noqa: F403
