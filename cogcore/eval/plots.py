"""The report's charts, each returned as PNG bytes so the report can embed or save them.

Used by `cogcore.eval.report`; from Python:

    from cogcore.eval.plots import loss_curves
    png = loss_curves([("cpt", [1, 2, 3], [3.1, 2.7, 2.5])])

matplotlib runs on the Agg backend (no display needed), and figures are closed after rendering so
that building many reports does not accumulate memory.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)
from matplotlib.ticker import MaxNLocator  # noqa: E402

FIGSIZE = (6.0, 3.2)
DPI = 100


def _to_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return buffer.getvalue()


def loss_curves(curves: list[tuple[str, list[int], list[float]]]) -> bytes:
    """Training loss against step, one line per (label, steps, losses)."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for label, steps, losses in curves:
        ax.plot(steps, losses, label=label, linewidth=1.5, marker="." if len(steps) < 30 else None)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend()
    return _to_png(fig)


def data_funnel(steps: list[str], kept: list[int], docs_in: int | None = None) -> bytes:
    """Documents left after each curation step, as horizontal bars from top to bottom."""
    labels = (["input"] if docs_in is not None else []) + list(steps)
    counts = ([docs_in] if docs_in is not None else []) + list(kept)
    height = max(2.0, 0.4 * len(labels) + 1.0)
    fig, ax = plt.subplots(figsize=(FIGSIZE[0], height))
    bars = ax.barh(range(len(labels)), counts, color="#4c72b0")
    ax.bar_label(bars, padding=3, fontsize=8)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()  # the first step on top, as a funnel reads
    ax.set_xlabel("documents kept")
    ax.margins(x=0.15)
    return _to_png(fig)


def fact_kinds(counts: dict[str, int]) -> bytes:
    """Facts found per kind (number, money, date, ...), largest first."""
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])
    fig, ax = plt.subplots(figsize=FIGSIZE)
    bars = ax.bar([k for k, _ in ordered], [v for _, v in ordered], color="#55a868")
    ax.bar_label(bars, fontsize=8)
    ax.margins(y=0.12)  # room for the labels above the tallest bar
    ax.set_ylabel("facts")
    ax.tick_params(axis="x", labelrotation=30)
    return _to_png(fig)
