"""The train.cpt stage: continued pretraining of the base model on the curated training text, each
fact kept, masked or preceded by a search call (`facts.strategy`), with replay text; writes
train/cpt/ (model/, metrics.json, tokens-<hash>/, checkpoints/, canaries.json, toolformer.jsonl,
training_docs.jsonl). The training text is read from curate's files a shard at a time and tokenized
on every core (`train.cpt.data_workers`) or on Ray Data (`train.cpt.data_executor: ray`); a run
killed while tokenizing resumes from its last committed shard (tokens-<hash>.shards/).

    cogcore train recipes/demo.yaml
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from cogcore.canaries import CANARIES_FILE, plant_in_training
from cogcore.curate.facts import FactDetector
from cogcore.curate.readers import ReadLimits, Unreadable, read_source
from cogcore.io import file_sha256
from cogcore.mixture_weights import OnlineMixture
from cogcore.models import ModelSpec
from cogcore.recipe import Recipe
from cogcore.rephrase.files import DOCS_FILE, FACTS_FILE
from cogcore.rephrase.files import GROUP as REPHRASED_GROUP
from cogcore.stages import cpt_inputs
from cogcore.stages.corpus import TRAIN, load_corpus
from cogcore.stages.inputs import check_training_split, curated_splits
from cogcore.stages.rephrased_rows import RephrasedText
from cogcore.stages.select import target_texts
from cogcore.stages.training_corpus import CuratedIndex, ListedCorpus, StreamedCorpus
from cogcore.tracking import Tracking, environment
from cogcore.train.cpt_data import EncodeSettings, empty_counts, encode_documents, pack_rows, with_replay
from cogcore.train.cpt_shards import LocalShardPool, ShardedEncoder, ShardStore
from cogcore.train.data_cache import cached_rows, shard_folder
from cogcore.train.distributed import plan_from_recipe
from cogcore.train.launch import launch_stage
from cogcore.train.metrics import METRICS_FILE, TrainMetrics
from cogcore.train.mixing import OnlineMixing
from cogcore.train.token_selection import select_tokens
from cogcore.train.toolformer import select_calls
from cogcore.train.trainer import TrainSettings, check_method, rows_read, train
from cogcore.train.training_docs import TRAINING_DOCS_FILE, write_training_docs
from cogcore.valuation.curriculum import curriculum_order, trim
from cogcore.valuation.mixture import resample_by_weight
from cogcore.valuation.selection_files import (
    MIXTURE_FILE,
    MixtureRecord,
    document_ranks,
    document_tokens,
    selected_ids,
)


def run(recipe: Recipe, run_dir: Path, folder: Path) -> None:
    cfg = recipe.train.cpt
    if not cfg.enabled:
        TrainMetrics.skipped_stage("train.cpt.enabled is false").write(folder / METRICS_FILE)
        return
    # 1. What can fail cheaply fails before the model loads: qlora needs CUDA, training needs documents.
    check_method(cfg.method, "train.cpt.method")
    check_training_split("train.cpt", curated_splits(run_dir), recipe.curate.heldout_fraction)
    spec = ModelSpec.from_section(recipe.base_model, quantize_4bit=cfg.method == "qlora")
    model, tok = spec.load()
    # 2. Rows, tokenized once: a resumed (or relaunched) stage loads the Arrow rows instead.
    key = {
        **cpt_inputs(recipe),
        "docs": file_sha256(run_dir / "curate" / "docs.jsonl"),
        "facts": file_sha256(run_dir / "curate" / "facts.jsonl"),
        # what the select stage chose (it may be off: then its stats say so)
        "selection": [
            file_sha256(f) for f in sorted((run_dir / "select").glob("*.*")) if f.suffix in (".json", ".parquet")
        ],
        # the rephrase stage's accepted rewrites and their facts (none when it is off)
        "rephrase": [
            file_sha256(run_dir / "rephrase" / n)
            for n in (DOCS_FILE, FACTS_FILE)
            if (run_dir / "rephrase" / n).exists()
        ],
    }
    shards = shard_folder(folder, key)  # kept until the rows are saved: a killed run resumes by shard
    rows, counts = cached_rows(
        folder, key, lambda counts: training_rows(recipe, run_dir, folder, model, tok, shards, counts)
    )
    # 3. Train (here, or in several processes), then record what was trained on. A curriculum reads
    # the rows in order, and keeps the part it puts its weight on when the steps read fewer.
    curriculum = recipe.select.curriculum if recipe.select.enabled else "none"
    tracking = Tracking.from_section(recipe.tracking, recipe.name)
    settings = TrainSettings.from_section(
        cfg, seed=recipe.seed, ordered=curriculum != "none", report_to=tracking.backends
    )
    plan = plan_from_recipe(recipe.train.distributed)
    if settings.ordered:
        kept = trim(len(rows), rows_read(settings, rows, plan.world_size), curriculum)
        counts.setdefault("curriculum", {})["rows_read"] = len(kept)
        rows = rows.select(kept) if len(kept) < len(rows) else rows
    if cfg.token_selection.enabled:
        rows, counts["token_selection"] = select_training_tokens(recipe, run_dir, folder, model, tok, rows)
    mixing = online_mixing(recipe, run_dir, tok, rows) if trains_online(recipe) else None
    with environment(tracking, run_dir, "train.cpt"):
        metrics = launch_stage(
            model,
            tok,
            rows,
            folder=folder,
            settings=settings,
            label="train.cpt",
            plan=plan,
            model_spec=spec,
            mixing=mixing,
        )
    if mixing is not None:
        counts["online_mixture"] = mixing.record()
    if metrics is not None:  # None on a machine other than machine_rank 0, which records the run
        metrics.with_data(counts).write(folder / METRICS_FILE)


def select_training_tokens(recipe: Recipe, run_dir: Path, folder: Path, model, tok, rows):
    """Rho-1: a reference (the base model briefly fine-tuned with LoRA on the target text) and the
    rows again, only the tokens it lowers the loss of most keeping their labels (train/token_selection.py).
    The reference is written inside the stage folder while it is needed, then removed."""
    cfg = recipe.train.cpt
    selection = cfg.token_selection
    target_rows = _target_rows(recipe, run_dir, tok)
    if not target_rows:
        raise ValueError("train.cpt.token_selection: select.target holds no text to train the reference on")
    base = ModelSpec.from_section(recipe.base_model)
    reference_dir = folder / "token-reference"
    section = cfg.model_copy(update={"method": "lora", "max_steps": selection.reference_steps, "max_tokens": None})
    reference, _ = base.load()
    trained = train(
        reference,
        tok,
        target_rows,
        out_dir=reference_dir,
        settings=TrainSettings.from_section(section, seed=recipe.seed),
        label="train.cpt reference",
        model_spec=base,
    )
    reference, _ = base.at(reference_dir / "model").load()
    labels, record = select_tokens(model, reference, rows, keep=selection.keep)
    shutil.rmtree(reference_dir)  # written by this stage a moment ago: a model copy nothing reads again
    record.update(
        reference_steps=selection.reference_steps, reference_final_loss=trained.final_loss, target_rows=len(target_rows)
    )
    if hasattr(rows, "column_names"):
        return rows.remove_columns(["labels"]).add_column("labels", labels), record
    return [{**r, "labels": lab} for r, lab in zip(rows, labels)], record


def _target_rows(recipe: Recipe, run_dir: Path, tok) -> list[dict]:
    """select.target's text as training rows of the base model's tokenizer."""
    cfg = recipe.train.cpt
    target = [{"id": f"target-{i}", "text": t} for i, t in enumerate(target_texts(recipe, load_corpus(run_dir)))]
    encoded = encode_documents(tok, target, [], strategy="keep", counts={})
    return list(pack_rows(encoded, seq_len=cfg.seq_len, separate=cfg.packing, counts={}))


def trains_online(recipe: Recipe) -> bool:
    """The bi-level loop runs inside this stage (select.mixture.where: training)."""
    mixture = recipe.select.mixture
    return recipe.select.enabled and mixture.method == "alignment" and mixture.where == "training"


def online_mixing(recipe: Recipe, run_dir: Path, tok, rows) -> OnlineMixing:
    """The mixture over the rows' groups (the sources), starting from their natural shares, and the
    target's rows its outer step aligns with."""
    cfg, mixture = recipe.train.cpt, recipe.select.mixture
    row_groups = list(rows["group"]) if hasattr(rows, "column_names") else [r["group"] for r in rows]
    groups = sorted(set(row_groups))
    natural = np.array([row_groups.count(g) for g in groups], dtype=np.float64)
    target_rows = _target_rows(recipe, run_dir, tok)
    weights = OnlineMixture(
        groups, eta=mixture.eta, floor=mixture.floor, smoothing=mixture.smoothing, weights=natural / natural.sum()
    )
    return OnlineMixing(
        weights, row_groups, target_rows, every=mixture.every, probe_size=cfg.batch_size, seed=recipe.seed
    )


def training_rows(recipe: Recipe, run_dir: Path, folder: Path, model, tok, shards: Path, counts: dict):
    """The rows, streamed: the documents encoded under the facts strategy by shard (on every core, or
    on Ray Data; committed shards in `shards` spare a resumed run their work), replay text after
    them, packed; `counts` filled on the way (for metrics.json's `data`)."""
    cfg = recipe.train.cpt
    corpus = training_corpus(recipe, run_dir, folder, model, tok, counts)
    encoder = sharded_encoder(recipe, tok, shards)
    counts.update(empty_counts(encoder.settings))
    rephrased = RephrasedText(run_dir / "rephrase", recipe.rephrase.ratio, enabled=recipe.rephrase.enabled)
    if trains_online(recipe):
        yield from rows_by_group(recipe, corpus, encoder, counts, rephrased)
        return
    encoded = encoder.encode(corpus.records(), "docs", counts, total=corpus.count(), progress=True)
    encoded = rephrased.after(encoded, encoder, counts)  # the accepted rewrites, after the original text
    if cfg.replay is not None:
        replay = read_replay(
            cfg.replay.path,
            fmt=cfg.replay.format,
            text_field=cfg.replay.text_field,
            counts=counts,
            limits=ReadLimits(**recipe.curate.limits.model_dump()),
        )
        encoded = with_replay(encoded, tok, replay, ratio=cfg.replay.ratio, counts=counts, progress=True)
    yield from pack_rows(encoded, seq_len=cfg.seq_len, separate=cfg.packing, counts=counts)


def sharded_encoder(recipe: Recipe, tok, shards: Path) -> ShardedEncoder:
    """The facts strategy's encoder, on `train.cpt.data_executor` with `data_workers`."""
    cfg, f = recipe.train.cpt, recipe.facts
    settings = EncodeSettings(f.strategy, f.max_calls_per_doc, f.train_copied_facts)
    executor = shard_executor(cfg.data_executor, tok, workers=cfg.data_workers, address=cfg.data_ray_address)
    return ShardedEncoder(ShardStore(shards), executor, settings, shard_docs=cfg.data_shard_docs)


def shard_executor(kind: str, tok, workers: int = 0, address: str | None = None):
    """`train.cpt.data_executor`: local processes, or Ray Data (imported only then: the ray extra)."""
    if kind == "ray":
        from cogcore.train.cpt_ray import RayShardMap

        return RayShardMap(tok, workers=workers, address=address)
    return LocalShardPool(tok, workers)


def rows_by_group(
    recipe: Recipe, corpus, encoder: ShardedEncoder, counts: dict, rephrased: RephrasedText | None = None
):
    """Rows that each pack documents of one source only, tagged with it (`group`): what the online
    mixture draws by; the accepted rewrites are a group of their own. Counts add up over the groups."""
    cfg = recipe.train.cpt
    counts["rows"] = 0
    for n, group in enumerate(corpus.groups()):
        encoded = encoder.encode(corpus.records(group), f"group{n:04d}", counts, total=corpus.count(group))
        packed: dict = {}
        for row in pack_rows(encoded, seq_len=cfg.seq_len, separate=cfg.packing, counts=packed):
            yield {**row, "group": group}
        counts["rows"] += packed.get("rows", 0)
    if rephrased is not None:
        packed = {}
        encoded = rephrased.encoded(encoder, counts["tokens"], counts)
        for row in pack_rows(encoded, seq_len=cfg.seq_len, separate=cfg.packing, counts=packed):
            yield {**row, "group": REPHRASED_GROUP}
        counts["rows"] += packed.get("rows", 0)


def training_corpus(recipe: Recipe, run_dir: Path, folder: Path, model, tok, counts: dict):
    """The training split as trained, in training order. Canaries and the Toolformer filter rewrite
    documents they choose across the whole split, so with either the split is held in memory;
    otherwise it is streamed from curate's files, its order worked out on document ids alone."""
    f = recipe.facts
    if f.canaries.count or (f.strategy == "toolcall" and f.toolformer.enabled):
        return ListedCorpus(*training_text(recipe, run_dir, folder, model, tok, counts))
    index = CuratedIndex.build(run_dir / "curate", TRAIN)
    return StreamedCorpus(index, training_order(recipe, run_dir, index, counts))


def training_order(recipe: Recipe, run_dir: Path, index: CuratedIndex, counts: dict) -> list[int]:
    """Positions (in `index`) of the training documents in the order they train: what `training_text`
    does to whole documents (selection, mixture, rebalancing's repeats, curriculum), done to ids."""
    stubs, _ = selection(recipe, run_dir, index.stubs(range(len(index))), [], counts)
    order = [s["pos"] for s in stubs for _ in range(index.upsample[s["pos"]])]
    return [s["pos"] for s in in_curriculum_order(recipe, run_dir, index.stubs(order), counts)]


def training_text(recipe: Recipe, run_dir: Path, folder: Path, model, tok, counts: dict):
    """(documents, facts, calls) of the training split as trained: canaries planted, the Toolformer
    filter's calls chosen, rebalancing's repeats made; what changed is written for `cogcore inspect`."""
    corpus = load_corpus(run_dir)
    docs, facts = selection(recipe, run_dir, corpus.split(TRAIN), corpus.facts_in(TRAIN), counts)
    if recipe.facts.canaries.count:
        docs, facts = plant_canaries(recipe, docs, facts, folder, counts)
    calls = None
    if recipe.facts.strategy == "toolcall" and recipe.facts.toolformer.enabled:
        calls = choose_calls(recipe, docs, facts, folder, model, tok, counts)
    if recipe.facts.canaries.count or calls is not None:
        write_training_docs(folder / TRAINING_DOCS_FILE, docs, facts, calls)
    # Rebalancing may ask for a thin cluster's documents to be repeated (meta.upsample).
    docs = [d for d in docs for _ in range(d["meta"].get("upsample", 1))]
    return in_curriculum_order(recipe, run_dir, docs, counts), facts, calls


def in_curriculum_order(recipe: Recipe, run_dir: Path, docs: list[dict], counts: dict) -> list[dict]:
    """The documents in the select stage's curriculum order (unchanged without one); reads only their ids."""
    if not (recipe.select.enabled and recipe.select.curriculum != "none"):
        return docs
    select = run_dir / "select"
    docs, counts["curriculum"] = curriculum_order(
        docs,
        document_ranks(select),
        document_tokens(select),
        recipe.select.curriculum,
        anneal_fraction=recipe.select.anneal_fraction,
        seed=recipe.seed,
    )
    return docs


def selection(recipe: Recipe, run_dir: Path, docs: list[dict], facts: list[dict], counts: dict):
    """The training documents the select stage chose (all when it is off), each source resampled to
    its learned mixture weight when it learned one."""
    select = run_dir / "select"
    chosen = selected_ids(select)  # None: the select stage is off, every training document
    if chosen is not None:
        docs, facts = [d for d in docs if d["id"] in chosen], [f for f in facts if f["doc_id"] in chosen]
    mixture = MixtureRecord.read(select / MIXTURE_FILE)
    if mixture is not None:
        tokens = document_tokens(select)
        docs, counts["mixture"] = resample_by_weight(
            docs,
            [tokens[d["id"]] for d in docs],
            mixture.weights,
            group_of=lambda d: d["source"],
            seed=recipe.seed,
            max_repeat=mixture.settings["max_repeat"],
        )
    return docs, facts


def plant_canaries(recipe: Recipe, docs: list[dict], facts: list[dict], folder: Path, counts: dict):
    """Canaries into training documents (recorded in canaries.json for the eval stage); their secrets
    are facts found by the recipe's own detector, so the strategy treats them as any fact."""
    f, c = recipe.facts, recipe.facts.canaries
    detector = FactDetector(f.kinds, patterns=f.patterns or None, terms=f.terms or None)
    docs, facts, record = plant_in_training(
        docs,
        facts,
        detector,
        count=c.count,
        controls=c.controls,
        repeats=c.repeats,
        strategy=f.strategy,
        seed=recipe.seed,
        digits=c.digits,
    )
    record.write(folder / CANARIES_FILE)
    counts["canaries"] = {
        "planted": c.count,
        "controls": c.controls,
        "repeats": c.repeats,
        "secrets_detected_as_facts": sum(record.secret_is_fact.values()),
    }
    return docs, facts


def choose_calls(recipe: Recipe, docs: list[dict], facts: list[dict], folder: Path, model, tok, counts: dict):
    """toolcall: the calls whose result lowers the base model's loss on their facts (each call's
    losses in toolformer.jsonl)."""
    f, t = recipe.facts, recipe.facts.toolformer
    calls, counts["toolformer"] = select_calls(
        model,
        tok,
        docs,
        facts,
        max_calls_per_doc=f.max_calls_per_doc,
        tau=t.tau,
        limit=t.limit,
        seed=recipe.seed,
        batch_size=t.batch_size,
        log_path=folder / "toolformer.jsonl",
    )
    return calls


def read_replay(path: str, fmt: str, text_field: str, counts: dict, limits: ReadLimits | None = None):
    """Documents of the replay source, read lazily (a big general corpus is read only as far as
    needed) and as a curation source is read (within `limits`, the recipe's curate.limits);
    unreadable files and records are counted in `replay_unreadable` and skipped."""
    for item in read_source(path, name="replay", fmt=fmt, text_field=text_field, limits=limits or ReadLimits()):
        if isinstance(item, Unreadable):
            counts["replay_unreadable"] = counts.get("replay_unreadable", 0) + item.count
            continue
        yield item
