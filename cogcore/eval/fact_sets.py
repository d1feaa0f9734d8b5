"""Generated answers on three fact sets: what a user sees, for a memorizer and for a core.

- **train**: facts of training documents (what a memorizer could recall);
- **heldout**: facts of held-out documents (what only search can answer);
- **changed**: after training, a sample of facts gets a new value in a copy of the documents (each
  to another plausible value of the same kind: "$25" -> "$35", "30 days" -> "45 days"), the index
  is rebuilt over that copy, and the model is asked about them: a core answers the new value, a
  memorizer the stale one. Both rates are reported.

Questions come from the recipe's own file (`eval.fact_sets.questions_file`: JSON lines of
{question, answer, doc_id, answer_start?}, the way a team brings its evaluation set) or, without
one, from the facts as template questions (cogcore.questions: the fact's sentence asked as a
customer asks, its value turned into a question word). An answer is right when it holds the
expected value, compared as the fact detector normalizes values ("$1,250" = "1250 USD",
"3-5 business days" = "3 to 5 business days").

    change = change_facts(docs, items, seed=0)   # the changed copy: exactly the sampled spans differ
    ValueMatcher(FactDetector())("$25", "It costs 25 dollars.")   # True
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from cogcore.eval.agentic import passages, strip_echo
from cogcore.questions import answer_matches

SETS = ("train", "heldout", "changed")
CHANGEABLE_KINDS = ("money", "percent", "duration", "quantity", "number")
_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
_FACTORS = (0.5, 0.75, 1.25, 1.5, 2.0, 3.0)


@dataclass(frozen=True)
class Item:
    """One question with its expected value, where that value sits, and (changed set) the old one."""

    set: str
    question: str
    answer: str
    doc_id: str
    start: int  # the answer's offset in its document (-1: not known, so the value cannot change)
    kind: str = ""
    stale: str | None = None  # changed set: the value before the change
    question_id: str = ""


def alter_value(text: str, rng: random.Random) -> str | None:
    """Another plausible value of the same form: the first number scaled by a seeded factor, with
    its decimals and thousands separators kept ("$1,250.00" -> "$1,875.00"); None without a number."""
    m = _NUMBER.search(text)
    if m is None:
        return None
    raw = m.group()
    value = float(raw.replace(",", ""))
    decimals = len(raw.split(".")[1]) if "." in raw else 0
    for factor in rng.sample(_FACTORS, len(_FACTORS)):
        new = round(value * factor, decimals) if value else factor * 10
        if decimals == 0:
            new = round(new)
            if new == value:
                new = value + 1
        spelled = f"{new:,.{decimals}f}" if "," in raw else f"{new:.{decimals}f}"
        if spelled != raw:
            return text[: m.start()] + spelled + text[m.end() :]
    return None


@dataclass(frozen=True)
class Change:
    docs: list[dict]  # the changed copy of every document
    items: list[Item]  # the changed set's questions: answer = the new value, stale = the old one
    skipped: int  # sampled items whose value could not change (no number, or not found at its offset)
    copies: int  # other places the same statement was changed too (identical sentences elsewhere)


_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


def _sentence(text: str, start: int, end: int) -> tuple[int, int]:
    """The bounds of the sentence (or line) holding text[start:end]."""
    before = [m.end() for m in _SENTENCE_END.finditer(text, 0, start)]
    after = _SENTENCE_END.search(text, end)
    return (before[-1] if before else 0), (after.end() if after else len(text))


def change_facts(docs: Sequence[dict], items: Sequence[Item], seed: int) -> Change:
    """A copy of `docs` where each item's value is replaced by another plausible value: at its
    offset, and wherever the corpus states the same sentence (a policy stated on several product
    pages changes on all of them); nothing else differs. A document takes part in one change at most."""
    rng = random.Random(seed)
    by_id = {d["id"]: d for d in docs}
    texts = {d["id"]: d["text"] for d in docs}
    changed, skipped, copies, touched = [], 0, 0, set()
    for item in items:
        doc = by_id.get(item.doc_id)
        end = item.start + len(item.answer)
        ok = doc is not None and item.start >= 0 and doc["text"][item.start : end] == item.answer
        new = alter_value(item.answer, rng) if ok else None
        if new is None:
            skipped += 1
            continue
        s0, s1 = _sentence(doc["text"], item.start, end)
        sentence, at = doc["text"][s0:s1], item.start - s0
        stating = [d for d in docs if sentence in d["text"]]
        if any(d["id"] in touched for d in stating):
            skipped += 1
            continue
        rewritten = sentence[:at] + new + sentence[at + len(item.answer) :]
        for d in stating:
            texts[d["id"]] = texts[d["id"]].replace(sentence, rewritten)
            touched.add(d["id"])
        copies += len(stating) - 1
        changed.append(replace(item, set="changed", answer=new, stale=item.answer))
    copy = [{**d, "text": texts[d["id"]]} for d in docs]
    return Change(copy, changed, skipped, copies)


class ValueMatcher:
    """Does an answer hold the expected value? As text (case, spacing, separators and currency
    signs aside), or as the same normalized value of the same kind, by `detector` (the curation's
    fact detector: `detect({"id", "text"})` -> facts with `kind` and `value`)."""

    def __init__(self, detector=None):
        self.detector = detector

    def _values(self, text: str) -> set[tuple[str, str]]:
        facts = self.detector.detect({"id": "", "text": text}) if self.detector else []
        return {(f["kind"], repr(f["value"])) for f in facts if f["value"] is not None}

    def __call__(self, expected: str, answer: str) -> bool:
        if answer_matches(expected, answer):
            return True
        want = self._values(expected)
        return bool(want) and bool(want & self._values(answer))


# --- answering and scoring ----------------------------------------------------------------------

ERROR_CLASSES = (
    "no_call",
    "malformed_call",
    "retrieval_miss",
    "echo",
    "wrong_extraction",
    "stale",
    "stale_from_search",
    "wrong",
)


def classify(item: Item, transcript, with_tools: bool, value_matches: ValueMatcher) -> str:
    """Why an answer is wrong ("correct" when it is not): on the changed set, the old value —
    recalled ("stale") or read from a passage that still states it ("stale_from_search"); closed
    book, otherwise "wrong"; with tools, the first failure on the way: no call, only malformed calls,
    a search whose passages do not hold the value, an answer whose value is only in text copied from
    the tool output, or a wrong value read from passages that held the right one."""
    answer = strip_echo(transcript.answer)
    if value_matches(item.answer, answer):
        return "correct"
    searches = [c for c in transcript.calls if c["name"] == "search"]
    if item.stale is not None and value_matches(item.stale, answer):
        # read from a passage that still states the old value (another page, another sentence), or recalled
        read = any(value_matches(item.stale, passages(c["result"])) for c in searches)
        return "stale_from_search" if read else "stale"
    if not with_tools:
        return "wrong"
    if not searches:
        return "malformed_call" if transcript.errors else "no_call"
    if not any(value_matches(item.answer, passages(c["result"])) for c in searches):
        return "retrieval_miss"
    if value_matches(item.answer, transcript.answer):
        return "echo"
    return "wrong_extraction"


def answer_items(runtime, items: Sequence[Item], with_tools: bool, value_matches: ValueMatcher) -> list[dict]:
    """Every item answered by `runtime` (a ToolRuntime; with no tools: closed book), as transcript rows."""
    rows = []
    transcripts = runtime.answer_many([i.question for i in items])
    # What serving an answer costs: every token of the finished conversation (tool list, question,
    # calls, tool results, answer), as the model reads it.
    tokens = [len(ids) for ids in runtime.tokenizer(runtime.prompts([t.messages for t in transcripts]))["input_ids"]]
    for item, t, n_tokens in zip(items, transcripts, tokens):
        rows.append(
            {
                "set": item.set,
                "question_id": item.question_id,
                "question": item.question,
                "expected": item.answer,
                "stale": item.stale,
                "doc_id": item.doc_id,
                "answer": t.answer,
                "outcome": classify(item, t, with_tools, value_matches),
                "calls": t.calls,
                "errors": t.errors,
                "seconds": round(t.seconds, 2),
                "tokens": n_tokens,
            }
        )
    return rows


def summarize_rows(rows: Sequence[dict]) -> dict:
    """{n, accuracy, tokens_per_answer, errors: {class: count}} and, on the changed set, the
    stale-answer rate."""
    n = len(rows)
    outcomes = [r["outcome"] for r in rows]
    out = {"n": n, "accuracy": outcomes.count("correct") / n if n else None}
    if n and all("tokens" in r for r in rows):
        out["tokens_per_answer"] = sum(r["tokens"] for r in rows) / n
    out["errors"] = {c: outcomes.count(c) for c in ERROR_CLASSES if outcomes.count(c)}
    if any(r["stale"] is not None for r in rows):
        out["stale_rate"] = (outcomes.count("stale") + outcomes.count("stale_from_search")) / n
        out["stale_from_memory_rate"] = outcomes.count("stale") / n
    return out
