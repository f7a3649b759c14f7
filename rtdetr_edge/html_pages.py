"""HTML pages from the package's Jinja2 templates (``rtdetr_edge/templates/``), autoescaped.

One environment for every page the SDK writes (``rtdetr-detect``'s contact sheet,
``contact_sheet.html.j2``; the check's and the build's report, ``report.html.j2``): a template
receives one typed view object, ``page`` (and ``version``, the SDK's), and every value is escaped
unless the template says otherwise. Each template carries its own Content-Security-Policy.
"""

from __future__ import annotations

import functools
from typing import Any

from . import __version__
from ._optional import require


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    require("jinja2", "writing HTML pages")
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("rtdetr_edge", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt field is an error, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["version"] = __version__
    return env


def render(template: str, page: object) -> str:
    """``templates/<template>`` rendered with ``page`` (a view dataclass) as its one variable."""
    return str(_environment().get_template(template).render(page=page))
