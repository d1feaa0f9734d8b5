"""The curate stage: sources -> curate/ (docs.jsonl, facts.jsonl, stats.json, drops/, work/).

    cogcore curate recipes/demo.yaml
"""

from __future__ import annotations

from pathlib import Path

from cogcore.curate.executors import make_executor
from cogcore.curate.minhash import MinHashConfig
from cogcore.curate.pii import PiiRedactor
from cogcore.curate.pipeline import CuratePlan, SourceSpec, curate
from cogcore.curate.readers import ReadLimits
from cogcore.recipe import QUALITY_FILTERS, Recipe, filter_class


def run(recipe: Recipe, run_dir: Path, folder: Path) -> None:
    cfg = recipe.curate
    executor = make_executor(cfg.executor, workers=cfg.workers, address=cfg.ray_address)
    curate(source_specs(recipe), folder, curate_plan(recipe), executor)


def source_specs(recipe: Recipe) -> list[SourceSpec]:
    limits = ReadLimits(**recipe.curate.limits.model_dump())
    return [SourceSpec(name=s.name, path=s.path, format=s.format, text_field=s.text_field, id_field=s.id_field,
                       title_field=s.title_field, meta_fields=tuple(s.meta_fields), follow_links=s.follow_links,
                       limits=limits)
            for s in recipe.sources]


def curate_plan(recipe: Recipe) -> CuratePlan:
    cfg, facts = recipe.curate, recipe.facts
    mh, sem, reb = cfg.dedup.minhash, cfg.dedup.semantic, cfg.rebalance
    return CuratePlan(
        min_chars=cfg.min_chars,
        heldout_fraction=cfg.heldout_fraction,
        fact_kinds=tuple(facts.kinds),
        fact_patterns=facts.patterns or None,
        fact_terms=facts.terms or None,
        seed=recipe.seed,
        batch_size=cfg.batch_size,
        exact_dedup=cfg.dedup.exact,
        boilerplate=(cfg.boilerplate.min_docs, cfg.boilerplate.min_fraction) if cfg.boilerplate.enabled else None,
        filters=[filter_class(name)(**getattr(cfg.quality, name).params) for name in QUALITY_FILTERS
                 if getattr(cfg.quality, name).enabled],
        redactor=PiiRedactor(tuple(cfg.pii.kinds), cfg.pii.entropy_threshold) if cfg.pii.enabled else None,
        minhash=MinHashConfig(shingle_size=mh.shingle_size, num_perm=mh.bands * mh.rows, bands=mh.bands,
                              rows=mh.rows, seed=recipe.seed, verify=mh.verify,
                              threshold=mh.threshold) if mh.enabled else None,
        embedder=recipe.index.embedder,
        semantic={"threshold": sem.threshold, "clusters": sem.clusters} if sem.enabled else None,
        rebalance={"clusters": reb.clusters, "max_share": reb.max_share, "upsample_below": reb.upsample_below,
                   "max_upsample": reb.max_upsample} if reb.enabled else None,
        warn_drop_fraction=cfg.warn_drop_fraction,
        max_drop_fraction=cfg.max_drop_fraction,
    )
