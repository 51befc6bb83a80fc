"""``summary.png``: Dice and HD95 per class over the evaluated cases (matplotlib Agg, no pyplot).

Each class gets a box (25th-75th percentile, median line, mean triangle) and every case as a
dot. The Dice axis is fixed at 0-1 so figures of different runs compare at a glance; HD95 starts
at 0. ``n`` under each class counts the finite values drawn; undefined values (NaN: one of the
masks empty) are counted separately and left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg.evaluation.evaluate import CaseMetrics
from medseg.io.atomic import atomic_path

PANELS = (("dice", "Dice (1 = perfect overlap)"), ("hd95_mm", "HD95 (mm, 0 = perfect)"))
_BOX = "#c9d3f2"
_EDGE = "#4363d8"


def _values(cases: Sequence[CaseMetrics], label: int, metric: str) -> tuple[list[float], int]:
    """Finite values of one metric of one class, and how many were undefined (NaN)."""
    values = [float(getattr(c.classes[label], metric)) for c in cases if label in c.classes]
    finite = [v for v in values if math.isfinite(v)]
    return finite, len(values) - len(finite)


def _panel(ax: Any, cases: Sequence[CaseMetrics], labels: dict[int, str], metric: str) -> None:
    ticks = []
    top = 0.0
    for position, (label, name) in enumerate(labels.items(), start=1):
        finite, undefined = _values(cases, label, metric)
        note = f"\n{undefined} undefined" if undefined else ""
        ticks.append(f"{name}\nn = {len(finite)}{note}")
        if not finite:
            continue
        top = max(top, max(finite))
        ax.boxplot([finite], positions=[position], widths=0.5, showmeans=True, patch_artist=True,
                   whis=(0.0, 100.0),
                   showfliers=False, boxprops={"facecolor": _BOX, "edgecolor": _EDGE},
                   medianprops={"color": "#e6194b", "linewidth": 2},
                   meanprops={"marker": "^", "markerfacecolor": "#f58231",
                              "markeredgecolor": "#f58231"})  # fmt: skip
        jitter = np.linspace(-0.12, 0.12, len(finite)) if len(finite) > 1 else np.zeros(1)
        ax.scatter(position + jitter, finite, s=14, color="#333333", zorder=3, alpha=0.8)
    ax.set_xticks(range(1, len(labels) + 1), ticks, fontsize=9)
    ax.set_xlim(0.4, len(labels) + 0.6)
    if metric == "dice":
        ax.set_ylim(-0.02, 1.02)
        ax.set_yticks(np.linspace(0, 1, 6))
    else:
        ax.set_ylim(0, max(top * 1.1, 1.0))
    ax.grid(axis="y", alpha=0.3)
    ax.tick_params(axis="y", labelsize=9)


def _legend(figure: Any) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=_BOX, edgecolor=_EDGE, label="25th-75th percentile (whiskers: range)"),
        Line2D([], [], color="#e6194b", lw=2, label="median"),
        Line2D([], [], marker="^", ls="", color="#f58231", label="mean"),
        Line2D([], [], marker="o", ls="", color="#333333", markersize=4, label="one case"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=9, frameon=False)


def summary_figure(cases: Sequence[CaseMetrics], labels: dict[int, str]) -> Any:
    """The ``summary.png`` figure (matplotlib Figure on an Agg canvas), see the module docstring.

    Args:
        cases: evaluated cases (their ``classes`` hold every label of ``labels``).
        labels: class value -> name, in display order.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width = max(7.0, 2 * (1.1 * len(labels) + 1.2))
    figure = Figure(figsize=(width, 4.4), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(f"Evaluation of {len(cases)} case{'s' if len(cases) != 1 else ''}",
                    fontsize=11)  # fmt: skip
    for position, (metric, title) in enumerate(PANELS, start=1):
        ax = figure.add_subplot(1, 2, position)
        ax.set_title(title, fontsize=10)
        if not labels or not cases:
            ax.text(0.5, 0.5, "no evaluated cases", ha="center", va="center")
            continue
        _panel(ax, cases, labels, metric)
    _legend(figure)
    return figure


def plot_summary(path: Path, cases: Sequence[CaseMetrics], labels: dict[int, str]) -> Path:
    """Write ``summary.png`` (atomically) from :func:`summary_figure`."""
    with atomic_path(path) as tmp:
        summary_figure(cases, labels).savefig(tmp, format="png")
    return path
