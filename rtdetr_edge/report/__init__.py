"""The HTML report: what precision did to the detections, on one self-contained page.

``rtdetr-check BUNDLE --report FILE`` and every ``rtdetr-build`` that writes FP16 or INT8
(``BUNDLE/report.html``) write it: the verdict per candidate first, AP per precision, per-class
agreement, the images where candidate and reference disagree most, the precision plan, the image
sets and the versions. Needs the ``check`` extra (jinja2, matplotlib).
"""

from .bundle_inputs import inputs_from_bundle
from .page import ReportInputs, build_page
from .render import CSP, render, write_report

__all__ = ["CSP", "ReportInputs", "build_page", "inputs_from_bundle", "render", "write_report"]
