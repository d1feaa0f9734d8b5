"""The eval stage: the trained model beside the base model, on lm-eval tasks written from the run's
own data, standard lm-eval tasks, canary exposure, the agentic check with the real search tool,
BFCL and measured throughput, generated answers on three fact sets; writes eval/ (tasks/, results.json,
agentic.jsonl, bfcl.jsonl, fact_sets.jsonl, changed-index/).

    cogcore eval recipes/demo.yaml
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lm_eval
import torch

from cogcore.canaries import CANARIES_FILE, CanaryRecord
from cogcore.eval.agentic import run_agentic
from cogcore.eval.bfcl import run_bfcl
from cogcore.eval.memorization import canary_exposures, memorization_summary
from cogcore.eval.results import RESULTS_FILE, CanaryExposures, CanaryScores, EvalResults, ServingMeasurement
from cogcore.eval.tasks import (
    check_task_names,
    choose_backend,
    make_lm,
    retrieve_passages,
    run_lm_eval,
    run_standard_tasks,
    task_manager,
    write_tasks,
)
from cogcore.eval.throughput import measure_serving
from cogcore.io import read_jsonl
from cogcore.models import ModelSpec
from cogcore.questions import make_questions
from cogcore.recipe import Recipe
from cogcore.retrieval import SearchIndex
from cogcore.runtime import run_tools
from cogcore.stages import FINAL_MODEL
from cogcore.stages.corpus import HELDOUT, TRAIN, load_corpus
from cogcore.stages.fact_sets import run_fact_sets
from cogcore.stages.inputs import curated_splits, heldout_problem, require_something_to_evaluate, warn
from cogcore.tracking import Tracking, flat_figures, log_figures


@dataclass
class Plan:
    """What eval will ask, written and checked before any model loads."""

    questions: list  # held-out facts' questions (closed-, open-book, cloze; the agentic check)
    train_questions: list  # training facts' questions (memorization)
    problem: str | None  # what cannot be measured for lack of held-out data
    index: SearchIndex
    tasks: list[str]  # the lm-eval tasks written from the run's data
    manager: object  # lm-eval's task index
    record: CanaryRecord | None  # the planted canaries; None when none were planted


def run(recipe: Recipe, run_dir: Path, folder: Path) -> None:
    plan = prepare(recipe, run_dir, folder)
    results = EvalResults(
        lm_eval_version=lm_eval.__version__,
        backend=choose_backend(recipe.eval.backend),
        questions=len(plan.questions),
        train_questions=len(plan.train_questions),
        warnings=[plan.problem] if plan.problem else [],
    )
    trained, tok = compare_with_base(recipe, run_dir, plan, results)
    measure_at_work(recipe, run_dir, folder, plan, results, trained, tok)
    results.fact_sets = run_fact_sets(recipe, run_dir, folder, plan.index, trained, tok)
    results.write(folder / RESULTS_FILE)
    figures = results.to_json()
    figures.pop("samples", None)  # transcripts, not figures
    log_figures(Tracking.from_section(recipe.tracking, recipe.name), run_dir, "eval", flat_figures(figures))


def prepare(recipe: Recipe, run_dir: Path, folder: Path) -> Plan:
    """1. Questions and tasks from the run's data; what cannot be measured is a warning, not an
    error: eval still runs what has data (train recall, standard tasks, BFCL, canaries)."""
    cfg = recipe.eval
    corpus = load_corpus(run_dir)
    asked = max(cfg.questions, cfg.agentic_questions)
    questions = make_questions(corpus.facts_in(HELDOUT), corpus.titles(), asked, seed=recipe.seed)
    train_questions = make_questions(corpus.facts_in(TRAIN), corpus.titles(), cfg.questions, seed=recipe.seed)
    problem = warn(heldout_problem(curated_splits(run_dir), len(questions), recipe.curate.heldout_fraction))
    index = SearchIndex.load(run_dir / "index")
    passages = (
        retrieve_passages(index, questions[: cfg.questions], cfg.openbook_passages) if cfg.openbook_passages else None
    )
    tasks = write_tasks(
        folder / "tasks",
        questions[: cfg.questions],
        corpus.facts,
        corpus.split(HELDOUT)[: cfg.perplexity_docs],
        recipe.seed,
        passages=passages,
        train_questions=train_questions,
    )
    manager = task_manager(folder / "tasks", with_defaults=bool(cfg.lm_eval_tasks))
    check_task_names(cfg.lm_eval_tasks, manager)
    record = CanaryRecord.read(run_dir / "train" / "cpt" / CANARIES_FILE)  # None: nothing was planted
    other_checks = bool(cfg.lm_eval_tasks or cfg.bfcl.enabled) or record is not None
    require_something_to_evaluate(problem, len(tasks), other_checks)
    return Plan(questions, train_questions, problem, index, tasks, manager, record)


def compare_with_base(recipe: Recipe, run_dir: Path, plan: Plan, results: EvalResults):
    """2. The trained model, then the base model on the same tasks: what training changed. Returns
    the trained model and its tokenizer, on the device it will work on."""
    base = ModelSpec.from_section(recipe.base_model)
    trained_spec = base.at(run_dir / FINAL_MODEL)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    trained, tok = trained_spec.load()
    trained.to(device)
    exposures = {"trained": score(recipe, results, "trained", trained, tok, trained_spec, plan)}
    if plan.tasks or recipe.eval.lm_eval_tasks or plan.record is not None:
        base_model, base_tok = base.load()
        exposures["base"] = score(recipe, results, "base", base_model.to(device), base_tok, base, plan)
        del base_model
    results.memorization = memorization_summary(results.lm_eval, canary_summary(recipe, plan.record, exposures))
    return trained, tok


def measure_at_work(recipe: Recipe, run_dir: Path, folder: Path, plan: Plan, results: EvalResults, trained, tok):
    """3. The trained model at work: with its tools, on BFCL, and how fast it serves."""
    cfg = recipe.eval
    if cfg.agentic_questions and plan.questions:
        results.agentic = run_agentic(
            trained,
            tok,
            plan.index,
            plan.questions[: cfg.agentic_questions],
            folder / "agentic.jsonl",
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
            tools=run_tools(run_dir, plan.index),
            constrain=cfg.constrain,
        )
        results.samples = read_jsonl(folder / "agentic.jsonl")[:10]
    if cfg.bfcl.enabled:
        results.bfcl = run_bfcl(
            trained,
            tok,
            tuple(cfg.bfcl.categories),
            limit=cfg.bfcl.limit,
            batch_size=cfg.batch_size,
            max_new_tokens=cfg.bfcl.max_new_tokens,
            out_path=folder / "bfcl.jsonl",
        )
    if cfg.throughput.enabled:
        results.measured_throughput = throughput(recipe, trained)


def score(
    recipe: Recipe, results: EvalResults, name: str, model, tok, spec: ModelSpec, plan: Plan
) -> CanaryExposures | None:
    """One model's lm-eval tasks (into `results`) and, with canaries planted, their exposure."""
    cfg = recipe.eval
    lm = make_lm(results.backend, model, tok, spec, cfg.batch_size)
    if plan.tasks:
        results.lm_eval[name] = run_lm_eval(lm, plan.manager, plan.tasks)
    skipped = {t: v for t, v in results.standard_tasks.get("trained", {}).items() if "skipped" in v}
    results.standard_tasks[name] = run_standard_tasks(
        lm, plan.manager, cfg.lm_eval_tasks, cfg.lm_eval_limit, skip=skipped
    )
    del lm  # a vLLM engine holds its share of the GPU until it is gone
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if plan.record is None:
        return None
    return canary_exposures(model, tok, plan.record, cfg.canary_candidates, recipe.seed)


def canary_summary(recipe: Recipe, record: CanaryRecord | None, exposures: dict) -> CanaryScores | None:
    if record is None:
        return None
    trained = exposures["trained"]
    return CanaryScores(
        planted=trained.planted,
        controls=trained.controls,
        base=exposures["base"],
        max_possible=record.max_exposure(),
        repeats=record.repeats,
        strategy=record.strategy,
        candidates=recipe.eval.canary_candidates,
    )


def throughput(recipe: Recipe, model) -> ServingMeasurement:
    """Prefill and decode tokens/s of the trained model (defaults sized for the device)."""
    t, gpu = recipe.eval.throughput, next(model.parameters()).is_cuda
    return measure_serving(
        model,
        t.batch or (16 if gpu else 4),
        t.prompt_tokens or (1024 if gpu else 256),
        t.output_tokens or (256 if gpu else 32),
        seed=recipe.seed,
    )
