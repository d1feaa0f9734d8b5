"""Lexical (BM25) retrieval over chunk texts, with a tokenizer that keeps identifiers and numbers.

Embeddings blur exactly what a search tool is most often asked for: "ACC-12345", "$2.00",
"open_bank_account_4821" and "2.5%" all land near any other code or amount. BM25 matches them
exactly, so the index keeps a BM25 matrix beside the dense vectors (`cogcore.retrieval.index`),
built and stored with `bm25s` (sparse-matrix BM25, saved as .npy files plus a vocabulary):

    lexical = LexicalIndex.build([chunk["text"] for chunk in chunks])
    lexical.save(Path("runs/demo/index/bm25"))
    ids, scores = LexicalIndex.load(Path("runs/demo/index/bm25")).search("ACC-12345 fee", n=20)

`tokenize` lowercases and splits on anything that is not a letter or digit, and ALSO keeps every
word that holds inner punctuation whole ("acc-12345", "2.00", "open_bank_account_4821",
"help@bank.example"), with thousands separators dropped from numbers ("10,000" -> "10000"), so a
query for the whole identifier matches it exactly while its parts still match on their own. The
33-word Lucene English stopword list is dropped. Queries go through the same function.

`identifiers(query)` are the query's tokens that name one thing exactly: a digit together with a
letter or inner punctuation ("acc-12345", "2024-01-01", "abc123", "2.00"; not a bare "2024").
Hybrid search ranks the chunks holding all of them first (see cogcore.retrieval.index), because
rank fusion alone lets chunks that both retrievers find moderately relevant outrank the one
chunk that holds the exact code.

Search is exact but pruned (MaxScore): at 1M chunks a common query word has a posting list of
a sizeable share of the corpus, and summing all of them cost ~20-40 ms a query; taking the rare
words first and only looking up the common ones for the few documents that can still reach the
top n cost ~0.6 ms at the median (benchmarks/README.md). `search_exhaustive` is the unpruned
reference it equals, ranking and scores bit for bit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

# Changing what tokenize() returns changes every saved index: bump this and the load check
# below asks for a rebuild instead of silently matching nothing.
TOKENIZER = "cogcore-lex-1"
BM25_PARAMS = {"method": "lucene", "k1": 1.5, "b": 0.75}

# A run of word characters joined by punctuation with no space: identifiers, amounts, emails,
# URLs, dates. Edge punctuation ("$", "%", a sentence's full stop, brackets) is not part of it.
_WORD = re.compile(r"\w+(?:[^\s\w]+\w+)*")
_PART = re.compile(r"[^\W_]+")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
# The Lucene / Elasticsearch English stop set (what bm25s ships as STOPWORDS_EN).
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)


def tokenize(text: str) -> list[str]:
    """Lowercased search tokens of text: plain words, plus whole identifiers and their parts."""
    tokens = []
    for word in _WORD.findall(text.lower()):
        if word.isalnum():  # the common case: a plain word or number
            if word not in STOPWORDS:
                tokens.append(word)
            continue
        tokens.append(word.replace(",", "") if _THOUSANDS.fullmatch(word) else word)
        tokens.extend(p for p in _PART.findall(word) if p not in STOPWORDS)
    return tokens


def identifiers(query: str) -> list[str]:
    """The tokens of query that look like identifiers or exact values (see the module docstring)."""
    return [
        t for t in dict.fromkeys(tokenize(query)) if len(t) >= 3 and any(c.isdigit() for c in t) and not t.isdigit()
    ]


class LexicalIndex:
    """A BM25 index over a list of texts; documents are addressed by their position in it."""

    def __init__(self, bm25):
        import bm25s

        self.bm25 = bm25
        self.library_version = bm25s.__version__
        self.vocab: dict[str, int] = bm25.vocab_dict
        self.n_docs = int(bm25.scores["num_docs"])
        # The CSC matrix: column t of term t holds its BM25 weight in each document that has it.
        self._data = bm25.scores["data"]
        self._docs = bm25.scores["indices"]
        self._indptr = bm25.scores["indptr"]
        # Each term's highest weight in any document: the bound that search() prunes with.
        starts = self._indptr[:-1]
        used = self._indptr[1:] > starts
        self._bounds = np.zeros(len(starts), dtype=np.float64)
        if used.any():
            self._bounds[used] = np.maximum.reduceat(self._data, starts[used])

    @classmethod
    def build(cls, texts: Iterable[str]) -> LexicalIndex:
        """Tokenize and index texts (streamed: tokens become ids at once, never held as strings)."""
        import bm25s

        vocab: dict[str, int] = {}
        doc_ids = []
        for text in texts:
            # setdefault hands back the dict's own int object, so a document's id list costs
            # 8 bytes per token rather than a new int each.
            doc_ids.append([vocab.setdefault(t, len(vocab)) for t in tokenize(text)])
        if not doc_ids:
            raise ValueError("no texts to index")
        if not vocab:  # bm25s needs one term; an index of empty texts then matches nothing
            vocab[""] = 0
        # The numpy backend sorts each posting list by document: search() relies on it.
        bm25 = bm25s.BM25(**BM25_PARAMS, csc_backend="numpy")
        bm25.index((doc_ids, vocab), show_progress=False)
        return cls(bm25)

    def save(self, folder: Path) -> None:
        self.bm25.save(str(folder), show_progress=False)
        (Path(folder) / "cogcore.json").write_text(
            json.dumps({"tokenizer": TOKENIZER, "n_docs": self.n_docs, **BM25_PARAMS}) + "\n"
        )

    @classmethod
    def load(cls, folder: Path, mmap: bool = False) -> LexicalIndex:
        """Load a saved index; mmap leaves the matrix on disk (for indexes larger than memory)."""
        import bm25s

        folder = Path(folder)
        meta_path = folder / "cogcore.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        if meta.get("tokenizer") != TOKENIZER:
            raise ValueError(
                f"{folder} was tokenized by {meta.get('tokenizer')!r}, this cogcore "
                f"tokenizes with {TOKENIZER!r}: rebuild the index"
            )
        return cls(bm25s.BM25.load(str(folder), mmap=mmap, show_progress=False, verbosity=0))

    def __len__(self) -> int:
        return self.n_docs

    def search(self, query: str, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Positions and BM25 scores of the (at most) n best documents that share a term with
        query, best first; ties go to the earlier document. Exactly what search_exhaustive
        returns, scores bit for bit, but only the candidates that pruning keeps are scored."""
        terms = self._query_terms(query)
        if not terms or n < 1:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        candidates = self._candidates(terms, n)
        return self._top(candidates, self._score(terms, candidates), n)

    def search_exhaustive(self, query: str, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """search() by scoring every document that shares a term with query: the reference that
        search() must equal, and its cost without pruning (benchmarks/retrieval.py)."""
        terms = self._query_terms(query)
        if not terms or n < 1:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        spans = [(self._indptr[t], self._indptr[t + 1]) for t in terms]
        docs = np.concatenate([self._docs[a:b] for a, b in spans])
        weights = np.concatenate([self._data[a:b] for a, b in spans])
        # Sum each document's term weights over the posting lists the query touches, never
        # scoring documents that share no term with it: by sorting the postings when they are
        # few, by one pass over a document-sized array when they are many.
        if len(docs) <= self.n_docs // 16:
            candidates, inverse = np.unique(docs, return_inverse=True)
            scores = np.bincount(inverse, weights=weights)
        else:
            totals = np.bincount(docs, weights=weights, minlength=self.n_docs)
            candidates = np.flatnonzero(totals)
            scores = totals[candidates]
        return self._top(candidates, scores, n)

    def _query_terms(self, query: str) -> list[int]:
        return [self.vocab[t] for t in dict.fromkeys(tokenize(query)) if t in self.vocab]

    def _postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self._indptr[term], self._indptr[term + 1]
        return self._docs[a:b], self._data[a:b]

    def _candidates(self, terms: list[int], n: int) -> np.ndarray:
        """The documents that can be among the n best for terms (a superset of those), found by
        MaxScore pruning (Turtle and Flood, 1995). Terms are taken by their weight bound, highest
        (rarest) first, summing partial scores. Once the n-th best partial score exceeds what
        the terms still to come could add together, no document unseen so far can reach the
        top n: the remaining terms, typically the common ones with posting lists of a large
        share of the corpus, are only looked up for the candidates instead of read whole, and
        candidates that can no longer reach the n-th score are dropped on the way."""
        order = sorted(terms, key=lambda t: -self._bounds[t])
        bounds = self._bounds[order]
        # later[i]: the most the terms after order[i] can add to a document; with slack, and a
        # slack under the n-th score below, so that float rounding never prunes a tie.
        later = (np.cumsum(bounds[::-1])[::-1] - bounds) * (1 + 1e-6)
        candidates = np.zeros(0, dtype=self._docs.dtype)
        partial = np.zeros(0, dtype=np.float64)
        open_ = True  # whether documents not seen yet may still enter
        for term, rest in zip(order, later):
            docs, weights = self._postings(term)
            if not len(candidates):  # the first term: all its documents (never written to)
                candidates, partial = docs, weights.astype(np.float64)
            else:
                at, found = _locate(docs, candidates)
                partial[found] += weights[at[found]]
                if open_:
                    new = np.ones(len(docs), dtype=bool)
                    new[at[found]] = False
                    candidates = np.concatenate([candidates, docs[new]])
                    partial = np.concatenate([partial, weights[new]])
            if len(candidates) >= n:
                floor = _nth_largest(partial, n) * (1 - 1e-9)
                open_ = open_ and rest >= floor
                if not open_:
                    keep = partial + rest >= floor
                    candidates, partial = candidates[keep], partial[keep]
        if len(candidates) > n:  # now partial is the whole score: keep the n best and their ties
            candidates = candidates[partial >= _nth_largest(partial, n) * (1 - 1e-9)]
        return candidates

    def _score(self, terms: list[int], candidates: np.ndarray) -> np.ndarray:
        """BM25 scores of candidates, summed in query term order as search_exhaustive sums them
        (so that equal scores stay equal and ties break the same way)."""
        scores = np.zeros(len(candidates), dtype=np.float64)
        for term in terms:
            docs, weights = self._postings(term)
            at, found = _locate(docs, candidates)
            scores[found] += weights[at[found]]
        return scores

    @staticmethod
    def _top(candidates: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(candidates) > n:  # all that tie with the n-th, so the earlier documents win the cut
            top = scores >= _nth_largest(scores, n)
            candidates, scores = candidates[top], scores[top]
        order = np.lexsort((candidates, -scores))[:n]
        return candidates[order].astype(np.int64), scores[order].astype(np.float32)

    def holding_identifiers(self, query: str, positions: np.ndarray) -> np.ndarray:
        """For each document position, whether it holds every identifier of query (all False
        when the query has none)."""
        terms = identifiers(query)
        held = np.full(len(positions), bool(terms))
        # Looked up in the sorted posting list, not np.isin: that sorts the whole list, and a
        # token such as "covid19" may be in a large share of the corpus.
        positions = np.asarray(positions).astype(self._docs.dtype)
        for term in terms:
            t = self.vocab.get(term)
            if t is None:
                return np.zeros(len(positions), dtype=bool)
            held &= _locate(self._postings(t)[0], positions)[1]
        return held

    def search_many(self, queries: Sequence[str], n: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self.search(q, n) for q in queries]


def _nth_largest(values: np.ndarray, n: int, sample: int = 8192) -> float:
    """The n-th largest of values (at least n of them). Partitioning a million partial scores
    costs ~10 ms: when there are many, a cut that about 4n of them pass is read off a strided
    sample, and only the values above it are partitioned (exact: if n values pass the cut, the n
    largest do)."""
    cut_rank = max(8, -(-4 * n * sample // len(values)))
    if len(values) > 2 * sample and cut_rank < sample // 4:
        picked = values[:: len(values) // sample]
        cut = np.partition(picked, len(picked) - cut_rank)[len(picked) - cut_rank]
        above = values[values >= cut]
        if len(above) >= n:
            values = above
    return float(np.partition(values, len(values) - n)[len(values) - n])


def _locate(docs: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of positions, where it sits in the sorted posting list docs, and whether it is
    there at all."""
    if len(docs) == 0:
        return np.zeros(len(positions), dtype=np.int64), np.zeros(len(positions), dtype=bool)
    at = np.minimum(np.searchsorted(docs, positions), len(docs) - 1)
    return at, docs[at] == positions
