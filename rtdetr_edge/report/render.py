"""The page as one self-contained HTML file: jinja2 (autoescaped) from ``templates/report.html.j2``.

Every image is a ``data:`` URI, the CSS is inline, there is no script and no font, and a
Content-Security-Policy meta tag (:data:`CSP`) forbids any other load, so the file opens offline
(a laptop, a Jetson) and a stray URL cannot reach the network.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import __version__, atomic
from .._optional import require
from .page import Page, ReportInputs, build_page

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
TEMPLATE = "report.html.j2"


def _environment() -> Any:
    jinja2 = require("jinja2", "the HTML report")
    return jinja2.Environment(
        loader=jinja2.PackageLoader("rtdetr_edge.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(page: Page) -> str:
    """The HTML text of ``page``."""
    return str(_environment().get_template(TEMPLATE).render(page=page, csp=CSP, version=__version__))


def write_report(path: str | os.PathLike[str], inputs: ReportInputs) -> Path:
    """Render the page of ``inputs`` and write it to ``path`` atomically (never half-written)."""
    require("jinja2", "the HTML report")
    require("matplotlib", "the HTML report's charts")
    return atomic.write_text(path, render(build_page(inputs)))
