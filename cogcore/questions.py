"""Questions made from facts: what tool-use training asks and what evaluation scores.

A fact's sentence with the fact blanked out becomes a cloze question ("In 'Savings accounts':
Customers have ___ to fund the account. What goes in the blank?"); the same sentence without the
blank is the search query; the fact's text is the expected answer. Training (tool-use
conversations) and evaluation (closed-book lm-eval tasks, the agentic check) share this module so
that they ask in the same way.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

BLANK = "___"
QUERY_WORDS = 14
ASKABLE_KINDS = ("money", "percent", "date", "time", "duration", "quantity", "number", "identifier")
_WORD = re.compile(r"[A-Za-z]{2,}")
_MARKUP = re.compile(r"^[\s>*#|-]+|[\s|]+$")


@dataclass(frozen=True)
class Question:
    fact_id: str
    doc_id: str
    kind: str
    question: str
    query: str
    answer: str
    context: str


def make_question(fact: dict, title: str) -> Question | None:
    """A cloze question for a fact, or None when its sentence is too thin to ask about."""
    context = fact["context"]
    if (
        fact["kind"] not in ASKABLE_KINDS
        or not fact["text"]
        or fact["text"] not in context
        or not 30 <= len(context) <= 320
    ):
        return None
    # Every mention is blanked, in the title too: a second mention would give the answer away.
    blanked = _MARKUP.sub("", context.replace(fact["text"], BLANK))
    title = title.replace(fact["text"], BLANK)
    words = _WORD.findall(blanked)
    if len(words) < 4:
        return None
    where = f"In '{title}': " if title else ""
    question = f"{where}{blanked} What goes in the blank ({BLANK})?"
    # Short queries: the model must learn to write them, and a 135M model writes short text best.
    query = " ".join(_WORD.findall(f"{title} {blanked.replace(BLANK, ' ')}")[:QUERY_WORDS])
    return Question(fact["id"], fact["doc_id"], fact["kind"], question, query, fact["text"], context)


def make_questions(
    facts: list[dict], titles: dict[str, str], limit: int, seed: int = 0, one_per_doc: bool = True
) -> list[Question]:
    """Up to `limit` questions, sampled reproducibly, at most one per document by default."""
    facts = sorted(facts, key=lambda f: f["id"])
    random.Random(seed).shuffle(facts)
    out, seen_docs, seen_text = [], set(), set()
    for fact in facts:
        if one_per_doc and fact["doc_id"] in seen_docs:
            continue
        q = make_question(fact, titles.get(fact["doc_id"], ""))
        if q is None or q.question in seen_text:
            continue
        out.append(q)
        seen_docs.add(fact["doc_id"])
        seen_text.add(q.question)
        if len(out) == limit:
            break
    return out


def normalize_answer(text: str) -> str:
    text = re.sub(r"(?<=\d),(?=\d{3})|[$€£]", "", text.lower())
    return " ".join(text.split()).rstrip(".")


def answer_matches(expected: str, generated: str) -> bool:
    """The expected value appears in the answer as a whole value ("5" is not found in "15"),
    ignoring case, spacing, thousands separators and currency signs."""
    exp = re.escape(normalize_answer(expected))
    return re.search(rf"(?<![\w.]){exp}(?![\w]|\.\d)", normalize_answer(generated)) is not None
