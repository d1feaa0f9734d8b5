"""`cogcore inspect RUN --rephrase`: what the rephrase stage kept and rejected, with samples.

The accounting (requested = accepted + rejections by reason, per style), the cost estimate made
before generating beside the measured speed, kept rewrites side by side with their source, and for
each rejection reason a few rejected rewrites with what the gate found (the values dropped, invented
or changed): what a data team reads to judge the rewrites instead of trusting them.

    for line in rephrase_lines(Path("runs/demo")):
        print(line)
"""

from __future__ import annotations

from pathlib import Path

from cogcore.io import iter_jsonl
from cogcore.rephrase.files import REJECTED_FILE, STATS_FILE, RephraseStats

SAMPLES = 2
SNIPPET = 300


def rephrase_lines(run_dir: Path, samples: int = SAMPLES) -> list[str]:
    folder = Path(run_dir) / "rephrase"
    stats = RephraseStats.read(folder / STATS_FILE)
    if stats is None:
        raise FileNotFoundError(f"{folder / STATS_FILE} does not exist: has the rephrase stage run?")
    if not stats.enabled:
        return ["rephrase.enabled is false: training saw the original text only"]
    lines = summary(stats)
    lines.append("kept, beside their source:")
    for s in stats.samples:
        lines += [
            f"  [{s['style']}] from {s['source_id']}",
            _text("source ", s["source"]),
            _text("rewrite", s["rewrite"]),
        ]
    lines += rejected_samples(folder, samples)
    return lines


def summary(stats: RephraseStats) -> list[str]:
    rejected = ", ".join(f"{r}: {n}" for r, n in stats.rejected.items()) or "none"
    lines = [
        f"{stats.documents_considered} of {stats.documents_in} training documents rewritten, "
        f"{stats.requested} rewrites: {stats.accepted} kept, rejected: {rejected}",
        f"{stats.generated_tokens:,} tokens generated in {stats.seconds:.0f} s ({stats.tokens_per_s:.1f} tok/s, "
        f"{stats.backend}, {Path(stats.generator or '').name}); {stats.facts} facts in the kept rewrites",
    ]
    for style, c in stats.by_style.items():
        reasons = ", ".join(f"{r}: {n}" for r, n in c["rejected"].items()) or "none"
        share = c["accepted"] / c["requested"] if c["requested"] else 0.0
        lines.append(
            f"  {style:<16} {c['requested']:>6} asked {c['accepted']:>6} kept ({share:.0%})  rejected: {reasons}"
        )
    cost = stats.cost_estimate
    if "gpu_hours" in cost:
        lines.append(
            f"estimated before generating: {cost['gpu_hours']:.3g} GPU-hours, ${cost['usd']:.3g} on {cost['gpu_name']}"
        )
    return lines


def rejected_samples(folder: Path, n: int) -> list[str]:
    path = folder / REJECTED_FILE
    shown: dict[str, int] = {}
    lines = []
    for r in iter_jsonl(path) if path.exists() else ():
        if shown.get(r["reason"], 0) >= n:
            continue
        shown[r["reason"]] = shown.get(r["reason"], 0) + 1
        lines += [f"  [{r['style']}] from {r['source_id']}: {r['reason']}{_findings(r['gate'])}"]
        lines += [_text("source ", r["source"]), _text("rewrite", r["text"])]
    return (["rejected (samples by reason):"] + lines) if lines else []


def _findings(gate: dict) -> str:
    parts = []
    if gate["dropped"]:
        parts.append("dropped " + ", ".join(repr(v["text"]) for v in gate["dropped"][:4]))
    if gate["invented"]:
        parts.append("invented " + ", ".join(repr(v["text"]) for v in gate["invented"][:4]))
    if gate["changed"]:
        parts.append("changed " + ", ".join(f"{a['text']!r} -> {b['text']!r}" for a, b in gate["changed"][:4]))
    if gate["repeated_prompt"]:
        parts.append(f"repeated {gate['repeated_prompt']!r}")
    parts.append(f"length x{gate['length_ratio']}")
    return " (" + "; ".join(parts) + ")"


def _text(label: str, text: str) -> str:
    return f"    {label}: " + " ".join(text.split())[:SNIPPET]
