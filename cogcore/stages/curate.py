"""The curate stage: sources -> curate/ (docs.jsonl, facts.jsonl, stats.json, drops/, work/).

cogcore curate recipes/demo.yaml
"""

from __future__ import annotations

from pathlib import Path

from cogcore.curate.executors import make_executor
from cogcore.curate.pipeline import curate
from cogcore.curate.plan import CuratePlan, SourceSpec
from cogcore.recipe import Recipe


def run(recipe: Recipe, run_dir: Path, folder: Path) -> None:
    cfg = recipe.curate
    sources = [SourceSpec.from_section(source, cfg.limits) for source in recipe.sources]
    plan = CuratePlan.from_sections(
        curate=cfg,
        facts=recipe.facts,
        seed=recipe.seed,
        embedder=recipe.index.embedder,
    )
    executor = make_executor(cfg.executor, workers=cfg.workers, address=cfg.ray_address)
    curate(sources, folder, plan, executor)
