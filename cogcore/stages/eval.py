"""The eval stage: the trained model beside the base model, on lm-eval tasks written from the run's
own data, standard lm-eval tasks, canary exposure, the agentic check with the real search tool,
BFCL and measured throughput; writes eval/ (tasks/, results.json, agentic.jsonl, bfcl.jsonl).

    cogcore eval recipes/demo.yaml
"""

from __future__ import annotations

import json
from pathlib import Path

import lm_eval
import torch

from cogcore.eval.agentic import run_agentic
from cogcore.eval.bfcl import run_bfcl
from cogcore.eval.memorization import canary_exposures, max_exposure, memorization_summary
from cogcore.eval.tasks import (check_task_names, choose_backend, make_lm, retrieve_passages, run_lm_eval,
                                run_standard_tasks, task_manager, write_tasks)
from cogcore.eval.throughput import measure_serving
from cogcore.io import read_jsonl, write_json_atomic
from cogcore.models import ModelSpec
from cogcore.questions import make_questions
from cogcore.recipe import Recipe
from cogcore.retrieval import SearchIndex
from cogcore.runtime import run_tools
from cogcore.stages import FINAL_MODEL
from cogcore.stages.corpus import HELDOUT, TRAIN, load_corpus
from cogcore.stages.inputs import curated_splits, heldout_problem, require_something_to_evaluate, warn


def run(recipe: Recipe, run_dir: Path, folder: Path) -> None:
    cfg = recipe.eval
    backend = choose_backend(cfg.backend)
    # 1. Questions and tasks from the run's data, checked before any model loads.
    corpus = load_corpus(run_dir)
    questions = make_questions(corpus.facts_in(HELDOUT), corpus.titles(), max(cfg.questions, cfg.agentic_questions),
                               seed=recipe.seed)
    train_questions = make_questions(corpus.facts_in(TRAIN), corpus.titles(), cfg.questions, seed=recipe.seed)
    # A warning, not an error: eval still runs what has data (train recall, standard tasks, BFCL, canaries).
    problem = warn(heldout_problem(curated_splits(run_dir), len(questions), recipe.curate.heldout_fraction))
    index = SearchIndex.load(run_dir / "index")
    asked = questions[:cfg.questions]
    passages = retrieve_passages(index, asked, cfg.openbook_passages) if cfg.openbook_passages else None
    tasks = write_tasks(folder / "tasks", asked, corpus.facts, corpus.split(HELDOUT)[:cfg.perplexity_docs],
                        recipe.seed, passages=passages, train_questions=train_questions)
    manager = task_manager(folder / "tasks", with_defaults=bool(cfg.lm_eval_tasks))
    check_task_names(cfg.lm_eval_tasks, manager)
    canaries_path = run_dir / "train" / "cpt" / "canaries.json"
    record = json.loads(canaries_path.read_text()) if canaries_path.exists() else None
    require_something_to_evaluate(problem, len(tasks), bool(cfg.lm_eval_tasks or cfg.bfcl.enabled or record))
    results = {"lm_eval_version": lm_eval.__version__, "backend": backend, "lm_eval": {}, "standard_tasks": {},
               "questions": len(questions), "train_questions": len(train_questions),
               "warnings": [problem] if problem else []}
    # 2. The trained model, then the base model on the same tasks: what training changed.
    base = ModelSpec.from_section(recipe.base_model)
    trained_spec = base.at(run_dir / FINAL_MODEL)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    trained, tok = trained_spec.load()
    trained.to(device)
    exposures = {"trained": score(recipe, results, "trained", trained, tok, trained_spec, backend, manager, tasks,
                                  record)}
    if tasks or cfg.lm_eval_tasks or record is not None:
        base_model, base_tok = base.load()
        exposures["base"] = score(recipe, results, "base", base_model.to(device), base_tok, base, backend, manager,
                                  tasks, record)
        del base_model
    results["memorization"] = memorization_summary(results["lm_eval"], canary_summary(recipe, record, exposures))
    # 3. The trained model at work: with its tools, on BFCL, and how fast it serves.
    if cfg.agentic_questions and questions:
        results["agentic"] = run_agentic(trained, tok, index, questions[:cfg.agentic_questions],
                                         folder / "agentic.jsonl", cfg.max_new_tokens, cfg.batch_size,
                                         tools=run_tools(run_dir, index))
        results["samples"] = read_jsonl(folder / "agentic.jsonl")[:10]
    if cfg.bfcl.enabled:
        results["bfcl"] = run_bfcl(trained, tok, tuple(cfg.bfcl.categories), cfg.bfcl.limit, cfg.batch_size,
                                   cfg.bfcl.max_new_tokens, out_path=folder / "bfcl.jsonl")
    if cfg.throughput.enabled:
        results["measured_throughput"] = throughput(recipe, trained)
    write_json_atomic(folder / "results.json", results)


def score(recipe: Recipe, results: dict, name: str, model, tok, spec: ModelSpec, backend: str, manager,
          tasks: list[str], record: dict | None) -> dict | None:
    """One model's lm-eval tasks (into `results`) and, with canaries planted, their exposure."""
    cfg = recipe.eval
    lm = make_lm(backend, model, tok, spec, cfg.batch_size)
    if tasks:
        results["lm_eval"][name] = run_lm_eval(lm, manager, tasks)
    skipped = {t: v for t, v in results["standard_tasks"].get("trained", {}).items() if "skipped" in v}
    results["standard_tasks"][name] = run_standard_tasks(lm, manager, cfg.lm_eval_tasks, cfg.lm_eval_limit,
                                                         skip=skipped)
    del lm  # a vLLM engine holds its share of the GPU until it is gone
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if record is None:
        return None
    return canary_exposures(model, tok, record, cfg.canary_candidates, recipe.seed)


def canary_summary(recipe: Recipe, record: dict | None, exposures: dict) -> dict | None:
    if record is None:
        return None
    return {**exposures["trained"], "base": exposures["base"], "max_possible": max_exposure(record),
            "repeats": record.get("repeats"), "strategy": record.get("strategy"),
            "candidates": recipe.eval.canary_candidates}


def throughput(recipe: Recipe, model) -> dict:
    """Prefill and decode tokens/s of the trained model (defaults sized for the device)."""
    t, gpu = recipe.eval.throughput, next(model.parameters()).is_cuda
    return measure_serving(model, t.batch or (16 if gpu else 4), t.prompt_tokens or (1024 if gpu else 256),
                           t.output_tokens or (256 if gpu else 32), seed=recipe.seed)
