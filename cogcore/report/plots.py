"""The report's charts, each returned as PNG bytes so the report can embed or save them.

Used by the report (`run_report`) and `cogcore compare` (`compare`); from Python:

    from cogcore.report.plots import loss_curves
    png = loss_curves([("cpt", [1, 2, 3], [3.1, 2.7, 2.5])])

matplotlib runs on the Agg backend (no display needed), and figures are closed after rendering so
that building many reports does not accumulate memory.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

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


def mixture_weights(groups: list[str], trajectory: list[list[float]]) -> bytes:
    """Each group's weight after every update (update 0: the starting weights)."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for i, group in enumerate(groups):
        ax.plot(range(len(trajectory)), [w[i] for w in trajectory], label=group, linewidth=1.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("update")
    ax.set_ylabel("weight")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    return _to_png(fig)


def score_boxes(quantiles: dict[str, dict[str, list[float]]]) -> bytes:
    """One panel per scorer, a box per source, drawn from (min, 25%, median, 75%, max)."""
    scorers = [name for name, by_source in quantiles.items() if any(by_source.values())]
    fig, axes = plt.subplots(1, len(scorers), figsize=(FIGSIZE[0], FIGSIZE[1]), squeeze=False)
    for ax, name in zip(axes[0], scorers):
        stats = [
            {"label": source, "whislo": q[0], "q1": q[1], "med": q[2], "q3": q[3], "whishi": q[4]}
            for source, q in quantiles[name].items()
            if q
        ]
        ax.bxp(stats, showfliers=False)
        ax.set_title(name, fontsize=9)
        ax.tick_params(axis="x", labelsize=8, rotation=30)
    return _to_png(fig)


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool = True) -> list[int]:
    """Indices of the (cost, quality) points no other point beats: cheaper-or-equal and at least as
    good, better in one. Ordered by cost; lower cost always wins, quality per `higher_is_better`."""
    sign = 1 if higher_is_better else -1
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -sign * points[i][1]))
    front, best = [], None
    for i in order:
        quality = sign * points[i][1]
        if best is None or quality > best:
            front.append(i)
            best = quality
    return front


def pareto(
    points: list[tuple[str, float, float, bool]], xlabel: str, ylabel: str, higher_is_better: bool = True
) -> bytes:
    """Quality against cost: (label, cost, quality, is_reference) per point, cost on a log axis,
    the Pareto frontier drawn as a step line and every point labelled."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for is_reference, style in (
        (False, dict(color="#c44e52", marker="o", s=42, zorder=3, label="cogcore runs")),
        (True, dict(facecolors="none", edgecolors="#555555", marker="s", s=36, zorder=2, label="reference")),
    ):
        chosen = [p for p in points if p[3] == is_reference]
        if chosen:
            ax.scatter([p[1] for p in chosen], [p[2] for p in chosen], **style)
    front = [points[i] for i in pareto_front([(p[1], p[2]) for p in points], higher_is_better)]
    if len(front) > 1:
        ax.step(
            [p[1] for p in front],
            [p[2] for p in front],
            where="post",
            color="#4c72b0",
            linewidth=1.2,
            label="Pareto frontier",
        )
    placed: dict[float, int] = {}
    for label, x, y, _ in sorted(points, key=lambda p: (p[1], -p[2])):
        # Points at the same cost (models of one size) stack their labels instead of overprinting.
        nth = placed[round(x, 12)] = placed.get(round(x, 12), -1) + 1
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 3 - 9 * nth), fontsize=7)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + ("" if higher_is_better else " (lower is better)"))
    ax.grid(alpha=0.3, which="both")
    if points:
        ax.legend(fontsize=7, loc="best")
    return _to_png(fig)
