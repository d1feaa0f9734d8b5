"""The eval stage's generated-answer check on three fact sets (cogcore.eval.fact_sets): questions
from the recipe's file or from the facts, a changed copy of the documents and its index, each
model answering each set closed book and with its tools; transcripts in eval/fact_sets.jsonl.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from cogcore.curate.facts import FactDetector
from cogcore.eval.fact_sets import (
    CHANGEABLE_KINDS,
    SETS,
    Item,
    ValueMatcher,
    answer_items,
    change_facts,
    summarize_rows,
)
from cogcore.io import write_jsonl_atomic
from cogcore.models import ModelSpec
from cogcore.questions import make_questions
from cogcore.recipe import Recipe
from cogcore.retrieval.index import SearchIndex
from cogcore.runtime import ToolRuntime, run_tools
from cogcore.stages.corpus import HELDOUT, TRAIN, Corpus, load_corpus
from cogcore.stages.index import build_recipe_index

TRANSCRIPTS = "fact_sets.jsonl"
CHANGED_INDEX = "changed-index"


def run_fact_sets(recipe: Recipe, run_dir: Path, folder: Path, index: SearchIndex, trained, tok) -> dict | None:
    """Every configured model x mode x set answered and scored; the summary for results.json."""
    cfg = recipe.eval.fact_sets
    if not cfg.enabled:
        return None
    corpus = load_corpus(run_dir)
    candidates, source, unknown_docs = candidate_items(recipe, corpus)
    sets = sample_sets(candidates, cfg.questions, recipe.seed)
    changed_info = None
    indexes = {name: index for name in SETS}
    if "changed" in cfg.sets:
        change = change_facts(corpus.docs, sets.pop("changed_candidates")[: 3 * cfg.questions], recipe.seed)
        sets["changed"] = change.items[: cfg.questions]
        changed_info = {
            "n": len(sets["changed"]),
            "skipped": change.skipped,
            "copies": change.copies,
        }
        if "tools" in cfg.modes and sets["changed"]:
            changed_dir = folder / CHANGED_INDEX
            build_recipe_index(recipe, run_dir, change.docs, changed_dir, embedder=index.embedder)
            indexes["changed"] = SearchIndex.load(changed_dir, index.embedder)
    sets = {name: sets.get(name, []) for name in cfg.sets}
    matcher = ValueMatcher(FactDetector())
    rows, scores = [], {}
    for model_name in cfg.models:
        model, model_tok = (trained, tok) if model_name == "trained" else _base(recipe, trained, tok)
        for mode in cfg.modes:
            for set_name, items in sets.items():
                if not items:
                    continue
                tools = run_tools(run_dir, indexes[set_name]) if mode == "tools" else {}
                runtime = ToolRuntime(
                    model,
                    model_tok,
                    tools=tools,
                    max_new_tokens=recipe.eval.max_new_tokens,
                    batch_size=recipe.eval.batch_size,
                    constrain=recipe.eval.constrain,
                )
                answered = answer_items(runtime, items, mode == "tools", matcher)
                for row in answered:
                    row.update(model=model_name, mode=mode)
                rows += answered
                scores.setdefault(model_name, {}).setdefault(mode, {})[set_name] = summarize_rows(answered)
    write_jsonl_atomic(folder / TRANSCRIPTS, rows)
    return {
        "source": source,
        "unknown_docs": unknown_docs,
        "questions": {name: len(items) for name, items in sets.items()},
        "changed": changed_info,
        "scores": scores,
    }


def _base(recipe: Recipe, trained, trained_tok):
    """The base model; a base without a chat template is asked in the trained model's (the same
    vocabulary: training only added a template)."""
    model, tok = ModelSpec.from_section(recipe.base_model).load()
    if not tok.chat_template:
        tok.chat_template = trained_tok.chat_template
    return model.to(next(trained.parameters()).device), tok


def candidate_items(recipe: Recipe, corpus: Corpus) -> tuple[dict[str, list[Item]], str, int]:
    """Questions by split ("train", "heldout"): from the recipe's file, else template questions from
    the facts; the source's name; how many file questions named no curated document."""
    path = recipe.eval.fact_sets.questions_file
    if path is None:
        by_id = {f["id"]: f for f in corpus.facts}
        out = {}
        for split in (TRAIN, HELDOUT):
            questions = make_questions(
                corpus.facts_in(split), corpus.titles(), limit=10_000, seed=recipe.seed, forms={"customer": 1.0}
            )
            out[split] = [
                Item(split, q.question, q.answer, q.doc_id, by_id[q.fact_id]["start"], q.kind, question_id=q.fact_id)
                for q in questions
            ]
        return out, "template questions from the facts (the fact's sentence asked as a customer asks)", 0
    split_of, texts = corpus.split_of, {d["id"]: d["text"] for d in corpus.docs}
    out, unknown = {TRAIN: [], HELDOUT: []}, 0
    for n, row in enumerate(question_rows(Path(path))):
        doc_id = row.get("doc_id")
        if doc_id not in split_of or split_of[doc_id] not in out:
            unknown += 1
            continue
        start = row.get("answer_start")
        if start is None:  # where the answer sits, when it sits there once
            text, answer = texts[doc_id], row["answer"]
            start = text.find(answer) if text.count(answer) == 1 else -1
        item_id = str(row.get("id", n))
        out[split_of[doc_id]].append(
            Item(split_of[doc_id], row["question"], row["answer"], doc_id, start, row.get("kind", ""), None, item_id)
        )
    return out, f"questions_file {json.dumps(Path(path).name)}", unknown


MAX_QUESTIONS = 100_000  # rows read from a questions file
MAX_LINE_CHARS = 20_000


def question_rows(path: Path):
    """The rows of a questions file, each checked; ValueError naming the file and line otherwise."""
    field = "eval.fact_sets.questions_file"
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if number > MAX_QUESTIONS:
                raise ValueError(f"{field}: {path} has more than {MAX_QUESTIONS:,} lines")
            if not line.strip():
                continue
            where = f"{field}: {path} line {number}"
            if len(line) > MAX_LINE_CHARS:
                raise ValueError(f"{where}: longer than {MAX_LINE_CHARS:,} characters")
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not JSON ({e.msg})") from None
            if not isinstance(row, dict) or not all(isinstance(row.get(k), str) and row[k] for k in QUESTION_FIELDS):
                raise ValueError(f"{where}: needs non-empty text fields {', '.join(QUESTION_FIELDS)}")
            start = row.get("answer_start")
            if start is not None and (not isinstance(start, int) or isinstance(start, bool) or start < 0):
                raise ValueError(f"{where}: answer_start must be a character offset (an integer >= 0)")
            yield row


QUESTION_FIELDS = ("question", "answer", "doc_id")


def sample_sets(candidates: dict[str, list[Item]], n: int, seed: int) -> dict[str, list[Item]]:
    """n training and n held-out questions, seeded; the training questions after those are the
    changed set's candidates (a memorizer saw their old values)."""
    rng = random.Random(seed)
    train, heldout = list(candidates[TRAIN]), list(candidates[HELDOUT])
    rng.shuffle(train)
    rng.shuffle(heldout)
    changeable = [i for i in train[n:] if i.start >= 0 and (not i.kind or i.kind in CHANGEABLE_KINDS)]
    return {"train": train[:n], "heldout": heldout[:n], "changed_candidates": changeable}
