"""`make run`'s two helpers around Django's runserver.

    python -m chatdesk.devserver check HOST PORT    exit 1 with a clear message if the port is taken
    python -m chatdesk.devserver banner HOST PORT   print the banner once the server listens

Why: daphne's runserver, started on a taken port, logs "Address already in use" and then
keeps its auto-reloader alive, so `make run` used to print "Chatdesk is running" and hang.
Checking first gives a newcomer one clear line and a non-zero exit; printing the banner only
when the port answers means the links in it work when they appear.

No Django import here: it runs before the server, with nothing configured.
"""

from __future__ import annotations

import socket
import sys
import time

BANNER_WAIT_SECONDS = 180


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now.

    SO_REUSEADDR as the server sets it (Twisted does on POSIX): a port whose last
    connections are in TIME_WAIT is free for it, a port with a listener is not.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def wait_until_listening(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def banner(host: str, port: int) -> str:
    base = f"http://{host}:{port}"
    return (
        f"\n  Chatdesk is running at {base}/\n"
        f"  Staff admin:  {base}/admin/   (login: demo / chatdesk-demo)\n"
        f"  API docs:     {base}/api/docs/\n"
        "  Stop it with Ctrl+C.\n"
    )


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("check", "banner") or not argv[2].isdigit():
        print("usage: python -m chatdesk.devserver check|banner HOST PORT", file=sys.stderr)
        return 2
    command, host, port = argv[0], argv[1], int(argv[2])
    if command == "check":
        if not port_is_free(host, port):
            print(
                f"Port {port} on {host} is already in use (another Chatdesk, or another program).\n"
                f"Stop that program, or pick another port: make run PORT={port + 1}",
                file=sys.stderr,
            )
            return 1
        return 0
    if wait_until_listening(host, port, BANNER_WAIT_SECONDS):
        print(banner(host, port), flush=True)
        return 0
    return 1  # the server never came up; its own output says why


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
