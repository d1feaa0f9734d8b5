"""The select stage: what each training document is worth, and which ones continued pretraining
sees; writes select/ (scores.parquet, stats.json, proxies/). The index still covers every curated
document: selection changes only what training sees.

    cogcore select recipes/valuation.yaml
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np

from cogcore.curate.readers import ReadLimits, Unreadable, read_source
from cogcore.models import ModelSpec
from cogcore.recipe import Recipe
from cogcore.stages.corpus import HELDOUT, TRAIN, load_corpus
from cogcore.stages.inputs import check_training_split, curated_splits
from cogcore.valuation.scoring import ProxySettings, ScorerSettings, learn_group_weights, score_documents
from cogcore.valuation.selection import SELECTED, Budget, select_documents
from cogcore.valuation.selection_files import (
    MIXTURE_FILE,
    SCORES_FILE,
    STATS_FILE,
    MixtureRecord,
    SelectStats,
    write_scores,
)

OUTSIDE_BAND = "outside_perplexity_band"


def run(recipe: Recipe, run_dir: Path, folder: Path) -> None:
    cfg = recipe.select
    if not cfg.enabled:
        SelectStats(enabled=False).write(folder / STATS_FILE)
        return
    began = time.perf_counter()
    # 1. The training documents, their size in the base model's tokens, and the target.
    check_training_split("select", curated_splits(run_dir), recipe.curate.heldout_fraction)
    corpus = load_corpus(run_dir)
    docs = corpus.split(TRAIN)
    texts = [d["text"] for d in docs]
    tokens = _token_counts(recipe, texts)
    target = target_texts(recipe, corpus)
    # 2. Every enabled scorer (each saved as it finishes: a killed stage resumes after the last).
    proxy = ProxySettings.from_section(cfg.proxy)
    scores, cost = score_documents(texts, target, ScorerSettings.from_section(cfg), proxy, folder, recipe.seed)
    # 3. The budget spent in the order of the ranking score, every document accounted for.
    ranking = ranking_key(recipe, scores, len(docs))
    selected, reasons = choose(recipe, docs, tokens, ranking)
    # 4. Group weights for what was chosen, learned on a proxy (train.cpt resamples by them).
    if cfg.mixture.method != "none" and cfg.mixture.where == "proxy":
        by_group: dict[str, list[str]] = {}
        for d, keep in zip(docs, selected):
            if keep:
                by_group.setdefault(d["source"], []).append(d["text"])
        learned = learn_group_weights(by_group, target, cfg.mixture, proxy, folder, recipe.seed)
        MixtureRecord(method=cfg.mixture.method, settings=cfg.mixture.model_dump(mode="json"), **learned).write(
            folder / MIXTURE_FILE
        )
    columns = {"doc_id": [d["id"] for d in docs], "source": [d["source"] for d in docs], "tokens": tokens.tolist()}
    columns.update({name: values.tolist() for name, values in scores.items()})
    columns.update(rank=ranking.tolist(), selected=selected.tolist(), reason=reasons)
    write_scores(folder / SCORES_FILE, columns)
    _stats(recipe, docs, tokens, target, scores, cost, selected, reasons, time.perf_counter() - began).write(
        folder / STATS_FILE
    )


def ranking_key(recipe: Recipe, scores: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Per document, the value it is ranked by (higher first; NaN outside the perplexity band); all
    NaN when no scorer is on."""
    cfg = recipe.select
    rank_by = cfg.ranking_scorer()
    if rank_by is None:
        return np.full(n, np.nan)
    ranking = scores[rank_by] if rank_by != "perplexity" else -scores[rank_by]  # lower loss first
    return np.where(_outside_band(cfg, scores), np.nan, ranking)


def choose(recipe: Recipe, docs: list[dict], tokens: np.ndarray, ranking: np.ndarray):
    """(selected mask, reason per document): the budget spent in the order of `ranking`; with no
    scorer on (a mixture alone), every document."""
    cfg = recipe.select
    if cfg.ranking_scorer() is None:
        return np.ones(len(docs), dtype=bool), [SELECTED] * len(docs)
    chosen = select_documents(
        ranking,
        tokens,
        [d["source"] for d in docs],
        Budget(fraction=cfg.fraction, tokens=cfg.tokens),
        method=cfg.method,
        temperature=cfg.temperature,
        quotas=cfg.quotas,
        seed=recipe.seed,
    )
    reasons = [OUTSIDE_BAND if np.isnan(ranking[i]) and r != SELECTED else r for i, r in enumerate(chosen.reasons)]
    return chosen.selected, reasons


def target_texts(recipe: Recipe, corpus) -> list[str]:
    """The documents the data is valued toward (`select.target`)."""
    target = recipe.select.target
    if target == "heldout":
        return [d["text"] for d in corpus.split(HELDOUT)]
    if target.startswith("source:"):
        name = target.removeprefix("source:")
        return [d["text"] for d in corpus.docs if d["source"] == name]
    limits = ReadLimits(**recipe.curate.limits.model_dump())  # read as the sources are: within the recipe's caps
    return [
        item["text"] for item in read_source(target, name="target", limits=limits) if not isinstance(item, Unreadable)
    ]


def _token_counts(recipe: Recipe, texts: list[str]) -> np.ndarray:
    """Each document's length in the base model's tokens: the unit of train.cpt's budget."""
    from transformers import AutoTokenizer

    spec = ModelSpec.from_section(recipe.base_model)
    tok = AutoTokenizer.from_pretrained(spec.local_path(), trust_remote_code=spec.trust_remote_code)
    return np.array([len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]], dtype=np.int64)


def _outside_band(cfg, scores: dict[str, np.ndarray]) -> np.ndarray:
    """Documents whose perplexity-proxy loss falls outside select.perplexity.band (never when off)."""
    if not cfg.perplexity.enabled or tuple(cfg.perplexity.band) == (0.0, 1.0):
        return np.zeros(len(next(iter(scores.values()))), dtype=bool)
    loss = scores["perplexity"]
    low, high = np.nanquantile(loss, cfg.perplexity.band)
    return ~((loss >= low) & (loss <= high))


def _stats(recipe: Recipe, docs, tokens, target, scores, cost, selected, reasons, seconds: float) -> SelectStats:
    cfg = recipe.select
    sources = sorted({d["source"] for d in docs})
    by_source = {
        s: {
            "in": sum(d["source"] == s for d in docs),
            "selected": int(sum(sel for d, sel in zip(docs, selected) if d["source"] == s)),
        }
        for s in sources
    }
    not_selected = Counter(r for r in reasons if r != SELECTED)
    quantiles = {
        name: {s: _quantiles(values[[d["source"] == s for d in docs]]) for s in sources}
        for name, values in scores.items()
    }
    settings = cfg.model_dump(mode="json")
    scorers = {name: {"settings": settings.get(name), **cost.get(name, {})} for name in scores}
    budget = {k: v for k, v in {"fraction": cfg.fraction, "tokens": cfg.tokens}.items() if v is not None}
    return SelectStats(
        enabled=True,
        docs_in=len(docs),
        selected=int(selected.sum()),
        not_selected=dict(sorted(not_selected.items())),
        tokens_in=int(tokens.sum()),
        tokens_selected=int(tokens[selected].sum()),
        target=cfg.target,
        target_docs=len(target),
        rank_by=cfg.ranking_scorer(),
        budget={**budget, "method": cfg.method, "temperature": cfg.temperature},
        quotas=dict(cfg.quotas),
        scorers={**scorers, "proxy": settings["proxy"]},
        by_source=by_source,
        quantiles=quantiles,
        seconds=round(seconds, 2),
    )


def _quantiles(values: np.ndarray) -> list[float]:
    values = values[~np.isnan(values)]
    if not len(values):
        return []
    return [round(float(q), 4) for q in np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0])]
