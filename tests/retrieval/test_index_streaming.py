"""The index build streams: a build killed with SIGKILL mid-embedding resumes from its committed
vector shards and ends byte for byte as an uninterrupted one; shards of other texts or settings
are not reused; faiss filled in batches equals faiss built at once; and the build runs under a
memory cap a fraction of the corpus's size, where holding the corpus in memory fails."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import pytest

from cogcore.retrieval import Embedder, SearchIndex, build_index
from cogcore.retrieval.dense import build_faiss_index, fill_faiss_index

SETTINGS = {"chunk_chars": 120, "overlap": 30, "shard_chunks": 8, "progress": False}
OUTPUTS = ["chunks.jsonl", "index.faiss", "index.json", "products.json", "bm25"]

# A child process that builds an index with an embedder slowed down by a pause before each call,
# so that the parent can kill it between two shards.
SLOW_BUILD = """
import sys, time
from pathlib import Path
from cogcore.retrieval import Embedder, build_index
from cogcore.stages.index import JsonlDocs

class PausingEmbedder(Embedder):
    def encode(self, texts, show_progress=False):
        time.sleep(0.3)
        return super().encode(texts, show_progress)

docs, out, embedder = sys.argv[1:4]
build_index(JsonlDocs(Path(docs)), Path(out), PausingEmbedder(embedder, batch_size=8), **{settings})
"""


def write_docs(path: Path, docs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def assert_same_files(a: Path, b: Path) -> None:
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    for name in OUTPUTS:
        for file in sorted((a / name).rglob("*")) if (a / name).is_dir() else [a / name]:
            assert file.read_bytes() == (b / file.relative_to(a)).read_bytes(), file.relative_to(a)


def test_a_build_killed_mid_embedding_resumes_to_the_same_bytes(tmp_path, tiny_docs, form_docs, tiny_embedder):
    docs = tiny_docs + form_docs
    reference = build_index(docs, tmp_path / "reference", tiny_embedder, **SETTINGS)
    assert reference.n_chunks > 3 * SETTINGS["shard_chunks"] and reference.embedded_chunks == reference.n_chunks
    out = tmp_path / "killed"
    code = SLOW_BUILD.replace("{settings}", repr(SETTINGS))
    child = subprocess.Popen(
        [sys.executable, "-c", code, write_docs(tmp_path / "docs.jsonl", docs), out, tiny_embedder.path]
    )
    second_shard = out / ".build" / "vectors-00001.json"
    deadline = time.monotonic() + 120
    while not second_shard.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL, "the build ended before it could be killed"
    committed = len(list((out / ".build").glob("vectors-*.json")))
    assert committed >= 2 and not (out / "index.json").exists()

    resumed = build_index(docs, out, tiny_embedder, **SETTINGS)
    kept = min(committed * SETTINGS["shard_chunks"], resumed.n_chunks)
    assert resumed.embedded_chunks == resumed.n_chunks - kept
    assert_same_files(tmp_path / "reference", out)
    assert not (out / ".build").exists()
    assert SearchIndex.load(out, tiny_embedder).search("QK-20417", k=1)[0].doc_id == "form-0"


def interrupted(docs, out, embedder, monkeypatch, shards: int, **settings) -> None:
    """A build that dies (an exception) while embedding shard number `shards`."""
    calls, encode = [], embedder.encode

    def encode_then_die(texts, show_progress=False):
        calls.append(len(texts))
        if len(calls) > shards:
            raise KeyboardInterrupt
        return encode(texts, show_progress)

    with monkeypatch.context() as patch:
        patch.setattr(embedder, "encode", encode_then_die)
        with pytest.raises(KeyboardInterrupt):
            build_index(docs, out, embedder, **{**SETTINGS, **settings})


def test_only_shards_of_the_same_texts_embedder_and_settings_are_kept(
    tmp_path, tiny_docs, form_docs, tiny_embedder, make_tiny_embedder, monkeypatch
):
    docs = tiny_docs + form_docs
    interrupted(docs, tmp_path, tiny_embedder, monkeypatch, shards=2)
    stats = build_index(docs, tmp_path, tiny_embedder, **SETTINGS)
    assert stats.embedded_chunks == stats.n_chunks - 2 * 8
    # Another chunking: every shard is embedded again.
    interrupted(docs, tmp_path, tiny_embedder, monkeypatch, shards=2)
    assert build_index(docs, tmp_path, tiny_embedder, **{**SETTINGS, "overlap": 20}).embedded_chunks == stats.n_chunks
    # A document of the first shard changed: that shard is embedded again, the second is kept.
    interrupted(docs, tmp_path, tiny_embedder, monkeypatch, shards=2)
    changed = [{**docs[0], "text": docs[0]["text"].replace("5 USD", "6 USD")}, *docs[1:]]
    assert build_index(changed, tmp_path, tiny_embedder, **SETTINGS).embedded_chunks == stats.n_chunks - 8
    # Another embedder: nothing is kept.
    interrupted(docs, tmp_path, tiny_embedder, monkeypatch, shards=2)
    other = Embedder(make_tiny_embedder([d["text"] for d in docs] + ["another vocabulary"]), batch_size=8)
    assert build_index(docs, tmp_path, other, **SETTINGS).embedded_chunks == stats.n_chunks


@pytest.mark.parametrize("index_type", ["flat", "ivfpq"])
def test_faiss_filled_shard_by_shard_equals_faiss_built_at_once(index_type):
    vectors = np.random.default_rng(0).standard_normal((3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    at_once, params = build_faiss_index(vectors, index_type)
    batches = (vectors[i : i + 700] for i in range(0, len(vectors), 700))
    streamed, streamed_params = fill_faiss_index(len(vectors), 32, index_type, batches, lambda rows: vectors[rows])
    assert streamed_params == params and streamed.ntotal == len(vectors)
    assert np.array_equal(faiss.serialize_index(streamed), faiss.serialize_index(at_once))


# A child process that builds (or, with "list", first reads every document into a list, as the
# build did before it streamed) under RLIMIT_DATA set to what the process holds once the
# libraries are loaded and the embedder has run, plus CAP_MB.
CAPPED_BUILD = """
import os, resource, sys
from pathlib import Path
import bm25s, faiss
from cogcore.retrieval import Embedder, build_index
from cogcore.stages.index import JsonlDocs

docs_path, out, embedder_path, cap_mb, how = sys.argv[1:6]
embedder = Embedder(embedder_path, batch_size=16)
embedder.encode(["warm up"] * 16), embedder.count_truncated(["warm up"])

def data_bytes():
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmData:"))

cap = data_bytes() + int(float(cap_mb) * 2**20)
resource.setrlimit(resource.RLIMIT_DATA, (cap, resource.getrlimit(resource.RLIMIT_DATA)[1]))
docs = JsonlDocs(Path(docs_path)) if how == "stream" else list(JsonlDocs(Path(docs_path)))
stats = build_index(docs, Path(out), embedder, chunk_chars=4000, overlap=100, shard_chunks=16, progress=False)
print(stats.n_chunks, stats.text_mb)
"""
CAP_MB = 16
WORDS = "fee account card branch wire loan rate limit monthly daily transfer office request policy customer".split()


def write_big_corpus(path: Path, n_docs: int, doc_chars: int) -> float:
    """Documents of doc_chars characters each from a small vocabulary (so that the BM25 matrix
    stays small beside the text); returns the file's size in MB."""
    rng = random.Random(0)
    with open(path, "w") as f:
        for i in range(n_docs):
            parts, size = [f"# Policy {i}\n\n"], 0
            while size < doc_chars:
                parts.append(" ".join(rng.choices(WORDS, k=12)) + f" costs {rng.randint(1, 9)} USD.\n")
                size += len(parts[-1])
            doc = {
                "id": f"doc-{i}",
                "source": f"policy/{i}.md",
                "meta": {"title": f"Policy {i}"},
                "text": "".join(parts),
            }
            f.write(json.dumps(doc) + "\n")
    return path.stat().st_size / 2**20


@pytest.mark.slow
def test_the_build_runs_in_memory_a_fraction_of_the_corpus(tmp_path, make_tiny_embedder):
    """50 MB of documents under a cap of 16 MB above the loaded process: the streamed build passes,
    reading the documents into a list (the first thing the build did before it streamed) fails."""
    corpus_mb = write_big_corpus(tmp_path / "docs.jsonl", n_docs=2600, doc_chars=20_000)
    assert corpus_mb > 3 * CAP_MB
    embedder = make_tiny_embedder([" ".join(WORDS) + " policy costs usd 0123456789"])
    config = embedder / "tokenizer_config.json"  # a short window: the cost under test is the corpus's
    config.write_text(json.dumps({**json.loads(config.read_text()), "model_max_length": 16}))
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}

    def build(how: str) -> subprocess.CompletedProcess:
        args = [tmp_path / "docs.jsonl", tmp_path / how, embedder, CAP_MB, how]
        return subprocess.run(
            [sys.executable, "-c", CAPPED_BUILD, *map(str, args)], env=env, capture_output=True, text=True
        )

    held = build("list")
    assert held.returncode != 0 and "MemoryError" in held.stderr, held.stderr[-2000:]
    streamed = build("stream")
    assert streamed.returncode == 0, streamed.stderr[-2000:]
    n_chunks, text_mb = streamed.stdout.split()
    assert int(n_chunks) > 10_000 and float(text_mb) > 3 * CAP_MB
    assert SearchIndex.load(tmp_path / "stream").search("Policy 77 fee", k=1, mode="lexical")[0].doc_id == "doc-77"
