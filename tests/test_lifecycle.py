"""chatdesk.lifecycle: the per-process draining flag and in-flight counter the drain logic and
/readyz share."""

from __future__ import annotations

import threading

import pytest

from chatdesk import lifecycle


@pytest.fixture(autouse=True)
def not_draining():
    lifecycle.stop_draining()
    yield
    lifecycle.stop_draining()


def test_draining_starts_false_and_stays_true_once_started():
    assert lifecycle.draining() is False
    lifecycle.start_draining()
    lifecycle.start_draining()  # idempotent: a second SIGTERM changes nothing
    assert lifecycle.draining() is True
    lifecycle.stop_draining()
    assert lifecycle.draining() is False


def test_in_flight_counts_work_and_uncounts_it_even_when_it_fails():
    assert lifecycle.in_flight_count() == 0
    with lifecycle.in_flight():
        assert lifecycle.in_flight_count() == 1
        with lifecycle.in_flight():
            assert lifecycle.in_flight_count() == 2
    assert lifecycle.in_flight_count() == 0
    with pytest.raises(RuntimeError), lifecycle.in_flight():
        raise RuntimeError("the turn failed")
    assert lifecycle.in_flight_count() == 0


def test_in_flight_is_exact_across_threads():
    inside = threading.Barrier(9)
    release = threading.Event()

    def work():
        with lifecycle.in_flight():
            inside.wait()
            release.wait()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    inside.wait()  # all eight are inside their block
    assert lifecycle.in_flight_count() == 8
    release.set()
    for thread in threads:
        thread.join()
    assert lifecycle.in_flight_count() == 0
