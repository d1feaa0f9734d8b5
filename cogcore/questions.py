"""Questions made from facts: what tool-use training asks and what evaluation scores.

A fact's sentence with the fact blanked out becomes a question in one of two forms:

- cloze: "In 'Savings accounts': Customers have ___ to fund the account. What goes in the blank?"
- customer: the way a customer asks, from templates: the blank becomes the question word its kind
  calls for, the product is named where a customer names it ("I have the Gold Plus Saver Account.
  Monthly fee: how much?", "What is the paper statement fee for the Light Green Account?",
  "Customers have how long to fund the account? This is about Savings accounts.").

The sentence without the blank (under its title) is the search query either way; the fact's text
is the expected answer. A model taught only cloze questions learns to copy the question's opening
words into its query; customers put the product in one sentence and the ask in the next, so the
tool conversations mix both forms (`train.tools.question_forms`). Training (tool-use
conversations) and evaluation (closed-book lm-eval tasks, the agentic check, template fact sets)
share this module so that they ask in the same way.
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


FORMS = ("cloze", "customer")
# The question word a blank of each kind calls for ("quantity" takes its unit: "how many withdrawals").
_ASK = {
    "money": "how much",
    "percent": "what percentage",
    "date": "what date",
    "time": "what time",
    "duration": "how long",
    "quantity": "how many",
    "number": "what number",
    "identifier": "which code",
}
_LABEL = re.compile(r"^(?P<label>[A-Za-z][^:?]{2,60}):\s*(?P<before>[^:]{0,20})" + re.escape(BLANK) + r"[\s.;,]*$")
_UNIT = re.compile(r"^[\d.,]+\s+(?P<unit>[A-Za-z][A-Za-z -]{1,30})$")


def make_question(fact: dict, title: str, form: str = "cloze", rng: random.Random | None = None) -> Question | None:
    """A question for a fact in `form` (FORMS), or None when its sentence is too thin to ask about.
    rng picks among the customer templates (the same fact and rng state give the same question)."""
    if form not in FORMS:
        raise ValueError(f"question form must be one of {FORMS}, got {form!r}")
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
    if form == "customer":
        question = customer_question(fact, blanked, title, rng or random.Random(fact["id"]))
    else:
        where = f"In '{title}': " if title else ""
        question = f"{where}{blanked} What goes in the blank ({BLANK})?"
    # Short queries: the model must learn to write them, and a 135M model writes short text best.
    query = " ".join(_WORD.findall(f"{title} {blanked.replace(BLANK, ' ')}")[:QUERY_WORDS])
    return Question(fact["id"], fact["doc_id"], fact["kind"], question, query, fact["text"], context)


def customer_question(fact: dict, blanked: str, title: str, rng: random.Random) -> str:
    """The blanked sentence asked as a customer asks it: "Label: ___" becomes "What is the label for
    the product?", any other sentence an echo question ("You charge how much for ...?"); the
    product named before, inside or after the ask."""
    blanked = blanked.replace("**", "").replace("`", "")
    ask = _ASK[fact["kind"]]
    unit = _UNIT.match(fact["text"]) if fact["kind"] == "quantity" else None
    if unit:
        ask = f"how many {unit['unit']}"
    subject = _subject(title)
    labelled = _LABEL.match(blanked)
    if labelled:
        label = labelled["label"].strip()
        label = label[0].lower() + label[1:] if not label[:2].isupper() else label
        lead = "How much is" if fact["kind"] == "money" else "What is"
        place = f" for {subject}" if subject and not _names(blanked, subject) else ""
        return f"{lead} the {label}{place}?"
    echo = blanked.replace(BLANK, ask, 1).replace(BLANK, "that").rstrip(" .;:,!") + "?"
    echo = echo[0].upper() + echo[1:]
    if not subject or _names(blanked, subject):
        return echo
    return rng.choice(
        (
            f"I have {subject}. {echo}",
            f"About {subject}: {echo}",
            f"{echo} This is about {subject}.",
            f"{echo[:-1]}, for {subject}?",
        )
    )


def _subject(title: str) -> str:
    """What a customer calls the document's topic: the product before a title's colon ("Gold Plus
    Saver Account: Withdrawal limits" -> "the Gold Plus Saver Account"), else the title quoted."""
    head = title.split(":")[0].split(" — ")[0].strip()
    if not head:
        return ""
    if head.endswith("?") or len(head.split()) > 6 or len(head.split()) == 1 and head != title.strip():
        return f"'{title.strip()}'"
    return head if head.lower().startswith(("the ", "a ", "an ")) else f"the {head}"


def _names(sentence: str, subject: str) -> bool:
    """The sentence already names the subject (then naming it again reads oddly)."""
    core = subject.removeprefix("the ").strip("'").lower()
    return core in sentence.lower()


def make_questions(
    facts: list[dict],
    titles: dict[str, str],
    limit: int,
    seed: int = 0,
    one_per_doc: bool = True,
    forms: dict[str, float] | None = None,
) -> list[Question]:
    """Up to `limit` questions, sampled reproducibly, at most one per document by default; each in a
    form drawn by the shares in `forms` ({"cloze": 1, "customer": 1}: half each; None: cloze)."""
    facts = sorted(facts, key=lambda f: f["id"])
    rng = random.Random(seed)
    rng.shuffle(facts)
    names, weights = zip(*(forms or {"cloze": 1.0}).items(), strict=True)
    if any(w < 0 for w in weights) or sum(weights) <= 0 or not set(names) <= set(FORMS):
        raise ValueError(f"question forms must be shares of {FORMS} with a positive sum, got {forms!r}")
    out, seen_docs, seen_text = [], set(), set()
    for fact in facts:
        if one_per_doc and fact["doc_id"] in seen_docs:
            continue
        form = rng.choices(names, weights)[0] if len(names) > 1 else names[0]
        q = make_question(fact, titles.get(fact["doc_id"], ""), form, rng)
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
