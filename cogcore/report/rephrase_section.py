"""The report's "Rephrasing" section, from rephrase/stats.json alone: how many rewrites were asked,
kept and rejected (by reason and by style), what generating them took and what it was estimated to
cost before it ran, how much of them train.cpt trained on, and kept rewrites beside their source.

    blocks = rephrase_section(RephraseStats.read(run / "rephrase/stats.json"), cpt_data)
"""

from __future__ import annotations

from cogcore.rephrase.files import RephraseStats
from cogcore.report.blocks import Heading, Paragraph, Table, format_value

SHOWN = 300  # characters of a source and of its rewrite


def rephrase_section(stats: RephraseStats | None, cpt_data: dict | None = None) -> list:
    """Only where the stage ran with `rephrase.enabled`."""
    if stats is None or not stats.enabled:
        return []
    rejected = ", ".join(f"{r}: {format_value(n)}" for r, n in stats.rejected.items()) or "none"
    share = stats.accepted / stats.requested if stats.requested else 0.0
    blocks = [
        Heading("Rephrasing"),
        Paragraph(
            f"{format_value(stats.documents_considered)} of {format_value(stats.documents_in)} training documents "
            f"rewritten, {format_value(stats.requested)} rewrites asked of {stats.generator} ({stats.backend}): "
            f"{format_value(stats.accepted)} kept ({share:.1%}), rejected by the fact gate: {rejected}. Every "
            f"rewrite is accounted for: asked = kept + rejected. {format_value(stats.facts)} facts found in the kept "
            f"rewrites are treated as any fact. Samples: cogcore inspect RUN --rephrase."
        ),
        Table(["style", "asked", "kept", "share kept", "rejected by reason"], _style_rows(stats)),
        Table(["", "value"], _cost_rows(stats, cpt_data)),
    ]
    if stats.samples:
        blocks.append(Heading("Kept rewrites beside their source", 3))
        blocks.append(
            Table(
                ["style", "source", "rewrite"],
                [[s["style"], _flat(s["source"]), _flat(s["rewrite"])] for s in stats.samples],
            )
        )
    return blocks


def _style_rows(stats: RephraseStats) -> list[list]:
    return [
        [
            style,
            c["requested"],
            c["accepted"],
            f"{c['accepted'] / c['requested']:.0%}" if c["requested"] else "–",
            ", ".join(f"{r}: {n}" for r, n in c["rejected"].items()) or "–",
        ]
        for style, c in stats.by_style.items()
    ]


def _cost_rows(stats: RephraseStats, cpt_data: dict | None) -> list[list]:
    rows = [
        [
            "tokens generated (prompt tokens)",
            f"{format_value(stats.generated_tokens)} ({format_value(stats.prompt_tokens)})",
        ],
        ["generation time, measured", f"{stats.seconds:.0f} s, {stats.tokens_per_s:.1f} generated tokens/s"],
    ]
    cost = stats.cost_estimate
    if "gpu_hours" in cost:
        rows.append(
            [
                f"estimated before generating, on {cost['gpu_name']}",
                f"{cost['gpu_hours']:.3g} GPU-hours, ${cost['usd']:.3g} (roofline at batch {cost['batch']}: a floor)",
            ]
        )
    used = (cpt_data or {}).get("rephrased")
    if used:
        rows.append(
            [
                "trained on in train.cpt",
                f"{used['docs']} of {used['available']} kept rewrites, {format_value(used['tokens'])} tokens "
                f"({used.get('ratio')} x the original text's)",
            ]
        )
    return rows


def _flat(text: str) -> str:
    return " ".join(text.split())[:SHOWN]
