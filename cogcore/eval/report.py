"""The run report: report.md and a self-contained report.html, built from the run directory alone.

    python -m cogcore.eval.report runs/demo      # or, from Python: build_report(Path("runs/demo"))

Every figure comes from a file some stage wrote (curate/stats.json, train/*/metrics.json,
eval/results.json, train/tools/model/config.json, manifest.json, recipe.resolved.yaml), so the report can
be rebuilt at any time without re-running anything. A section whose file is missing says "not run";
a file that is there but unreadable (cut off, the wrong shape) stops the build with RunFileError.
Sections are built once as a list of blocks (heading, paragraph, table, image, code) and rendered
twice, to Markdown and to HTML; all text is escaped in both. The HTML embeds its charts as base64
data URIs and its CSS inline, so it opens offline and can be mailed as one file.
"""

from __future__ import annotations

import base64
import html
import json
import shlex
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

from cogcore import hardware
from cogcore.eval import cost, plots

DEFAULT_GPUS = ["h100", "h200", "a100", "l40s", "l4", "cpu-2core"]
NOT_RUN = "Not run: {} is missing from the run directory."


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Code:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list]


@dataclass
class Image:
    name: str  # file name under report/, also the alt text
    png: bytes


class RunFileError(Exception):
    """A run directory's file that is there but cannot be what it should be (cut off mid-write, valid
    JSON of the wrong shape); the message names the file and why. Deliberately not a ValueError, so
    that no section guard turns it into a quiet "could not be built" or "not run"."""


def _kind(data) -> str:
    return {list: "a list", str: "a string", bool: "true or false", type(None): "null"}.get(type(data), "a number")


def _read_text(path: Path) -> str | None:
    """The file's text; None when it does not exist (its stage has not run)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise RunFileError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None


def _load_json(path: Path) -> dict | None:
    """A JSON object the run wrote; None when the file is missing, RunFileError when it is unreadable."""
    text = _read_text(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise RunFileError(f"{path}: not valid JSON ({e}): cut off or damaged; "
                           "run the stage that writes it again") from None
    if not isinstance(data, dict):
        raise RunFileError(f"{path}: expected a JSON object, found {_kind(data)}")
    return data


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _stage_section(manifest: dict | None) -> list:
    blocks = [Heading("Stages")]
    if manifest is None:
        return blocks + [Paragraph(NOT_RUN.format("manifest.json"))]
    stages = manifest.get("stages", {})
    rows = [[name, s.get("status"), s.get("started"), s.get("ended"), s.get("seconds")]
            for name, s in sorted(stages.items(), key=lambda kv: kv[1].get("started") or "")]
    total = sum(s.get("seconds") or 0 for s in stages.values())
    return blocks + [Table(["stage", "status", "started", "ended", "seconds"], rows),
                     Paragraph(f"Total wall time: {total:,.1f} s.")]


def _curate_section(stats: dict | None) -> list:
    blocks = [Heading("Data")]
    if stats is None:
        return blocks + [Paragraph(NOT_RUN.format("curate/stats.json"))]
    # Curation's own warnings first (a step that dropped most of what it received, a source that
    # yielded nothing): recorded in stats.json, each with the command that shows samples.
    blocks += [Paragraph(f"Warning: {w['message']}") for w in stats.get("warnings", [])]
    splits = stats.get("splits", {})
    unreadable = stats.get("unreadable", [])
    skipped = stats.get("unreadable_by_reason", {})  # an entry of `unreadable` may stand for many records
    recoded = stats.get("recoded", {})
    blocks.append(Paragraph(
        f"{_fmt(stats['docs_in'])} documents in, {_fmt(stats['docs_out'])} out "
        f"(train {_fmt(splits.get('train'))}, held out {_fmt(splits.get('heldout'))}); "
        f"files or records skipped as unreadable: {_fmt(sum(skipped.values()))}"
        + (f" ({', '.join(f'{r}: {n}' for r, n in sorted(skipped.items()))})" if skipped else "")
        + (f"; files not in UTF-8, decoded as {', '.join(sorted(set(recoded.values())))}: {_fmt(len(recoded))}"
           if recoded else "") + "."))
    rows, broken = [], []
    for step in stats["steps"]:
        dropped = step.get("dropped", {})
        holds = step["docs_in"] == step["kept"] + sum(dropped.values())
        if not holds:
            broken.append(step["step"])
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(dropped.items())) or "–"
        mb = [f"{step[k] / 1e6:.3f}" if k in step else None for k in ("bytes_in", "bytes_kept")]
        delta = f"{step['bytes_delta'] / 1e6:+.3f}" if step.get("bytes_delta") else "–"
        rows.append([step["step"], step["docs_in"], step["kept"], sum(dropped.values()), reasons, *mb, delta,
                     step.get("seconds"), "holds" if holds else "BROKEN"])
    blocks.append(Table(["step", "in", "kept", "dropped", "dropped by reason", "MB in", "MB kept",
                         "MB rewritten", "seconds", "in = kept + dropped"], rows))
    blocks.append(Paragraph(
        "Accounting: every step must satisfy in = kept + the sum of its drops. "
        + (f"It is broken for: {', '.join(broken)}." if broken
           else f"It holds for all {len(rows)} steps.")))
    pii = stats.get("pii")
    if pii is not None:
        blocks.append(Paragraph("PII and secrets redacted: " + (", ".join(
            f"{kind}: {n}" for kind, n in sorted(pii.items())) or "none found") + "."))
    rebalance = stats.get("rebalance")
    if rebalance:
        blocks.append(Table(["cluster", "documents before", "after"],
                            [[c, n, rebalance["after"].get(c)] for c, n in rebalance["before"].items()]))
    if unreadable:
        blocks.append(Table(["unreadable file or record", "reason", "records"],
                            [[u.get("path"), u.get("reason"), u.get("count", 1)] for u in unreadable[:10]]))
    if rows:
        png = plots.data_funnel([r[0] for r in rows], [r[2] for r in rows], stats["docs_in"])
        blocks.append(Image("funnel.png", png))
    return blocks + _facts_blocks(stats.get("facts") or {})


def _facts_blocks(facts: dict) -> list:
    blocks = [Heading("Facts moved to the index", 3)]
    if not facts:
        return blocks + [Paragraph("No facts were found.")]
    rows = sorted(([k, v] for k, v in facts.items()), key=lambda r: -r[1])
    blocks.append(Table(["kind", "facts"], rows + [["total", sum(facts.values())]]))
    return blocks + [Image("fact_kinds.png", plots.fact_kinds(facts))]


def _final_loss(history: list[dict]) -> float | None:
    losses = [h["loss"] for h in history if "loss" in h]
    return losses[-1] if losses else None


def _train_device(m: dict, settings: dict) -> str | None:
    # The device the stage recorded, else the one the recipe says the train stages ran on.
    return hardware.gpu_key_for(m.get("device")) or settings.get("train_gpu")


def _training_section(metrics: dict[str, dict | None], settings: dict) -> list:
    blocks = [Heading("Training")]
    header = ["stage", "method", "steps", "tokens", "seconds", "tokens/s", "final loss",
              "trainable / total params", "hardware", "achieved MFU (6ND)"]
    rows, curves = [], []
    for stage, m in metrics.items():
        if m is None or m.get("skipped"):
            rows.append([stage, "skipped" if m else "not run"] + [None] * (len(header) - 2))
            continue
        history = m.get("log_history", [])
        device = _train_device(m, settings)
        mfu = (cost.achieved_mfu(m["total_params"], m["tokens_trained"], m["seconds"], device)
               if device and m.get("seconds") else None)
        rows.append([stage, m["method"], m["steps"], m["tokens_trained"], m["seconds"],
                     m["tokens_per_s"], _final_loss(history),
                     f"{_fmt(m['trainable_params'])} / {_fmt(m['total_params'])}",
                     cost.resolve_gpu(device).name if device else m.get("device") or "not recorded",
                     f"{mfu:.1%}" if mfu is not None else None])
        points = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
        if points:
            curves.append((stage, [p[0] for p in points], [p[1] for p in points]))
    blocks.append(Table(header, rows))
    if curves:
        blocks.append(Image("loss.png", plots.loss_curves(curves)))
    return blocks + _training_cost_blocks([m for m in metrics.values() if m and not m.get("skipped")], settings)


def _training_cost_blocks(metrics: list[dict], settings: dict) -> list:
    """GPU-hours and $ for the same tokens on each profile, at an assumed MFU: 6ND / (MFU x peak)."""
    blocks = [Heading("Training cost (estimate)", 3)]
    runs = [(m["total_params"], m["tokens_trained"]) for m in metrics if m.get("total_params") and m.get("tokens_trained")]
    if not runs:
        return blocks + [Paragraph("Not run: no train stage recorded tokens and parameters.")]
    mfu, rows = cost.ASSUMED_TRAIN_MFU, []
    for key in settings["gpus"]:
        profile = cost.resolve_gpu(key, settings["prices"])
        parts = [cost.training_cost(n, d, profile, mfu) for n, d in runs]
        hours = sum(p["gpu_hours"] for p in parts)
        rows.append([profile.name, profile.tflops, profile.price_per_hour, f"{mfu:.0%}",
                     f"{sum(p['flops'] for p in parts):.3g}", f"{hours:.3g}", f"{hours * 3600:.3g}",
                     f"{sum(p['usd'] for p in parts):.3g}"])
    blocks.append(Table(["GPU", "peak bf16 TFLOPS", "$/h", "assumed MFU", "FLOPs (6ND)", "GPU-hours",
                         "GPU-seconds", "$"], rows))
    return blocks + [Paragraph(
        f"The train stages' {sum(d for _, d in runs):,} tokens, at FLOPs = 6 × N × D (N the parameters of "
        "each stage's model, D its tokens trained; Kaplan et al. 2020), priced as time = FLOPs / (MFU × "
        f"peak dense bf16 FLOPS) on one GPU of each profile. The assumed {mfu:.0%} MFU follows llm-analysis "
        "(training compute efficiency at most 0.5) and LLM-Viewer's roofline peaks; OLMo-core measures 39–48% "
        "on H100s for 1B–8B models. Achieved MFU above is 6 × N × tokens/s over the peak of the hardware "
        "the stage ran on (metrics.json `device`, else the recipe's report.train_gpu). LoRA skips the "
        "frozen weights' gradients (about 4ND of real work), so for LoRA stages 6ND counts what a full "
        "fine-tune of the same tokens would cost and overstates the achieved MFU up to 1.5×.")]


KNOWLEDGE_TASKS = {"cogcore_closedbook": "the question alone (closed book)",
                   "cogcore_openbook": "the question and the index's top passages (open book)",
                   "cogcore_cloze": "the fact's own sentence, each value in the blank"}
PPL_TASKS = {"cogcore_heldout_ppl": "all held-out text", "cogcore_heldout_ppl_nofacts": "held-out text, facts excluded"}
MEMORIZATION_TASKS = ("cogcore_train_recall",)


def _eval_section(results: dict | None) -> list:
    blocks = [Heading("Evaluation")]
    if results is None:
        return blocks + [Paragraph(NOT_RUN.format("eval/results.json"))]
    lm = results.get("lm_eval") or {}
    if lm:
        # {model: {task: {metric: value}}}: the trained model beside the base model it started from.
        blocks += _knowledge_blocks(lm) + _perplexity_blocks(lm) + _other_task_blocks(lm)
        blocks.append(Paragraph(f"lm-eval version {results.get('lm_eval_version', 'unknown')}, backend "
                                f"{results.get('backend', 'hf')}; the task YAMLs are in eval/tasks/ and run with "
                                "plain `lm_eval --include_path`."))
    else:
        blocks += [Heading("lm-eval", 3), Paragraph("Not run: no lm-eval results.")]
    blocks += _standard_task_blocks(results.get("standard_tasks") or {})
    blocks += _memorization_blocks(results.get("memorization"))
    bfcl = results.get("bfcl")
    if bfcl:
        blocks += [Heading("Function calling (BFCL AST categories)", 3),
                   Table(["category", "accuracy"], [[c, v] for c, v in bfcl.items()]),
                   Paragraph("Scored with cogcore's BFCL-compatible AST checker (same verdicts as BFCL's own "
                             "checker on every output in benchmarks/bfcl_agreement.py), on the first "
                             "`eval.bfcl.limit` entries of each category.")]
    blocks.append(Heading("Agentic check (answers with the search tool)", 3))
    agentic = results.get("agentic")
    if not agentic:
        return blocks + [Paragraph("Not run: no agentic results.")]
    if "calls_per_answer" not in agentic:  # results written before it was renamed
        agentic = {**agentic, "calls_per_answer": agentic.get("mean_calls")}
    labels = {"n": "questions", "accuracy": "accuracy", "call_rate": "search call rate",
              "retrieval_hit_rate": "retrieval hit rate", "calls_per_answer": "calls per answer",
              "seconds_per_answer": "seconds per answer (mean)", "latency_p50_s": "seconds per answer (p50)",
              "latency_p90_s": "seconds per answer (p90)"}
    blocks.append(Table(["metric", "value"], [[labels[k], agentic.get(k)] for k in labels]))
    samples = results.get("samples") or []
    if samples:
        rows = [[s.get("question"), s.get("answer"), s.get("expected"),
                 json.dumps(s.get("calls", []), ensure_ascii=False)[:200], s.get("correct")]
                for s in samples[:10]]
        blocks += [Heading("Samples", 3),
                   Table(["question", "answer", "expected", "calls", "correct"], rows)]
    return blocks



def _models(by_model: dict) -> list[str]:
    # results.json is written with sorted keys; the trained model reads best first.
    return sorted(by_model, key=lambda m: (m != "trained", m))


def _knowledge_blocks(lm: dict) -> list:
    models = _models(lm)
    present = [t for t in KNOWLEDGE_TASKS if any(t in res for res in lm.values())]
    if not present:
        return []
    rows = [[t, KNOWLEDGE_TASKS[t]] + [lm[m].get(t, {}).get(metric) for metric in ("acc", "acc_norm") for m in models]
            for t in present]
    return [Heading("Held-out facts: closed book, open book, cloze", 3),
            Table(["task", "the model sees"] + [f"{m} {metric}" for metric in ("acc", "acc_norm") for m in models], rows),
            Paragraph("Multiple choice among the true value and three values of the same kind from other facts "
                      "(chance = 0.25), on facts of held-out documents, scored by loglikelihood (acc_norm: per "
                      "byte). Open book minus closed book is what the retrieved passages add.")]


def _perplexity_blocks(lm: dict) -> list:
    models = _models(lm)
    rows = [[PPL_TASKS[t], metric] + [lm[m].get(t, {}).get(metric) for m in models]
            for t in PPL_TASKS for metric in ("word_perplexity", "bits_per_byte")
            if any(metric in res.get(t, {}) for res in lm.values())]
    if not rows:
        return []
    return [Heading("Perplexity on held-out text", 3), Table(["text", "metric"] + models, rows),
            Paragraph("Lower is better. 'Facts excluded' scores only the text between the facts, each segment "
                      "conditioned on all the text before it: the domain's language, which every strategy "
                      "trains, apart from the facts, which only `keep` trains.")]


def _other_task_blocks(lm: dict) -> list:
    models, shown = _models(lm), set(KNOWLEDGE_TASKS) | set(PPL_TASKS) | set(MEMORIZATION_TASKS)
    keys = sorted({(t, m) for res in lm.values() for t, ms in res.items() if t not in shown for m in ms})
    if not keys:
        return []
    return [Heading("Other lm-eval tasks", 3),
            Table(["task", "metric"] + models, [[t, m] + [lm[n].get(t, {}).get(m) for n in models] for t, m in keys])]


def _standard_task_blocks(standard: dict) -> list:
    """{model: {task: {metric: value} | {"skipped": reason}}}, from `eval.lm_eval_tasks`."""
    if not standard:
        return []
    models = _models(standard)
    tasks = list(dict.fromkeys(t for res in standard.values() for t in res))
    rows = []
    for t in tasks:
        skipped = next((res[t]["skipped"] for res in standard.values() if "skipped" in res.get(t, {})), None)
        if skipped:
            rows.append([t, f"skipped: {skipped}"] + [None] * len(models))
            continue
        metrics = sorted({m for res in standard.values() for m in res.get(t, {})})
        rows += [[t, m] + [standard[n].get(t, {}).get(m) for n in models] for m in metrics]
    return [Heading("Standard lm-eval tasks", 3), Table(["task", "metric"] + models, rows),
            Paragraph("General ability before and after domain training (`eval.lm_eval_tasks`); a task whose "
                      "dataset was not available offline is listed as skipped.")]


def _exposure_cell(summary: dict | None) -> str | None:
    if not summary or summary.get("mean_exposure") is None:
        return None
    return f"{summary['mean_exposure']:.3g} ({summary['max_exposure']:.3g}), n={summary['n']}"


def _memorization_blocks(memo: dict | None) -> list:
    if not memo:
        return []
    recall, heldout = memo.get("train_recall") or {}, memo.get("heldout_closedbook") or {}
    canaries = memo.get("canaries")
    rows = []
    if canaries:
        base = canaries.get("base") or {}
        rows += [["canary exposure, planted: mean (max)", _exposure_cell(canaries.get("planted")),
                  _exposure_cell(base.get("planted"))],
                 ["canary exposure, controls: mean (max)", _exposure_cell(canaries.get("controls")),
                  _exposure_cell(base.get("controls"))]]
    rows += [["training-fact recall, closed book (acc)", recall.get("trained"), recall.get("base")],
             ["held-out fact recall, closed book (acc)", heldout.get("trained"), heldout.get("base")]]
    blocks = [Heading("Memorization", 3), Table(["measure", "trained", "base"], rows)]
    if canaries:
        blocks.append(Paragraph(
            f"Exposure (Carlini et al. 2019) is log2 of the secret space minus log2 of the true secret's rank among "
            f"{_fmt(canaries.get('candidates'))} sampled candidates: about 1 bit for a secret the model knows "
            f"nothing about (the never-planted controls), {_fmt(canaries.get('max_possible'))} bits for one it "
            f"ranks first. Planted canaries went into {_fmt(canaries.get('repeats'))} training documents each under "
            f"strategy {canaries.get('strategy') or 'unknown'}: planted well above controls means the model stored them."))
    else:
        blocks.append(Paragraph("No canaries were planted in this run (facts.canaries.count is 0)."))
    blocks.append(Paragraph("Training-fact recall above held-out recall means the model answers from its weights "
                            "facts it was trained on: expected under `keep`, not under `mask` or `toolcall`."))
    return blocks

def _cost_section(config: dict | None, settings: dict) -> tuple[list, dict]:
    blocks = [Heading("Inference cost (estimate)")]
    if config is None:
        return blocks + [Paragraph(NOT_RUN.format("train/tools/model/config.json"))], {"rows": []}
    shape = cost.ModelShape.from_config(config)
    summary = cost.model_summary(shape)
    blocks.append(Table(["params", "weights bf16", "weights fp8", "weights int4", "KV cache / token"],
                        [[summary["params"]] + [f"{gb:.3g} GB" for gb in summary["weights_gb"].values()]
                         + [f"{summary['kv_cache_bytes_per_token_bf16'] / 1024:.4g} KiB (bf16)"]]))
    rows = cost.cost_table(config, settings["gpus"], settings["prices"], settings["dtype"],
                           settings["batch"], settings["prompt_tokens"], settings["output_tokens"])
    blocks.append(Paragraph(
        f"Roofline estimate for {settings['dtype']} weights, a batch of {settings['batch']} requests "
        f"of {settings['prompt_tokens']} prompt and {settings['output_tokens']} output tokens. A decode "
        "step takes the longer of (weights + batch × context × KV bytes) / (0.9 × memory bandwidth) "
        "and batch × FLOPs per token / (0.7 × peak bf16 FLOPS), FLOPs per token being 2 × matmul "
        "parameters + 4 × layers × context × attention width; prefill is the same with all prompt "
        "tokens at once. $ per 1M tokens = price per hour / (tokens/s × 3600) × 1e6, input priced at "
        "prefill speed, output at decode speed. It is an upper bound on throughput: it ignores "
        "activations, scheduling and framework overhead. Prices marked 'assumption' are not quotes."))
    blocks.append(Table(
        ["GPU", "$/h", "price source", "memory (GB)", "fits", "decode tok/s", "per stream",
         "bound", "prefill tok/s", "$/1M in", "$/1M out"],
        [[r["gpu"], r["price_per_hour"], r["price_source"], f"{r['memory_gb']:.3g}", r["fits"],
          r["decode_tokens_per_s"], r["decode_tokens_per_s_per_stream"], r["decode_bound"],
          r["prefill_tokens_per_s"], f"{r['usd_per_1m_input']:.3g}", f"{r['usd_per_1m_output']:.3g}"]
         for r in rows]))
    return blocks, {"model": summary, "settings": settings, "rows": rows}


def _throughput_blocks(results: dict | None, config: dict | None, settings: dict) -> list:
    """Measured serving throughput (eval results' `measured_throughput`: one object or a list, each
    with `prefill_tokens_per_s` and/or `decode_tokens_per_s`, and optionally `device` or `gpu`,
    `batch`, `prompt_tokens`, `output_tokens`, `dtype`, `engine`) beside the roofline for the same."""
    measured = (results or {}).get("measured_throughput")
    if not measured or config is None:
        return []
    shape = cost.ModelShape.from_config(config)
    rows = []
    for entry in measured if isinstance(measured, list) else [measured]:
        device = entry.get("device") or entry.get("gpu")
        key = hardware.gpu_key_for(device)
        run = {k: entry.get(k) or settings[k] for k in ("batch", "prompt_tokens", "output_tokens")}
        dtype = entry.get("dtype") if entry.get("dtype") in cost.BYTES_PER_PARAM else settings["dtype"]
        bound = cost.estimate(shape, key, dtype, run["batch"], run["prompt_tokens"], run["output_tokens"]) if key else {}
        for phase in ("prefill", "decode"):
            got, est = entry.get(f"{phase}_tokens_per_s"), bound.get(f"{phase}_tokens_per_s")
            if got is not None:
                rows.append([device or "not recorded", entry.get("engine"), phase, run["batch"], run["prompt_tokens"],
                             run["output_tokens"], got, est, f"{got / est:.1%}" if est else None])
    if not rows:
        return []
    return [Heading("Measured throughput beside the estimate", 3),
            Table(["hardware", "engine", "phase", "batch", "prompt tokens", "output tokens", "measured tok/s",
                   "roofline tok/s", "measured / roofline"], rows),
            Paragraph("Measured figures come from eval/results.json (`measured_throughput`); the roofline is "
                      "the estimate above for the same hardware, batch and lengths (none where the hardware is "
                      "not one of the GPU profiles). The ratio is how much of the upper bound the server reached.")]


def _reference_rows(run_dir: Path, spec: str | None, gpu: str, settings: dict,
                    out: Path) -> tuple[list[dict], str]:
    """Reference rows from the recipe's `report.reference`, kept in report/reference.json so that a
    rebuild from the run directory alone still has them when the file is not reachable from here.
    The copy is written to `out` (the folder the report is built in), read from there or else from
    the report/ already in place, and carried over into `out`."""
    from cogcore.eval.compare import CompareError, read_reference
    from cogcore.resources import ResourceError, resolve_path

    def save(copy: dict) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "reference.json").write_text(json.dumps(copy, indent=2) + "\n")

    if spec:
        try:
            rows = read_reference(Path(resolve_path(spec)), gpu, settings)
        except (ResourceError, CompareError) as error:
            note = f"The reference file could not be read ({error})"
        else:
            save({"source": spec, "rows": rows})
            return rows, f"Reference rows: {len(rows)} from {Path(spec).name}."
        for saved in dict.fromkeys([out / "reference.json", run_dir / "report" / "reference.json"]):
            copy = _load_json(saved)
            if copy is not None:
                if saved != out / "reference.json":
                    save(copy)
                return copy["rows"], (note + "; used the copy saved in report/reference.json "
                                      f"({len(copy['rows'])} rows).")
        return [], note + "."
    return [], "No reference rows (set report.reference in the recipe to add published scores)."


def _pareto_section(run_dir: Path, reference: str | None, settings: dict, out: Path) -> list:
    from cogcore.eval import compare  # compare renders with this module's blocks

    blocks = [Heading("Quality against cost")]
    keys = [g.lower() for g in settings["gpus"]]
    gpu = "h100" if "h100" in keys else keys[0]
    refs, note = _reference_rows(run_dir, reference, gpu, settings, out)
    try:
        row = compare.run_row(run_dir, gpu, settings)
        metric, label, up = compare.pick_metric([row] + refs)
    except compare.CompareError as error:
        return blocks + [Paragraph(f"Not run: {error}."), Paragraph(note)]
    return blocks + compare.pareto_blocks([row] + refs, metric, label, up, gpu, settings) + [Paragraph(note)]


def _serve_section(run_dir: Path, config: dict | None, settings: dict) -> list:
    blocks = [Heading("Serve the model")]
    if config is None:
        return blocks + [Paragraph(NOT_RUN.format("train/tools/model/config.json"))]
    model = (run_dir / "train" / "tools" / "model").resolve()
    length = config.get("max_position_embeddings") or settings["prompt_tokens"] + settings["output_tokens"]
    return blocks + [
        Code(f"vllm serve {shlex.quote(str(model))} --enable-auto-tool-choice --tool-call-parser hermes "
             f"--dtype bfloat16 --max-model-len {length}"),
        Paragraph("vLLM's OpenAI-compatible server with tool calling (pip install vllm; a GPU). The chat template "
                  "saved with the tokenizer (chat_template.jinja: ChatML, tool calls as <tool_call> JSON) is "
                  "used as it is, and the hermes parser returns the calls as `tool_calls`, so clients pass the "
                  "search tool's schema in `tools`. --max-model-len is max_position_embeddings from config.json; "
                  "lower it to reserve less KV cache per sequence.")]


def _read_recipe(run_dir: Path) -> dict:
    """recipe.resolved.yaml; {} when missing, RunFileError when it is there but unreadable."""
    path = run_dir / "recipe.resolved.yaml"
    text = _read_text(path)
    try:
        data = yaml.safe_load(text) if text else None
    except yaml.YAMLError as e:
        raise RunFileError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if data is not None and not isinstance(data, dict):
        raise RunFileError(f"{path}: expected a mapping of recipe sections, found {_kind(data)}")
    return data or {}


def _cost_settings(report: dict) -> dict:
    return {"gpus": report.get("gpus") or DEFAULT_GPUS, "prices": report.get("prices") or {},
            "dtype": report.get("dtype", "bf16"), "batch": report.get("batch", 16),
            "prompt_tokens": report.get("prompt_tokens", 1024),
            "output_tokens": report.get("output_tokens", 256), "train_gpu": report.get("train_gpu")}


def _guarded(title: str, build) -> list:
    # A schema-broken file should cost its own section, not the whole report.
    try:
        return build()
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        return [Heading(title), Paragraph(f"Could not be built: {type(error).__name__}: {error}")]


def report_blocks(run_dir: Path, out: Path | None = None) -> tuple[list, dict]:
    """All blocks of the report, and the cost rows for cost.json (`out`: the folder the report is
    built in, default the run's report/; the reference rows' copy is kept there)."""
    out = Path(out) if out is not None else run_dir / "report"
    recipe = _read_recipe(run_dir)
    name = recipe.get("name") or run_dir.name
    manifest = _load_json(run_dir / "manifest.json")
    ended = [s.get("ended") for s in (manifest or {}).get("stages", {}).values() if s.get("ended")]
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    blocks = [Heading(f"cogcore report: {name}", 1),
              Paragraph(f"Run {name}, last stage ended {max(ended) if ended else 'never'}; "
                        f"report generated {now} from {run_dir.name}/ alone.")]
    blocks += _guarded("Stages", lambda: _stage_section(manifest))
    blocks += _guarded("Data", lambda: _curate_section(_load_json(run_dir / "curate/stats.json")))
    train = {s: _load_json(run_dir / f"train/{s}/metrics.json") for s in ("cpt", "tools")}
    settings = _cost_settings(recipe.get("report") or {})
    blocks += _guarded("Training", lambda: _training_section(train, settings))
    blocks += _guarded("Evaluation", lambda: _eval_section(_load_json(run_dir / "eval/results.json")))
    cost_data = {"rows": []}

    config = _load_json(run_dir / "train/tools/model/config.json")

    def build_cost():
        nonlocal cost_data
        section, cost_data = _cost_section(config, settings)
        return section + _throughput_blocks(_load_json(run_dir / "eval/results.json"), config, settings)
    blocks += _guarded("Inference cost (estimate)", build_cost)
    blocks += _guarded("Quality against cost",
                       lambda: _pareto_section(run_dir, (recipe.get("report") or {}).get("reference"), settings, out))
    blocks += _guarded("Serve the model", lambda: _serve_section(run_dir, config, settings))
    blocks += [Heading("How to reproduce"),
               Code(f"cogcore run runs/{run_dir.name}/recipe.resolved.yaml   # the whole run\n"
                    f"cogcore report runs/{run_dir.name}   # this report, from the files alone")]
    return blocks, cost_data


def _md_text(text) -> str:
    # Backslash-escape Markdown's inline syntax, then HTML-escape so raw tags stay text.
    text = _fmt(text).replace("\\", "\\\\").replace("\n", " ")
    for ch in "*_[]`|#":
        text = text.replace(ch, "\\" + ch)
    return html.escape(text, quote=False)


def render_markdown(blocks: list) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + _md_text(b.text))
        elif isinstance(b, Paragraph):
            out.append(_md_text(b.text))
        elif isinstance(b, Code):
            out.append("```\n" + b.text + "\n```")
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(_md_text(h) for h in b.header) + " |",
                     "|" + "---|" * len(b.header)]
            lines += ["| " + " | ".join(_md_text(c) for c in row) + " |" for row in b.rows]
            out.append("\n".join(lines))
        elif isinstance(b, Image):
            out.append(f"![{b.name}]({b.name})")
    return "\n\n".join(out) + "\n"


CSS = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: 0.6rem; overflow-x: auto; }
img { max-width: 100%; }
"""


def _html_cell(value, tag: str = "td") -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    cls = ' class="num"' if numeric and tag == "td" else ""
    return f"<{tag}{cls}>{html.escape(_fmt(value))}</{tag}>"


def render_html(blocks: list, title: str) -> str:
    body = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            body.append(f"<p>{html.escape(b.text)}</p>")
        elif isinstance(b, Code):
            body.append(f"<pre><code>{html.escape(b.text)}</code></pre>")
        elif isinstance(b, Table):
            head = "".join(_html_cell(h, "th") for h in b.header)
            rows = "".join("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, Image):
            data = base64.b64encode(b.png).decode("ascii")
            body.append(f'<img alt="{html.escape(b.name)}" src="data:image/png;base64,{data}">')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_blocks(blocks: list, out: Path, stem: str) -> tuple[Path, Path]:
    """Write `<stem>.md` with its PNGs beside it and a self-contained `<stem>.html` into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for image in (b for b in blocks if isinstance(b, Image)):
        (out / image.name).write_bytes(image.png)
    md_path, html_path = out / f"{stem}.md", out / f"{stem}.html"
    md_path.write_text(render_markdown(blocks), encoding="utf-8")
    html_path.write_text(render_html(blocks, blocks[0].text), encoding="utf-8")
    return md_path, html_path


def build_report(run_dir: Path, out: Path | None = None) -> tuple[Path, Path]:
    """Write report.md (with its PNGs beside it), report.html, cost.json and the reference rows' copy
    into `out` (default: the run's report/ folder), reading the run directory's files alone and
    writing nothing else. RunFileError names a run file that is there but unreadable."""
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "report"
    blocks, cost_data = report_blocks(run_dir, out)
    paths = write_blocks(blocks, out, "report")
    (out / "cost.json").write_text(json.dumps(cost_data, indent=2) + "\n")
    return paths


if __name__ == "__main__":
    # Run as `python -m`, this file is __main__; compare imports cogcore.eval.report, whose block
    # classes would not be this module's, so build through the imported module.
    from cogcore.eval import report as imported

    for path in imported.build_report(Path(sys.argv[1])):
        print(path)
