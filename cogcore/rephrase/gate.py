"""The fact gate: a rewrite of a passage is kept only if it states every fact of its source, with
the same value, and states no value that the source does not.

A rewrite is rejected, for the first of these reasons that holds (`REASONS` order):

- `empty`: nothing but whitespace;
- `repeats_prompt`: it copies `prompt_span_words` words in a row of the prompt's instructions (the
  prompt's words that the source itself does not hold: copying the source is no fault);
- `too_short` / `too_long`: its length in characters against the source's is outside
  [`min_length_ratio`, `max_length_ratio`];
- `changed_value`: a source value is missing and the rewrite has, in its place, another value of the
  same kind or the same number in another unit ("$25" -> "$52", "5 days" -> "5 hours"), in a
  sentence sharing at least half its words; or a near copy of a source sentence holds another
  value of the same kind in place of one of its own, even one the passage states elsewhere;
- `dropped_value`: a source value is missing from the rewrite;
- `invented_value`: the rewrite states a value that the source does not.

Values are compared as sets of (kind, normalized value) (cogcore.rephrase.values): "kept" means
stated at least once, because a knowledge list states once what the source repeats on every
product, and a Q&A may state twice (question and answer) what the source states once. A value
changed in one place only is still caught: the new value is one the source does not state. Digits
that no detected fact covers and capitalized runs (names) are compared too, so that a value the
detector misses, or a name it does not know, cannot change unseen. List markers ("1.", "2)") are
structure on both sides; the rewrite's numbered labels ("Q2:", "Step 3:") are never invented values.

    result = check_rewrite(source, rewrite, detector, prompt_text=prompt)
    result.accepted, result.reason, result.dropped, result.invented, result.changed
    counts = tally(results)   # {"rewrites": n, "accepted": a, "empty": ..., ...}: n = a + rejections
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from cogcore.rephrase.values import Statement, Value, context_overlap, read_statement, written_in

REASONS = ("empty", "repeats_prompt", "too_short", "too_long", "changed_value", "dropped_value", "invented_value")
_PROMPT_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class GateSettings:
    # Rewrite characters / source characters, at least: a knowledge list keeps only the sentences
    # that hold values, and of 1,000 banking passages 7.1% of such lists are under 0.3x, 0.9% under 0.15x.
    min_length_ratio: float = 0.15
    max_length_ratio: float = 3.0  # ... and at most
    prompt_span_words: int = 8  # this many of the prompt's words in a row, copied: repeats_prompt
    min_changed_overlap: float = 0.5  # a missing and a new value pair as "changed" above this context overlap
    copied_sentence_overlap: float = 0.8  # a rewrite sentence this close (word Jaccard) to a source one is a copy
    new_names: bool = True  # capitalized runs of the rewrite that the source never writes are invented names

    def __post_init__(self):
        if not 0 <= self.min_length_ratio < self.max_length_ratio:
            raise ValueError("rephrase gate: min_length_ratio must be >= 0 and below max_length_ratio")
        if self.prompt_span_words < 3:
            raise ValueError("rephrase gate: prompt_span_words must be at least 3 (shorter spans are common phrases)")


@dataclass(frozen=True)
class GateResult:
    accepted: bool
    reason: str | None  # the first of `reasons`; None when accepted
    reasons: tuple[str, ...]  # every check that failed, in REASONS order
    length_ratio: float
    dropped: tuple[Value, ...] = ()  # source values the rewrite does not state
    invented: tuple[Value, ...] = ()  # rewrite values the source does not state
    changed: tuple[tuple[Value, Value], ...] = ()  # (source value, the rewrite's in its place)
    repeated_prompt: str | None = None  # the prompt's words the rewrite copied

    def to_json(self) -> dict:
        return {
            "accepted": self.accepted,
            "reason": self.reason,
            "reasons": list(self.reasons),
            "length_ratio": round(self.length_ratio, 3),
            "dropped": [v.to_json() for v in self.dropped],
            "invented": [v.to_json() for v in self.invented],
            "changed": [[a.to_json(), b.to_json()] for a, b in self.changed],
            "repeated_prompt": self.repeated_prompt,
        }


def check_rewrite(
    source_text: str,
    rewrite_text: str,
    detector,
    prompt_text: str | None = None,
    settings: GateSettings = GateSettings(),
) -> GateResult:
    """Gate one rewrite of `source_text`; `detector` has the fact detector's `.detect(doc)`
    (cogcore.curate.facts.FactDetector, with the corpus's learned names, as curation runs it)."""
    ratio = len(rewrite_text.strip()) / max(len(source_text.strip()), 1)
    if not rewrite_text.strip():
        return GateResult(False, "empty", ("empty",), ratio)
    failed = []
    repeated = repeated_prompt_span(prompt_text, source_text, rewrite_text, settings.prompt_span_words)
    if repeated:
        failed.append("repeats_prompt")
    if ratio < settings.min_length_ratio:
        failed.append("too_short")
    if ratio > settings.max_length_ratio:
        failed.append("too_long")
    source, rewrite = read_statement(source_text, detector), read_statement(rewrite_text, detector)
    dropped, invented = missing_values(source, rewrite), new_values(source, rewrite, settings.new_names)
    changed, dropped, invented = pair_changes(dropped, invented, settings.min_changed_overlap)
    changed += swapped_in_place(source, rewrite, settings.copied_sentence_overlap, exclude=changed)
    failed += [r for r, found in zip(REASONS[4:], (changed, dropped, invented)) if found]
    return GateResult(
        accepted=not failed,
        reason=failed[0] if failed else None,
        reasons=tuple(failed),
        length_ratio=ratio,
        dropped=tuple(dropped),
        invented=tuple(invented),
        changed=tuple(changed),
        repeated_prompt=repeated,
    )


def missing_values(source: Statement, rewrite: Statement) -> list[Value]:
    """Source values the rewrite does not state: facts by key, outside the rewrite's own numbering
    (a name also where the rewrite writes it and the detector does not see it there), loose digits
    among its digits."""
    missing = [v for key, v in source.facts.items() if not _kept(key, v, source, rewrite)]
    return missing + [v for run, v in source.loose_digits.items() if run not in rewrite.digits]


def _kept(key: tuple, value: Value, source: Statement, rewrite: Statement) -> bool:
    if key in rewrite.facts and key not in rewrite.labels_only:
        return True
    if source.label_of.get(key) in rewrite.label_phrases:  # "## Step 5:" -> "Step 5:"
        return True
    return value.kind == "name" and written_in(value.text, rewrite.text)


def new_values(source: Statement, rewrite: Statement, new_names: bool = True) -> list[Value]:
    """Rewrite values the source does not state; a name counts as stated where the source writes it."""
    new = [
        v
        for key, v in rewrite.facts.items()
        if key not in source.facts
        and key not in rewrite.labels_only
        and not (v.kind == "name" and written_in(v.text, source.text))
    ]
    new += [v for run, v in rewrite.loose_digits.items() if run not in source.digits]
    if new_names:
        known = {v.key for v in new}
        new += [
            v
            for key, v in rewrite.names.items()
            if key not in source.names and ("name", key) not in known and not written_in(v.text, source.text)
        ]
    return new


def pair_changes(
    dropped: list[Value], invented: list[Value], min_overlap: float
) -> tuple[list[tuple[Value, Value]], list[Value], list[Value]]:
    """Pair each missing value with a new one of the same kind, or the same number in another unit,
    whose sentence shares at least `min_overlap` of its words (best pairs first): those are values
    changed in place; the rest stay dropped or invented."""
    candidates = sorted(
        (
            (context_overlap(d.context, i.context), a, b)
            for a, d in enumerate(dropped)
            for b, i in enumerate(invented)
            if d.kind == i.kind or (d.number is not None and d.number == i.number)
        ),
        key=lambda c: -c[0],
    )
    pairs, used_d, used_i = [], set(), set()
    for overlap, a, b in candidates:
        if overlap >= min_overlap and a not in used_d and b not in used_i:
            pairs.append((dropped[a], invented[b]))
            used_d.add(a)
            used_i.add(b)
    rest_d = [d for a, d in enumerate(dropped) if a not in used_d]
    return pairs, rest_d, [i for b, i in enumerate(invented) if b not in used_i]


def swapped_in_place(
    source: Statement, rewrite: Statement, min_jaccard: float, exclude: list[tuple[Value, Value]] = ()
) -> list[tuple[Value, Value]]:
    """Values changed inside a copied sentence to another value that the passage states elsewhere
    ("... a sweep transfer: $100." -> "... a sweep transfer: $10.", with "$10" the monthly fee two
    lines up), which the set comparison cannot see: a rewrite sentence whose words are those of a
    source sentence (word Jaccard >= `min_jaccard`, four words or more) must hold the values of one
    such sentence, not another value of the same kind in place of one of them."""
    seen = {(a.key, b.key) for a, b in exclude}
    pairs = []
    for rewrite_words, rewrite_values in rewrite.sentences:
        stated = {k for k in rewrite_values if k not in rewrite.labels_only}
        copied = (
            [(_jaccard(w, rewrite_words), values) for w, values in source.sentences] if len(rewrite_words) >= 4 else []
        )
        copied = sorted((c for c in copied if c[0] >= min_jaccard), key=lambda c: -c[0])
        # sentences alike but for their values (a table's rows, "Month 1 ... Month 2 ..."): any will do
        if not copied or any(stated <= values.keys() for _, values in copied):
            continue
        best = copied[0][1]
        lost = [v for k, v in best.items() if k not in rewrite_values]
        for new in (rewrite_values[k] for k in stated if k not in best):
            old = next((v for v in lost if v.kind == new.kind), None)
            if old is not None and (old.key, new.key) not in seen:
                pairs.append((old, new))
                seen.add((old.key, new.key))
                lost.remove(old)
    return pairs


def _jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def repeated_prompt_span(prompt: str | None, source: str, rewrite: str, span_words: int) -> str | None:
    """The first run of `span_words` prompt words that the rewrite copies and the source does not hold."""
    if not prompt:
        return None
    source_grams = set(_grams(_PROMPT_WORD.findall(source.lower()), span_words))
    prompt_grams = set(_grams(_PROMPT_WORD.findall(prompt.lower()), span_words)) - source_grams
    for gram in _grams(_PROMPT_WORD.findall(rewrite.lower()), span_words):
        if gram in prompt_grams:
            return " ".join(gram)
    return None


def tally(results: Iterable[GateResult]) -> dict[str, int]:
    """Rewrites, accepted, and rejections by first reason: rewrites = accepted + sum of reasons."""
    counts = {"rewrites": 0, "accepted": 0, **dict.fromkeys(REASONS, 0)}
    for r in results:
        counts["rewrites"] += 1
        counts["accepted" if r.accepted else r.reason] += 1
    return counts


def _grams(words: list[str], n: int) -> Iterable[tuple[str, ...]]:
    return (tuple(words[i : i + n]) for i in range(len(words) - n + 1))
