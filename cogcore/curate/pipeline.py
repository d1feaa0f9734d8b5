"""The curation pipeline: sources -> curated documents, facts, clusters and stats.

Three passes over the corpus, each streaming batches through an executor (this process, local
processes, or Ray Data) and writing one shard file per batch under `work/`:

1. read -> unique ids -> normalize; hash lines (for boilerplate removal);
2. drop lines repeated across many documents -> filters -> PII redaction; content hash and
   MinHash signature per document;
3. decide (here, once) the global steps - exact, near and semantic duplicates, rebalancing - and
   learn the domain's names (counted per shard on the workers, `work/names/`); then, on the
   workers, apply those decisions, split train/held-out and find facts (`work/p3/`), and append
   each shard's lines, in order, to `docs.jsonl` and `facts.jsonl`.

Then the drop checks (drop_checks.py): a step that dropped more than `warn_drop_fraction` of what it
received, or a source that yielded nothing, is a warning, logged and kept in stats.json's `warnings`
(stats.json is a `CurateStats`, stats.py); a run that keeps no document, or a step over
`max_drop_fraction`, fails once the outputs are written, so that what was dropped can still be
inspected.

    plan = CuratePlan.from_sections(curate=recipe.curate, facts=recipe.facts, seed=recipe.seed,
                                    embedder=recipe.index.embedder)
    stats = curate(sources, Path("runs/demo/curate"), plan, LocalExecutor(workers=4))

A shard's result file is written last and atomically, so a killed run, started again, skips the
shards it finished and produces exactly the output of an uninterrupted run. For every step,
`in == kept + sum(dropped[reason])` holds for documents, bytes and tokens (accounting.py);
samples of every drop reason go to `drops/<reason>.jsonl`, redacted when redaction is on.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from cogcore.curate.accounting import check_accounting, merge_samples
from cogcore.curate.boilerplate import BoilerplateRemover, LineCounter
from cogcore.curate.drop_checks import drop_warnings, fail_on_drops, source_warnings, unreadable_by_reason
from cogcore.curate.executors import LocalExecutor
from cogcore.curate.facts import DEFAULT_KINDS, FactDetector
from cogcore.curate.global_steps import global_steps
from cogcore.curate.names import NAMES_FILE, NameCounts, count_names, names_of
from cogcore.curate.passes import (
    FirstPass,
    LastPass,
    PassResult,
    PassTotals,
    SecondPass,
    WrittenShard,
    run_steps,
    split_of,  # noqa: F401  (curation's split, imported from here by the benchmarks)
)
from cogcore.curate.pii import PiiRedactor
from cogcore.curate.plan import CuratePlan, SourceSpec
from cogcore.curate.readers import Unreadable, read_source
from cogcore.curate.stats import STATS_FILE, CurateStats, StepStats, UnreadableEntry
from cogcore.curate.steps import DuplicateIdFilter, LengthFilter, Normalize
from cogcore.io import write_json_atomic

log = logging.getLogger(__name__)


def curate(sources: list[SourceSpec], out_dir: Path, plan: CuratePlan, executor=None) -> CurateStats:
    """Run `plan` over `sources` into out_dir (docs.jsonl, facts.jsonl, clusters.jsonl, stats.json,
    drops/); `executor` runs the batches (default: this process)."""
    executor = executor or LocalExecutor(1)
    work = out_dir / "work"
    # 1. Read every source, keep one document per id, normalize; count lines for boilerplate.
    reading = _Reading()
    ids_stats, samples = StepStats("unique_ids"), {}
    docs = _unique_ids(reading.documents(sources), ids_stats, samples)
    first = FirstPass([Normalize()], hash_lines=plan.boilerplate is not None)
    p1 = _run_pass("pass 1/2", executor, first, _batches(docs, plan.batch_size), work / "p1")
    # 2. Boilerplate lines, filters, redaction; the signatures that deduplication decides on.
    second = SecondPass(_second_steps(plan, p1), plan.minhash)
    p2 = _run_pass("pass 2/2", executor, second, _shard_docs(work / "p1", p1.shards), work / "p2")
    # 3. The global decisions, applied as the documents and their facts are written.
    final_steps, rebalance = global_steps(p2, plan, lambda: _shard_docs(work / "p2", p2.shards), work)
    merge_samples(samples, p1.samples)
    merge_samples(samples, p2.samples)
    written = _write_documents(out_dir, plan, p2, final_steps, samples, executor)
    _write_clusters(out_dir / "clusters.jsonl", final_steps)
    _write_samples(out_dir / "drops", samples, plan.redactor)
    # 4. The stats, with what was lost said in warnings; failures only once every file is written,
    # so that what was dropped can still be inspected.
    steps = [ids_stats, *p1.stats, *p2.stats, *written.stats]
    check_accounting(steps, ids_stats.docs_in, written.docs_out)
    run_dir = str(out_dir.parent)  # `cogcore inspect RUN_DIR` reads RUN_DIR/curate
    stats = CurateStats(
        docs_in=ids_stats.docs_in,
        docs_out=written.docs_out,
        steps=steps,
        splits=dict(written.splits),
        facts=dict(written.facts),
        pii=dict(written.pii),
        unreadable=reading.unreadable,
        unreadable_by_reason=dict(unreadable_by_reason(reading.unreadable)),
        recoded=reading.recoded,
        warnings=source_warnings(sources, reading.per_source, reading.unreadable)
        + drop_warnings(steps, plan.warn_drop_fraction, run_dir),
        rebalance=rebalance,
    )
    stats.write(out_dir / STATS_FILE)
    for warning in stats.warnings:
        log.warning(warning.message)
    fail_on_drops(stats, sources, plan.max_drop_fraction, run_dir)
    return stats


@dataclass
class _Reading:
    """What reading the sources met besides documents."""

    unreadable: list[UnreadableEntry] = field(default_factory=list)  # files and records skipped, and why
    recoded: dict[str, str] = field(default_factory=dict)  # file read in a fallback encoding -> the encoding
    per_source: Counter = field(default_factory=Counter)  # documents read, by source name

    def documents(self, sources: list[SourceSpec]) -> Iterator[dict]:
        for src in sources:
            for item in read_source(
                path=src.path,
                name=src.name,
                fmt=src.format,
                text_field=src.text_field,
                id_field=src.id_field,
                title_field=src.title_field,
                meta_fields=src.meta_fields,
                follow_links=src.follow_links,
                limits=src.limits,
            ):
                if isinstance(item, Unreadable):
                    self.unreadable.append(
                        UnreadableEntry(path=item.path, reason=item.reason, source=src.name, count=item.count)
                    )
                    continue
                if item["meta"].get("encoding"):
                    self.recoded[item["meta"]["path"]] = item["meta"]["encoding"]
                self.per_source[src.name] += 1
                yield item


def _unique_ids(docs: Iterator[dict], stats: StepStats, samples: dict) -> Iterator[dict]:
    step = DuplicateIdFilter()
    for doc in docs:
        yield from run_steps([doc], [step], [stats], samples)


def _batches(docs: Iterator[dict], size: int) -> Iterator[list[dict]]:
    batch = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def filter_drops(sources: list[SourceSpec], plan: CuratePlan) -> dict[str, list[dict]]:
    """The documents each per-document step of pass 2 (boilerplate, length, quality filters) drops, by
    the step that dropped it first, read and normalized as curation reads them and redacted when
    redaction is on: what `cogcore ablate --by filter` adds back to training, one step at a time.
    Holds the sources in memory: an ablation trains proxies on all of it anyway."""
    reading, samples = _Reading(), {}
    first = FirstPass([Normalize()], hash_lines=plan.boilerplate is not None)
    p1, docs = PassTotals(), []
    for batch in _batches(_unique_ids(reading.documents(sources), StepStats("unique_ids"), samples), plan.batch_size):
        result = first(batch)
        p1.add(result)
        docs += result.docs
    dropped: dict[str, list[dict]] = {}
    for step in _second_steps(plan, p1):
        if step is plan.redactor:
            break
        docs, out = step.run(docs)
        if out:
            dropped.setdefault(step.name, []).extend(doc for doc, _ in out)
    if plan.redactor is not None:
        for step_name, group in dropped.items():
            dropped[step_name] = plan.redactor.run(group)[0]
    return dropped


def _second_steps(plan: CuratePlan, p1: PassTotals) -> list:
    steps = []
    if plan.boilerplate is not None:
        lines = p1.line_counter or LineCounter()  # None: no document reached pass 1
        steps.append(BoilerplateRemover(lines.frequent(plan.boilerplate.min_docs, plan.boilerplate.min_fraction)))
    steps += [LengthFilter(plan.min_chars), *plan.filters]
    if plan.redactor is not None:
        steps.append(plan.redactor)
    return steps


def _run_pass(label: str, executor, fn, batches: Iterator[list[dict]], folder: Path) -> PassTotals:
    """Run fn over batches; shard k's result is read back if a previous run finished it."""
    totals = PassTotals()
    bar = tqdm(desc=f"curate {label}", unit="doc", dynamic_ncols=True, smoothing=0.1)
    result: PassResult
    for result in _shard_results(executor, fn, batches, folder):
        totals.add(result)
        bar.update(result.stats[0].docs_in if result.stats else len(result.docs))
        bar.set_postfix(
            kept=totals.stats[-1].kept if totals.stats else 0,
            dropped=sum(sum(s.dropped.values()) for s in totals.stats),
        )
    bar.close()
    return totals


def _shard_results(executor, fn, batches: Iterator[list[dict]], folder: Path) -> Iterator:
    """fn(batch) for every batch, in order, run by the executor and committed as one file per shard;
    a shard that a previous run finished is read back instead of run again."""
    folder.mkdir(parents=True, exist_ok=True)
    pending = ((k, batch) for k, batch in enumerate(batches) if not (folder / f"{k:06d}.pkl").exists())
    results = executor.map(_ShardJob(fn, folder), pending)
    done_before = sorted(folder.glob("*.pkl"))
    for path in _in_order(folder, done_before, results):
        yield pickle.loads(path.read_bytes())


def _in_order(folder: Path, done_before: list[Path], results: Iterator[Path]) -> Iterator[Path]:
    # Finished shards from an earlier run and new ones interleave by shard number.
    done = {int(p.stem): p for p in done_before}
    new = iter(results)
    k = 0
    while True:
        if k in done:
            yield done.pop(k)
        else:
            try:
                path = next(new)
            except StopIteration:
                return
            yield path
        k += 1


class _ShardJob:
    """Run the pass on one batch and write its result (docs included) as shard k."""

    def __init__(self, fn, folder: Path):
        self.fn, self.folder = fn, folder

    def __call__(self, item: tuple[int, list[dict]]) -> Path:
        k, batch = item
        result = self.fn(batch)
        path = self.folder / f"{k:06d}.pkl"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        tmp.replace(path)  # atomic: a shard file exists only once it is complete
        return path


def _shard_docs(folder: Path, n: int) -> Iterator[list[dict]]:
    for k in range(n):
        yield pickle.loads((folder / f"{k:06d}.pkl").read_bytes()).docs


@dataclass
class _Written:
    """What the last pass wrote: the global steps' stats, and counts of the documents kept."""

    stats: list[StepStats]
    docs_out: int = 0
    splits: Counter = field(default_factory=Counter)
    facts: Counter = field(default_factory=Counter)
    pii: Counter = field(default_factory=Counter)  # in every redacted document, duplicates dropped here included

    def add(self, shard: WrittenShard) -> None:
        self.stats = [a + b for a, b in zip(self.stats, shard.stats)]
        self.docs_out += shard.docs_out
        self.splits.update(shard.splits)
        self.facts.update(shard.facts)
        self.pii.update(shard.pii)


def _write_documents(
    out_dir: Path, plan: CuratePlan, p2: PassTotals, final_steps: list, samples: dict, executor
) -> _Written:
    """Apply the global steps to pass 2's documents on the executor's workers, shard by shard; write
    the kept ones, with their split, to docs.jsonl and their facts to facts.jsonl, in shard order."""
    work = out_dir / "work"
    names = None if plan.fact_names is None else _learn_names(out_dir, plan, p2, executor)
    detector = FactDetector(
        plan.fact_kinds or DEFAULT_KINDS, patterns=plan.fact_patterns, terms=plan.fact_terms, names=names
    )
    last = LastPass(final_steps, detector, plan.heldout_fraction, plan.seed)
    written = _Written([StepStats(s.name) for s in final_steps])
    bar = tqdm(desc="curate facts", unit="doc", dynamic_ncols=True, smoothing=0.1)
    with open(out_dir / "docs.jsonl.tmp", "w") as docs_f, open(out_dir / "facts.jsonl.tmp", "w") as facts_f:
        shard: WrittenShard
        for shard in _shard_results(executor, last, _shard_docs(work / "p2", p2.shards), work / "p3"):
            docs_f.write(shard.docs_jsonl)
            facts_f.write(shard.facts_jsonl)
            written.add(shard)
            merge_samples(samples, shard.samples)
            bar.update(shard.docs_in)
    bar.close()
    for name in ("docs.jsonl", "facts.jsonl"):
        (out_dir / f"{name}.tmp").replace(out_dir / name)
    shutil.rmtree(work / "p3")  # the outputs hold all of it now: no second copy on disk
    return written


def _learn_names(out_dir: Path, plan: CuratePlan, p2: PassTotals, executor) -> list[str]:
    """The domain's proper names, from every document that reached pass 2: counted per shard on the
    executor's workers, added up here; written to names.json."""
    work = out_dir / "work"
    counts = NameCounts()
    for shard_counts in _shard_results(executor, _count_names, _shard_docs(work / "p2", p2.shards), work / "names"):
        counts.update(shard_counts)
    learned = names_of(counts, plan.fact_names)
    write_json_atomic(
        out_dir / NAMES_FILE, {"settings": asdict(plan.fact_names), "names": [n.to_json() for n in learned]}
    )
    return [n.text for n in learned]


def _count_names(docs: list[dict]) -> NameCounts:
    return count_names(doc["text"] for doc in docs)


def _write_clusters(path: Path, steps: list) -> None:
    with open(path, "w") as f:
        for step in steps:
            for cluster in step.decisions.clusters:
                f.write(json.dumps(cluster, ensure_ascii=False) + "\n")


def _write_samples(folder: Path, samples: dict, redactor: PiiRedactor | None) -> None:
    folder.mkdir(exist_ok=True)
    for reason, rows in samples.items():
        if redactor is not None:  # a document dropped before redaction must not leak through its sample
            for row in rows:
                row["text"] = redactor.redact(row["text"])[0]
                row["meta"] = redactor.redact_value(row["meta"])[0]
        with open(folder / f"{reason}.jsonl", "w") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
