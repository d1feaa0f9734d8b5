"""Reading back what curation did, for `cogcore inspect RUN`: drop reasons, samples, duplicate groups.

Reads only the curate stage's files (stats.json, drops/<reason>.jsonl, clusters.jsonl): those of its
last attempt when that one wrote them and then failed a check (curate.max_drop_fraction, nothing
kept), since that is the run a failure message asks to inspect; else those of its complete output.
"""

from __future__ import annotations

import json
from pathlib import Path

from cogcore.curate.names import NAMES_FILE
from cogcore.curate.stats import STATS_FILE, CurateStats
from cogcore.runner import STAGING_SUFFIX
from cogcore.stage_files import RunFileError, rerun


def _latest(folder: Path) -> Path:
    """The failed attempt's folder (built beside the output, never swapped in), else the output's."""
    attempt = folder.with_name(folder.name + STAGING_SUFFIX)
    return attempt if (attempt / STATS_FILE).exists() else folder


class CurateFileError(RunFileError):
    """A curate file that is there but unreadable (cut off mid-write, the wrong shape); names the file."""


def _rows(path: Path) -> list[dict]:
    """The JSON lines of a curate file; CurateFileError naming the first line that is not one."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except ValueError as e:
            raise CurateFileError(f"{path}: line {n} is not valid JSON ({e}); {rerun('curate')}") from None
    return rows


def summary_lines(folder: Path) -> list[str]:
    latest = _latest(folder)
    stats = CurateStats.read(latest / STATS_FILE)
    if stats is None:
        raise FileNotFoundError(f"{latest / STATS_FILE} does not exist: has the curate stage run?")
    lines = [f"(the failed curate attempt in {latest.name}/; the stage is not complete)"] if latest != folder else []
    lines += [f"warning: {w.message}" for w in stats.warnings]
    lines.append(f"{stats.docs_in} documents in, {stats.docs_out} out")
    for st in stats.steps:
        for reason, n in sorted(st.dropped.items(), key=lambda kv: -kv[1]):
            mb = st.bytes_dropped[reason] / 1e6
            lines.append(f"  {st.step:<18} {reason:<28} {n:>8} docs {mb:>9.2f} MB")
    for u in stats.unreadable[:20]:
        lines.append(f"  unreadable: {u.path} ({u.reason})")
    lines.append("samples: cogcore inspect RUN --reason REASON")
    return lines


def reason_lines(folder: Path, reason: str) -> list[str]:
    folder = _latest(folder)
    path = folder / "drops" / f"{reason}.jsonl"
    if not path.exists():
        known = sorted(p.stem for p in (folder / "drops").glob("*.jsonl"))
        raise FileNotFoundError(f"no samples for reason {reason!r}; reasons with samples: {', '.join(known) or 'none'}")
    lines = []
    for row in _rows(path):
        extra = f" duplicate of {row['meta']['duplicate_of']}" if "duplicate_of" in row.get("meta", {}) else ""
        lines += [f"--- {row['id']} ({row['source']}, step {row['step']}){extra}", row["text"]]
    return lines


def name_lines(folder: Path) -> list[str]:
    """The proper names curation learned (facts.names), most widespread first."""
    path = _latest(folder) / NAMES_FILE
    if not path.exists():
        return ["no names were learned (facts.names.learn is off, or `name` is not in facts.kinds)"]
    data = json.loads(path.read_text())
    lines = [f"{len(data['names'])} names learned ({', '.join(f'{k} {v}' for k, v in data['settings'].items())})"]
    lines += [f"{n['text']}  ({n['docs']} documents, lower-case share {n['lower_share']})" for n in data["names"]]
    return lines


def cluster_lines(folder: Path, doc_id: str) -> list[str]:
    folder = _latest(folder)
    path = folder / "clusters.jsonl"
    groups = [c for c in _rows(path) if c.get("kept") == doc_id] if path.exists() else []
    if not groups:
        return [f"{doc_id} stands for no other document (no duplicate group keeps it)"]
    return [f"{c['kind']}: {doc_id} kept for {len(c['members'])} documents: {', '.join(c['members'])}" for c in groups]
