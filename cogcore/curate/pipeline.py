"""The curation pipeline: sources -> curated documents, facts, clusters and stats.

Three passes over the corpus, each streaming batches through an executor (this process, local
processes, or Ray Data) and writing one shard file per batch under `work/`:

1. read -> unique ids -> normalize; hash lines (for boilerplate removal);
2. drop lines repeated across many documents -> filters -> PII redaction; content hash and
   MinHash signature per document;
3. (here, in order) apply the global decisions - exact, near and semantic duplicates,
   rebalancing - then split train/held-out, find facts, and write `docs.jsonl` and `facts.jsonl`.

Then the drop checks (drop_checks.py): a step that dropped more than `warn_drop_fraction` of what it
received, or a source that yielded nothing, is a warning, logged and kept in stats.json's `warnings`;
a run that keeps no document, or a step over `max_drop_fraction`, fails once the outputs are written,
so that what was dropped can still be inspected.

A shard's result file is written last and atomically, so a killed run, started again, skips the
shards it finished and produces exactly the output of an uninterrupted run. For every step,
`in == kept + sum(dropped[reason])` holds for documents, bytes and tokens (accounting.py);
samples of every drop reason go to `drops/<reason>.jsonl`, redacted when redaction is on.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tqdm.auto import tqdm

from cogcore.curate.accounting import StepStats, check_accounting, merge_samples
from cogcore.curate.drop_checks import drop_warnings, fail_on_drops, source_warnings, unreadable_by_reason
from cogcore.curate.global_steps import global_steps
from cogcore.curate.facts import DEFAULT_KINDS, FactDetector
from cogcore.curate.passes import FirstPass, PassResult, SecondPass, run_steps
from cogcore.curate.readers import ReadLimits, Unreadable, read_source
from cogcore.curate.steps import DuplicateIdFilter, LengthFilter, Normalize
from cogcore.io import write_json_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceSpec:
    name: str
    path: str
    format: str = "auto"
    text_field: str = "text"
    id_field: str | None = None
    title_field: str | None = None
    meta_fields: tuple[str, ...] = ()
    follow_links: bool = False  # read links that lead out of the source's root too
    limits: ReadLimits = ReadLimits()  # the recipe's curate.limits (the same for every source)


@dataclass
class CuratePlan:
    """What to run, as plain objects: built from the recipe in cogcore/stages.py."""

    min_chars: int = 100
    heldout_fraction: float = 0.1
    fact_kinds: tuple[str, ...] = ()
    fact_patterns: dict | None = None  # kind -> regex, from the recipe
    fact_terms: dict | None = None  # kind -> term list, from the recipe
    seed: int = 0
    batch_size: int = 1000
    boilerplate: tuple[int, float] | None = None  # (min_docs, min_fraction) or off
    filters: list = field(default_factory=list)  # Filter / mapper objects, after the length filter
    redactor: object | None = None  # a PiiRedactor, or None
    exact_dedup: bool = True
    minhash: object | None = None  # a MinHashConfig, or None
    embedder: str | None = None  # sentence-transformers folder, for semantic dedup and rebalancing
    semantic: dict | None = None  # {"threshold", "clusters"} for SemDeDup, or None
    rebalance: dict | None = None  # {"clusters", "max_share", "upsample_below", "max_upsample"}, or None
    warn_drop_fraction: float | None = 0.3  # warn when a step drops more of its input than this; None = never
    max_drop_fraction: float | None = None  # fail when a step drops more of its input than this; None = never


def curate(sources: list[SourceSpec], out_dir: Path, plan: CuratePlan, executor=None) -> dict:
    from cogcore.curate.executors import LocalExecutor

    executor = executor or LocalExecutor(1)
    work = out_dir / "work"
    unreadable: list[dict] = []
    ids_stats = StepStats("unique_ids")
    samples: dict = {}
    first = FirstPass([Normalize()], hash_lines=plan.boilerplate is not None)
    read_counts: Counter = Counter()  # documents per source, for the sources that yield none
    recoded: dict[str, str] = {}  # files read in a fallback encoding: kept, and said so in stats.json
    docs = _counted(_read_all(sources, unreadable, recoded), read_counts)
    batches = _batches(_unique_ids(docs, ids_stats, samples), plan.batch_size)
    p1 = _run_pass("pass 1/2", executor, first, batches, work / "p1")

    second_steps = []
    if plan.boilerplate is not None:
        second_steps.append(_boilerplate_step(p1["line_counter"], *plan.boilerplate))
    second_steps += [LengthFilter(plan.min_chars), *plan.filters]
    if plan.redactor is not None:
        second_steps.append(plan.redactor)
    second = SecondPass(second_steps, plan.minhash)
    p2 = _run_pass("pass 2/2", executor, second, _shard_docs(work / "p1", p1["n"]), work / "p2")

    final_steps, rebalance_report = global_steps(p2, plan, lambda: _shard_docs(work / "p2", p2["n"]), work)
    stats_steps = [ids_stats, *(p1["stats"] or []), *(p2["stats"] or [])]  # None: no document reached the pass
    merge_samples(samples, p1["samples"])
    merge_samples(samples, p2["samples"])
    stats = _write_outputs(out_dir, plan, p2, final_steps, stats_steps, samples, unreadable)
    stats["recoded"] = recoded
    if rebalance_report:
        stats["rebalance"] = rebalance_report
    run_dir = str(out_dir.parent)  # `cogcore inspect RUN_DIR` reads RUN_DIR/curate
    found = source_warnings(sources, read_counts, unreadable) + \
        drop_warnings(stats["steps"], plan.warn_drop_fraction, run_dir)
    stats["warnings"] = [w.as_dict() for w in found]
    write_json_atomic(out_dir / "stats.json", stats)
    for warning in found:
        log.warning(warning.message)
    # After stats.json and the drop samples are written: a failed run can still be inspected.
    fail_on_drops(stats, sources, plan.max_drop_fraction, run_dir)
    return stats


def _counted(docs: Iterator[dict], counts: Counter) -> Iterator[dict]:
    for doc in docs:
        counts[doc["source"]] += 1
        yield doc


def _unique_ids(docs: Iterator[dict], stats: StepStats, samples: dict) -> Iterator[dict]:
    step = DuplicateIdFilter()
    for doc in docs:
        kept = run_steps([doc], [step], [stats], samples)
        yield from kept


def _run_pass(label: str, executor, fn, batches: Iterator[list[dict]], folder: Path) -> dict:
    """Run fn over batches; shard k's result is read back if a previous run finished it."""
    folder.mkdir(parents=True, exist_ok=True)
    merged = {"stats": None, "samples": {}, "line_counter": None, "exact": [], "minhash": [], "n": 0}
    bar = tqdm(desc=f"curate {label}", unit="doc", dynamic_ncols=True, smoothing=0.1)
    pending = ((k, batch) for k, batch in enumerate(batches) if not (folder / f"{k:06d}.pkl").exists())
    results = executor.map(_ShardJob(fn, folder), pending)
    done_before = sorted(folder.glob("*.pkl"))
    n_shards = 0
    for path in _in_order(folder, done_before, results):
        result: PassResult = pickle.loads(path.read_bytes())
        n_shards += 1
        _merge(merged, result)
        bar.update(result.stats[0].docs_in if result.stats else len(result.docs))
        bar.set_postfix(kept=merged["stats"][-1].kept if merged["stats"] else 0,
                        dropped=sum(sum(s.dropped.values()) for s in merged["stats"] or []))
    bar.close()
    merged["n"] = n_shards
    return merged


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


def _merge(merged: dict, result: PassResult) -> None:
    if merged["stats"] is None:
        merged["stats"] = [StepStats(s.step) for s in result.stats]
    for acc, st in zip(merged["stats"], result.stats):
        acc.merge(st)
    merge_samples(merged["samples"], result.samples)
    if result.line_hashes is not None:  # counted as shards arrive: no per-document arrays are kept
        from cogcore.curate.boilerplate import LineCounter

        merged["line_counter"] = merged["line_counter"] or LineCounter()
        for hashes in result.line_hashes:
            merged["line_counter"].add(hashes)
    if result.exact is not None:
        merged["exact"].append(result.exact)
    if result.minhash is not None:
        merged["minhash"].append(result.minhash)
    merged.setdefault("ids", []).extend(d["id"] for d in result.docs)


def _shard_docs(folder: Path, n: int) -> Iterator[list[dict]]:
    for k in range(n):
        yield pickle.loads((folder / f"{k:06d}.pkl").read_bytes()).docs


def _boilerplate_step(counter, min_docs: int, min_fraction: float):
    from cogcore.curate.boilerplate import BoilerplateRemover, LineCounter

    return BoilerplateRemover((counter or LineCounter()).frequent(min_docs, min_fraction))


def _write_outputs(out_dir: Path, plan: CuratePlan, p2: dict, final_steps: list, stats_steps: list,
                   samples: dict, unreadable: list) -> dict:
    final_stats = [StepStats(s.name) for s in final_steps]
    detector = FactDetector(plan.fact_kinds or DEFAULT_KINDS, patterns=plan.fact_patterns, terms=plan.fact_terms)
    facts, splits, pii, docs_out = Counter(), Counter(), Counter(), 0
    with open(out_dir / "docs.jsonl.tmp", "w") as docs_f, open(out_dir / "facts.jsonl.tmp", "w") as facts_f:
        for batch in _shard_docs(out_dir / "work" / "p2", p2["n"]):
            for doc in batch:  # every redacted document, including duplicates dropped below
                pii.update(doc["meta"].get("pii", {}))
            for doc in run_steps(batch, final_steps, final_stats, samples):
                doc["meta"]["split"] = split_of(doc["id"], plan.heldout_fraction, plan.seed)
                splits[doc["meta"]["split"]] += 1
                docs_out += 1
                docs_f.write(json.dumps(doc, ensure_ascii=False) + "\n")
                for fact in detector.detect(doc):
                    facts[fact["kind"]] += 1
                    facts_f.write(json.dumps(fact, ensure_ascii=False) + "\n")
    for name in ("docs.jsonl", "facts.jsonl"):
        (out_dir / f"{name}.tmp").replace(out_dir / name)
    _write_clusters(out_dir / "clusters.jsonl", final_steps)
    _write_samples(out_dir / "drops", samples, plan.redactor)
    steps = [s.as_dict() for s in stats_steps + final_stats]
    docs_in = steps[0]["docs_in"] if steps else 0
    result = {"docs_in": docs_in, "docs_out": docs_out, "steps": steps, "facts": dict(facts), "pii": dict(pii),
              "splits": dict(splits), "unreadable": unreadable,
              "unreadable_by_reason": dict(unreadable_by_reason(unreadable))}
    check_accounting(steps, docs_in, docs_out)
    write_json_atomic(out_dir / "stats.json", result)
    return result


def split_of(doc_id: str, heldout_fraction: float, seed: int) -> str:
    # A hash, not a random draw: a document stays on its side when others are added or removed.
    import hashlib

    h = int(hashlib.sha1(f"{seed}:{doc_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "heldout" if h < heldout_fraction else "train"


def _write_clusters(path: Path, steps: list) -> None:
    with open(path, "w") as f:
        for step in steps:
            for cluster in step.decisions.clusters:
                f.write(json.dumps(cluster, ensure_ascii=False) + "\n")


def _write_samples(folder: Path, samples: dict, redactor) -> None:
    folder.mkdir(exist_ok=True)
    for reason, rows in samples.items():
        if redactor is not None:  # a document dropped before redaction must not leak through its sample
            for row in rows:
                row["text"] = redactor.redact(row["text"])[0]
                row["meta"] = redactor.redact_value(row["meta"])[0]
        with open(folder / f"{reason}.jsonl", "w") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _read_all(sources: list[SourceSpec], unreadable: list[dict], recoded: dict[str, str]) -> Iterator[dict]:
    """Every source's documents. `unreadable` collects each file or record skipped (`reason`; `count`
    where one entry stands for several records of a file), `recoded` each file read in a fallback
    encoding (path -> encoding)."""
    for src in sources:
        for item in read_source(src.path, src.name, src.format, src.text_field, src.id_field, src.title_field,
                                src.meta_fields, follow_links=src.follow_links, limits=src.limits):
            if isinstance(item, Unreadable):
                count = {"count": item.count} if item.count > 1 else {}
                unreadable.append({"path": item.path, "reason": item.reason, "source": src.name, **count})
                continue
            if item["meta"].get("encoding"):
                recoded[item["meta"]["path"]] = item["meta"]["encoding"]
            yield item


def _batches(docs: Iterator[dict], size: int) -> Iterator[list[dict]]:
    batch = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
