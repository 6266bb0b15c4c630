"""Render the nginx configuration of the production recipe from the templates in deploy/nginx/.

    # The site, for /etc/nginx/sites-available/chatdesk (one worker per core unless --workers):
    python deploy/render.py site --server-name chatdesk.example.com \\
        --static-root /srv/chatdesk/static \\
        --tls-certificate /etc/letsencrypt/live/chatdesk.example.com/fullchain.pem \\
        --tls-key /etc/letsencrypt/live/chatdesk.example.com/privkey.pem > chatdesk.conf

    # The same site plus a whole nginx.conf in one directory, to run nginx as yourself:
    python deploy/render.py standalone --dir /tmp/chatdesk-nginx --listen 127.0.0.1:8080

Workers listen on consecutive loopback ports from --first-port (8001, 8002, ...), one systemd
instance each: `systemctl enable --now chatdesk@8001 chatdesk@8002` (deploy/systemd/). The
tests render the same files (tests/fleet.py), so what is tested is what is deployed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).resolve().parent / "nginx"
DEFAULT_FIRST_PORT = 8001


def default_workers() -> int:
    """One worker per core: each is one process with one event loop (issue 13: one per core by default)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_ports(workers: int, first_port: int = DEFAULT_FIRST_PORT) -> list[int]:
    return [first_port + index for index in range(workers)]


def render_site(
    *,
    ports: Sequence[int],
    static_root: str | Path,
    listen: str = "80",
    server_name: str = "_",
    tls_certificate: str | None = None,
    tls_key: str | None = None,
) -> str:
    """The site: upstream of the workers on `ports`, the server with its locations."""
    if not ports:
        raise ValueError("at least one worker port is needed")
    if bool(tls_certificate) != bool(tls_key):
        raise ValueError("give both --tls-certificate and --tls-key, or neither")
    upstream = "\n".join(f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;" for port in ports)
    if tls_certificate:
        listen_directives = "    listen 443 ssl http2;\n    listen [::]:443 ssl http2;"
        tls_directives = (
            f"    ssl_certificate {tls_certificate};\n"
            f"    ssl_certificate_key {tls_key};\n"
            "    ssl_protocols TLSv1.2 TLSv1.3;\n"
            "    ssl_session_cache shared:chatdesk_tls:10m;\n"
        )
        redirect_server = (
            "# Plain HTTP only redirects to HTTPS.\n"
            "server {\n"
            "    listen 80;\n"
            "    listen [::]:80;\n"
            f"    server_name {server_name};\n"
            "    server_tokens off;\n"
            "    return 301 https://$host$request_uri;\n"
            "}\n\n"
        )
    else:
        # TLS ends in front of nginx (a cloud load balancer), or this is a test on loopback.
        listen_directives = f"    listen {listen};"
        tls_directives = ""
        redirect_server = ""
    template = Template((TEMPLATES / "chatdesk.conf.template").read_text())
    return template.substitute(
        workers=len(ports),
        upstream_servers=upstream,
        redirect_server=redirect_server,
        listen_directives=listen_directives,
        tls_directives=tls_directives,
        server_name=server_name,
        static_root=str(Path(static_root)).rstrip("/"),
    )


def render_standalone(
    directory: str | Path, *, site: str, daemon: bool = False, access_log: bool = False, worker_processes: int = 1
) -> Path:
    """Write nginx.conf and chatdesk.conf (`site`) into `directory`, with its temp folders; the nginx.conf path.

    As root, nginx's workers would switch to `nobody` and could not read the caller's files
    (a test's static root under a private temp folder), so they stay root there.
    """
    prefix = Path(directory).resolve()
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "tmp" / name).mkdir(parents=True, exist_ok=True)
    (prefix / "chatdesk.conf").write_text(site)
    template = Template((TEMPLATES / "standalone.conf.template").read_text())
    config = template.substitute(
        prefix=str(prefix),
        daemon="on" if daemon else "off",
        user_directive="user root;\n" if os.geteuid() == 0 else "",
        worker_processes=worker_processes,
        access_log=f"{prefix}/access.log" if access_log else "off",
    )
    path = prefix / "nginx.conf"
    path.write_text(config)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("site", "standalone"):
        command = sub.add_parser(name)
        command.add_argument("--workers", type=int, default=default_workers(), help="default: one per core")
        command.add_argument("--first-port", type=int, default=DEFAULT_FIRST_PORT)
        command.add_argument("--static-root", default="/srv/chatdesk/static", help="STATIC_ROOT (collectstatic)")
        command.add_argument("--listen", default="80", help="address:port or port (without TLS)")
        command.add_argument("--server-name", default="_")
        command.add_argument("--tls-certificate")
        command.add_argument("--tls-key")
    sub.choices["standalone"].add_argument("--dir", required=True, help="where nginx.conf, logs and temp files go")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        site = render_site(
            ports=worker_ports(args.workers, args.first_port),
            static_root=args.static_root,
            listen=args.listen,
            server_name=args.server_name,
            tls_certificate=args.tls_certificate,
            tls_key=args.tls_key,
        )
    except ValueError as error:
        parser.error(str(error))
    if args.command == "site":
        sys.stdout.write(site)
    else:
        path = render_standalone(args.dir, site=site)
        print(f"nginx -p {path.parent} -c {path} -e {path.parent / 'error.log'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
