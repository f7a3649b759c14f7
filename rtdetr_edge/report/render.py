"""The page as one self-contained HTML file: jinja2 (autoescaped, :mod:`rtdetr_edge.html_pages`) from ``rtdetr_edge/templates/report.html.j2``.

Every image is a ``data:`` URI, the CSS is inline, there is no script and no font, and a
Content-Security-Policy meta tag (:data:`CSP`) forbids any other load, so the file opens offline
(a laptop, a Jetson) and a stray URL cannot reach the network.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import atomic
from .._optional import require
from .page import Page, ReportInputs, build_page

# the policy in the template's meta tag (tests/report hold the page to it)
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
TEMPLATE = "report.html.j2"


def render(page: Page) -> str:
    """The HTML text of ``page``."""
    from ..html_pages import render as render_page

    return render_page(TEMPLATE, page)


def write_report(path: str | os.PathLike[str], inputs: ReportInputs) -> Path:
    """Render the page of ``inputs`` and write it to ``path`` atomically (never half-written)."""
    require("matplotlib", "the HTML report's charts")
    return atomic.write_text(path, render(build_page(inputs)))
