"""`cogcore inspect RUN --selection`: what the select stage chose and what it left, with samples.

For the ranking score, the best and worst selected documents and the best of each reason not
selected, each with its scores and the start of its text: what a data team reads to judge the
valuation instead of trusting it.

    for line in selection_lines(Path("runs/valuation")):
        print(line)
"""

from __future__ import annotations

from pathlib import Path

from cogcore.io import iter_jsonl
from cogcore.valuation.selection import SELECTED
from cogcore.valuation.selection_files import SCORES_FILE, STATS_FILE, SelectStats, read_scores

SAMPLES = 3
SNIPPET = 160


def selection_lines(run_dir: Path, samples: int = SAMPLES) -> list[str]:
    folder = Path(run_dir) / "select"
    stats = SelectStats.read(folder / STATS_FILE)
    if stats is None:
        raise FileNotFoundError(f"{folder / STATS_FILE} does not exist: has the select stage run?")
    if not stats.enabled:
        return ["select.enabled is false: training saw every training document"]
    table = read_scores(folder / SCORES_FILE)
    scorers = [k for k in table if k not in ("doc_id", "source", "tokens", "selected", "reason")]
    rows = [dict(zip(table, values)) for values in zip(*table.values())]
    key = stats.rank_by
    flip = -1 if key == "perplexity" else 1  # lower loss ranks first
    rows.sort(key=lambda r: -flip * (r[key] if r[key] == r[key] else float("-inf")))
    texts = _texts(Path(run_dir), {r["doc_id"] for r in _samples(rows, samples)})
    not_selected = ", ".join(f"{r}: {n}" for r, n in stats.not_selected.items()) or "none"
    lines = [f"{stats.docs_in} in, {stats.selected} selected, not selected: {not_selected}; ranked by {key}"]
    for title, group in _samples_by_title(rows, samples):
        lines.append(title)
        for r in group:
            scores = "  ".join(f"{s}={r[s]:.3f}" for s in scorers)
            lines.append(f"  {r['doc_id']} [{r['source']}, {r['tokens']} tokens]  {scores}")
            lines.append("    " + " ".join(texts.get(r["doc_id"], "").split())[:SNIPPET])
    return lines


def _samples_by_title(rows: list[dict], n: int) -> list[tuple[str, list[dict]]]:
    chosen = [r for r in rows if r["reason"] == SELECTED]
    out = [("best selected:", chosen[:n]), ("worst selected:", chosen[-n:][::-1])]
    for reason in sorted({r["reason"] for r in rows} - {SELECTED}):
        out.append((f"not selected ({reason}), best first:", [r for r in rows if r["reason"] == reason][:n]))
    return [(title, group) for title, group in out if group]


def _samples(rows: list[dict], n: int) -> list[dict]:
    return [r for _, group in _samples_by_title(rows, n) for r in group]


def _texts(run_dir: Path, ids: set[str]) -> dict[str, str]:
    return {d["id"]: d["text"] for d in iter_jsonl(run_dir / "curate" / "docs.jsonl") if d["id"] in ids}
