"""Headless Chromium for browser tests, through Playwright's sync API.

Import the fixtures into a test module to use them::

    from tests.browser import chromium_fixture, orm  # noqa: F401  (registers `chromium`)

Playwright must never download a browser: it launches Debian's Chromium (CHROMIUM_PATH to
override). The launch flags keep it off the network except for the live server under test.

While Playwright's sync API is active its event loop counts as running in the main thread,
so Django refuses ORM calls there (SynchronousOnlyOperation). Run them through `orm()`,
which does the work on a worker thread, and create database fixtures before `chromium`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


# Registered as `chromium`; the function has another name so importing it doesn't shadow
# (ruff F811) the `chromium` parameters of tests.
@pytest.fixture(name="chromium")
def chromium_fixture() -> Iterator[Browser]:
    """A headless Chromium for one test (function scope, so DB fixtures can run before it)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def orm[T](fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run Django ORM work on a worker thread (see the module docstring) and return its result."""
    from django.db import connections

    def run() -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()
