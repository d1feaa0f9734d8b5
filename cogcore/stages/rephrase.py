"""The rephrase stage: rewrites of training documents in easier-to-learn styles (Wikipedia-like, Q&A,
knowledge lists), written by a local instruct model, each kept only if the fact gate finds every
fact of its source in it and no other; writes rephrase/ (docs.jsonl, facts.jsonl, rejected.jsonl,
stats.json, work/ shards). train.cpt mixes the kept rewrites in as their own group, `rephrase.ratio`
times the original text at most. Off by default (`rephrase.enabled`): then it writes a one-line
stats.json and train.cpt trains on the original text alone.

Before generating, it prints what the generation would cost on `rephrase.gpu` (the report's roofline
cost model for the generator's shape and the corpus's size). Generation goes by shard of
`rephrase.shard_docs` documents, each committed as it is done: a killed run resumes after the last.

    cogcore rephrase recipes/demo.yaml -o rephrase.enabled=true
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

from cogcore.curate.facts import DEFAULT_KINDS, FactDetector
from cogcore.curate.names import NAMES_FILE
from cogcore.hardware import ModelShape, resolve_gpu
from cogcore.models import ModelSpec
from cogcore.recipe import Recipe
from cogcore.rephrase.files import STATS_FILE, RephraseStats
from cogcore.rephrase.gate import GateSettings
from cogcore.rephrase.generators import GenerationSettings, TransformersGenerator, VllmGenerator, choose_backend
from cogcore.rephrase.rewrite import RewritePlan, ShardedRewriter, write_outputs
from cogcore.rephrase.styles import PLACEHOLDER
from cogcore.report.cost import estimate
from cogcore.stages.corpus import TRAIN
from cogcore.stages.inputs import check_training_split, curated_splits
from cogcore.stages.training_corpus import CuratedIndex
from cogcore.valuation.selection_files import SCORES_FILE, read_scores, selected_ids

COST_SAMPLE_DOCS = 200  # documents tokenized to size the prompts and rewrites of the cost estimate


def run(recipe: Recipe, run_dir: Path, folder: Path) -> None:
    cfg = recipe.rephrase
    if not cfg.enabled:
        RephraseStats(enabled=False).write(folder / STATS_FILE)
        return
    check_training_split("rephrase", curated_splits(run_dir), recipe.curate.heldout_fraction)
    # 1. Which training documents are rewritten: worked out on ids; the texts are read as they go.
    index = CuratedIndex.build(run_dir / "curate", TRAIN)
    chosen = chosen_positions(recipe, run_dir, index)
    # 2. What generating them costs on a GPU, printed before any model loads.
    spec = ModelSpec.from_section(cfg.generator or recipe.base_model)
    cost = cost_estimate(recipe, spec, index, chosen)
    print(f"rephrase: {cost_line(cost)}", file=sys.stderr, flush=True)
    # 3. Generate and gate by shard; the model loads only if a shard is left to do.
    backend = choose_backend(cfg.backend)
    plan = RewritePlan(
        prompts=cfg.style_prompts(),
        rewrites_per_doc=cfg.rewrites_per_doc,
        gate=GateSettings(**cfg.gate.model_dump()),
        seed=recipe.seed,
    )
    rewriter = ShardedRewriter(
        folder / "work",
        plan,
        curation_detector(recipe, run_dir),
        lambda: make_generator(backend, spec, recipe),
        shard_docs=cfg.shard_docs,
    )
    shards = rewriter.run((doc for doc, _ in index.read(chosen)), total=len(chosen))
    # 4. The kept rewrites, their facts, the rejected ones, and the accounting.
    totals = write_outputs(folder / "work", folder, shards, cfg.rejected_samples)
    if totals.requested != len(chosen) * cfg.rewrites_per_doc:  # a shard of another run's documents
        raise RuntimeError(
            f"rephrase: {totals.requested} rewrites in work/, expected {len(chosen)} x {plan.rewrites_per_doc}"
        )
    RephraseStats(
        enabled=True,
        documents_in=len(index),
        documents_considered=len(chosen),
        requested=totals.requested,
        accepted=totals.accepted,
        rejected=dict(totals.rejected),
        by_style=totals.by_style,
        facts=totals.facts,
        prompt_tokens=totals.prompt_tokens,
        generated_tokens=totals.generated_tokens,
        accepted_tokens=totals.accepted_tokens,
        seconds=round(totals.seconds, 2),
        tokens_per_s=round(totals.generated_tokens / totals.seconds, 2) if totals.seconds else 0.0,
        shards=shards,
        shards_resumed=rewriter.resumed,
        backend=backend,
        generator=spec.path,
        cost_estimate=cost,
        settings=cfg.model_dump(mode="json"),
        samples=totals.samples,
    ).write(folder / STATS_FILE)


def chosen_positions(recipe: Recipe, run_dir: Path, index: CuratedIndex) -> list[int]:
    """Positions (in `index`, file order) of the documents to rewrite. `all` and `share` take them
    from what the select stage chose (every training document when it is off); `low_score` takes
    the `share` that its scores rank lowest, chosen or not: a rewrite is a second chance for them."""
    cfg = recipe.rephrase
    if cfg.documents == "low_score":
        return lowest_scored(run_dir / "select", index, cfg.score or "rank", cfg.share)
    chosen = selected_ids(run_dir / "select")
    positions = [p for p, doc_id in enumerate(index.ids) if chosen is None or doc_id in chosen]
    if cfg.documents == "all":
        return positions
    keep = round(cfg.share * len(positions))
    by_hash = sorted(positions, key=lambda p: hashlib.sha256(f"{recipe.seed}:{index.ids[p]}".encode()).digest())
    return sorted(by_hash[:keep])


def lowest_scored(select: Path, index: CuratedIndex, column: str, share: float) -> list[int]:
    """The `share` of the documents with the lowest `column` in scores.parquet (NaN, outside the
    perplexity band, lowest of all), in file order."""
    table = read_scores(select / SCORES_FILE)
    if column not in table:
        scored = ", ".join(k for k in table if k not in ("doc_id", "source", "selected", "reason"))
        raise ValueError(f"rephrase.score: {column!r} is not a column of {select / SCORES_FILE}; columns: {scored}")
    score = dict(zip(table["doc_id"], table[column]))
    positions = [p for p, doc_id in enumerate(index.ids) if doc_id in score]
    ranked = sorted(positions, key=lambda p: (not math.isnan(score[index.ids[p]]), score[index.ids[p]], p))
    return sorted(ranked[: round(share * len(positions))])


def curation_detector(recipe: Recipe, run_dir: Path) -> FactDetector:
    """The fact detector as curation ran it: the recipe's kinds, patterns and terms, and the names it
    learned from the corpus (curate/names.json), so a rewrite's facts are found as its source's were."""
    f = recipe.facts
    path = run_dir / "curate" / NAMES_FILE
    names = [n["text"] for n in json.loads(path.read_text())["names"]] if path.exists() else None
    return FactDetector(f.kinds or DEFAULT_KINDS, patterns=f.patterns, terms=f.terms, names=names)


def make_generator(backend: str, spec: ModelSpec, recipe: Recipe):
    cfg = recipe.rephrase
    settings = GenerationSettings(
        max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p, batch_size=cfg.batch_size
    )
    if backend == "vllm":
        return VllmGenerator(spec.local_path(), settings, dtype="bfloat16", trust_remote_code=spec.trust_remote_code)
    import torch

    model, tok = spec.load()
    if torch.cuda.is_available():  # one GPU without vLLM: still far faster than the CPU
        model = model.to("cuda")
    return TransformersGenerator(model, tok, settings)


def cost_estimate(recipe: Recipe, spec: ModelSpec, index: CuratedIndex, chosen: list[int]) -> dict:
    """GPU-hours and $ of the generation on `rephrase.gpu` under the report's roofline (at its
    `report.batch` streams): prompts are the mean instructions plus a sampled document's tokens, a
    rewrite as long as its source (at most `max_new_tokens`). A roofline bounds throughput from above,
    so this is a floor on the cost; stats.json keeps the measured tokens/s beside it."""
    cfg = recipe.rephrase
    config = Path(spec.local_path()) / "config.json"
    if not config.exists():
        return {"error": f"no config.json in {spec.local_path()}: the generator's shape is unknown"}
    tok = spec.load_tokenizer()
    sample = [doc["text"] for doc, _ in index.read(chosen[:COST_SAMPLE_DOCS])]
    doc_tokens = _mean([len(ids) for ids in tok(sample, add_special_tokens=False)["input_ids"]]) if sample else 0.0
    instructions = [p.replace(PLACEHOLDER, "") for p in cfg.style_prompts().values()]
    overhead = _mean([len(ids) for ids in tok(instructions, add_special_tokens=False)["input_ids"]])
    prompt, output = max(round(doc_tokens + overhead), 1), max(round(min(doc_tokens, cfg.max_new_tokens)), 1)
    gpu = resolve_gpu(cfg.gpu, recipe.report.prices)
    shape = ModelShape.from_config(json.loads(config.read_text()))
    row = estimate(shape, gpu, batch=recipe.report.batch, prompt_tokens=prompt, output_tokens=output)
    rewrites = len(chosen) * cfg.rewrites_per_doc
    seconds = rewrites * (prompt / row["prefill_tokens_per_s"] + output / row["decode_tokens_per_s"])
    return {
        "gpu": cfg.gpu,
        "gpu_name": gpu.name,
        "batch": recipe.report.batch,
        "rewrites": rewrites,
        "prompt_tokens_per_rewrite": prompt,
        "output_tokens_per_rewrite": output,
        "decode_tokens_per_s": round(row["decode_tokens_per_s"], 1),
        "gpu_hours": seconds / 3600,
        "usd": seconds / 3600 * gpu.price_per_hour,
        "price_per_hour": gpu.price_per_hour,
        "fits": row["fits"],
    }


def cost_line(cost: dict) -> str:
    if "error" in cost:
        return f"no cost estimate ({cost['error']})"
    return (
        f"{cost['rewrites']:,} rewrites of ~{cost['prompt_tokens_per_rewrite']} prompt + "
        f"{cost['output_tokens_per_rewrite']} output tokens: ~{cost['gpu_hours']:.3g} GPU-hours, "
        f"~${cost['usd']:.3g} on {cost['gpu_name']} at ${cost['price_per_hour']}/h "
        f"(roofline at batch {cost['batch']}: a floor on the cost)"
    )


def _mean(values: list[int]) -> float:
    return sum(values) / len(values) if values else 0.0
