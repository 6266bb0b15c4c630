"""`make run`, as a newcomer runs it: a chosen port, a taken port, and a banner that tells the truth.

These run the real Makefile target (venv check, migrate, seed_demo, daphne's runserver) on
a throwaway SQLite file, the embedded default, and stop the whole process group after.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import selectors
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from chatdesk.devserver import main as devserver
from chatdesk.devserver import port_is_free
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def make_run(port: int, database: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        ["make", "--no-print-directory", "run", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: make, runserver, its reloader, the banner
    )


def read_until(process: subprocess.Popen, marker: str, timeout: float) -> str:
    """The output so far, once `marker` is in it (or the process ended, or time ran out)."""
    output = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while marker.encode() not in output and time.monotonic() < deadline:
            if selector.select(timeout=0.5):
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    break
                output += chunk
    return output.decode(errors="replace")


def start_conversation(port: int) -> int:
    """POST /api/v1/chat/session/new as the page does (CSRF cookie and header); the status."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"http://127.0.0.1:{port}/", timeout=10).read()
    token = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/chat/session/new",
        data=b"{}",
        method="POST",
        headers={"X-CSRFToken": token, "Content-Type": "application/json", "Origin": f"http://127.0.0.1:{port}"},
    )
    try:
        with opener.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def admin_login(port: int, password: str) -> tuple[int, str]:
    """The demo login through the admin's form, as a browser posts it; the status and the page."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = opener.open(f"http://127.0.0.1:{port}/admin/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    body = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": "demo", "password": password, "next": "/admin/"}
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/admin/login/",
        data=body.encode(),
        method="POST",
        headers={"Origin": f"http://127.0.0.1:{port}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def test_a_taken_port_fails_at_once_with_a_clear_message(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        process = make_run(port, tmp_path / "demo.sqlite3")
        try:
            output = read_until(process, "never printed", timeout=120)
            assert process.wait(timeout=30) != 0
        finally:
            stop(process)
    assert f"Port {port} on 127.0.0.1 is already in use" in output
    assert f"make run PORT={port + 1}" in output
    assert "Chatdesk is running" not in output
    # Refused before anything was set up: no database was made.
    assert not (tmp_path / "demo.sqlite3").exists()


def test_make_run_on_a_chosen_port_prints_the_banner_only_once_the_server_answers(tmp_path):
    port = free_port()
    process = make_run(port, tmp_path / "demo.sqlite3")
    try:
        output = read_until(process, "Stop it with Ctrl+C.", timeout=240)
        assert f"Chatdesk is running at http://127.0.0.1:{port}/" in output, output[-3000:]
        assert f"http://127.0.0.1:{port}/admin/" in output
        # The banner's promise holds the moment it appears: the page and the admin answer.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert page.status == 200
            assert b"Maple Home Services" in page.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=10) as login:
            assert login.status == 200
        assert output.count("Chatdesk is running") == 1
        # Production allows 20 new conversations an hour per IP; the demo allows 30 a minute,
        # so a tester starting chat after chat is not locked out for half an hour.
        assert [start_conversation(port) for _ in range(25)] == [201] * 25
        # The admin login throttle works on SQLite and the in-memory cache too (it counts in the
        # database): five wrong passwords, then the right one is refused with the reason.
        assert [admin_login(port, "wrong")[0] for _ in range(5)] == [200, 200, 200, 200, 429]
        status, page = admin_login(port, "chatdesk-demo")
        assert status == 429 and "Too many failed login attempts" in page
    finally:
        stop(process)


def test_the_port_check_and_the_banner_helper(capsys):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
        assert devserver(["check", "127.0.0.1", str(port)]) == 1
        assert "already in use" in capsys.readouterr().err
        assert devserver(["banner", "127.0.0.1", str(port)]) == 0
        assert f"http://127.0.0.1:{port}/admin/" in capsys.readouterr().out
    assert port_is_free("127.0.0.1", port)
    assert devserver(["check", "127.0.0.1", str(port)]) == 0
    assert devserver(["check", "127.0.0.1"]) == 2
