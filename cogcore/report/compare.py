"""Several runs side by side, with published scores of other models as reference rows.

    cogcore compare runs/acme-keep runs/acme-toolcall --reference reference/bfcl_v3_small_models.csv
    # or, from Python: build_compare([Path("runs/acme-keep"), ...], Path("compare"))

One row per run, read from its files alone (recipe.resolved.yaml, eval/results.json,
train/*/metrics.json, train/tools/model/config.json, else report/cost.json; `run_files`), so runs
made on other machines compare as long as their folders are here. Reference rows come from a CSV or
JSON file; a column whose name is one of the run columns below lands in that column, any other
column is kept as its own, and a cell a row lacks shows as a dash. `model` is read as `name`.

Cost is re-estimated for every run on one GPU profile with the same serving assumptions (the recipe
schema's `report` defaults), so that the column compares models rather than recipes' report
settings. A reference row with no `usd_per_1m_output` is placed by its `params_b` alone
(weights-only roofline, `cost.estimate_from_params`), which is optimistic next to a run's full
estimate: the table says which.

The Pareto chart puts one quality metric (`--metric`; default the first of QUALITY that a run has,
preferring one that a reference row has too) against $ per 1M output tokens on a log axis and
draws the frontier: the rows no other row beats on both.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cogcore.eval.results import AgenticScores, EvalResults, Memorization
from cogcore.recipe import ReportConfig
from cogcore.report import cost, plots
from cogcore.report.blocks import Heading, Image, Paragraph, Table, write_blocks
from cogcore.report.run_files import (
    COST,
    MANIFEST,
    MODEL_CONFIG,
    RECIPE,
    TRAIN_STAGES,
    read_json,
    read_model_config,
    read_recipe,
    read_results,
    read_train_metrics,
)

# (column, label, higher is better): the quality metrics a Pareto chart can use, in default order.
QUALITY = [
    ("agentic_accuracy", "agentic accuracy (with search)", True),
    ("bfcl_non_live_ast", "BFCL non-live AST", True),
    ("bfcl_overall", "BFCL overall", True),
    ("closedbook_acc", "closed-book accuracy", True),
    ("heldout_ppl", "held-out word perplexity", False),
]
IDENTITY = ["name", "kind", "base_model", "params_b", "strategy"]
QUALITY_COLUMNS = [
    "agentic_accuracy",
    "agentic_call_rate",
    "agentic_hit_rate",
    "closedbook_acc",
    "closedbook_acc_base",
    "heldout_ppl",
    "heldout_ppl_base",
    "bfcl_non_live_ast",
    "bfcl_overall",
    "mem_canary_exposure",
    "mem_canary_exposure_controls",
    "mem_train_fact_recall",
    "mem_train_fact_recall_base",
]
COST_COLUMNS = ["usd_per_1m_output", "cost_basis", "train_tokens", "train_seconds", "train_gpu_hours_est"]
ALIASES = {"model": "name"}


class CompareError(ValueError):
    """A run directory or reference file that cannot be compared; the message names it."""


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Valid JSON or YAML of the wrong shape (a string where an object belongs) as a CompareError
    naming the file. Files cut off or not JSON at all, and stage files their class refuses, raise
    run_files.RunFileError when read."""
    try:
        yield
    except (AttributeError, TypeError, KeyError) as e:
        raise CompareError(f"{path}: unexpected content ({type(e).__name__}: {e})") from None


def _memorization_columns(memo: Memorization | None) -> dict:
    """Mean canary exposure (planted, and the never-planted controls) and closed-book recall of
    training facts."""
    if memo is None:
        return {}
    canaries = memo.canaries
    return {
        "mem_canary_exposure": canaries.planted.mean_exposure if canaries else None,
        "mem_canary_exposure_controls": canaries.controls.mean_exposure if canaries else None,
        "mem_train_fact_recall": memo.train_recall.get("trained"),
        "mem_train_fact_recall_base": memo.train_recall.get("base"),
    }


def _quality_columns(results: EvalResults) -> dict:
    agentic = results.agentic or AgenticScores(n=0)
    row = {
        "agentic_accuracy": agentic.accuracy,
        "agentic_call_rate": agentic.call_rate,
        "agentic_hit_rate": agentic.retrieval_hit_rate,
        "closedbook_acc": results.lm_metric("trained", "cogcore_closedbook", "acc"),
        "closedbook_acc_base": results.lm_metric("base", "cogcore_closedbook", "acc"),
        "heldout_ppl": results.lm_metric("trained", "cogcore_heldout_ppl", "word_perplexity"),
        "heldout_ppl_base": results.lm_metric("base", "cogcore_heldout_ppl", "word_perplexity"),
    }
    bfcl = results.bfcl or {}
    # Published non-live AST also folds Java and JavaScript into `simple`; ours is Python only.
    row["bfcl_non_live_ast"] = bfcl.get("non_live_ast_python")
    row.update({f"bfcl_{c}": v for c, v in bfcl.items() if c != "non_live_ast_python"})
    return {**row, **_memorization_columns(results.memorization), **_fact_set_columns(results.fact_sets)}


FACT_SETS = ("train", "heldout", "changed")


def _fact_set_columns(data: dict | None) -> dict:
    """The trained model's generated-answer accuracy per fact set and mode, the changed facts'
    stale-answer rate, and the tokens an answer takes with tools (tool results included)."""
    if not data:
        return {}
    out = {}
    for mode, by_set in (data.get("scores", {}).get("trained") or {}).items():
        for name in FACT_SETS:
            if name in by_set:
                out[f"facts_{name}_{mode}"] = by_set[name].get("accuracy")
        if "changed" in by_set:
            out[f"facts_changed_stale_{mode}"] = by_set["changed"].get("stale_rate")
            out[f"facts_changed_stale_memory_{mode}"] = by_set["changed"].get("stale_from_memory_rate")
        tokens = [s["tokens_per_answer"] for s in by_set.values() if s.get("tokens_per_answer")]
        if tokens:
            out[f"tokens_per_answer_{mode}"] = sum(tokens) / len(tokens)
    return out


CLAIM = (
    "A core (facts replaced by search calls, tool use trained, answering with search) serves the domain "
    "better than a memorizer (the same model and tokens, facts trained on, answering closed book), and "
    "keeps serving it when facts change."
)
# (what, the core's column, the memorizer's column, the test, its wording)
CLAIM_ROWS = [
    (
        "held-out facts answered",
        "facts_heldout_tools",
        "facts_heldout_closed_book",
        lambda c, m: c >= 0.6,
        "core ≥ 0.6",
    ),
    (
        "changed facts answered with the new value",
        "facts_changed_tools",
        "facts_changed_closed_book",
        lambda c, m: c >= 0.6,
        "core ≥ 0.6",
    ),
    (
        "training facts answered",
        "facts_train_tools",
        "facts_train_closed_book",
        lambda c, m: c >= 2 * m,
        "core ≥ 2 × memorizer",
    ),
]


def claim_blocks(memorizer: dict, core: dict) -> list:
    """The claim, each of its tests on this run's figures, and whether the run supports it."""
    rows, verdicts = [], []
    for what, core_column, memorizer_column, test, wording in CLAIM_ROWS:
        c, m = core.get(core_column), memorizer.get(memorizer_column)
        verdict = None if c is None or m is None else bool(test(c, m))
        verdicts.append(verdict)
        shown = "not measured" if verdict is None else ("yes" if verdict else "no")
        rows.append([what, c, m, wording, shown])
    stale = [core.get("facts_changed_stale_tools"), memorizer.get("facts_changed_stale_closed_book")]
    rows.append(["changed facts answered with the old value", *stale, "reported", "–"])
    recalled = [core.get("facts_changed_stale_memory_tools"), memorizer.get("facts_changed_stale_memory_closed_book")]
    rows.append(["... of which recalled, not read from a passage", *recalled, "reported", "–"])
    tokens = [core.get("tokens_per_answer_tools"), memorizer.get("tokens_per_answer_closed_book")]
    rows.append(["tokens per answer (tool results included)", *tokens, "reported", "–"])
    supported = "supports" if verdicts and all(verdicts) else "does not support"
    return [
        Heading("The claim", 1),
        Paragraph(CLAIM),
        Table(["", f"core ({core.get('name')})", f"memorizer ({memorizer.get('name')})", "test", "met"], rows),
        Paragraph(f"This run {supported} the claim on every test."),
    ]


def _serving_cost(run_dir: Path, gpu: str, settings: ReportConfig) -> tuple[float | None, str | None, int | None]:
    config = read_model_config(run_dir)
    if config is not None:
        with _reading(run_dir / MODEL_CONFIG):
            row = cost.cost_table(
                config,
                [gpu],
                prices=settings.prices,
                dtype=settings.dtype,
                batch=settings.batch,
                prompt_tokens=settings.prompt_tokens,
                output_tokens=settings.output_tokens,
            )[0]
        return row["usd_per_1m_output"], "roofline (config.json)", row["params"]
    path = run_dir / COST
    with _reading(path):
        saved = [r for r in (read_json(path) or {}).get("rows", []) if r.get("gpu_key") == gpu]
        if saved:
            return saved[0]["usd_per_1m_output"], "roofline (report/cost.json)", saved[0].get("params")
    return None, None, None


def _training_columns(run_dir: Path, gpu: str) -> dict:
    """Tokens, seconds and estimated GPU-hours of the train stages that ran, and the largest model."""
    tokens = seconds = gpu_hours = params = 0
    for stage in TRAIN_STAGES:
        m = read_train_metrics(run_dir, stage)
        if m is None or m.skipped:
            continue
        tokens += m.tokens_trained or 0
        seconds += m.seconds or 0
        params = max(params, m.total_params or 0)
        if m.total_params and m.tokens_trained:
            gpu_hours += cost.training_cost(m.total_params, m.tokens_trained, gpu, cost.ASSUMED_TRAIN_MFU)["gpu_hours"]
    return {
        "train_tokens": tokens or None,
        "train_seconds": seconds or None,
        "train_gpu_hours_est": gpu_hours or None,
        "params": params or None,
    }


def run_row(run_dir: Path, gpu: str = "h100", settings: ReportConfig | None = None) -> dict:
    """One run's row: identity, quality, serving cost on `gpu` under `settings` (the recipe's
    `report` section; default: the schema's defaults and list prices), training tokens, time and cost."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CompareError(f"{run_dir}: no such run directory")
    recipe = read_recipe(run_dir)
    if not recipe and not (run_dir / MANIFEST).exists():
        raise CompareError(f"{run_dir}: not a run directory (no recipe.resolved.yaml or manifest.json)")
    usd, basis, params = _serving_cost(run_dir, gpu, settings or ReportConfig())
    training = _training_columns(run_dir, gpu)
    largest = training.pop("params")
    params = params or largest
    quality = _quality_columns(read_results(run_dir) or EvalResults())  # not run: every column empty
    with _reading(run_dir / RECIPE):
        base = (recipe.get("base_model") or {}).get("path")
        identity = {
            "name": recipe.get("name") or run_dir.name,
            "kind": "run",
            "base_model": Path(base).name if base else None,
            "params_b": params / 1e9 if params else None,
            "strategy": (recipe.get("facts") or {}).get("strategy"),
        }
    return {**identity, **quality, "usd_per_1m_output": usd, "cost_basis": basis, **training}


def _number(text):
    if not isinstance(text, str):
        return text
    text = text.strip()
    if not text:
        return None
    try:
        return int(text) if text.lstrip("-").isdigit() else float(text)
    except ValueError:
        return text


def read_reference(path: Path, gpu: str = "h100", settings: ReportConfig | None = None) -> list[dict]:
    """Rows of a CSV, a JSON list of objects, or JSON lines; numbers parsed; cost from params_b if absent."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CompareError(f"reference file {path}: cannot read it ({type(e).__name__})") from None
    try:
        if path.suffix == ".csv":
            raw = list(csv.DictReader(text.splitlines()))
        elif path.suffix == ".jsonl":
            raw = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            raw = json.loads(text)
    except ValueError as e:
        raise CompareError(f"reference file {path}: not valid {path.suffix[1:] or 'JSON'} ({e})") from None
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        raise CompareError(f"reference file {path}: expected a list of rows (objects with column names)")
    rows = []
    for record in raw:
        row = {ALIASES.get(k.strip(), k.strip()): _number(v) for k, v in record.items() if k}
        if not row.get("name"):
            raise CompareError(f"reference file {path}: a row has no `name` (or `model`) column: {record}")
        row["kind"] = "reference"
        if row.get("usd_per_1m_output") is None and isinstance(row.get("params_b"), (int, float)):
            settings = settings or ReportConfig()
            price = cost.resolve_gpu(gpu, settings.prices).price_per_hour
            row["usd_per_1m_output"] = cost.estimate_from_params(
                row["params_b"] * 1e9, gpu, dtype=settings.dtype, batch=settings.batch, price_per_hour=price
            )["usd_per_1m_output"]
            row["cost_basis"] = "params only (weights-only roofline)"
        elif row.get("usd_per_1m_output") is not None:
            row.setdefault("cost_basis", "as given")
        rows.append(row)
    return rows


def pick_metric(rows: list[dict], metric: str | None = None) -> tuple[str, str, bool]:
    """(column, label, higher is better) for the Pareto chart; an unknown or empty `metric` is an error."""
    labels = {c: (label, up) for c, label, up in QUALITY}
    present = [
        c
        for c in dict.fromkeys(
            k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        )
        if c not in COST_COLUMNS + ["params_b"]
    ]
    if metric is None:
        # The first QUALITY metric a run has, preferring one a reference row has too (a chart
        # with both on it); with no run rows, the first any row has.
        runs = [r for r in rows if r.get("kind") == "run"] or rows
        refs = [r for r in rows if r.get("kind") == "reference"]
        ran = [c for c, _, _ in QUALITY if any(r.get(c) is not None for r in runs)]
        shared = [c for c in ran if any(r.get(c) is not None for r in refs)]
        metric = (shared or ran or [None])[0]
        if metric is None:
            raise CompareError("no quality metric in any row; run the eval stage first")
    elif metric not in present:
        raise CompareError(f"--metric {metric}: no row has it; numeric columns: {', '.join(present) or 'none'}")
    label, up = labels.get(metric, (metric, not ("ppl" in metric or "perplexity" in metric)))
    return metric, label, up


def assumptions(gpu: str, settings: ReportConfig) -> str:
    profile = cost.resolve_gpu(gpu, settings.prices)
    return (
        f"one {profile.name} at ${profile.price_per_hour:g}/h, {settings.dtype} weights, a batch of "
        f"{settings.batch} requests of {settings.prompt_tokens:,} prompt + {settings.output_tokens:,} "
        "output tokens"
    )


def pareto_blocks(rows: list[dict], metric: str, label: str, up: bool, gpu: str, settings: ReportConfig) -> list:
    """The chart and its caption; rows missing the metric or the cost are listed, not plotted."""

    def plottable(r: dict) -> bool:
        x, y = r.get("usd_per_1m_output"), r.get(metric)
        return isinstance(x, (int, float)) and x > 0 and isinstance(y, (int, float))

    placed = [r for r in rows if plottable(r)]
    missing = [str(r["name"]) for r in rows if not plottable(r)]
    if not placed:
        return [Paragraph(f"No row has both {label} and a cost; nothing to plot.")]
    points = [(str(r["name"]), r["usd_per_1m_output"], r[metric], r.get("kind") == "reference") for r in placed]
    front = [placed[i]["name"] for i in plots.pareto_front([(p[1], p[2]) for p in points], up)]
    png = plots.pareto(points, f"$ per 1M output tokens on {cost.resolve_gpu(gpu).name} (log)", label, up)
    text = (
        f"{label} against the estimated $ per 1M output tokens ({assumptions(gpu, settings)}). "
        f"Pareto frontier (no other row is both cheaper and better): {', '.join(map(str, front))}."
    )
    if missing:
        text += f" Not plotted (no {label} or no cost): {', '.join(missing)}."
    return [Image("pareto.png", png), Paragraph(text)]


def _columns(rows: list[dict], wanted: list[str]) -> list[str]:
    return [c for c in wanted if any(r.get(c) is not None for r in rows)]


def compare_blocks(rows: list[dict], metric: str | None = None, gpu: str = "h100") -> list:
    column, label, up = pick_metric(rows, metric)
    settings = ReportConfig()
    known = set(IDENTITY + QUALITY_COLUMNS + COST_COLUMNS)
    extra = [c for c in dict.fromkeys(k for r in rows for k in r) if c not in known]
    quality = _columns(rows, IDENTITY + QUALITY_COLUMNS + extra)
    money = _columns(rows, ["name"] + COST_COLUMNS)
    mfu = cost.ASSUMED_TRAIN_MFU
    runs = sum(r.get("kind") == "run" for r in rows)
    return [
        Heading(f"cogcore compare: {runs} runs, {len(rows) - runs} reference rows", 1),
        Heading("Quality"),
        Table(quality, [[r.get(c) for c in quality] for r in rows]),
        Paragraph(
            "Runs read their files; reference rows are published figures, as given in their file. "
            "bfcl_non_live_ast of a run is the Python-only mean of simple_python, multiple, parallel "
            "and parallel_multiple; the published figure also folds Java and JavaScript into simple."
        ),
        Heading("Cost"),
        Table(money, [[r.get(c) for c in money] for r in rows]),
        Paragraph(
            f"usd_per_1m_output: the report's roofline for {assumptions(gpu, settings)}, the same "
            "for every row. train_gpu_hours_est: 6·N·D FLOPs of the train stages' "
            f"tokens at an assumed {mfu:.0%} MFU on that GPU (cost.training_cost)."
        ),
        Heading(f"Quality against cost: {label}"),
        *pareto_blocks(rows, column, label, up, gpu, settings),
    ]


def build_compare(
    run_dirs: list[Path],
    out: Path,
    reference: Path | None = None,
    metric: str | None = None,
    gpu: str = "h100",
    claim: tuple[int, int] | None = None,
) -> tuple[Path, Path]:
    """Write compare.md (with pareto.png beside it) and a self-contained compare.html into `out`.
    claim: (memorizer, core), positions in run_dirs: the claim's table comes first."""
    cost.resolve_gpu(gpu)  # an unknown profile fails before any work
    rows = [run_row(Path(d), gpu) for d in run_dirs]
    if reference is not None:
        rows += read_reference(reference, gpu)
    out = Path(out)
    blocks = compare_blocks(rows, metric, gpu)
    if claim is not None:
        blocks = claim_blocks(rows[claim[0]], rows[claim[1]]) + blocks
    paths = write_blocks(blocks, out, "compare")
    (out / "compare.json").write_text(json.dumps(rows, indent=2) + "\n")
    return paths
