"""Tokenization by shard: a pool of processes gives the single-process rows and counts exactly, under
every facts strategy; shards are committed files a re-run does not encode again; a build killed by
SIGKILL half-way resumes from its last shard and saves the same bytes as one never killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from cogcore.train.cpt_data import EncodeSettings, build_cpt_rows, empty_counts, pack_rows, plan_calls
from cogcore.train.cpt_shards import LocalShardPool, ShardedEncoder, ShardStore, read_shard
from cogcore.train.data_cache import cached_rows, shard_folder


def _doc(n: int) -> dict:
    text = (
        f"Branch {n} opens at {n % 5 + 7} am. The safe holds {n * 11} boxes, rented at {n % 9 + 2} USD a month.\n"
        f"Call 555-{n:04d} to book one; a <|im_end|> in the text stays plain text."
    )
    return {"id": f"d{n}", "text": text, "source": f"s{n % 3}", "meta": {"title": f"Branch {n}"}}


DOCS = [_doc(n) for n in range(47)]


def _facts(docs: list[dict]) -> list[dict]:
    out = []
    for d in docs:
        n = int(d["id"][1:])
        first, second = d["text"].split("\n")
        for value, context in ((f"{n * 11} boxes", first), ("USD", first), (f"555-{n:04d}", second)):
            at = d["text"].index(value)
            out.append({"doc_id": d["id"], "start": at, "end": at + len(value), "text": value, "context": context})
    return out[::-1]  # out of order: the join must not rely on it


FACTS = _facts(DOCS)


@pytest.fixture(scope="module")
def llm_dir(make_tiny_llm):
    return make_tiny_llm([d["text"] for d in DOCS])


@pytest.fixture(scope="module")
def tok(llm_dir):
    return AutoTokenizer.from_pretrained(llm_dir)


def _records(docs=DOCS, facts=FACTS, calls=None):
    by_doc: dict = {}
    for f in facts:
        by_doc.setdefault(f["doc_id"], []).append(f)
    return [(d, by_doc.get(d["id"], []), None if calls is None else calls.get(d["id"], [])) for d in docs]


def _sharded(tok, folder: Path, settings: EncodeSettings, workers: int, records, seq_len=48, shard_docs=10):
    encoder = ShardedEncoder(ShardStore(folder), LocalShardPool(tok, workers), settings, shard_docs=shard_docs)
    counts = empty_counts(settings)
    rows = list(pack_rows(encoder.encode(records, "docs", counts, total=len(records)), seq_len, True, counts))
    return rows, counts


@pytest.mark.parametrize("strategy", ["keep", "mask", "toolcall"])
def test_a_pool_gives_the_single_process_rows_and_counts(tok, tmp_path, strategy):
    expected, expected_counts = build_cpt_rows(tok, DOCS, FACTS, 48, strategy, max_calls_per_doc=1, packing=True)
    settings = EncodeSettings(strategy, max_calls_per_doc=1)
    rows, counts = _sharded(tok, tmp_path, settings, workers=2, records=_records())
    assert rows == expected
    throughput = counts.pop("tokenize_throughput")
    assert counts == expected_counts
    assert throughput["workers"] == 2 and throughput["shards"] == 5 and throughput["docs"] == len(DOCS)
    assert throughput["tokens"] == counts["tokens"] and throughput["tokens_per_s"] > 0 and throughput["mb_per_s"] > 0
    if strategy == "toolcall":
        assert counts["calls"] == len(DOCS)  # one call each: the calls were planned in the workers


def test_the_filters_calls_are_kept_even_where_empty(tok, tmp_path):
    by_doc: dict = {}
    for f in FACTS:
        by_doc.setdefault(f["doc_id"], []).append(f)
    calls = {d["id"]: plan_calls(d, by_doc[d["id"]], 2) for d in DOCS[::2]}  # odd documents: no call kept
    expected, expected_counts = build_cpt_rows(tok, DOCS, FACTS, 48, "toolcall", calls=calls, packing=True)
    rows, counts = _sharded(tok, tmp_path, EncodeSettings("toolcall"), 2, _records(calls=calls))
    counts.pop("tokenize_throughput")
    assert rows == expected and counts == expected_counts


def test_committed_shards_are_not_encoded_again(tok, tmp_path):
    settings = EncodeSettings("mask")
    first, _ = _sharded(tok, tmp_path, settings, 1, _records())
    shards = sorted(tmp_path.glob("docs-*.arrow"))
    assert [p.name for p in shards] == [f"docs-{i:06d}.arrow" for i in range(5)]
    table, counts = read_shard(shards[-1])
    assert table.num_rows == counts["docs"] == 7 and counts["text_bytes"] > 0
    shards[2].unlink()  # as if the run was killed before this one was committed
    again, counts = _sharded(tok, tmp_path, settings, 1, _records())
    assert again == first
    assert counts["tokenize_throughput"]["shards_resumed"] == 4 and counts["tokenize_throughput"]["shards"] == 1
    assert counts["docs"] == len(DOCS)  # the resumed shards' counts are read back from their files


def test_tokenizing_shows_rates_and_eta(tok, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    encoder = ShardedEncoder(ShardStore(tmp_path), LocalShardPool(tok, 1), EncodeSettings("keep"), shard_docs=10)
    list(encoder.encode(_records(), "docs", empty_counts(encoder.settings), total=len(DOCS), progress=True))
    err = capsys.readouterr().err
    assert "tokenizing (local x1)" in err and f"{len(DOCS)}/{len(DOCS)}" in err
    assert "doc/s" in err and "tok/s" in err and "MB/s" in err and "<00:00" in err  # rate, and time left


# The child builds the cache as the stage does, slowed after its first shard so that the parent
# can kill it there; the parent then builds again without the brake.
CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    from transformers import AutoTokenizer
    from test_cpt_shards import build
    tok = AutoTokenizer.from_pretrained({llm!r})
    def braked(records):
        for n, r in enumerate(records):
            if n >= 10:
                time.sleep(0.2)
            yield r
    build(tok, {folder!r}, braked)
    """
)


def build(tok, folder, wrap=lambda records: records):
    """The cache of DOCS under `mask`, tokenized by shard (the stage's layout), in `folder`."""
    key = {"docs": "DOCS", "strategy": "mask"}
    settings = EncodeSettings("mask")
    store = ShardStore(shard_folder(folder, key))
    encoder = ShardedEncoder(store, LocalShardPool(tok, 1), settings, shard_docs=10)

    def rows(counts):
        counts.update(empty_counts(settings))
        yield from pack_rows(encoder.encode(wrap(_records()), "docs", counts), 48, True, counts)

    return cached_rows(Path(folder), key, rows)


def test_a_killed_build_resumes_from_its_last_shard_to_the_same_bytes(tok, llm_dir, tmp_path):
    killed = tmp_path / "killed"
    script = CHILD.format(tests=str(Path(__file__).parent), llm=str(llm_dir), folder=str(killed))
    child = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "TQDM_DISABLE": "1"})
    key = {"docs": "DOCS", "strategy": "mask"}
    first = shard_folder(killed, key) / "docs-000000.arrow"
    deadline = time.time() + 120
    while not first.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert first.exists(), "the child committed no shard"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    left = sorted(p.name for p in shard_folder(killed, key).iterdir())
    assert "docs-000000.arrow" in left and "docs-000004.arrow" not in left  # killed half-way
    assert not list(killed.glob("tokens-*/counts.json"))

    resumed, counts = build(tok, killed)
    assert counts["tokenize_throughput"]["shards_resumed"] >= 1
    assert not shard_folder(killed, key).exists()  # removed once the rows are saved
    whole, whole_counts = build(tok, tmp_path / "whole")
    assert resumed.to_list() == whole.to_list()
    (saved,) = killed.glob("tokens-*")
    for path in sorted(p for p in saved.rglob("*") if p.is_file() and p.name != "counts.json"):
        assert path.read_bytes() == (tmp_path / "whole" / saved.name / path.relative_to(saved)).read_bytes(), path
    skip = ("tokenize_throughput", "tokenize_seconds")
    assert {k: v for k, v in counts.items() if k not in skip} == {
        k: v for k, v in whole_counts.items() if k not in skip
    }
    assert json.loads((saved / "counts.json").read_text())["docs"] == len(DOCS)
