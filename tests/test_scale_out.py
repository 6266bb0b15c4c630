"""bench/scale_out.py's pieces run (issue 13): `--quick` drives every round at a toy size through the
real recipe (nginx with 1 and 2 workers, PostgreSQL, Redis, the fake model) and prints its report.

Nothing here is timed: the figures come from the benchmark run in full (`make bench`). This only checks
that each round completed without an error, so the benchmark cannot rot between runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fleet import fleet_redis_url

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.fleet


def test_the_scale_out_benchmark_runs_every_round_through_nginx():
    env = {**os.environ, "REDIS_URL_FOR_TESTS": fleet_redis_url()}
    done = subprocess.run(
        [sys.executable, "bench/scale_out.py", "--quick", "--database", "chatdesk_bench_scale_smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    report = done.stdout
    rounds = re.findall(r"^(burst|sustained|voice) +([12]) +(\d+) ", report, flags=re.MULTILINE)
    # Each kind of round with 1 and with 2 workers, every turn or call counted.
    assert {(kind, workers) for kind, workers, _ in rounds} == {
        (kind, workers) for kind in ("burst", "sustained", "voice") for workers in ("1", "2")
    }, report
    assert all(int(count) >= 10 for _, _, count in rounds), report
    assert report.count("errors 0 ") == 4, report  # no chat turn failed, in any chat round
    assert report.count("failed 0 ") == 2, report  # no call failed
    assert "Ceiling of the 2:1 ratio" in report and "Test rig during voice" in report, report
    assert re.search(r"10 calls, p95 added <= 20 ms, 2 workers .* 0 failed", report), report
