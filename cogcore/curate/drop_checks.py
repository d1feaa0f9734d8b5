"""Checks that curation did not lose the corpus without saying so.

The pipeline runs them once the step stats are final (`cogcore curate RECIPE`):

    found = source_warnings(sources, read_counts, unreadable) + drop_warnings(steps, 0.3, "runs/demo")
    fail_on_drops(stats, sources, max_fraction=None, run_dir="runs/demo")   # StageError, one line

A step that drops more than `curate.warn_drop_fraction` of the documents it received, and a source
that yields no document, each give a `DropWarning` (stats.py); they are logged, and stored in
stats.json's `warnings`, where `cogcore inspect RUN` and the report's data funnel read them. A step
over `curate.max_drop_fraction`, or a run that keeps no document at all, fails the stage.
"""

from __future__ import annotations

import shlex
from collections import Counter

from cogcore.curate.stats import CurateStats, DropWarning, StepStats, UnreadableEntry
from cogcore.runner import StageError

# Exact duplicates differ only in case and whitespace, and every group keeps one copy, so removing
# them loses no text however many there are: their share says how repetitive the corpus is, not how
# much of it was lost. Near and semantic duplicates are judgements against a threshold: a page that
# is 80% like another can hold a different fee or date, and a loose threshold looks exactly like a
# heavy drop, so they are held to the same bar as the filters.
LOSSLESS_STEPS = frozenset({"exact_dedup"})

# The recipe field that sets each step, named in the messages (quality filters under their recipe names).
STEP_FIELDS = {
    "unique_ids": "sources[].id_field",
    "length_filter": "curate.min_chars",
    "boilerplate_lines": "curate.boilerplate",
    "gopher_quality": "curate.quality.gopher_quality",
    "gopher_repetition": "curate.quality.gopher_repetition",
    "c4_quality": "curate.quality.c4",
    "fineweb_quality": "curate.quality.fineweb",
    "pii_redact": "curate.pii",
    "exact_dedup": "curate.dedup.exact",
    "near_dedup": "curate.dedup.minhash",
    "semantic_dedup": "curate.dedup.semantic",
    "rebalance": "curate.rebalance",
}


def inspect_command(run_dir: str, reason: str) -> str:
    return f"cogcore inspect {shlex.quote(run_dir)} --reason {shlex.quote(reason)}"


def _dropped(step: StepStats) -> int:
    return sum(step.dropped.values())


def _share(step: StepStats) -> float:
    return _dropped(step) / step.docs_in if step.docs_in else 0.0


def _top_reason(step: StepStats) -> tuple[str, int]:
    return max(step.dropped.items(), key=lambda kv: (kv[1], kv[0]))


def _described(step: StepStats, run_dir: str, limit: str = "") -> str:
    """'<step> dropped 75.0% of the documents it received (9 of 12<limit>), most for <reason> (9);
    its settings: <field>; samples: <command>': the command last, so that it can be copied."""
    reason, n = _top_reason(step)
    settings = f"; its settings: {STEP_FIELDS[step.step]}" if step.step in STEP_FIELDS else ""
    return (
        f"{step.step} dropped {_share(step):.1%} of the documents it received "
        f"({_dropped(step):,} of {step.docs_in:,}{limit}), most for {reason} ({n:,}){settings}; "
        f"samples: {inspect_command(run_dir, reason)}"
    )


def drop_warnings(steps: list[StepStats], warn_fraction: float | None, run_dir: str) -> list[DropWarning]:
    """A warning for every step (exact dedup excepted) that dropped more than `warn_fraction` of its input."""
    if warn_fraction is None:
        return []
    found = []
    for step in steps:
        if step.step in LOSSLESS_STEPS or _share(step) <= warn_fraction or not step.dropped:
            continue
        reason, n = _top_reason(step)
        message = f"curate: {_described(step, run_dir, f', over curate.warn_drop_fraction = {warn_fraction}')}"
        found.append(
            DropWarning(
                "step_drop",
                message,
                step=step.step,
                share=round(_share(step), 4),
                docs_in=step.docs_in,
                dropped=_dropped(step),
                reason=reason,
                reason_docs=n,
                threshold=warn_fraction,
                inspect=inspect_command(run_dir, reason),
            )
        )
    return found


def unreadable_by_reason(unreadable: list[UnreadableEntry]) -> Counter:
    """Files and records skipped, by the kind of reason (without the library's detail); an entry
    with a `count` stands for that many records of one file."""
    counts: Counter = Counter()
    for u in unreadable:
        counts[u.kind] += u.count
    return counts


def _unreadable_summary(rows: list[UnreadableEntry]) -> str:
    if not rows:
        return "no readable file matched"
    by_reason = unreadable_by_reason(rows)
    kinds = ", ".join(f"{reason}: {n}" for reason, n in by_reason.most_common())
    return f"{sum(by_reason.values())} unreadable ({kinds}; e.g. {rows[0].path}: {rows[0].reason})"


def source_warnings(sources: list, read_counts: Counter, unreadable: list[UnreadableEntry]) -> list[DropWarning]:
    """A warning for every source (name, path) that yielded no document, with why its files failed."""
    found = []
    for i, src in enumerate(sources):
        if read_counts[src.name]:
            continue
        rows = [u for u in unreadable if u.source == src.name]
        message = (
            f"curate: source {src.name} ({src.path}) yielded no documents: {_unreadable_summary(rows)}; "
            f"check sources.{i}.path, format and text_field"
        )
        found.append(
            DropWarning(
                "empty_source", message, source=src.name, path=src.path, unreadable=dict(unreadable_by_reason(rows))
            )
        )
    return found


def fail_on_drops(stats: CurateStats, sources: list, max_fraction: float | None, run_dir: str) -> None:
    """StageError when no document is left, or a step (exact dedup excepted) dropped over `max_fraction`."""
    if stats.docs_in == 0:
        names = ", ".join(f"{src.name} ({src.path})" for src in sources)
        raise StageError(
            f"curate: the sources yielded no documents: {names}: "
            f"{_unreadable_summary(stats.unreadable)}; check sources[].path, format and text_field"
        )
    if stats.docs_out == 0:
        last = next(s for s in stats.steps if s.docs_in and not s.kept)
        raise StageError(f"curate: 0 of {stats.docs_in:,} documents kept: {_described(last, run_dir)}")
    if max_fraction is None:
        return
    for step in stats.steps:
        if step.step not in LOSSLESS_STEPS and _share(step) > max_fraction:
            limit = f", more than curate.max_drop_fraction = {max_fraction} allows"
            raise StageError(f"curate: {_described(step, run_dir, limit)}")
