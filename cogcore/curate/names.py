"""The domain's proper names, learned from the corpus itself: product, plan and program names
("Silver Account", "BNPL Bronze", "Sky Blue", "EveryonePay") without a term list in the recipe.

A candidate is a run of capitalized words in running text: headings and **bold labels** are left
out (Title Case there says nothing), so is a run's first word when it opens a sentence, and so are
function words that lead a run ("The", "Your"). A candidate is a name when
- it recurs: it sits in running text in at least `min_docs` documents;
- it is not everyone's: it is in at most `max_doc_share` of the documents (the corpus's own
  brand, in every footer, is not a fact of any one document);
- it is not a dictionary phrase: one of its words at least is rarely written in lower case in this
  corpus (at most `max_lower_share` of its occurrences): "Silver Account" is a name because "silver"
  is almost never lower case here; "Annual Percentage Yield" and "Customer Service" are not, their
  words are ordinary lower-case words elsewhere;
- it is not an acronym alone ("APY", "ATM"), a month or a weekday, and ends in no colon ("Limit
  Increase Rules:" labels what follows).

    names = learn_names(texts)                 # [LearnedName(text="Silver Account", docs=12, ...)]
    detector = FactDetector(names=[n.text for n in names])

One pass over the texts; memory grows with the distinct candidates and words, not the corpus.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from cogcore.curate.facts import HEADING, LEADING_WORDS, sentence_bounds

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'&]*(?:-[A-Za-z0-9]+)*")
_CAPITALIZED = re.compile(r"[A-Z]")
_CALENDAR = frozenset(
    "January February March April May June July August September October November December "
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday I OK Yes No True False".split()
)
NAMES_FILE = "names.json"  # in the curate folder: {"settings": ..., "names": [LearnedName, ...]}
MAX_WORDS = 5  # longer capitalized runs are titles, not names


@dataclass(frozen=True)
class NameSettings:
    min_docs: int = 2
    max_doc_share: float = 0.1
    max_lower_share: float = 0.2


@dataclass(frozen=True)
class LearnedName:
    text: str
    docs: int  # documents where it sits in running text
    lower_share: float  # of its rarest-in-lower-case word: occurrences written in lower case

    def to_json(self) -> dict:
        return asdict(self)


def learn_names(texts: Iterable[str], settings: NameSettings = NameSettings()) -> list[LearnedName]:
    """The names of the corpus, most widespread first."""
    docs_with: Counter = Counter()  # candidate -> documents
    lower, capital = Counter(), Counter()  # word (lower-cased) -> occurrences written lower / capitalized
    n_docs = 0
    for text in texts:
        n_docs += 1
        prose = HEADING.sub(lambda m: " " * len(m.group()), text)
        for word in _WORD.findall(prose):
            (capital if _CAPITALIZED.match(word) else lower)[word.lower()] += 1
        docs_with.update(set(_candidates(prose)))
    names = []
    everywhere = {c for c, docs in docs_with.items() if docs > settings.max_doc_share * max(n_docs, 1)}
    brand_words = {w for c in everywhere for w in re.split(r"[\s-]+", c.lower())}
    for candidate, docs in docs_with.items():
        if docs < settings.min_docs or candidate in everywhere:
            continue
        if set(re.split(r"[\s-]+", candidate.lower())) <= brand_words:  # "Rho" of "Rho-Bank"
            continue
        words = [w for w in candidate.split() if not _acronym(w)]
        if not words or (len(words) == 1 and words[0] in _CALENDAR):
            continue
        share = min(_lower_share(w.lower(), lower, capital) for w in words)
        if share <= settings.max_lower_share:
            names.append(LearnedName(candidate, docs, round(share, 3)))
    return sorted(names, key=lambda n: (-n.docs, n.text))


def _acronym(word: str) -> bool:
    """ "ATM", "APYs", "IDs": say what a thing is, not which one."""
    return word.rstrip("s").isupper()


def _lower_share(word: str, lower: Counter, capital: Counter) -> float:
    total = lower[word] + capital[word]
    return lower[word] / total if total else 1.0


def _candidates(prose: str) -> Iterable[str]:
    """Runs of capitalized words in running text, trimmed as the module says."""
    for start, end in sentence_bounds(prose):
        sentence = prose[start:end]
        run: list[re.Match] = []
        for m in _WORD.finditer(sentence):
            joined = run and sentence[run[-1].end() : m.start()] in (" ", "-")
            if _CAPITALIZED.match(m.group()) and (not run or joined):
                run.append(m)
                continue
            yield from _trimmed(sentence, run)
            run = [m] if _CAPITALIZED.match(m.group()) else []
        yield from _trimmed(sentence, run)


def _trimmed(sentence: str, run: list[re.Match]) -> Iterable[str]:
    if run and run[0].start() == len(sentence) - len(sentence.lstrip(" \t*-#>•([\"'0123456789.)")):
        run = run[1:]  # a sentence's first word is capitalized whatever it is
    while run and run[0].group() in LEADING_WORDS:
        run = run[1:]
    while run and _acronym(run[-1].group()):  # "Silver APY" names the Silver account's APY
        run = run[:-1]
    if any("'" in m.group() for m in run):  # "I'm", a quote's closing mark
        return
    if not run or len(run) > MAX_WORDS:
        return
    if sentence[run[-1].end() : run[-1].end() + 1] == ":":
        return
    yield sentence[run[0].start() : run[-1].end()]
