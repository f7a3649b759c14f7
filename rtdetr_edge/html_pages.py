"""HTML pages from the package's Jinja2 templates (``rtdetr_edge/templates/``), autoescaped.

One environment for every page the SDK writes (``rtdetr-detect``'s contact sheet, the build's
report): a template receives one typed view object, ``page``, and every value is escaped unless
the template says otherwise.
"""

from __future__ import annotations

import functools
from typing import Any

from ._optional import require


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    require("jinja2", "writing HTML pages")
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("rtdetr_edge", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt field is an error, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, page: object) -> str:
    """``templates/<template>`` rendered with ``page`` (a view dataclass) as its one variable."""
    return str(_environment().get_template(template).render(page=page))
