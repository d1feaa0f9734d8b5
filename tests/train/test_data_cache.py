"""The token cache: rows tokenized once into an Arrow folder, loaded (not rebuilt) on a re-run,
rebuilt when the inputs change or a killed run left it half-written; train() takes the loaded Dataset."""

from __future__ import annotations

import json

import pytest
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from cogcore.train.cpt_data import encode_documents, pack_rows
from cogcore.train.data_cache import COUNTS_FILE, cache_key, cached_rows

TEXTS = [f"Branch {n} opens at {n % 5 + 7} am and keeps {n * 11} lockers for its customers." for n in range(40)]
DOCS = [{"id": str(n), "text": t} for n, t in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def llm_dir(make_tiny_llm):
    return make_tiny_llm(TEXTS)


@pytest.fixture(scope="module")
def tok(llm_dir):
    return AutoTokenizer.from_pretrained(llm_dir)


class CountingBuild:
    """A real builder (tokenize + pack) that counts how often it runs."""

    def __init__(self, tok, docs=DOCS, packing=True):
        self.tok, self.docs, self.packing, self.calls = tok, docs, packing, 0

    def __call__(self, counts):
        self.calls += 1
        return pack_rows(encode_documents(self.tok, self.docs, [], "keep", counts), 32, self.packing, counts)


def test_rows_are_built_once_then_loaded(tok, tmp_path, monkeypatch):
    import cogcore.train.data_cache as data_cache

    monkeypatch.setattr(data_cache, "WRITE_BATCH", 3)  # several record batches: the streaming path
    build = CountingBuild(tok)
    rows, counts = cached_rows(tmp_path, {"seq_len": 32}, build)
    assert build.calls == 1 and counts["tokens_cached"] is False and counts["rows"] == len(rows) > 3
    expected = list(CountingBuild(tok)({}))
    assert rows.to_list() == expected
    assert set(rows.column_names) == {"input_ids", "labels", "position_ids"}

    again, counts_again = cached_rows(tmp_path, {"seq_len": 32}, build)
    assert build.calls == 1  # loaded, not tokenized again
    assert counts_again["tokens_cached"] is True and again.to_list() == expected
    assert {k: v for k, v in counts_again.items() if k != "tokens_cached"} == {
        k: v for k, v in counts.items() if k != "tokens_cached"
    }

    changed, _ = cached_rows(tmp_path, {"seq_len": 33}, build)  # another key: built anew, beside the first
    assert build.calls == 2 and len(list(tmp_path.glob("tokens-*"))) == 2


def test_a_half_written_cache_is_rebuilt(tok, tmp_path):
    key = {"docs": "x"}
    folder = tmp_path / f"tokens-{cache_key(key)}"
    build = CountingBuild(tok)
    rows, _ = cached_rows(tmp_path, key, build)
    (folder / COUNTS_FILE).unlink()  # as if killed before the folder was complete
    (tmp_path / f"{folder.name}.tmp").mkdir()  # and a leftover of a killed build
    rows2, counts = cached_rows(tmp_path, key, build)
    assert build.calls == 2 and counts["tokens_cached"] is False and rows2.to_list() == rows.to_list()
    assert json.loads((folder / COUNTS_FILE).read_text())["rows"] == len(rows2)
    assert not (tmp_path / f"{folder.name}.tmp").exists()


def test_unpacked_rows_have_no_position_ids(tok, tmp_path):
    rows, _ = cached_rows(tmp_path, {}, CountingBuild(tok, packing=False))
    assert rows.column_names == ["input_ids", "labels"]


def test_train_takes_the_cached_dataset(tok, llm_dir, tmp_path, train_settings, local_model):
    from cogcore.train.trainer import train

    rows, _ = cached_rows(tmp_path / "cache", {}, CountingBuild(tok))
    assert isinstance(rows, Dataset)
    model = AutoModelForCausalLM.from_pretrained(llm_dir)
    settings = train_settings(method="full", max_steps=2, batch_size=2, save_steps=100)
    metrics = train(
        model, tok, rows, out_dir=tmp_path / "out", settings=settings, label="test", model_spec=local_model(llm_dir)
    )
    assert metrics.steps == 2 and metrics.packed is True
    assert metrics.tokens_trained == 2 * 2 * 32  # packed rows count whole (padding of the last one too)
    assert (tmp_path / "out" / "model" / "model.safetensors").exists()


def test_tokenizing_shows_progress(tok, capsys, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    list(encode_documents(tok, DOCS, [], "keep", {}, progress=True))
    err = capsys.readouterr().err
    assert "tokenizing" in err and f"{len(DOCS)}/{len(DOCS)}" in err
