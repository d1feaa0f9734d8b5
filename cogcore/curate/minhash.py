"""Near-duplicate detection with MinHash LSH, vectorized with numpy and bounded in memory.

Two phases, so the first can run in parallel workers over shards:

1. `signatures(texts, cfg)` -> (n, num_perm) uint32, per batch. A document's signature depends on
   its text alone, never on the batch it came in.
2. `near_duplicate_decisions(ids, sigs, cfg)` over all signatures at once: `band_keys` hashes each
   band of `rows` values into one uint64, `find_clusters` sorts each band column and joins the
   documents that share a key (union-find, clusters.py), and the first document of each cluster
   (in input order) is kept. Memory is O(n * bands) integers; there is no table of shingles.

Where the speed comes from: no Python loop runs over words or shingles. Each document costs one
`encode` (plus `lower` if it is not pure ASCII); the rest is whole-array numpy over the batch's
bytes. A word's hash is a sum of random table entries indexed by (position in word, byte)
(tabulation hashing), a shingle's hash an order-sensitive combination of its `shingle_size` word
hashes, and the `num_perm` permutations are multiply-add hashes `(a * x + b) mod 2**64` (a odd)
whose high 32 bits are the MinHash values: one contiguous pass per permutation over all shingles
of a chunk of text, reduced per document with `np.minimum.reduceat`.

    sigs = signatures([d["text"] for d in docs], MinHashConfig())
    decisions = near_duplicate_decisions([d["id"] for d in docs], sigs, MinHashConfig())
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from cogcore.curate.clusters import components
from cogcore.curate.dedup import Decisions, groups_to_decisions

_CHUNK_CHARS = 1 << 20  # normalize and hash this much text at a time: bounds the byte-level arrays
_TABLE_POSITIONS = 128  # bytes past this position in a word reuse the table rows (pos mod 128)
# Byte -> normalized byte: ASCII letters lower-cased, ASCII digits kept, other ASCII (punctuation,
# space, control) -> 0, the separator; bytes >= 128 kept (then blanked if their character is not
# a letter or digit).
_BYTE_MAP = np.zeros(256, dtype=np.uint8)
for _c in b"abcdefghijklmnopqrstuvwxyz0123456789":
    _BYTE_MAP[_c] = _c
    _BYTE_MAP[ord(chr(_c).upper())] = _c
_BYTE_MAP[128:] = np.arange(128, 256, dtype=np.uint8)


@dataclass(frozen=True)
class MinHashConfig:
    """How documents are shingled and hashed, and when two count as near-duplicates.

    A pair of documents whose shingle sets have Jaccard similarity s becomes a candidate when all
    `rows` values of at least one of the `bands` bands agree, with probability
    P(candidate) = 1 - (1 - s**rows)**bands: an S-curve whose steepest point is near the implied
    threshold (1/bands)**(1/rows), about 0.72 for the default 14 bands x 8 rows (P = 0.92 at s = 0.8,
    0.9996 at s = 0.9, 0.05 at s = 0.5).

    shingle_size: words per shingle (word n-grams); a document with fewer words is one shingle.
    num_perm: MinHash values per document; must equal bands * rows.
    bands, rows: the LSH banding.
    seed: the hash functions; documents are only comparable under one seed.
    verify: keep only candidate pairs whose estimated Jaccard (the fraction of equal signature
        values) reaches `threshold`, cutting the false positives of the S-curve's lower tail.
    threshold: the Jaccard similarity that makes a near-duplicate; None = the implied threshold.
    """

    shingle_size: int = 5
    num_perm: int = 112
    bands: int = 14
    rows: int = 8
    seed: int = 0
    verify: bool = False
    threshold: float | None = None

    def __post_init__(self):
        if self.shingle_size < 1:
            raise ValueError(f"minhash.shingle_size must be >= 1, got {self.shingle_size}")
        if self.bands < 1 or self.rows < 1 or self.bands * self.rows != self.num_perm:
            raise ValueError(
                f"minhash.bands * minhash.rows must equal minhash.num_perm "
                f"({self.bands} * {self.rows} != {self.num_perm})"
            )
        if self.threshold is not None and not 0 < self.threshold <= 1:
            raise ValueError(f"minhash.threshold must be in (0, 1], got {self.threshold}")

    @property
    def jaccard_threshold(self) -> float:
        return self.threshold if self.threshold is not None else (1 / self.bands) ** (1 / self.rows)

    def candidate_probability(self, s: float) -> float:
        return 1 - (1 - s**self.rows) ** self.bands


@dataclass(frozen=True)
class _Params:
    table: np.ndarray  # (positions * 256,) uint64: tabulation hash of (position in word, byte)
    word_mult: np.ndarray  # (shingle_size,) odd uint64: combines word hashes into a shingle hash
    a: np.ndarray  # (num_perm,) odd uint64
    b: np.ndarray  # (num_perm,) uint64
    band_salt: np.ndarray  # (bands,) uint64


@lru_cache(maxsize=8)
def _params(seed: int, shingle_size: int, num_perm: int, bands: int) -> _Params:
    rng = np.random.default_rng(seed)

    def draw(*shape):
        return rng.integers(0, np.iinfo(np.uint64).max, size=shape, dtype=np.uint64, endpoint=True)

    odd = np.uint64(1)
    return _Params(
        draw(_TABLE_POSITIONS * 256), draw(shingle_size) | odd, draw(num_perm) | odd, draw(num_perm), draw(bands)
    )


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection of uint64 whose every output bit depends on every input bit."""
    x = x ^ (x >> np.uint64(30))
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def signatures(texts: list[str], cfg: MinHashConfig) -> np.ndarray:
    """MinHash signatures, (len(texts), num_perm) uint32; each row depends on its text alone."""
    p = _params(cfg.seed, cfg.shingle_size, cfg.num_perm, cfg.bands)
    out = np.empty((len(texts), cfg.num_perm), dtype=np.uint32)
    start, chars = 0, 0
    for i, text in enumerate(texts):
        chars += len(text)
        if chars >= _CHUNK_CHARS or i == len(texts) - 1:
            out[start : i + 1] = _chunk_signatures(texts[start : i + 1], p, cfg.shingle_size)
            start, chars = i + 1, 0
    return out


def _shingles(texts: list[str], p: _Params, k: int) -> tuple[np.ndarray, np.ndarray]:
    arr, doc_end = _normalized_bytes(texts)
    in_word = np.concatenate(([False], arr != 0, [False]))
    edge = np.flatnonzero(in_word[1:] != in_word[:-1]).astype(np.int32)  # a chunk is < 2 GB
    starts, lengths = edge[0::2], edge[1::2] - edge[0::2]
    # Word hash: sum over its bytes of table[(position in word) mod 128, byte].
    offsets = np.zeros(len(starts), dtype=np.int32)
    np.cumsum(lengths[:-1], out=offsets[1:])
    pos = np.arange(int(lengths.sum()), dtype=np.int32)
    pos -= np.repeat(offsets, lengths)
    pos &= _TABLE_POSITIONS - 1
    pos <<= 8
    pos += arr[in_word[1:-1]]
    n_words = len(starts)
    words = np.zeros(n_words + k, dtype=np.uint64)  # k zeros of padding past the last word
    if n_words:
        np.add.reduceat(p.table[pos], offsets, out=words[:n_words])
    doc = np.searchsorted(doc_end, starts, side="right")
    count = np.bincount(doc, minlength=len(texts))
    first = np.zeros(len(texts), dtype=np.int64)
    np.cumsum(count[:-1], out=first[1:])
    # shingle(g) = mix(sum_j word_mult[j] * word[g + j]); a full shingle lies inside its document.
    shingle = words[:n_words] * p.word_mult[0]
    for j in range(1, k):
        shingle += words[j : n_words + j] * p.word_mult[j]
    g = np.arange(n_words)
    valid = g + k <= (first + count)[doc]
    short = np.flatnonzero((count > 0) & (count < k))  # fewer than k words: one shingle of them all
    for j in range(1, k):
        cut = short[count[short] <= j]  # word j of these belongs to the next document: take it out
        shingle[first[cut]] -= words[first[cut] + j] * p.word_mult[j]
    valid[first[short]] = True
    shingles, shingle_doc = _mix(shingle[valid]), doc[valid]
    empty = np.flatnonzero(count == 0)  # no words at all: one shingle, the same for every such doc
    if len(empty):
        shingles = np.concatenate((shingles, np.full(len(empty), p.word_mult[0], dtype=np.uint64)))
        shingle_doc = np.concatenate((shingle_doc, empty))
        order = np.argsort(shingle_doc, kind="stable")
        shingles, shingle_doc = shingles[order], shingle_doc[order]
    return shingles, shingle_doc


def _normalized_bytes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The batch's text as one UTF-8 byte array, lower-cased, with 0 wherever a word is not.

    A word is a run of letters and digits (`str.isalnum`), as the regex `[^\\W_]+` would find,
    so punctuation, underscore and spaces separate words. Pure-ASCII text needs no Python pass at
    all: a byte table lower-cases it; other text is lower-cased by `str.lower` and its non-ASCII
    characters that are not letters or digits (dashes, quotes, symbols) are blanked in numpy.
    Returns the bytes and the end offset of each document (documents are joined by one 0 byte).
    """
    parts = [t.encode("ascii") if t.isascii() else t.lower().encode("utf-8", "surrogatepass") for t in texts]
    doc_end = np.cumsum([len(b) + 1 for b in parts], dtype=np.int64) - 1
    raw = np.frombuffer(b" ".join(parts), dtype=np.uint8)
    arr = _BYTE_MAP[raw]
    lead = np.flatnonzero(raw >= 0xC0)  # first byte of each multi-byte character
    if len(lead):
        _blank_non_alnum(raw, arr, lead)
    return arr, doc_end


def _blank_non_alnum(raw: np.ndarray, arr: np.ndarray, lead: np.ndarray) -> None:
    b0 = raw[lead].astype(np.int64)
    width = 2 + (b0 >= 0xE0) + (b0 >= 0xF0)
    last = len(raw) - 1
    b1, b2, b3 = (raw[np.minimum(lead + i, last)].astype(np.int64) & 0x3F for i in (1, 2, 3))
    cp = np.where(
        width == 2,
        ((b0 & 0x1F) << 6) | b1,
        np.where(width == 3, ((b0 & 0x0F) << 12) | (b1 << 6) | b2, ((b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3),
    )
    alnum = np.zeros(len(cp), dtype=bool)
    bmp = cp < 0x10000
    alnum[bmp] = _bmp_alnum()[cp[bmp]]
    alnum[~bmp] = [chr(c).isalnum() for c in cp[~bmp].tolist()]  # rare: emoji, historic scripts
    start, width = lead[~alnum], width[~alnum]
    offsets = np.repeat(np.cumsum(width) - width, width)
    arr[np.repeat(start, width) + np.arange(int(width.sum())) - offsets] = 0


@lru_cache(maxsize=1)
def _bmp_alnum() -> np.ndarray:
    return np.array([chr(c).isalnum() for c in range(0x10000)], dtype=bool)


def _chunk_signatures(texts: list[str], p: _Params, k: int) -> np.ndarray:
    shingles, doc = _shingles(texts, p, k)
    starts = np.flatnonzero(np.concatenate(([True], doc[1:] != doc[:-1])))
    mins = np.empty((len(texts), len(p.a)), dtype=np.uint32)
    h = np.empty(len(shingles), dtype=np.uint64)
    # One permutation at a time over all the chunk's shingles: 1-D contiguous, SIMD-friendly
    # passes, several times faster than a (shingles, num_perm) block. Every document has at
    # least one shingle, so each reduceat segment is one whole document.
    for i in range(len(p.a)):
        np.multiply(shingles, p.a[i], out=h)
        h += p.b[i]
        mins[:, i] = np.minimum.reduceat(h, starts) >> np.uint64(32)
    return mins


def band_keys(sigs: np.ndarray, cfg: MinHashConfig) -> np.ndarray:
    """One uint64 key per (document, band): equal keys mean all `rows` values of the band agree."""
    p = _params(cfg.seed, cfg.shingle_size, cfg.num_perm, cfg.bands)
    bands = np.asarray(sigs).reshape(len(sigs), cfg.bands, cfg.rows).astype(np.uint64)
    key = np.broadcast_to(p.band_salt, (len(sigs), cfg.bands)).copy()
    for j in range(cfg.rows):  # chained bijective mixing: distinct rows collide with p ~ 2**-64
        key = _mix(key ^ bands[:, :, j])
    return key


def candidate_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (u < v) that share a key in some band: each bucket's later members with its first."""
    n = len(keys)
    us, vs = [], []
    for c in range(keys.shape[1]):
        order = np.argsort(keys[:, c], kind="stable")
        k = keys[order, c]
        same = np.concatenate(([False], k[1:] == k[:-1]))
        if not same.any():
            continue
        heads = np.flatnonzero(~same)
        head_of = np.repeat(heads, np.diff(np.concatenate((heads, [n]))))
        member = np.flatnonzero(same)
        us.append(order[head_of[member]])
        vs.append(order[member])
    if not us:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pair = np.unique(np.concatenate(us).astype(np.int64) * n + np.concatenate(vs))
    return pair // n, pair % n


def estimated_jaccard(sigs: np.ndarray, u: np.ndarray, v: np.ndarray, block: int = 65536) -> np.ndarray:
    """The fraction of equal signature values of each pair (u[i], v[i]): an unbiased Jaccard estimate."""
    out = np.empty(len(u), dtype=np.float64)
    for lo in range(0, len(u), block):
        out[lo : lo + block] = (sigs[u[lo : lo + block]] == sigs[v[lo : lo + block]]).mean(axis=1)
    return out


def find_clusters(
    doc_index: np.ndarray, keys: np.ndarray, sigs: np.ndarray | None = None, threshold: float = 0.0
) -> np.ndarray:
    """Cluster label per row: the `doc_index` of the first row (in row order) of its cluster.

    Rows sharing any band key are joined (transitively). With `sigs`, a candidate pair joins only
    if its estimated Jaccard reaches `threshold`.
    """
    u, v = candidate_pairs(keys)
    if sigs is not None and len(u):
        ok = estimated_jaccard(sigs, u, v) >= threshold
        u, v = u[ok], v[ok]
    return np.asarray(doc_index)[components(len(keys), u, v)]


def near_duplicate_decisions(ids: list[str], sigs: np.ndarray, cfg: MinHashConfig) -> Decisions:
    """Drop all but the first document (input order) of each near-duplicate cluster."""
    labels = find_clusters(
        np.arange(len(ids)), band_keys(sigs, cfg), sigs if cfg.verify else None, cfg.jaccard_threshold
    )
    return groups_to_decisions(ids, labels, "near_duplicate", "minhash")
