"""lm-eval tasks written from the run's data, and runs of lm-eval's own harness on them.

Each task is a YAML file beside its data in `eval/tasks/`, usable with no cogcore installed:

    lm_eval --model hf --model_args pretrained=runs/<name>/train/tools/model \\
        --include_path runs/<name>/eval/tasks --tasks cogcore_closedbook,cogcore_openbook

- `cogcore_closedbook`: closed-book questions about held-out facts, multiple choice (the true value
  against three values of the same kind from other facts), by loglikelihood. Chance is 0.25; a
  model that answers from its weights what it never read would be guessing or leaking.
- `cogcore_openbook`: the same questions and choices with the index's top passages for the
  question's search query in the prompt. Multiple choice rather than generation with exact match,
  so that the gap to closed-book measures the passages and nothing else (same choices, same
  scoring, deterministic, no decoding on a CPU); generation with the tool is the agentic check.
- `cogcore_cloze`: the fact's own sentence, scored whole with each candidate value in the blank
  (the true value against the same distractors).
- `cogcore_train_recall`: closed-book multiple choice on facts of *training* documents: the
  memorization probe. Under `keep` the model was trained on these values; under `mask` and
  `toolcall` it read them but was never trained to produce them.
- `cogcore_heldout_ppl`: perplexity on held-out documents (word/byte perplexity, bits per byte).
- `cogcore_heldout_ppl_nofacts`: the same text with the fact spans left out of the score: one
  loglikelihood request per non-fact segment, conditioned on all the text before it (facts
  included). It measures the domain's language, which every strategy trains, apart from the
  facts, which only `keep` trains.

Text from documents (questions, choices, passages, sentences, perplexity text) is neutralized
(cogcore.untrusted_text): a document's `<|im_end|>` is not a special token in a task's prompt.

Standard lm-eval tasks a recipe names (`eval.lm_eval_tasks`) run on the same model object; offline,
one whose dataset is not cached is recorded as skipped. The backend is lm-eval's `hf` on the
loaded model, or its `vllm` on the model folder when vLLM and a GPU are present.
"""

from __future__ import annotations

import difflib
import json
import logging
import random
import shutil
from pathlib import Path

import yaml

from cogcore.questions import Question, normalize_answer
from cogcore.untrusted_text import control_strings, neutralize, neutralize_parts

CLOSEDBOOK = "cogcore_closedbook"
OPENBOOK = "cogcore_openbook"
CLOZE = "cogcore_cloze"
TRAIN_RECALL = "cogcore_train_recall"
HELDOUT_PPL = "cogcore_heldout_ppl"
HELDOUT_PPL_NOFACTS = "cogcore_heldout_ppl_nofacts"
PPL_CHARS = 2000  # long enough to measure, short enough for a CPU
METRICS_MODULE = "cogcore_task_metrics"  # task_metrics.py, as copied beside the YAMLs
BACKENDS = ("auto", "hf", "vllm")
VLLM_MEMORY_SHARE = 0.45  # the HF copy of the model (agentic check, exposure) shares the GPU

log = logging.getLogger("cogcore.eval")

_MC = {
    "output_type": "multiple_choice",
    "doc_to_choice": "choices",
    "doc_to_target": "gold",
    "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in ("acc", "acc_norm")],
}
# lm-eval's own aggregations for perplexities, as in its wikitext task.
_PPL_METRICS = [
    {"metric": m, "aggregation": agg, "higher_is_better": False}
    for m, agg in (
        ("word_perplexity", "weighted_perplexity"),
        ("byte_perplexity", "weighted_perplexity"),
        ("bits_per_byte", "bits_per_byte"),
    )
]


def write_tasks(
    folder: Path,
    questions: list[Question],
    facts: list[dict],
    heldout_docs: list[dict],
    seed: int = 0,
    passages: list[str] | None = None,
    train_questions: list[Question] = (),
    controls: frozenset[str] | None = None,
) -> list[str]:
    """Write the task YAMLs and their data; return the names of the tasks that have data.
    `passages[i]` is the retrieved text for `questions[i]` (None: no open-book task).

    Every text that comes from a document is neutralized (`controls`: default COMMON_CONTROLS, since
    the tasks are read by the trained and the base model alike, and by lm-eval without cogcore):
    a document cannot forge a turn in a task's prompt."""
    controls = control_strings() if controls is None else controls
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).with_name("task_metrics.py"), folder / f"{METRICS_MODULE}.py")
    by_kind: dict[str, list[str]] = {}
    for f in facts:
        by_kind.setdefault(f["kind"], []).append(f["text"])
    rng = random.Random(seed)
    closed, opened, cloze = [], [], []
    for i, q in enumerate(questions):
        choices = _choices(q, by_kind, rng)
        if choices is None:
            continue
        row = _choice_row(q, choices, controls)
        closed.append(row)
        if passages is not None:
            opened.append({**row, "passages": neutralize(passages[i], controls)})
        if q.context.count(q.answer) == 1:
            cloze.append(_cloze_row(q, choices, row["gold"], controls))
    recall_rng = random.Random(seed + 1)
    recall = [
        _choice_row(q, c, controls) for q in train_questions if (c := _choices(q, by_kind, recall_rng)) is not None
    ]
    # A bare column name (not a "{{...}}" template) gives the text unchanged: Jinja drops a final newline.
    question = "{{question}}\nAnswer:"
    names = [
        _write_task(folder, CLOSEDBOOK, closed, {**_MC, "doc_to_text": question}),
        _write_task(folder, OPENBOOK, opened, {**_MC, "doc_to_text": "Passages:\n{{passages}}\n\n" + question}),
        # No delimiter: prefix + choice is the sentence exactly as written.
        _write_task(folder, CLOZE, cloze, {**_MC, "doc_to_text": "prefix", "target_delimiter": ""}),
        _write_task(folder, TRAIN_RECALL, recall, {**_MC, "doc_to_text": question}),
    ]
    texts = [{"doc_id": d["id"], "text": neutralize(d["text"][:PPL_CHARS], controls)} for d in heldout_docs]
    names.append(
        _write_task(
            folder,
            HELDOUT_PPL,
            texts,
            {
                "output_type": "loglikelihood_rolling",
                "doc_to_text": "",
                "doc_to_target": "text",
                "metric_list": _PPL_METRICS,
            },
        )
    )
    segments = [row for d in heldout_docs for row in nonfact_segments(d, facts, PPL_CHARS, controls)]
    names.append(
        _write_task(
            folder,
            HELDOUT_PPL_NOFACTS,
            segments,
            {
                "output_type": "loglikelihood",
                "doc_to_text": "context",
                "doc_to_target": "continuation",
                "metric_list": _PPL_METRICS,
            },
            process_results="segment_perplexity",
        )
    )
    return [n for n in names if n]


def _choice_row(q: Question, choices: list[str], controls: frozenset[str]) -> dict:
    return {
        "question": neutralize(q.question, controls),
        "choices": [neutralize(c, controls) for c in choices],
        "gold": choices.index(q.answer),
        "fact_id": q.fact_id,
    }


def _cloze_row(q: Question, choices: list[str], gold: int, controls: frozenset[str]) -> dict:
    """The fact's sentence cut at the value; neutralized as whole sentences, so that a control string
    running into the blank is broken too and prefix + true choice is the neutralized sentence."""
    prefix, suffix = q.context.split(q.answer)
    return {
        "prefix": neutralize_parts([prefix, q.answer + suffix], controls)[0],
        "choices": [neutralize_parts([prefix, c + suffix], controls)[1] for c in choices],
        "gold": gold,
        "fact_id": q.fact_id,
    }


def _choices(q: Question, by_kind: dict[str, list[str]], rng: random.Random) -> list[str] | None:
    pool = sorted({v for v in by_kind.get(q.kind, []) if normalize_answer(v) != normalize_answer(q.answer)})
    if len(pool) < 3:
        return None
    choices = rng.sample(pool, 3) + [q.answer]
    rng.shuffle(choices)
    return choices


def nonfact_segments(
    doc: dict, facts: list[dict], max_chars: int, controls: frozenset[str] | None = None
) -> list[dict]:
    """The document's first max_chars characters cut at its facts: one row {doc_id, context,
    continuation} per non-fact segment, context being all the text before it. A fact's span takes
    the whitespace before it, which BPE tokenizers fuse with the value (" 5"), so that the segments
    end on token boundaries and no fact token is scored. Context and continuation are neutralized
    together (`controls`: default COMMON_CONTROLS), as lm-eval joins them again."""
    controls = control_strings() if controls is None else controls
    text = doc["text"][:max_chars]
    spans = []
    for f in sorted(
        (f for f in facts if f["doc_id"] == doc["id"] and f["start"] < len(text)), key=lambda f: f["start"]
    ):
        start = f["start"]
        while start > 0 and text[start - 1].isspace():
            start -= 1
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], f["end"])
        else:
            spans.append([start, min(f["end"], len(text))])
    rows, at = [], 0
    for start, end in spans + [[len(text), len(text)]]:
        if text[at:start].strip():
            context, continuation = neutralize_parts([text[:at], text[at:start]], controls)
            rows.append({"doc_id": doc["id"], "context": context, "continuation": continuation})
        at = max(at, end)
    return rows


def retrieve_passages(searcher, questions: list[Question], k: int) -> list[str]:
    """The text the search tool would return for each question's query (top k passages)."""
    from cogcore.retrieval.tool import format_hits

    return [format_hits(hits) for hits in searcher.search_many([q.query for q in questions], k)]


def _write_task(
    folder: Path, name: str, rows: list[dict], spec: dict, process_results: str | None = None
) -> str | None:
    if not rows:
        return None
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    # lm-eval resolves `data_files` against the working directory, so a relative path would not do and
    # an absolute one breaks when the folder moves (the eval stage builds in eval.new/, renamed to eval/
    # when it finishes; run directories get copied): the hook beside the YAML reads the rows instead.
    config = {
        "task": name,
        "dataset_path": "json",
        "test_split": "test",
        "dataset_kwargs": {"data_file": data.name},
        **spec,
        "metadata": {"version": 1.0},
    }
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    text += f"custom_dataset: !function {METRICS_MODULE}.task_rows\n"
    if process_results:  # a YAML tag safe_dump cannot write; lm-eval resolves it beside the YAML
        text += f"process_results: !function {METRICS_MODULE}.{process_results}\n"
    (folder / f"{name}.yaml").write_text(text)
    return name


def choose_backend(requested: str, vllm_installed: bool | None = None, cuda: bool | None = None) -> str:
    """ "hf" or "vllm" for `eval.backend` (auto: vLLM when it imports and a GPU is present)."""
    if requested not in BACKENDS:
        raise ValueError(f"eval.backend: {requested!r} is not one of {', '.join(BACKENDS)}")
    if requested == "hf":
        return "hf"
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if vllm_installed is None:
        vllm_installed = cuda and _imports("vllm")  # importing vLLM takes seconds: only where it could run
    if requested == "vllm" and not (cuda and vllm_installed):
        raise RuntimeError(
            "eval.backend is vllm, but "
            + ("no GPU is visible" if not cuda else "vllm is not installed (pip install 'lm-eval[vllm]')")
        )
    return "vllm" if cuda and vllm_installed else "hf"


def _imports(module: str) -> bool:
    try:
        __import__(module)
    except Exception:  # a broken install (wrong CUDA, missing kernels) is as good as none
        return False
    return True


def make_lm(backend: str, model, tokenizer, spec, batch_size: int):
    """lm-eval's model: `hf` wraps the loaded model in process; `vllm` loads `spec` (a ModelSpec:
    its local folder, dtype and remote-code trust) itself."""
    if backend == "vllm":
        from lm_eval.models.vllm_causallms import VLLM

        path = spec.local_path()
        return VLLM(
            pretrained=path,
            tokenizer=path,
            dtype=spec.dtype,
            batch_size="auto",
            trust_remote_code=spec.trust_remote_code,
            gpu_memory_utilization=VLLM_MEMORY_SHARE,
        )
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(model.device))


def task_manager(task_dir: Path, with_defaults: bool):
    """lm-eval's task index over our YAMLs; lm-eval's ~15k own tasks only when a recipe names one
    (indexing them takes ~20 s)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(task_dir), include_defaults=with_defaults)


def check_task_names(names: list[str], manager) -> None:
    """ValueError naming each task lm-eval does not know, with its close matches."""
    known = set(manager.all_tasks)
    problems = []
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
            problems.append(f"{name!r}" + (f" (did you mean: {', '.join(close)}?)" if close else ""))
    if problems:
        raise ValueError(f"eval.lm_eval_tasks: unknown lm-eval task(s) {'; '.join(problems)}")


def run_lm_eval(lm, manager, tasks: list[str], limit: int | None = None) -> dict:
    """Run lm-eval's harness in process; return {task: {metric: value}}."""
    from lm_eval import simple_evaluate

    out = simple_evaluate(model=lm, tasks=tasks, task_manager=manager, log_samples=False, limit=limit)
    return {
        task: {k.split(",")[0]: v for k, v in metrics.items() if isinstance(v, (int, float)) and "stderr" not in k}
        for task, metrics in out["results"].items()
    }


def run_standard_tasks(lm, manager, names: list[str], limit: int | None = None, skip: dict | None = None) -> dict:
    """Each named task on its own, so that one whose dataset cannot be had does not stop the others:
    {task: {metric: value}} or {task: {"skipped": reason}}. Tasks in `skip` are not tried again."""
    out = {}
    for name in names:
        if skip and name in skip:
            out[name] = skip[name]
            continue
        try:
            out.update(run_lm_eval(lm, manager, [name], limit))
        except OSError as e:  # datasets raises ConnectionError / DatasetNotFoundError (both OSError) offline
            reason = f"{name}: dataset not available offline ({type(e).__name__}: {str(e)[:200]})"
            log.warning("eval: skipped lm-eval task %s", reason)
            out[name] = {"skipped": reason}
    return out
