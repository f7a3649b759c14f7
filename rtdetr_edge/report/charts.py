"""The report's charts: matplotlib (Agg, headless) figures as ``data:image/png`` URIs.

matplotlib is imported here, lazily, with our error naming the ``check`` extra; the Agg backend
is chosen per figure (``matplotlib.figure.Figure`` + ``FigureCanvasAgg``), never through pyplot's
global state, so a build in a process with another backend is left alone.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

from .._optional import require

# one colour per precision everywhere on the page (matplotlib's tab10 entries)
PRECISION_COLOURS = {"fp32": "#7f7f7f", "fp16": "#1f77b4", "int8": "#ff7f0e"}
OTHER_COLOUR = "#2ca02c"


def _figure(width: float, height: float) -> Any:
    require("matplotlib", "the HTML report's charts")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def colour(precision: str) -> str:
    return PRECISION_COLOURS.get(precision, OTHER_COLOUR)


def ap_chart(accuracy: Mapping[str, Mapping[str, float]], metrics: Sequence[str] = ("AP", "AP50")) -> str:
    """Grouped bars: ``metrics`` (x) per precision (colour), values on the bars."""
    fig = _figure(6.4, 2.8)
    ax = fig.add_subplot()
    names = list(accuracy)
    width = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        values = [float(accuracy[name].get(m, 0.0)) for m in metrics]
        xs = [i + (k - (len(names) - 1) / 2) * width for i in range(len(metrics))]
        bars = ax.bar(xs, values, width, label=name, color=colour(name))
        ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], fontsize=8, padding=2)
    ax.set_xticks(range(len(metrics)), list(metrics))
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("COCO AP")
    ax.legend(loc="upper left", ncols=max(len(names), 1), fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return png_uri(fig)


def class_chart(per_class: Mapping[str, Mapping[str, float]], xlabel: str) -> str:
    """Horizontal bars: a value per class (rows) and candidate (colour), e.g. AP against fp32's detections."""
    candidates = list(per_class)
    classes = list(dict.fromkeys(c for values in per_class.values() for c in values))
    fig = _figure(6.4, 0.45 * max(len(classes), 1) * max(len(candidates), 1) ** 0.5 + 1.0)
    ax = fig.add_subplot()
    height = 0.8 / max(len(candidates), 1)
    for k, cand in enumerate(candidates):
        ys = [i + (k - (len(candidates) - 1) / 2) * height for i in range(len(classes))]
        values = [float(per_class[cand].get(c, 0.0)) for c in classes]
        bars = ax.barh(ys, values, height, label=cand, color=colour(cand))
        ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], fontsize=8, padding=2)
    ax.set_yticks(range(len(classes)), classes)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    ax.set_xlabel(xlabel)
    fig.legend(loc="outside upper center", ncols=max(len(candidates), 1), fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return png_uri(fig)


def share_chart(shares: Mapping[str, float]) -> str:
    """One stacked bar: the share of MACs per precision, in percent."""
    fig = _figure(6.4, 1.6)
    ax = fig.add_subplot()
    left = 0.0
    for name, share in shares.items():
        pct = 100 * float(share)
        ax.barh([0], [pct], left=left, color=colour(name), label=f"{name} {pct:.1f}%")
        left += pct
    ax.set_xlim(0, 100)
    ax.set_yticks([])
    ax.set_xlabel("share of the multiply-accumulates (%)")
    fig.legend(loc="outside upper center", ncols=max(len(shares), 1), fontsize=8, frameon=False)
    ax.spines[["top", "right", "left"]].set_visible(False)
    return png_uri(fig)
