"""Reading back what curation did, for `cogcore inspect RUN`: drop reasons, samples, duplicate groups.

Reads only the curate stage's files (stats.json, drops/<reason>.jsonl, clusters.jsonl).
"""

from __future__ import annotations

import json
from pathlib import Path


def _stats(folder: Path) -> dict:
    path = folder / "stats.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: has the curate stage run?")
    return json.loads(path.read_text())


def summary_lines(folder: Path) -> list[str]:
    stats = _stats(folder)
    lines = [f"{stats['docs_in']} documents in, {stats['docs_out']} out"]
    for st in stats["steps"]:
        for reason, n in sorted(st["dropped"].items(), key=lambda kv: -kv[1]):
            mb = st.get("bytes_dropped", {}).get(reason, 0) / 1e6
            lines.append(f"  {st['step']:<18} {reason:<28} {n:>8} docs {mb:>9.2f} MB")
    for u in stats.get("unreadable", [])[:20]:
        lines.append(f"  unreadable: {u['path']} ({u['reason']})")
    lines.append("samples: cogcore inspect RUN --reason REASON")
    return lines


def reason_lines(folder: Path, reason: str) -> list[str]:
    path = folder / "drops" / f"{reason}.jsonl"
    if not path.exists():
        known = sorted(p.stem for p in (folder / "drops").glob("*.jsonl"))
        raise FileNotFoundError(f"no samples for reason {reason!r}; reasons with samples: {', '.join(known) or 'none'}")
    lines = []
    for row in map(json.loads, path.read_text().splitlines()):
        extra = f" duplicate of {row['meta']['duplicate_of']}" if "duplicate_of" in row.get("meta", {}) else ""
        lines += [f"--- {row['id']} ({row['source']}, step {row['step']}){extra}", row["text"]]
    return lines


def cluster_lines(folder: Path, doc_id: str) -> list[str]:
    path = folder / "clusters.jsonl"
    groups = [c for c in map(json.loads, path.read_text().splitlines()) if c.get("kept") == doc_id] \
        if path.exists() else []
    if not groups:
        return [f"{doc_id} stands for no other document (no duplicate group keeps it)"]
    return [f"{c['kind']}: {doc_id} kept for {len(c['members'])} documents: {', '.join(c['members'])}" for c in groups]
