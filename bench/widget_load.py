"""What the website widget costs the business's page: its load with and without the snippet.

    python bench/widget_load.py [--runs 60]

The app runs under daphne (it serves /widget.js itself) on http://127.0.0.1:<port>; a small
host site on http://localhost:<port> (another origin and site, as in production) serves three
identical pages: none has no widget, async the plain `<script src async>` tag, deferred the
admin's snippet, which inserts that tag after the load event. Headless Chromium loads them in turn,
each twice in a fresh browser context: a first visit (empty cache, widget.js is fetched) and
the next page of the site (widget.js cached for an hour). It reads from the page itself the
load event (navigation timing's loadEventEnd), DOMContentLoaded and the largest contentful
paint, counts the requests made to the app before anyone opens the widget, and prints
widget.js's size as served (gzip) against the issue's 8 KB budget.

No database is touched: /widget.js is a plain view (the app gets a throwaway SQLite URL).
"""

from __future__ import annotations

import argparse
import gzip
import http.server
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import free_port, percentile

from chatdesk.backoffice.widget_snippet import deferred_snippet

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
BUDGET_GZIP_BYTES = 8 * 1024
# The host pages: no widget, the plain async tag, and the admin's snippet (inserted after load).
VARIANTS = ("none", "async", "deferred")
# A 1x1 PNG, scaled up by CSS: the page's hero image, its largest contentful paint.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a1f2a96a0000000049454e44ae426082"
)


def host_site(app_url: str, port: int) -> http.server.ThreadingHTTPServer:
    paragraphs = "".join(
        f"<p>Section {i}: furnace repair, drain cleaning and panel upgrades across the city, "
        "with upfront prices and technicians you can book online in a minute.</p>"
        for i in range(30)
    )

    snippets = {
        "none": "",
        "async": f'<script src="{app_url}/widget.js" async data-greeting="Need a hand?"></script>',
        "deferred": deferred_snippet(f"{app_url}/widget.js", {"greeting": "Need a hand?"}),
    }

    def page(snippet: str) -> bytes:
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Maple</title>'
            '<link rel="icon" href="data:,"><meta name="viewport" content="width=device-width, initial-scale=1">'
            "<style>img{width:100%;height:320px;display:block}</style></head><body>"
            '<h1>Maple Home Services</h1><img src="/hero.png" alt="A technician at work">'
            f"{paragraphs}{snippet}</body></html>"
        ).encode()

    pages = {f"/{variant}": (page(snippet), "text/html") for variant, snippet in snippets.items()}
    pages["/hero.png"] = (PNG, "image/png")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body, kind = pages.get(self.path.split("?", 1)[0], (b"", ""))
            if not kind:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_app(port: int, workdir: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "DATABASE_URL": f"sqlite:///{workdir}/bench.sqlite3",
        "SECRET_KEY": "widget-bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz-0123",
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
    daphne = str(Path(sys.executable).parent / "daphne")
    process = subprocess.Popen(
        [daphne, "-b", "127.0.0.1", "-p", str(port), "chatdesk.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/widget.js", timeout=2):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    sys.exit("the app did not start")


MEASURE = """async () => {
    const lcp = await new Promise((resolve) => {
        new PerformanceObserver((list) => {
            const entries = list.getEntries();
            resolve(entries[entries.length - 1].startTime);
        }).observe({type: "largest-contentful-paint", buffered: true});
        setTimeout(() => resolve(NaN), 3000);
    });
    const nav = performance.getEntriesByType("navigation")[0];
    return {load: nav.loadEventEnd, dcl: nav.domContentLoadedEventEnd, lcp: lcp};
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=60, help="page loads per variant (default 60)")
    args = parser.parse_args()

    app_port, site_port = free_port(), free_port()
    app_url, site_url = f"http://127.0.0.1:{app_port}", f"http://localhost:{site_port}"
    with tempfile.TemporaryDirectory() as workdir:
        app = start_app(app_port, workdir)
        site = host_site(app_url, site_port)
        try:
            request = urllib.request.Request(app_url + "/widget.js", headers={"Accept-Encoding": "gzip"})  # noqa: S310
            with urllib.request.urlopen(request) as response:  # noqa: S310
                served = response.read()
                encoding = response.headers.get("Content-Encoding")
            raw = gzip.decompress(served) if encoding == "gzip" else served
            results: dict[str, dict[str, list[float]]] = {
                f"{v} {c}": {"load": [], "dcl": [], "lcp": []} for v in VARIANTS for c in ("cold", "warm")
            }
            app_requests: dict[str, list[int]] = {"async": [], "deferred": []}
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
                )
                # One warm-up of each, not counted (the first launch pays for process start-up).
                for run in range(args.runs + 1):
                    # Alternating the order evens out drift in the machine's speed.
                    order = VARIANTS[run % 3 :] + VARIANTS[: run % 3]
                    for variant in order:
                        context = browser.new_context()
                        page = context.new_page()
                        seen: list[str] = []
                        page.on("request", lambda r, seen=seen: r.url.startswith(app_url) and seen.append(r.url))
                        for cache in ("cold", "warm"):
                            # cold: a first visit (empty cache); warm: the next page of the site, widget.js cached.
                            page.goto(f"{site_url}/{variant}?{cache}", wait_until="load")
                            numbers = page.evaluate(MEASURE)
                            if variant != "none" and cache == "cold":
                                page.wait_for_timeout(200)  # anything the launcher would fetch late
                                app_requests[variant].append(len(seen))
                            if run:
                                for key, value in numbers.items():
                                    results[f"{variant} {cache}"][key].append(value)
                        context.close()
                browser.close()
        finally:
            site.shutdown()
            app.terminate()
            app.wait(timeout=10)

    print(f"widget.js: {len(raw):,} bytes, {len(served):,} bytes gzipped as served (budget {BUDGET_GZIP_BYTES:,})")
    for variant, counts in app_requests.items():
        print(f"requests to the app before the widget is opened, per page load, {variant}: {sorted(set(counts))}")
    print(f"{args.runs} loads of each page per cache state, headless Chromium, loopback (milliseconds);")
    print("cold: a first visit (empty cache); warm: the next page of the site (widget.js cached)")
    print(f"{'':44}{'median':>8}{'p95':>8}{'mean':>8}{'vs none':>9}")
    for cache in ("cold", "warm"):
        for key, label in (("dcl", "DOMContentLoaded"), ("load", "load event"), ("lcp", "LCP")):
            baseline = results[f"none {cache}"][key]
            for variant in VARIANTS:
                values = results[f"{variant} {cache}"][key]
                row = f"{cache} cache, {label}, {variant}"
                median, p95 = statistics.median(values), percentile(values, 0.95)
                difference = median - statistics.median(baseline)
                shown = "" if variant == "none" else f"{difference:>+9.1f}"
                print(f"{row:44}{median:>8.1f}{p95:>8.1f}{statistics.fmean(values):>8.1f}{shown}")
            spread = statistics.median(abs(v - statistics.median(baseline)) for v in baseline)
            print(f"{'  run-to-run spread of none (median abs dev)':44}{spread:>8.1f}")
    if len(served) > BUDGET_GZIP_BYTES:
        sys.exit("widget.js is over its 8 KB gzip budget")


if __name__ == "__main__":
    main()
