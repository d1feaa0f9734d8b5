"""The stages of a build, in run order: what each reads (its fingerprint) and where its code is.

`build_stages(recipe)` turns a resolved recipe (every path absolute: `Recipe.resolved`) into the
`Stage` list that `RunDir.execute` runs. What a stage reads is listed here, so that fingerprints
are computed without importing any stage's code; each stage's work is in its own module
(cogcore/stages/<module>.py, a `run(recipe, run_dir, folder)` of named steps), imported only when
that stage runs, so `cogcore curate` never loads torch and `cogcore eval` never loads Ray.

    stages = build_stages(load_recipe("recipes/demo.yaml").resolved(Path("recipes")))
    RunDir(stages[0] ...).execute(stages)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from cogcore.curate.readers import list_files
from cogcore.recipe import Recipe
from cogcore.runner import Stage, file_stamp

ORDER = ("curate", "index", "select", "rephrase", "train.cpt", "train.tools", "eval", "report")
COMMAND_STAGES = {
    "curate": ["curate"],
    "index": ["index"],
    "select": ["select"],
    "rephrase": ["rephrase"],  # `cogcore rephrase` runs select first (its choice is what may be rewritten)
    # select and rephrase are what train.cpt trains on (each off by default: a one-line record)
    "train": ["select", "rephrase", "train.cpt", "train.tools"],
    "eval": ["eval"],
    "report": ["report"],
}
FINAL_MODEL = "train/tools/model"  # the model a build ends with: eval, ask and the report read it
CPT_MODEL = "train/cpt/model"
# Where curation runs does not change what it produces: not part of its fingerprint.
PLACEMENT_FIELDS = ("executor", "workers", "ray_address")
# Nor where train.cpt tokenizes (its rows are the same bytes on any executor and worker count).
CPT_PLACEMENT_FIELDS = ("data_executor", "data_workers", "data_ray_address")
# Nor where the index embeds its chunks (the same vectors on either executor).
INDEX_PLACEMENT_FIELDS = ("executor", "ray_address")


def build_stages(recipe: Recipe) -> list[Stage]:
    """The stages of a resolved recipe, in ORDER."""
    run = recipe.run_path()
    return [
        Stage(
            "curate", "curate", (), _runs("curate", recipe, run), curate_inputs(recipe), resumes=True
        ),  # a killed run skips the shards it finished
        # A killed index build keeps the vector shards it committed and embeds the rest.
        Stage("index", "index", ("curate",), _runs("index", recipe, run), index_inputs(recipe), resumes=True),
        # Each scorer's scores and each proxy are kept as they finish: a killed run computes the rest.
        Stage("select", "select", ("curate",), _runs("select", recipe, run), select_inputs(recipe), resumes=True),
        # A killed rephrase run keeps the shards of rewrites it committed and generates the rest.
        Stage(
            "rephrase",
            "rephrase",
            ("curate", "select"),
            _runs("rephrase", recipe, run),
            rephrase_inputs(recipe),
            resumes=True,
        ),
        Stage(
            "train.cpt",
            "train/cpt",
            ("curate", "select", "rephrase"),
            _runs("cpt", recipe, run),
            cpt_inputs(recipe),
            resumes=True,  # from its last checkpoint
        ),
        Stage(
            "train.tools",
            "train/tools",
            ("curate", "index", "train.cpt"),
            _runs("tools", recipe, run),
            tools_inputs(recipe),
            resumes=True,
        ),
        # train.cpt is upstream for its canaries.json: a new planting is a new memorization result.
        Stage(
            "eval",
            "eval",
            ("curate", "index", "train.cpt", "train.tools"),
            _runs("eval", recipe, run),
            eval_inputs(recipe),
        ),
        Stage(
            "report",
            "report",
            ("curate", "index", "select", "rephrase", "train.cpt", "train.tools", "eval"),
            _runs("report", recipe, run),
            {"report": recipe.report.model_dump(mode="json")},
        ),
    ]


def _runs(module: str, recipe: Recipe, run: Path) -> Callable[[Path], None]:
    def go(folder: Path) -> None:
        importlib.import_module(f"cogcore.stages.{module}").run(recipe, run, folder)

    return go


def curate_inputs(recipe: Recipe) -> dict:
    data = recipe.model_dump(mode="json")
    files = [file_stamp(f) for s in recipe.sources for f in list_files(s.path, s.follow_links)]
    return {
        "sources": data["sources"],
        "files": files,
        "curate": {k: v for k, v in data["curate"].items() if k not in PLACEMENT_FIELDS},
        "facts": {k: data["facts"][k] for k in ("kinds", "patterns", "terms")},
        "seed": recipe.seed,
    }


def index_inputs(recipe: Recipe) -> dict:
    index = recipe.index
    stamps = {"embedder": file_stamp(index.embedder)}
    if index.reranker:
        stamps["reranker"] = file_stamp(index.reranker)
    settings = {k: v for k, v in index.model_dump(mode="json").items() if k not in INDEX_PLACEMENT_FIELDS}
    return {"index": settings, **stamps}


def select_inputs(recipe: Recipe) -> dict:
    select = recipe.select
    inputs = {
        "select": select.model_dump(mode="json"),
        "seed": recipe.seed,
        "base_model": recipe.base_model.model_dump(mode="json"),
    }  # its tokenizer counts the budget
    if select.enabled and select.target != "heldout" and not select.target.startswith("source:"):
        inputs["target_files"] = [file_stamp(f) for f in list_files(select.target)]
    return inputs


def rephrase_inputs(recipe: Recipe) -> dict:
    """The rephrase section (but `ratio`, which only train.cpt reads), and when on, the generator,
    the fact detector's settings (its names are curate's output) and the cost model's prices."""
    r = recipe.rephrase
    inputs = {"rephrase": {k: v for k, v in r.model_dump(mode="json").items() if k != "ratio"}}
    if r.enabled:
        generator = r.generator or recipe.base_model
        facts = recipe.facts.model_dump(mode="json")
        inputs.update(
            generator=generator.model_dump(mode="json"),
            generator_stamp=file_stamp(generator.path),
            facts={k: facts[k] for k in ("kinds", "patterns", "terms")},
            cost=[recipe.report.batch, recipe.report.prices],
            seed=recipe.seed,
        )
    return inputs


def cpt_inputs(recipe: Recipe) -> dict:
    facts = recipe.facts.model_dump(mode="json")
    inputs = {
        "cpt": {k: v for k, v in recipe.train.cpt.model_dump(mode="json").items() if k not in CPT_PLACEMENT_FIELDS},
        "base_model": recipe.base_model.model_dump(mode="json"),
        "base_stamp": file_stamp(recipe.base_model.path),
        "strategy": {
            k: facts[k] for k in ("strategy", "max_calls_per_doc", "train_copied_facts", "toolformer", "canaries")
        },
        "seed": recipe.seed,
        "rephrase_ratio": recipe.rephrase.ratio if recipe.rephrase.enabled else None,  # its rewrites: upstream
        # read by train.cpt, not by the select stage: the order its documents train in, and the
        # mixture it moves itself when the bi-level loop runs in training
        "curriculum": [recipe.select.curriculum, recipe.select.anneal_fraction] if recipe.select.enabled else None,
        "online_mixture": recipe.select.mixture.model_dump(mode="json")
        if recipe.select.enabled and recipe.select.mixture.where == "training"
        else None,
    }
    target = recipe.select.target
    if recipe.train.cpt.token_selection.enabled and target != "heldout" and not target.startswith("source:"):
        inputs["target_files"] = [file_stamp(f) for f in list_files(target)]  # the reference trains on them
    replay = recipe.train.cpt.replay
    if replay is not None:
        inputs["replay_files"] = [file_stamp(f) for f in list_files(replay.path)]
    return inputs


def tools_inputs(recipe: Recipe) -> dict:
    tools = recipe.train.tools
    return {
        "tools": tools.model_dump(mode="json"),
        "recipe_tools": [t.model_dump(mode="json") for t in recipe.tools],
        "files": [file_stamp(f) for f in tools.conversation_files],
        "base_model": recipe.base_model.model_dump(mode="json"),
        "seed": recipe.seed,
    }


def eval_inputs(recipe: Recipe) -> dict:
    return {
        "eval": recipe.eval.model_dump(mode="json"),
        "seed": recipe.seed,
        "base_model": recipe.base_model.model_dump(mode="json"),
    }
