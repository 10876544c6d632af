"""The built site as a reader sees it: screenshots of its pages in headless Chromium.

    .venv/bin/python scripts/docs_screenshot.py [--site site] [--out /tmp/docs_shots] [PAGE ...]

Serves the built site (`make docs` first) with Python's http.server on 127.0.0.1, opens
each page in headless Chromium (Debian's `chromium` and `chromium-driver`, driven by
selenium, as scripts/notebooks_check.py does) and writes one PNG per page: by default the
home page, an API page and the concepts page with the auto-reset picture. Look at them
after a change to the theme, the layout or a picture; the test suite does not run this.

It fails (exit status 1) when a page answers with an error, has no title, or shows an
image that did not load. Every process it started is stopped at the end.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from notebooks_check import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS, ensure_browser  # noqa: E402

#: Pages to look at: the home page, one API page, the page with the auto-reset picture.
DEFAULT_PAGES = (
    "",
    "reference/api/algorithms/",
    "concepts/workspace/#envdone-and-the-auto-reset-layout",
)
#: Images of the page that did not load (a broken src), as the browser knows them.
BROKEN_IMAGES_JS = """
return Array.from(document.images)
  .filter(image => image.complete && image.naturalWidth === 0)
  .map(image => image.getAttribute('src'));
"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without a log line per request; remembers the paths that failed."""

    failures: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        QuietHandler.failures.append(f"{code} {self.path}")
        super().send_error(code, message, explain)


@contextmanager
def serve(site: Path) -> Iterator[str]:
    """The site served on a free port of 127.0.0.1; yields its base URL."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def chromium(scratch: Path, width: int, height: int) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # selenium's manager must not look for downloads
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    flags = [flag for flag in CHROMIUM_FLAGS if not flag.startswith("--window-size")]
    for flag in (*flags, f"--window-size={width},{height}", f"--user-data-dir={scratch}"):
        options.add_argument(flag)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(scratch / "driver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


def shoot(driver: Any, url: str, path: Path) -> list[str]:
    """Open `url`, save a screenshot at `path`; returns what looks wrong on the page."""
    driver.get(url)
    problems = []
    if not driver.title:
        problems.append("no title")
    problems += [f"image not loaded: {src}" for src in driver.execute_script(BROKEN_IMAGES_JS)]
    driver.save_screenshot(str(path))
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", default=list(DEFAULT_PAGES), help="paths in the site")
    parser.add_argument("--site", type=Path, default=REPO / "site", help="the built site")
    parser.add_argument("--out", type=Path, default=Path("/tmp/docs_shots"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args()
    if not (args.site / "index.html").is_file():
        sys.exit(f"No built site in {args.site}: run `make docs` first")
    ensure_browser()
    args.out.mkdir(parents=True, exist_ok=True)

    failed = False
    with tempfile.TemporaryDirectory() as scratch, serve(args.site) as base:
        with chromium(Path(scratch), args.width, args.height) as driver:
            for page in args.pages:
                name = page.split("#")[0].strip("/").replace("/", "_") or "home"
                path = args.out / f"{name}.png"
                problems = shoot(driver, base + page, path)
                problems += QuietHandler.failures
                QuietHandler.failures.clear()
                failed |= bool(problems)
                status = "; ".join(problems) if problems else "ok"
                print(f"{base + page}: {status} -> {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
