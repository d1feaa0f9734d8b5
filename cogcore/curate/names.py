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

At most `MAX_NAMES` are kept, those in most documents: the list grows with the corpus.

    names = learn_names(texts)                 # [LearnedName(text="Silver Account", docs=12, ...)]
    detector = FactDetector(names=[n.text for n in names])

One pass over the texts, which may be split among workers (`count_names` per shard, `NameCounts.update`,
`names_of`); memory grows with the distinct candidates and words, not the corpus.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from cogcore.curate.facts import HEADING, LEADING_WORDS, sentence_bounds

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'&]*(?:-[A-Za-z0-9]+)*")
_CALENDAR = frozenset(
    "January February March April May June July August September October November December "
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday I OK Yes No True False".split()
)
NAMES_FILE = "names.json"  # in the curate folder: {"settings": ..., "names": [LearnedName, ...]}
MAX_WORDS = 5  # longer capitalized runs are titles, not names
# The names learned grow with the corpus (11,833 from 256 MB of Debian documentation, about one per
# 15 kB): past this many, the names in fewest documents are left out, which bounds names.json and
# what every worker's detector and the search stack hold.
MAX_NAMES = 20_000

log = logging.getLogger(__name__)


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


@dataclass
class NameCounts:
    """What learning names counts, over any share of the corpus: counts of shards (counted on the
    executor's workers) add up, in any grouping, to the counts of the whole."""

    docs_with: Counter = field(default_factory=Counter)  # candidate -> documents
    lower: Counter = field(default_factory=Counter)  # word (lower-cased) -> occurrences written in lower case
    capital: Counter = field(default_factory=Counter)  # word (lower-cased) -> occurrences capitalized
    docs: int = 0

    def add(self, text: str) -> None:
        self.docs += 1
        prose = HEADING.sub(lambda m: " " * len(m.group()), text)
        for word, n in Counter(_WORD.findall(prose)).items():
            (self.capital if word[0].isupper() else self.lower)[word.lower()] += n
        self.docs_with.update(set(_candidates(prose)))

    def update(self, other: NameCounts) -> None:
        self.docs_with.update(other.docs_with)
        self.lower.update(other.lower)
        self.capital.update(other.capital)
        self.docs += other.docs


def count_names(texts: Iterable[str]) -> NameCounts:
    counts = NameCounts()
    for text in texts:
        counts.add(text)
    return counts


def learn_names(texts: Iterable[str], settings: NameSettings = NameSettings()) -> list[LearnedName]:
    """The names of the corpus, most widespread first."""
    return names_of(count_names(texts), settings)


def names_of(counts: NameCounts, settings: NameSettings = NameSettings()) -> list[LearnedName]:
    """The names that `counts` show, most widespread first; at most `MAX_NAMES`."""
    names = []
    everywhere = {c for c, docs in counts.docs_with.items() if docs > settings.max_doc_share * max(counts.docs, 1)}
    brand_words = {w for c in everywhere for w in re.split(r"[\s-]+", c.lower())}
    for candidate, docs in counts.docs_with.items():
        if docs < settings.min_docs or candidate in everywhere:
            continue
        if set(re.split(r"[\s-]+", candidate.lower())) <= brand_words:  # "Rho" of "Rho-Bank"
            continue
        words = [w for w in candidate.split() if not _acronym(w)]
        if not words or (len(words) == 1 and words[0] in _CALENDAR):
            continue
        share = min(_lower_share(w.lower(), counts.lower, counts.capital) for w in words)
        if share <= settings.max_lower_share:
            names.append(LearnedName(candidate, docs, round(share, 3)))
    return _capped(sorted(names, key=lambda n: (-n.docs, n.text)))


def _capped(names: list[LearnedName]) -> list[LearnedName]:
    """The first `MAX_NAMES` of names sorted most widespread first, less the names tied at the cut
    (which of them made it would otherwise depend on the alphabet)."""
    if len(names) <= MAX_NAMES:
        return names
    cut = names[MAX_NAMES].docs
    kept = [n for n in names[:MAX_NAMES] if n.docs > cut]
    log.info("learned %d names; kept the %d in over %d documents (at most %d)", len(names), len(kept), cut, MAX_NAMES)
    return kept


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
            capitalized = m.group()[0].isupper()  # a word starts with an ASCII letter
            if capitalized and (not run or sentence[run[-1].end() : m.start()] in (" ", "-")):
                run.append(m)
                continue
            if run:
                yield from _trimmed(sentence, run)
            run = [m] if capitalized else []
        if run:
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
