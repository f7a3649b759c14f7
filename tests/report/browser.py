"""Headless Chromium for the report tests: screenshot, rendered DOM, and the page's own network requests.

Debian's ``chromium`` (``.ci/run`` installs it). Without it the browser tests skip, unless
``RTDETR_REQUIRE_BROWSER=1`` (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

WINDOW = "1280,2000"
# keep Chromium's own background traffic (updates, sync, sign-in) out of the net log
QUIET = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
)
TIMEOUT = 120


def chromium() -> str:
    """The browser's path; skips the test without one (fails under ``RTDETR_REQUIRE_BROWSER=1``)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("RTDETR_REQUIRE_BROWSER") == "1":
        pytest.fail("RTDETR_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
    pytest.skip("needs headless chromium (apt-get install chromium)")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([chromium(), *QUIET, *args], capture_output=True, text=True, timeout=TIMEOUT, check=True)


def screenshot(page: Path, out: Path, window: str = WINDOW) -> Path:
    _run(f"--screenshot={out}", f"--window-size={window}", page.resolve().as_uri())
    assert out.is_file(), f"chromium wrote no screenshot of {page}"
    return out


def dump_dom(page: Path) -> str:
    """The DOM after Chromium loaded ``page`` (what a user's browser shows), as HTML."""
    return _run("--dump-dom", page.resolve().as_uri()).stdout


def page_requests(page: Path, netlog: Path) -> list[str]:
    """URLs of every request ``page`` made while Chromium loaded it, from Chromium's net log.

    The page's own requests are the URL requests whose network isolation key is the page's
    site (``file://``); Chromium's own background requests have other keys. ``file:`` and
    ``data:`` URLs are not network requests and are left out.
    """
    _run(f"--log-net-log={netlog}", "--dump-dom", page.resolve().as_uri())
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if event.get("type") != start_job or "url" not in params:
            continue
        if str(params.get("network_isolation_key", "")).startswith("file://") and not params["url"].startswith(
            ("file:", "data:")
        ):
            urls.append(params["url"])
    return urls


class PageFacts(HTMLParser):
    """What the report tests read from a page's HTML: tags in order, URLs, CSP, text, and nesting errors."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input", "source", "col", "area", "base", "wbr"})

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.csp: list[str] = []
        self.text: list[str] = []
        self.errors: list[str] = []
        self._open: list[str] = []
        self.feed(html)
        self.close()
        if self._open:
            self.errors.append(f"unclosed: {self._open}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        for key in ("src", "href", "srcset", "action", "poster", "data"):
            if a.get(key):
                self.urls.append(str(a[key]))
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy":
            self.csp.append(str(a.get("content")))
        if tag not in self.VOID:
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self._open or self._open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self._open[-1] if self._open else 'nothing'}")
            return
        self._open.pop()

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text.append(" ".join(data.split()))


def external_urls(html: str) -> list[str]:
    """Every URL in an attribute of ``html`` that is not a ``data:`` URI or a fragment (``#...``)."""
    return [u for u in PageFacts(html).urls if not u.startswith(("data:", "#"))]
