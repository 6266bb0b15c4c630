"""This worker process's lifecycle: is it draining, and how much work is in flight.

One small piece of module-level state per process, read by the readiness endpoint
`/readyz`, which answers 503 `{"draining": true}` once draining starts so nginx and any load balancer stop
sending this worker new work, and written by the drain logic on SIGTERM. It imports nothing
from the project, so any layer (the chat API, the voice consumer) may ask `draining()` or
count its work with `in_flight()` without breaking the layer contracts.

Thread-safe: the chat's database work runs on a thread pool, the server on an event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_draining = threading.Event()
_lock = threading.Lock()
_in_flight = 0


def start_draining() -> None:
    """Mark this process as draining: readiness turns false from now on (idempotent)."""
    _draining.set()


def draining() -> bool:
    """True once start_draining() was called in this process."""
    return _draining.is_set()


def stop_draining() -> None:
    """Ready again (a test that drained a process in-process, or an aborted drain)."""
    _draining.clear()


@contextmanager
def in_flight() -> Iterator[None]:
    """Count one piece of work (a chat turn, a call) for as long as the block runs."""
    global _in_flight
    with _lock:
        _in_flight += 1
    try:
        yield
    finally:
        with _lock:
            _in_flight -= 1


def in_flight_count() -> int:
    """How many in_flight() blocks are running in this process now."""
    with _lock:
        return _in_flight
