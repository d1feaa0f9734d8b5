"""The run report: report.md and a self-contained report.html, built from the run directory alone.

    python -m cogcore.report.run_report runs/demo   # or, from Python: build_report(Path("runs/demo"))

Every figure comes from a file some stage wrote (curate/stats.json, train/*/metrics.json,
eval/results.json, train/tools/model/config.json, manifest.json, recipe.resolved.yaml), read by
`run_files`, so the report can be rebuilt at any time without re-running anything. A section whose
file is missing says "not run"; a file that is there but unreadable (cut off, the wrong shape,
written by another version of cogcore) stops the build with RunFileError naming it and the stage to
re-run. Sections are built once as a list of blocks and rendered twice, to Markdown and to HTML
(`blocks.write_blocks`).
"""

from __future__ import annotations

import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

from cogcore import hardware
from cogcore.curate.stats import CurateStats
from cogcore.eval.results import EvalResults, ExposureSummary, Memorization
from cogcore.recipe import ReportConfig
from cogcore.rephrase.files import STATS_FILE as REPHRASE_STATS
from cogcore.rephrase.files import RephraseStats
from cogcore.report import compare, cost, plots
from cogcore.report.blocks import Code, Heading, Image, Paragraph, Table, format_value, write_blocks
from cogcore.report.rephrase_section import rephrase_section
from cogcore.report.run_files import (
    CURATE_STATS,
    MANIFEST,
    MODEL_CONFIG,
    RECIPE,
    RESULTS,
    TRAIN_STAGES,
    read_ablations,
    read_curate_stats,
    read_json,
    read_manifest,
    read_mixture,
    read_model_config,
    read_recipe,
    read_results,
    read_select_stats,
    read_train_metrics,
    report_settings,
)
from cogcore.resources import ResourceError, resolve_path
from cogcore.train.metrics import LoggedStep, TrainMetrics
from cogcore.valuation.selection_files import MixtureRecord, SelectStats

NOT_RUN = "Not run: {} is missing from the run directory."


def _stage_section(manifest: dict | None) -> list:
    blocks = [Heading("Stages")]
    if manifest is None:
        return blocks + [Paragraph(NOT_RUN.format(MANIFEST))]
    stages = manifest.get("stages", {})
    rows = [
        [name, s.get("status"), s.get("started"), s.get("ended"), s.get("seconds")]
        for name, s in sorted(stages.items(), key=lambda kv: kv[1].get("started") or "")
    ]
    total = sum(s.get("seconds") or 0 for s in stages.values())
    return blocks + [
        Table(["stage", "status", "started", "ended", "seconds"], rows),
        Paragraph(f"Total wall time: {total:,.1f} s."),
    ]


FUNNEL_COLUMNS = [
    "step",
    "in",
    "kept",
    "dropped",
    "dropped by reason",
    "MB in",
    "MB kept",
    "MB rewritten",
    "seconds",
    "in = kept + dropped",
]


def _curate_section(stats: CurateStats | None) -> list:
    blocks = [Heading("Data")]
    if stats is None:
        return blocks + [Paragraph(NOT_RUN.format(CURATE_STATS))]
    # Curation's own warnings first (a step that dropped most of what it received, a source that
    # yielded nothing): recorded in stats.json, each with the command that shows samples.
    blocks += [Paragraph(f"Warning: {w.message}") for w in stats.warnings]
    blocks.append(Paragraph(_data_summary(stats)))
    rows = [_funnel_row(step) for step in stats.steps]
    broken = [row[0] for row in rows if row[-1] != "holds"]
    blocks.append(Table(FUNNEL_COLUMNS, rows))
    blocks.append(
        Paragraph(
            "Accounting: every step must satisfy in = kept + the sum of its drops. "
            + (f"It is broken for: {', '.join(broken)}." if broken else f"It holds for all {len(rows)} steps.")
        )
    )
    pii = ", ".join(f"{kind}: {n}" for kind, n in sorted(stats.pii.items())) or "none found"
    blocks.append(Paragraph(f"PII and secrets redacted: {pii}."))
    if stats.rebalance is not None:
        before, after = stats.rebalance.before, stats.rebalance.after
        blocks.append(
            Table(["cluster", "documents before", "after"], [[c, n, after.get(c)] for c, n in before.items()])
        )
    if stats.unreadable:
        unreadable = [[u.path, u.reason, u.count] for u in stats.unreadable[:10]]
        blocks.append(Table(["unreadable file or record", "reason", "records"], unreadable))
    if rows:
        png = plots.data_funnel([r[0] for r in rows], [r[2] for r in rows], stats.docs_in)
        blocks.append(Image("funnel.png", png))
    return blocks + _facts_blocks(stats.facts)


def _data_summary(stats: CurateStats) -> str:
    """Documents in and out by split, what was unreadable (an entry may stand for many records), and
    what was read in a fallback encoding."""
    splits, skipped, recoded = stats.splits, stats.unreadable_by_reason, stats.recoded
    text = (
        f"{format_value(stats.docs_in)} documents in, {format_value(stats.docs_out)} out "
        f"(train {format_value(splits.get('train'))}, held out {format_value(splits.get('heldout'))}); "
        f"files or records skipped as unreadable: {format_value(sum(skipped.values()))}"
    )
    if skipped:
        text += f" ({', '.join(f'{r}: {n}' for r, n in sorted(skipped.items()))})"
    if recoded:
        encodings = ", ".join(sorted(set(recoded.values())))
        text += f"; files not in UTF-8, decoded as {encodings}: {format_value(len(recoded))}"
    return text + "."


def _funnel_row(step) -> list:
    dropped = sum(step.dropped.values())
    reasons = ", ".join(f"{r}: {n}" for r, n in sorted(step.dropped.items())) or "–"
    delta = f"{step.bytes_delta / 1e6:+.3f}" if step.bytes_delta else "–"
    holds = "holds" if step.docs_in == step.kept + dropped else "BROKEN"
    return [
        step.step,
        step.docs_in,
        step.kept,
        dropped,
        reasons,
        f"{step.bytes_in / 1e6:.3f}",
        f"{step.bytes_kept / 1e6:.3f}",
        delta,
        step.seconds,
        holds,
    ]


def _select_section(stats: SelectStats | None) -> list:
    """What the select stage valued and chose: only where it ran with `select.enabled`."""
    if stats is None or not stats.enabled:
        return []
    budget = ", ".join(f"{k} {v}" for k, v in stats.budget.items())
    reasons = ", ".join(f"{r}: {n}" for r, n in stats.not_selected.items()) or "none"
    blocks = [
        Heading("Data valuation"),
        Paragraph(
            f"{format_value(stats.docs_in)} training documents in, {format_value(stats.selected)} selected "
            f"({format_value(stats.tokens_selected)} of {format_value(stats.tokens_in)} tokens), ranked by "
            f"{stats.rank_by} toward {stats.target} ({format_value(stats.target_docs)} documents); budget: {budget}; "
            f"not selected: {reasons}. Every document is accounted for: in = selected + not selected. "
            f"Samples: cogcore inspect RUN --selection."
        ),
        Table(
            ["source", "documents", "selected", "share selected"],
            [
                [s, c["in"], c["selected"], f"{c['selected'] / c['in']:.0%}" if c["in"] else "–"]
                for s, c in stats.by_source.items()
            ],
        ),
    ]
    rows = [[name, source, *q] for name, by_source in stats.quantiles.items() for source, q in by_source.items() if q]
    if rows:
        blocks.append(Heading("Scores by source (min, quartiles, max)", 3))
        blocks.append(Table(["scorer", "source", "min", "25%", "median", "75%", "max"], rows))
        blocks.append(Image("scores.png", plots.score_boxes(stats.quantiles)))
    proxies = [
        [
            name,
            role,
            log.get("docs"),
            log.get("tokens"),
            log.get("tokens_per_s"),
            log.get("first_loss"),
            log.get("final_loss"),
        ]
        for name, info in stats.scorers.items()
        if isinstance(info, dict)
        for role, log in info.items()
        if role in ("proxy", "reference") and isinstance(log, dict) and "tokens" in log
    ]
    if proxies:
        blocks.append(
            Table(["scorer", "proxy", "documents", "tokens", "tokens/s", "first loss", "final loss"], proxies)
        )
    return blocks


def _mixture_blocks(record: MixtureRecord | None) -> list:
    """Group weights learned on proxies (select.mixture): natural, after the first update, used, last."""
    if record is None:
        return []
    first = dict(zip(record.groups, record.trajectory[1] if len(record.trajectory) > 1 else record.trajectory[0]))
    rows = [[g, record.natural.get(g), first[g], record.weights[g], record.final[g]] for g in record.groups]
    if record.method == "regmix":
        best = min(record.runs, key=lambda r: r["target_loss"]) if record.runs else None
        how = (
            f"{len(record.runs)} proxy runs of {record.proxy.get('steps_per_run')} steps on random mixtures "
            f"({record.proxy.get('tokens'):,} tokens); the best run's target loss "
            f"{best['target_loss']:.3f}; weights: the mean of the mixtures the regression predicts best"
            if best
            else "no runs"
        )
    else:
        how = (
            f"{len(record.trajectory) - 1} updates on a proxy ({record.proxy.get('tokens'):,} tokens, loss "
            f"{record.proxy.get('first_loss'):.3f} to {record.proxy.get('final_loss'):.3f}); weights: the average"
        )
    return [
        Heading(f"Mixture weights ({record.method})", 3),
        Table(["source", "natural share", "after the first update", "used", "last"], rows),
        Image("mixture.png", plots.mixture_weights(record.groups, record.trajectory)),
        Paragraph(
            f"{how}; train.cpt resampled each source to the weights used (at most "
            f"{record.settings.get('max_repeat')} repeats)."
        ),
    ]


def _online_mixture_blocks(metrics: TrainMetrics | None) -> list:
    """The bi-level loop inside train.cpt (select.mixture.where: training): its weights over training."""
    online = (metrics.data or {}).get("online_mixture") if metrics is not None and not metrics.skipped else None
    if not online:
        return []
    start = dict(zip(online["groups"], online["trajectory"][0]))
    rows = [
        [g, start[g], online["average"][g], online["final"][g], online["rows_drawn"].get(g)] for g in online["groups"]
    ]
    return [
        Heading("Mixture weights moved during continued pretraining (alignment)", 3),
        Table(["source", "start (natural share)", "average", "last", "rows drawn"], rows),
        Image("online_mixture.png", plots.mixture_weights(online["groups"], online["trajectory"])),
        Paragraph(
            f"{len(online['trajectory']) - 1} updates, one every {online['every']} optimizer steps, each toward the "
            "sources whose gradient agreed with the target's on the model being trained."
        ),
    ]


_ABLATION_NOTES = {
    "source": (
        "A proxy trained without each {by} in turn, toward {target}; positive: it helps. The second row "
        "trains on everything with another seed: a contribution no larger than its is noise."
    ),
    "filter": (
        "A proxy trained on the curated documents plus what the filters dropped, then without each filter's "
        "drops in turn, toward {target}; negative: what the filter drops hurts the target, so the filter pays. "
        "The last row is curation as it ran (every filter on); the second trains on everything with another "
        "seed: a contribution no larger than its is noise."
    ),
}


def _ablation_blocks(ablations: dict[str, dict]) -> list:
    """`cogcore ablate` tables: each group's contribution to the held-out target loss."""
    blocks = []
    for by, data in ablations.items():
        rows = [[r["group"], r["documents"], r["target_loss"], r["contribution"]] for r in data.get("rows", [])]
        blocks += [
            Heading(f"Ablation by {by}", 3),
            Table([by, "documents", "target loss", "contribution (loss without it - with all)"], rows),
            Paragraph(_ABLATION_NOTES.get(by, _ABLATION_NOTES["source"]).format(by=by, target=data.get("target"))),
        ]
    return blocks


def _facts_blocks(facts: dict) -> list:
    blocks = [Heading("Facts moved to the index", 3)]
    if not facts:
        return blocks + [Paragraph("No facts were found.")]
    rows = sorted(([k, v] for k, v in facts.items()), key=lambda r: -r[1])
    blocks.append(Table(["kind", "facts"], rows + [["total", sum(facts.values())]]))
    return blocks + [Image("fact_kinds.png", plots.fact_kinds(facts))]


def _final_loss(history: list[LoggedStep]) -> float | None:
    return history[-1].loss if history else None


def _train_device(m: TrainMetrics, settings: ReportConfig) -> str | None:
    # The device the stage recorded, else the one the recipe says the train stages ran on.
    return hardware.gpu_key_for(m.device) or settings.train_gpu


def _training_section(metrics: dict[str, TrainMetrics | None], settings: ReportConfig) -> list:
    blocks = [Heading("Training")]
    header = [
        "stage",
        "method",
        "steps",
        "tokens",
        "seconds",
        "tokens/s",
        "final loss",
        "trainable / total params",
        "hardware",
        "achieved MFU (6ND)",
    ]
    rows, curves = [], []
    for stage, m in metrics.items():
        if m is None or m.skipped:
            rows.append([stage, "skipped" if m else "not run"] + [None] * (len(header) - 2))
            continue
        history = m.log_history or []
        device = _train_device(m, settings)
        mfu = cost.achieved_mfu(m.total_params, m.tokens_trained, m.seconds, device) if device and m.seconds else None
        rows.append(
            [
                stage,
                m.method,
                m.steps,
                m.tokens_trained,
                m.seconds,
                m.tokens_per_s,
                _final_loss(history),
                f"{format_value(m.trainable_params)} / {format_value(m.total_params)}",
                cost.resolve_gpu(device).name if device else m.device or "not recorded",
                f"{mfu:.1%}" if mfu is not None else None,
            ]
        )
        if history:
            curves.append((stage, [h.step for h in history], [h.loss for h in history]))
    blocks.append(Table(header, rows))
    if curves:
        blocks.append(Image("loss.png", plots.loss_curves(curves)))
    return blocks + _training_cost_blocks([m for m in metrics.values() if m and not m.skipped], settings)


def _training_cost_blocks(metrics: list[TrainMetrics], settings: ReportConfig) -> list:
    """GPU-hours and $ for the same tokens on each profile, at an assumed MFU: 6ND / (MFU x peak)."""
    blocks = [Heading("Training cost (estimate)", 3)]
    runs = [(m.total_params, m.tokens_trained) for m in metrics if m.total_params and m.tokens_trained]
    if not runs:
        return blocks + [Paragraph("Not run: no train stage recorded tokens and parameters.")]
    mfu, rows = cost.ASSUMED_TRAIN_MFU, []
    for key in settings.gpus:
        profile = cost.resolve_gpu(key, settings.prices)
        parts = [cost.training_cost(n, d, profile, mfu) for n, d in runs]
        hours = sum(p["gpu_hours"] for p in parts)
        rows.append(
            [
                profile.name,
                profile.tflops,
                profile.price_per_hour,
                f"{mfu:.0%}",
                f"{sum(p['flops'] for p in parts):.3g}",
                f"{hours:.3g}",
                f"{hours * 3600:.3g}",
                f"{sum(p['usd'] for p in parts):.3g}",
            ]
        )
    blocks.append(
        Table(["GPU", "peak bf16 TFLOPS", "$/h", "assumed MFU", "FLOPs (6ND)", "GPU-hours", "GPU-seconds", "$"], rows)
    )
    return blocks + [
        Paragraph(
            f"The train stages' {sum(d for _, d in runs):,} tokens, at FLOPs = 6 × N × D (N the parameters of "
            "each stage's model, D its tokens trained; Kaplan et al. 2020), priced as time = FLOPs / (MFU × "
            f"peak dense bf16 FLOPS) on one GPU of each profile. The assumed {mfu:.0%} MFU follows llm-analysis "
            "(training compute efficiency at most 0.5) and LLM-Viewer's roofline peaks; OLMo-core measures 39–48% "
            "on H100s for 1B–8B models. Achieved MFU above is 6 × N × tokens/s over the peak of the hardware "
            "the stage ran on (metrics.json `device`, else the recipe's report.train_gpu). LoRA skips the "
            "frozen weights' gradients (about 4ND of real work), so for LoRA stages 6ND counts what a full "
            "fine-tune of the same tokens would cost and overstates the achieved MFU up to 1.5×."
        )
    ]


KNOWLEDGE_TASKS = {
    "cogcore_closedbook": "the question alone (closed book)",
    "cogcore_openbook": "the question and the index's top passages (open book)",
    "cogcore_cloze": "the fact's own sentence, each value in the blank",
}
PPL_TASKS = {"cogcore_heldout_ppl": "all held-out text", "cogcore_heldout_ppl_nofacts": "held-out text, facts excluded"}
MEMORIZATION_TASKS = ("cogcore_train_recall",)


def _eval_section(results: EvalResults | None) -> list:
    blocks = [Heading("Evaluation")]
    if results is None:
        return blocks + [Paragraph(NOT_RUN.format(RESULTS))]
    lm = results.lm_eval
    if lm:
        # {model: {task: {metric: value}}}: the trained model beside the base model it started from.
        blocks += _knowledge_blocks(lm) + _perplexity_blocks(lm) + _other_task_blocks(lm)
        blocks.append(
            Paragraph(
                f"lm-eval version {results.lm_eval_version}, backend {results.backend}; the task "
                "YAMLs are in eval/tasks/ and run with plain `lm_eval --include_path`."
            )
        )
    else:
        blocks += [Heading("lm-eval", 3), Paragraph("Not run: no lm-eval results.")]
    blocks += _standard_task_blocks(results.standard_tasks)
    blocks += _memorization_blocks(results.memorization)
    bfcl = results.bfcl
    if bfcl:
        blocks += [
            Heading("Function calling (BFCL AST categories)", 3),
            Table(["category", "accuracy"], [[c, v] for c, v in bfcl.items()]),
            Paragraph(
                "Scored with cogcore's BFCL-compatible AST checker (same verdicts as BFCL's own "
                "checker on every output in benchmarks/bfcl_agreement.py), on the first "
                "`eval.bfcl.limit` entries of each category."
            ),
        ]
    blocks.append(Heading("Agentic check (answers with the search tool)", 3))
    agentic = results.agentic
    if agentic is None:
        return blocks + [Paragraph("Not run: no agentic results.")]
    blocks.append(
        Table(
            ["metric", "value"],
            [
                ["questions", agentic.n],
                ["accuracy", agentic.accuracy],
                ["search call rate", agentic.call_rate],
                ["retrieval hit rate", agentic.retrieval_hit_rate],
                ["calls per answer", agentic.calls_per_answer],
                ["seconds per answer (mean)", agentic.seconds_per_answer],
                ["seconds per answer (p50)", agentic.latency_p50_s],
                ["seconds per answer (p90)", agentic.latency_p90_s],
            ],
        )
    )
    samples = results.samples or []
    if samples:
        rows = [
            [
                s.get("question"),
                s.get("answer"),
                s.get("expected"),
                json.dumps(s.get("calls", []), ensure_ascii=False)[:200],
                s.get("correct"),
            ]
            for s in samples[:10]
        ]
        blocks += [Heading("Samples", 3), Table(["question", "answer", "expected", "calls", "correct"], rows)]
    return blocks


FACT_SETS = ("train", "heldout", "changed")
FACT_SET_NAMES = {"train": "training facts", "heldout": "held-out facts", "changed": "changed facts"}


def _fact_set_section(results: EvalResults | None, run_dir: Path) -> list:
    """Generated answers on the three fact sets, per model and mode: accuracy, the changed facts'
    stale-answer rate, why answers were wrong, and sample transcripts."""
    blocks = [Heading("Facts seen, unseen and changed (generated answers)")]
    data = results.fact_sets if results is not None else None
    if not data:
        return blocks + [Paragraph("Not run (eval.fact_sets.enabled is false, or eval has not run).")]
    scores, sets = data["scores"], [s for s in FACT_SETS if s in data["questions"]]
    rows, errors = [], []
    for model, modes in scores.items():
        for mode, by_set in modes.items():
            changed = by_set.get("changed", {})
            rows.append([model, mode, *[by_set.get(s, {}).get("accuracy") for s in sets], changed.get("stale_rate")])
            for s in sets:
                counts = by_set.get(s, {}).get("errors", {})
                errors.append([model, mode, s, ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"])
    changed = data.get("changed") or {}
    asked = ", ".join(f"{n} {FACT_SET_NAMES[s]}" for s, n in data["questions"].items())
    blocks += [
        Table(["model", "mode", *[f"{FACT_SET_NAMES[s]} accuracy" for s in sets], "changed: stale answers"], rows),
        Paragraph(
            f"Questions: {data['source']}; {asked}. "
            "Changed facts: after training, each value was replaced in a copy of the documents by another of the "
            f"same form, in its sentence and in {changed.get('copies', 0)} identical sentences on other pages, and the "
            f"index rebuilt over the copy ({changed.get('skipped', 0)} sampled values could not change); "
            "a right answer holds the new value, a stale one the old. Closed book: no tools; tools: the model's "
            "tools, search over the index (the changed copy's for changed facts). Transcripts: eval/fact_sets.jsonl."
        ),
        Heading("Why answers were wrong", 3),
        Table(["model", "mode", "set", "outcomes other than correct"], errors),
        Paragraph(
            "no_call: answered without searching; malformed_call: only unparseable or invalid calls; retrieval_miss: "
            "no returned passage held the value; echo: the value only in text copied from the tool output; "
            "wrong_extraction: the passages held it, the answer did not; stale: the old value of a changed fact, "
            "recalled; stale_from_search: the old value read from a passage that still states it (another page or "
            "sentence the change did not reach)."
        ),
    ]
    path = run_dir / "eval" / "fact_sets.jsonl"
    if path.exists():
        transcripts = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        picked = [t for s in sets for t in [t for t in transcripts if t["set"] == s and t["mode"] == "tools"][:2]]
        if picked:
            sample_rows = [[t["set"], t["question"], t["answer"], t["expected"], t["outcome"]] for t in picked]
            blocks += [
                Heading("Samples (with tools)", 3),
                Table(["set", "question", "answer", "expected", "outcome"], sample_rows),
            ]
    return blocks


def _models(by_model: dict) -> list[str]:
    # results.json is written with sorted keys; the trained model reads best first.
    return sorted(by_model, key=lambda m: (m != "trained", m))


def _knowledge_blocks(lm: dict) -> list:
    models = _models(lm)
    present = [t for t in KNOWLEDGE_TASKS if any(t in res for res in lm.values())]
    if not present:
        return []
    metrics = ("acc", "acc_norm")
    rows = [
        [t, KNOWLEDGE_TASKS[t]] + [lm[m].get(t, {}).get(metric) for metric in metrics for m in models] for t in present
    ]
    return [
        Heading("Held-out facts: closed book, open book, cloze", 3),
        Table(["task", "the model sees"] + [f"{m} {metric}" for metric in metrics for m in models], rows),
        Paragraph(
            "Multiple choice among the true value and three values of the same kind from other facts "
            "(chance = 0.25), on facts of held-out documents, scored by loglikelihood (acc_norm: per "
            "byte). Open book minus closed book is what the retrieved passages add."
        ),
    ]


def _perplexity_blocks(lm: dict) -> list:
    models = _models(lm)
    rows = [
        [PPL_TASKS[t], metric] + [lm[m].get(t, {}).get(metric) for m in models]
        for t in PPL_TASKS
        for metric in ("word_perplexity", "bits_per_byte")
        if any(metric in res.get(t, {}) for res in lm.values())
    ]
    if not rows:
        return []
    return [
        Heading("Perplexity on held-out text", 3),
        Table(["text", "metric"] + models, rows),
        Paragraph(
            "Lower is better. 'Facts excluded' scores only the text between the facts, each segment "
            "conditioned on all the text before it: the domain's language, which every strategy "
            "trains, apart from the facts, which only `keep` trains."
        ),
    ]


def _other_task_blocks(lm: dict) -> list:
    models, shown = _models(lm), set(KNOWLEDGE_TASKS) | set(PPL_TASKS) | set(MEMORIZATION_TASKS)
    keys = sorted({(t, m) for res in lm.values() for t, ms in res.items() if t not in shown for m in ms})
    if not keys:
        return []
    return [
        Heading("Other lm-eval tasks", 3),
        Table(["task", "metric"] + models, [[t, m] + [lm[n].get(t, {}).get(m) for n in models] for t, m in keys]),
    ]


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
    return [
        Heading("Standard lm-eval tasks", 3),
        Table(["task", "metric"] + models, rows),
        Paragraph(
            "General ability before and after domain training (`eval.lm_eval_tasks`); a task whose "
            "dataset was not available offline is listed as skipped."
        ),
    ]


def _exposure_cell(summary: ExposureSummary | None) -> str | None:
    if summary is None or summary.mean_exposure is None:
        return None
    return f"{summary.mean_exposure:.3g} ({summary.max_exposure:.3g}), n={summary.n}"


def _memorization_blocks(memo: Memorization | None) -> list:
    if memo is None:
        return []
    recall, heldout, canaries = memo.train_recall, memo.heldout_closedbook, memo.canaries
    rows = []
    if canaries is not None:
        base = canaries.base
        rows += [
            [
                "canary exposure, planted: mean (max)",
                _exposure_cell(canaries.planted),
                _exposure_cell(base.planted if base else None),
            ],
            [
                "canary exposure, controls: mean (max)",
                _exposure_cell(canaries.controls),
                _exposure_cell(base.controls if base else None),
            ],
        ]
    rows += [
        ["training-fact recall, closed book (acc)", recall.get("trained"), recall.get("base")],
        ["held-out fact recall, closed book (acc)", heldout.get("trained"), heldout.get("base")],
    ]
    blocks = [Heading("Memorization", 3), Table(["measure", "trained", "base"], rows)]
    if canaries is not None:
        blocks.append(
            Paragraph(
                f"Exposure (Carlini et al. 2019) is log2 of the secret space minus log2 of the true secret's rank "
                f"among {format_value(canaries.candidates)} sampled candidates: about 1 bit for a secret the model "
                f"knows nothing about (the never-planted controls), {format_value(canaries.max_possible)} bits for one "
                f"it ranks first. Planted canaries went into {format_value(canaries.repeats)} training documents each "
                f"under strategy {canaries.strategy or 'unknown'}: planted well above controls means the model stored "
                "them."
            )
        )
    else:
        blocks.append(Paragraph("No canaries were planted in this run (facts.canaries.count is 0)."))
    blocks.append(
        Paragraph(
            "Training-fact recall above held-out recall means the model answers from its weights "
            "facts it was trained on: expected under `keep`, not under `mask` or `toolcall`."
        )
    )
    return blocks


def _cost_section(config: dict | None, settings: ReportConfig) -> tuple[list, dict]:
    blocks = [Heading("Inference cost (estimate)")]
    if config is None:
        return blocks + [Paragraph(NOT_RUN.format(MODEL_CONFIG))], {"rows": []}
    shape = hardware.ModelShape.from_config(config)
    summary = cost.model_summary(shape)
    blocks.append(
        Table(
            ["params", "weights bf16", "weights fp8", "weights int4", "KV cache / token"],
            [
                [summary["params"]]
                + [f"{gb:.3g} GB" for gb in summary["weights_gb"].values()]
                + [f"{summary['kv_cache_bytes_per_token_bf16'] / 1024:.4g} KiB (bf16)"]
            ],
        )
    )
    rows = cost.cost_table(
        config,
        settings.gpus,
        prices=settings.prices,
        dtype=settings.dtype,
        batch=settings.batch,
        prompt_tokens=settings.prompt_tokens,
        output_tokens=settings.output_tokens,
    )
    blocks.append(
        Paragraph(
            f"Roofline estimate for {settings.dtype} weights, a batch of {settings.batch} requests "
            f"of {settings.prompt_tokens} prompt and {settings.output_tokens} output tokens. A decode "
            "step takes the longer of (weights + batch × context × KV bytes) / (0.9 × memory bandwidth) "
            "and batch × FLOPs per token / (0.7 × peak bf16 FLOPS), FLOPs per token being 2 × matmul "
            "parameters + 4 × layers × context × attention width; prefill is the same with all prompt "
            "tokens at once. $ per 1M tokens = price per hour / (tokens/s × 3600) × 1e6, input priced at "
            "prefill speed, output at decode speed. It is an upper bound on throughput: it ignores "
            "activations, scheduling and framework overhead. Prices marked 'assumption' are not quotes."
        )
    )
    blocks.append(
        Table(
            [
                "GPU",
                "$/h",
                "price source",
                "memory (GB)",
                "fits",
                "decode tok/s",
                "per stream",
                "bound",
                "prefill tok/s",
                "$/1M in",
                "$/1M out",
            ],
            [
                [
                    r["gpu"],
                    r["price_per_hour"],
                    r["price_source"],
                    f"{r['memory_gb']:.3g}",
                    r["fits"],
                    r["decode_tokens_per_s"],
                    r["decode_tokens_per_s_per_stream"],
                    r["decode_bound"],
                    r["prefill_tokens_per_s"],
                    f"{r['usd_per_1m_input']:.3g}",
                    f"{r['usd_per_1m_output']:.3g}",
                ]
                for r in rows
            ],
        )
    )
    # cost.json keeps the assumptions its rows were estimated under.
    assumed = settings.model_dump(mode="json", exclude={"reference"})
    return blocks, {"model": summary, "settings": assumed, "rows": rows}


def _throughput_blocks(results: EvalResults | None, config: dict | None, settings: ReportConfig) -> list:
    """Measured serving throughput (eval results' `measured_throughput`, each measurement with its
    prefill and/or decode tokens/s) beside the roofline for the same hardware, batch and lengths;
    what a measurement does not record is taken from the recipe's `report` settings."""
    measured = results.measurements() if results is not None else []
    if not measured or config is None:
        return []
    shape = hardware.ModelShape.from_config(config)
    rows = []
    for entry in measured:
        key = hardware.gpu_key_for(entry.device)
        batch = entry.batch or settings.batch
        prompt_tokens = entry.prompt_tokens or settings.prompt_tokens
        output_tokens = entry.output_tokens or settings.output_tokens
        dtype = entry.dtype if entry.dtype in hardware.BYTES_PER_PARAM else settings.dtype
        bound = (
            cost.estimate(
                shape, key, dtype=dtype, batch=batch, prompt_tokens=prompt_tokens, output_tokens=output_tokens
            )
            if key
            else {}
        )
        for phase, got in (("prefill", entry.prefill_tokens_per_s), ("decode", entry.decode_tokens_per_s)):
            est = bound.get(f"{phase}_tokens_per_s")
            if got is not None:
                rows.append(
                    [
                        entry.device or "not recorded",
                        entry.engine,
                        phase,
                        batch,
                        prompt_tokens,
                        output_tokens,
                        got,
                        est,
                        f"{got / est:.1%}" if est else None,
                    ]
                )
    if not rows:
        return []
    return [
        Heading("Measured throughput beside the estimate", 3),
        Table(
            [
                "hardware",
                "engine",
                "phase",
                "batch",
                "prompt tokens",
                "output tokens",
                "measured tok/s",
                "roofline tok/s",
                "measured / roofline",
            ],
            rows,
        ),
        Paragraph(
            "Measured figures come from eval/results.json (`measured_throughput`); the roofline is "
            "the estimate above for the same hardware, batch and lengths (none where the hardware is "
            "not one of the GPU profiles). The ratio is how much of the upper bound the server reached."
        ),
    ]


def _reference_rows(
    run_dir: Path, spec: str | None, gpu: str, settings: ReportConfig, out: Path
) -> tuple[list[dict], str]:
    """Reference rows from the recipe's `report.reference`, kept in report/reference.json so that a
    rebuild from the run directory alone still has them when the file is not reachable from here.
    The copy is written to `out` (the folder the report is built in), read from there or else from
    the report/ already in place, and carried over into `out`."""

    def save(copy: dict) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "reference.json").write_text(json.dumps(copy, indent=2) + "\n")

    if spec:
        try:
            rows = compare.read_reference(Path(resolve_path(spec)), gpu, settings)
        except (ResourceError, compare.CompareError) as error:
            note = f"The reference file could not be read ({error})"
        else:
            save({"source": spec, "rows": rows})
            return rows, f"Reference rows: {len(rows)} from {Path(spec).name}."
        for saved in dict.fromkeys([out / "reference.json", run_dir / "report" / "reference.json"]):
            copy = read_json(saved)
            if copy is not None:
                if saved != out / "reference.json":
                    save(copy)
                return copy["rows"], (
                    note + f"; used the copy saved in report/reference.json ({len(copy['rows'])} rows)."
                )
        return [], note + "."
    return [], "No reference rows (set report.reference in the recipe to add published scores)."


def _pareto_section(run_dir: Path, settings: ReportConfig, out: Path) -> list:
    blocks = [Heading("Quality against cost")]
    keys = [g.lower() for g in settings.gpus]
    gpu = "h100" if "h100" in keys else keys[0]
    refs, note = _reference_rows(run_dir, settings.reference, gpu, settings, out)
    try:
        row = compare.run_row(run_dir, gpu, settings)
        metric, label, up = compare.pick_metric([row] + refs)
    except compare.CompareError as error:
        return blocks + [Paragraph(f"Not run: {error}."), Paragraph(note)]
    return blocks + compare.pareto_blocks([row] + refs, metric, label, up, gpu, settings) + [Paragraph(note)]


def _serve_section(run_dir: Path, config: dict | None, settings: ReportConfig) -> list:
    blocks = [Heading("Serve the model")]
    if config is None:
        return blocks + [Paragraph(NOT_RUN.format(MODEL_CONFIG))]
    model = (run_dir / MODEL_CONFIG).parent.resolve()
    length = config.get("max_position_embeddings") or settings.prompt_tokens + settings.output_tokens
    return blocks + [
        Code(
            f"vllm serve {shlex.quote(str(model))} --enable-auto-tool-choice --tool-call-parser hermes "
            f"--dtype bfloat16 --max-model-len {length}"
        ),
        Paragraph(
            "vLLM's OpenAI-compatible server with tool calling (pip install vllm; a GPU). The chat template "
            "saved with the tokenizer (chat_template.jinja: ChatML, tool calls as <tool_call> JSON) is "
            "used as it is, and the hermes parser returns the calls as `tool_calls`, so clients pass the "
            "search tool's schema in `tools`. --max-model-len is max_position_embeddings from config.json; "
            "lower it to reserve less KV cache per sequence."
        ),
    ]


def _guarded(title: str, build) -> list:
    # Content a section cannot use (a config.json without the layer counts, a manifest entry of another
    # shape: files that have no class of cogcore's) costs its own section, not the whole report.
    try:
        return build()
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        return [Heading(title), Paragraph(f"Could not be built: {type(error).__name__}: {error}")]


def report_blocks(run_dir: Path, out: Path | None = None) -> tuple[list, dict]:
    """All blocks of the report, and the cost rows for cost.json (`out`: the folder the report is
    built in, default the run's report/; the reference rows' copy is kept there)."""
    out = Path(out) if out is not None else run_dir / "report"
    # 1. Every file the report reads; one that is there but unreadable stops the build here.
    recipe = read_recipe(run_dir)
    settings = report_settings(recipe, run_dir / RECIPE)
    manifest = read_manifest(run_dir)
    stats = read_curate_stats(run_dir)
    selection = read_select_stats(run_dir)
    mixture = read_mixture(run_dir)
    rephrasing = RephraseStats.read(run_dir / "rephrase" / REPHRASE_STATS)
    ablations = read_ablations(run_dir)
    train = {stage: read_train_metrics(run_dir, stage) for stage in TRAIN_STAGES}
    results = read_results(run_dir)
    config = read_model_config(run_dir)
    # 2. The sections, each on its own: content a section cannot use costs that section only.
    name = recipe.get("name") or run_dir.name
    ended = [s.get("ended") for s in (manifest or {}).get("stages", {}).values() if s.get("ended")]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    blocks = [
        Heading(f"cogcore report: {name}", 1),
        Paragraph(
            f"Run {name}, last stage ended {max(ended) if ended else 'never'}; "
            f"report generated {now} from {run_dir.name}/ alone."
        ),
    ]
    blocks += _guarded("Stages", lambda: _stage_section(manifest))
    blocks += _guarded("Data", lambda: _curate_section(stats))
    blocks += _guarded(
        "Data valuation",
        lambda: (
            _select_section(selection)
            + _mixture_blocks(mixture)
            + _online_mixture_blocks(train.get("cpt"))
            + _ablation_blocks(ablations)
        ),
    )
    cpt = train.get("cpt")
    blocks += _guarded("Rephrasing", lambda: rephrase_section(rephrasing, cpt.data if cpt is not None else None))
    blocks += _guarded("Training", lambda: _training_section(train, settings))
    blocks += _guarded("Evaluation", lambda: _eval_section(results))
    blocks += _guarded("Facts seen, unseen and changed", lambda: _fact_set_section(results, run_dir))
    cost_data = {"rows": []}

    def build_cost():
        nonlocal cost_data
        section, cost_data = _cost_section(config, settings)
        return section + _throughput_blocks(results, config, settings)

    blocks += _guarded("Inference cost (estimate)", build_cost)
    blocks += _guarded("Quality against cost", lambda: _pareto_section(run_dir, settings, out))
    blocks += _guarded("Serve the model", lambda: _serve_section(run_dir, config, settings))
    blocks += [
        Heading("How to reproduce"),
        Code(
            f"cogcore run runs/{run_dir.name}/recipe.resolved.yaml   # the whole run\n"
            f"cogcore report runs/{run_dir.name}   # this report, from the files alone"
        ),
    ]
    return blocks, cost_data


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
    for path in build_report(Path(sys.argv[1])):
        print(path)
