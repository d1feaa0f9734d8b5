"""train.cpt reads its training text streamed from curate's files: the same documents, facts and
order as the lists it held before (rebalancing's repeats and the held-out split included), the
same rows; and it builds them under a memory cap several times smaller than the corpus, where
holding the corpus in lists fails."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from cogcore.recipe import validate
from cogcore.stages import cpt
from cogcore.stages.corpus import TRAIN, load_corpus
from cogcore.stages.training_corpus import CuratedIndex, StreamedCorpus
from cogcore.train.cpt_data import encode_documents, pack_rows

WORDS = "ledger branch vault teller clearing deposit transfer statement".split()


def _doc(n: int, words: int = 40) -> dict:
    body = " ".join(WORDS[(n * 7 + i) % len(WORDS)] for i in range(words))
    text = f"Branch {n} keeps {n * 13} lockers. Its fee is {n % 9 + 2} USD a month. {body}."
    meta = {"split": "heldout" if n % 5 == 0 else "train", "title": f"Branch {n}"}
    if n % 7 == 0:
        meta["upsample"] = 2  # rebalancing repeats a thin cluster's documents
    return {"id": f"d{n}", "text": text, "source": f"s{n % 2}", "meta": meta}


def _facts(doc: dict, names: bool = False) -> list[dict]:
    """Its two numbers as facts; with `names`, every "vault" too (a fact-dense corpus, whose
    facts file, each fact with its sentence, outweighs its documents as curate's often does)."""
    n, text = int(doc["id"][1:]), doc["text"]
    found = [(text.index(v), v, "number") for v in (f"{n * 13} lockers", f"{n % 9 + 2} USD")]
    if names:
        found += [(at, "vault", "name") for at in range(len(text)) if text.startswith("vault", at)]
    return [
        {
            "id": f"{doc['id']}:{at}",
            "doc_id": doc["id"],
            "start": at,
            "end": at + len(value),
            "text": value,
            "kind": kind,
            "context": text[max(0, at - 150) : at + 150],
        }
        for at, value, kind in sorted(found)
    ]


def write_corpus(curate: Path, docs: int, words: int = 40, names: bool = False) -> None:
    """docs.jsonl and facts.jsonl as curate writes them (a document's facts together, in document
    order), written line by line."""
    curate.mkdir(parents=True, exist_ok=True)
    with open(curate / "docs.jsonl", "w") as d, open(curate / "facts.jsonl", "w") as f:
        for n in range(docs):
            doc = _doc(n, words)
            d.write(json.dumps(doc) + "\n")
            f.writelines(json.dumps(x) + "\n" for x in _facts(doc, names))


def make_recipe(run_root: Path, llm: Path, **cpt_fields):
    return validate(
        {
            "name": "t",
            "run_dir": str(run_root),
            "sources": [{"name": "s", "path": "x.jsonl"}],
            "base_model": {"path": str(llm)},
            "index": {"embedder": str(llm)},
            "facts": {"strategy": "mask"},
            "train": {"cpt": {"seq_len": 64, "data_shard_docs": 25, **cpt_fields}},
        }
    )


@pytest.fixture(scope="module")
def llm_dir(make_tiny_llm):
    return make_tiny_llm([_doc(n)["text"] for n in range(40)])


def test_the_streamed_corpus_is_the_listed_one(tmp_path):
    write_corpus(tmp_path / "curate", 60)
    # A hand-written facts file need not keep a document's facts together.
    lines = (tmp_path / "curate" / "facts.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "curate" / "facts.jsonl").write_text("".join(lines[1::2] + lines[0::2]))
    corpus = load_corpus(tmp_path)
    index = CuratedIndex.build(tmp_path / "curate", TRAIN)
    assert index.ids == [d["id"] for d in corpus.split(TRAIN)]
    streamed = list(StreamedCorpus(index, range(len(index))).records())
    facts = corpus.facts_in(TRAIN)
    assert [(d, f) for d, f, _ in streamed] == [
        (d, [x for x in facts if x["doc_id"] == d["id"]]) for d in corpus.split(TRAIN)
    ]
    assert StreamedCorpus(index, [3, 0, 3]).count() == 3
    again = StreamedCorpus(index, [3, 0, 3])  # positions in the train split: d1 d2 d3 d4 d6 ...
    assert [d["id"] for d, _, _ in again.records()] == ["d4", "d1", "d4"]
    assert [d["id"] for d, _, _ in again.records("s0")] == ["d4", "d4"] and again.groups() == ["s0", "s1"]


def test_the_stage_trains_the_rows_it_built_from_lists(llm_dir, tmp_path):
    run = tmp_path / "runs" / "t"
    write_corpus(run / "curate", 60)
    recipe = make_recipe(tmp_path / "runs", llm_dir, data_workers=2)
    tok = AutoTokenizer.from_pretrained(llm_dir)
    counts: dict = {}
    rows = list(cpt.training_rows(recipe, run, tmp_path, None, tok, tmp_path / "shards", counts))
    corpus = load_corpus(run)
    listed = [d for d in corpus.split(TRAIN) for _ in range(d["meta"].get("upsample", 1))]
    expected_counts: dict = {}
    encoded = encode_documents(tok, listed, corpus.facts_in(TRAIN), "mask", expected_counts)
    assert rows == list(pack_rows(encoded, 64, True, expected_counts))
    assert counts.pop("tokenize_throughput")["shards"] == 3  # 48 train documents and 7 repeats, 25 a shard
    assert counts == expected_counts and counts["docs"] == 55


# A child process: everything imported and one small build run first (lazy imports and caches
# settle), then its data segment capped at what it uses plus HEADROOM, then the big corpus built
# streamed, or read as lists.
CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from transformers import AutoTokenizer
    from cogcore.stages import cpt
    from cogcore.stages.corpus import load_corpus
    from cogcore.train.data_cache import cached_rows, shard_folder
    sys.path.insert(0, {tests!r})
    from test_cpt_streaming import make_recipe

    mode, root, llm, headroom = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    tok = AutoTokenizer.from_pretrained(llm)

    def build(run):
        recipe = make_recipe(run.parent, llm, data_workers=1)
        folder = run / "train"
        key = {{"run": str(run)}}
        go = lambda counts: cpt.training_rows(recipe, run, folder, None, tok, shard_folder(folder, key), counts)
        return cached_rows(folder, key, go)

    build(root / "small" / "t")
    data = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmData")) * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (data + headroom, data + headroom))
    try:
        if mode == "lists":
            print(len(load_corpus(root / "big" / "t").docs))
        else:
            rows, counts = build(root / "big" / "t")
            print(json.dumps({{"rows": len(rows), "docs": counts["docs"]}}))
    except MemoryError:
        sys.exit(3)
    """
)
HEADROOM = 12 << 20  # the streamed build needs 6-12 MiB more than a small one; lists of this corpus 64-128


def small_stacks() -> None:
    """A thread's stack is sized by RLIMIT_STACK (8 MiB by default) and counts as data: a thread
    that Arrow or the tokenizer starts after the cap would eat most of it."""
    resource.setrlimit(resource.RLIMIT_STACK, (1 << 20, resource.getrlimit(resource.RLIMIT_STACK)[1]))


def test_a_corpus_several_times_the_memory_cap_is_built_streamed(llm_dir, tmp_path):
    write_corpus(tmp_path / "small" / "t" / "curate", 30)
    big = tmp_path / "big" / "t" / "curate"
    write_corpus(big, 2200, words=300, names=True)
    corpus_bytes = sum(f.stat().st_size for f in big.iterdir())
    assert corpus_bytes > 3 * HEADROOM
    script = CHILD.format(tests=str(Path(__file__).parent))

    def child(mode: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-c", script, mode, str(tmp_path), str(llm_dir), str(HEADROOM)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=600, preexec_fn=small_stacks)

    lists = child("lists")
    assert lists.returncode == 3, lists.stderr[-2000:]  # MemoryError: the corpus does not fit
    streamed = child("streamed")
    assert streamed.returncode == 0, streamed.stderr[-2000:]
    trained = sum((1 + (n % 7 == 0)) * (n % 5 != 0) for n in range(2200))  # the train split, repeats included
    assert json.loads(streamed.stdout.splitlines()[-1])["docs"] == trained
