"""cogcore's lm-eval tasks: written from a tiny corpus, run through lm-eval on a tiny model in
process and once with the plain `lm_eval` CLI; the fact-excluded perplexity checked by hand;
standard tasks skipped offline with a message; the backend choice."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cogcore.curate.facts import FactDetector
from cogcore.eval import tasks as T
from cogcore.models import ModelSpec
from cogcore.questions import make_questions

TEXTS = [
    ("Wire fees", "Outgoing wire transfers cost $25 per transfer.\nIncoming wires cost $15 and settle within 2 days."),
    ("Savings", "The savings account pays 2.5% interest per year.\nCustomers need $100 to open the savings account."),
    ("Cards", "A replacement debit card costs $10 and arrives within 7 days.\nCard limits reset on 1 March 2024."),
    ("Loans", "Personal loans carry a fee of $150 at signing.\nThe loan rate is 6.9% for terms up to 36 months."),
    ("Overdraft", "The overdraft fee is $35 per item.\nOverdraft protection transfers cost $12 each time."),
    ("Deposits", "Mobile deposits above $5,000 are held for 3 days.\nThe daily mobile deposit limit is $2,500."),
    ("Branches", "Branches open at 9:00 AM on weekdays.\nThe branch on Main Street closed on 15 June 2023."),
    ("Checking", "Premium checking costs $25 per month unless balances exceed $1,500.\nThe APY is 0.10%."),
]
DOCS = [
    {"id": f"d{i}", "text": text, "meta": {"title": title, "split": "heldout" if i < 4 else "train"}}
    for i, (title, text) in enumerate(TEXTS)
]
ALL_TASKS = {T.CLOSEDBOOK, T.OPENBOOK, T.CLOZE, T.TRAIN_RECALL, T.HELDOUT_PPL, T.HELDOUT_PPL_NOFACTS}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def facts():
    return [f for d in DOCS for f in FactDetector().detect(d)]


@pytest.fixture(scope="module")
def tiny_dir(make_tiny_llm):
    return make_tiny_llm([t for _, t in TEXTS] * 3)


@pytest.fixture(scope="module")
def index(make_tiny_embedder, tmp_path_factory):
    from cogcore.retrieval import Embedder, SearchIndex, build_index

    folder = tmp_path_factory.mktemp("index")
    build_index(DOCS, folder, Embedder(str(make_tiny_embedder([t for _, t in TEXTS]))), chunk_chars=200, overlap=20)
    return SearchIndex.load(folder)


@pytest.fixture(scope="module")
def task_dir(facts, index, tmp_path_factory):
    titles = {d["id"]: d["meta"]["title"] for d in DOCS}
    split = {d["id"]: d["meta"]["split"] for d in DOCS}
    heldout_q = make_questions([f for f in facts if split[f["doc_id"]] == "heldout"], titles, 10)
    train_q = make_questions([f for f in facts if split[f["doc_id"]] == "train"], titles, 10)
    folder = tmp_path_factory.mktemp("tasks")
    names = T.write_tasks(
        folder,
        heldout_q,
        facts,
        [d for d in DOCS if d["meta"]["split"] == "heldout"],
        seed=0,
        passages=T.retrieve_passages(index, heldout_q, 2),
        train_questions=train_q,
    )
    assert set(names) == ALL_TASKS
    return folder


def _rows(task_dir: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (task_dir / f"{name}.jsonl").read_text().splitlines()]


def _load(path):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), AutoTokenizer.from_pretrained(path)


def test_task_data_is_what_each_task_promises(task_dir, facts):
    closed, opened = _rows(task_dir, T.CLOSEDBOOK), _rows(task_dir, T.OPENBOOK)
    # open-book: the same questions and choices, with the search tool's passages
    assert [{k: r[k] for k in closed[0]} for r in opened] == closed
    assert all(r["passages"].startswith("1. [d") for r in opened)
    heldout_facts = {f["id"]: f for f in facts}
    for row in _rows(task_dir, T.CLOZE):
        fact = heldout_facts[row["fact_id"]]
        # the fact's own sentence, exactly, with the true value in the blank
        assert row["prefix"] + row["choices"][row["gold"]] == fact["context"]
        assert len(set(row["choices"])) == 4
    train_ids = {d["id"] for d in DOCS if d["meta"]["split"] == "train"}
    recall = _rows(task_dir, T.TRAIN_RECALL)
    assert recall and all(heldout_facts[r["fact_id"]]["doc_id"] in train_ids for r in recall)
    assert all(heldout_facts[r["fact_id"]]["doc_id"] not in train_ids for r in closed)
    yaml_text = (task_dir / f"{T.HELDOUT_PPL_NOFACTS}.yaml").read_text()
    assert "!function cogcore_task_metrics.segment_perplexity" in yaml_text


def test_nonfact_segments_leave_out_every_fact_and_keep_everything_else(facts):
    for doc in DOCS:
        rows = T.nonfact_segments(doc, facts, 10_000)
        mine = [f for f in facts if f["doc_id"] == doc["id"]]
        assert mine and rows
        for r in rows:
            assert doc["text"].startswith(r["context"] + r["continuation"])
            assert not any(f["text"] in r["continuation"] for f in mine)
        # what is not scored is the facts and the whitespace before them, nothing else
        scored = {i for r in rows for i in range(len(r["context"]), len(r["context"]) + len(r["continuation"]))}
        left_out = "".join(ch for i, ch in enumerate(doc["text"]) if i not in scored)
        assert left_out.split() == " ".join(f["text"] for f in sorted(mine, key=lambda f: f["start"])).split()


def _hand_loglikelihood(model, tok, rows: list[dict]) -> tuple[float, int]:
    """Sum of log p(continuation | context) over the rows, and the number of tokens scored."""
    total, n = 0.0, 0
    for r in rows:
        if r["context"]:
            ctx = tok(r["context"], add_special_tokens=False)["input_ids"]
            cont = tok(r["context"] + r["continuation"], add_special_tokens=False)["input_ids"][len(ctx) :]
        else:  # lm-eval conditions an empty context on its prefix token (BOS here)
            ctx, cont = [tok.bos_token_id], tok(r["continuation"], add_special_tokens=False)["input_ids"]
        ids = torch.tensor([ctx + cont])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
        total += sum(logp[len(ctx) - 1 + j, t].item() for j, t in enumerate(cont))
        n += len(cont)
    return total, n


def test_tasks_run_in_process_and_fact_excluded_perplexity_matches_a_hand_count(task_dir, tiny_dir, facts):
    model, tok = _load(tiny_dir)
    manager = T.task_manager(task_dir, with_defaults=False)
    out = T.run_lm_eval(
        T.make_lm("hf", model, tok, ModelSpec(str(tiny_dir), "float32", trust_remote_code=False), batch_size=4),
        manager,
        sorted(ALL_TASKS),
    )
    assert set(out) == ALL_TASKS
    for name in (T.CLOSEDBOOK, T.OPENBOOK, T.CLOZE, T.TRAIN_RECALL):
        assert 0 <= out[name]["acc"] <= 1
    rows = _rows(task_dir, T.HELDOUT_PPL_NOFACTS)
    ll, n_tokens = _hand_loglikelihood(model, tok, rows)
    words = sum(len(r["continuation"].split()) for r in rows)
    n_bytes = sum(len(r["continuation"].encode()) for r in rows)
    nofacts = out[T.HELDOUT_PPL_NOFACTS]
    assert nofacts["word_perplexity"] == pytest.approx(math.exp(-ll / words), rel=1e-4)
    assert nofacts["bits_per_byte"] == pytest.approx(-ll / n_bytes / math.log(2), rel=1e-4)
    # every token of the held-out text is scored except those of the facts (with their leading space)
    text_tokens, fact_tokens = 0, 0
    for doc in (d for d in DOCS if d["meta"]["split"] == "heldout"):
        enc = tok(doc["text"], add_special_tokens=False, return_offsets_mapping=True)
        spans = [(f["start"], f["end"]) for f in facts if f["doc_id"] == doc["id"]]
        text_tokens += len(enc["input_ids"])
        fact_tokens += sum(any(s < e_ and s_ < e for s_, e_ in spans) for s, e in enc["offset_mapping"])
    assert fact_tokens > 0 and n_tokens == text_tokens - fact_tokens
    assert nofacts["word_perplexity"] != pytest.approx(out[T.HELDOUT_PPL]["word_perplexity"], rel=1e-3)


def test_plain_lm_eval_cli_runs_the_tasks(task_dir, tiny_dir, tmp_path):
    cli = Path(sys.executable).with_name("lm_eval")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            str(cli),
            "run",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={tiny_dir},dtype=float32",
            "--include_path",
            str(task_dir),
            "--tasks",
            f"{T.HELDOUT_PPL_NOFACTS},{T.CLOZE}",
            "--device",
            "cpu",
            "--batch_size",
            "4",
            "--output_path",
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())["results"]
    assert result[T.CLOZE]["acc,none"] >= 0 and result[T.HELDOUT_PPL_NOFACTS]["word_perplexity,none"] > 1


def test_unknown_standard_task_names_close_matches(task_dir):
    manager = T.task_manager(task_dir, with_defaults=False)
    T.check_task_names([T.CLOZE], manager)
    with pytest.raises(
        ValueError,
        match=r"eval.lm_eval_tasks: unknown lm-eval task\(s\) 'cogcore_clozz' "
        r"\(did you mean: cogcore_cloze",
    ):
        T.check_task_names(["cogcore_clozz"], manager)


def test_a_standard_task_without_its_dataset_offline_is_skipped_not_a_crash(task_dir, tiny_dir, caplog):
    # hellaswag is a real lm-eval task whose dataset is not cached here (HF_DATASETS_OFFLINE=1).
    model, tok = _load(tiny_dir)
    manager = T.task_manager(task_dir, with_defaults=True)
    T.check_task_names(["hellaswag", T.CLOZE], manager)
    with caplog.at_level("WARNING", logger="cogcore.eval"):
        out = T.run_standard_tasks(
            T.make_lm("hf", model, tok, ModelSpec(str(tiny_dir), "float32", trust_remote_code=False), 4),
            manager,
            ["hellaswag", T.CLOZE],
        )
    assert out["hellaswag"]["skipped"].startswith("hellaswag: dataset not available offline (")
    assert "acc" in out[T.CLOZE]  # the other task still ran
    assert any("skipped lm-eval task hellaswag" in m for m in caplog.messages)
    again = T.run_standard_tasks(None, manager, ["hellaswag"], skip={"hellaswag": out["hellaswag"]})
    assert again == {"hellaswag": out["hellaswag"]}


@pytest.mark.parametrize(
    "requested, vllm, cuda, chosen",
    [
        ("auto", True, True, "vllm"),
        ("auto", False, True, "hf"),
        ("auto", True, False, "hf"),
        ("hf", True, True, "hf"),
        ("vllm", True, True, "vllm"),
    ],
)
def test_backend_choice(requested, vllm, cuda, chosen):
    assert T.choose_backend(requested, vllm_installed=vllm, cuda=cuda) == chosen


def test_backend_vllm_refused_where_it_cannot_run():
    with pytest.raises(RuntimeError, match="no GPU"):
        T.choose_backend("vllm", vllm_installed=True, cuda=False)
    with pytest.raises(RuntimeError, match="vllm is not installed"):
        T.choose_backend("vllm", vllm_installed=False, cuda=True)
    # here: no vllm package, so auto is the in-process HF backend
    assert T.choose_backend("auto") == ("vllm" if torch.cuda.is_available() and T._imports("vllm") else "hf")


def test_recipe_eval_fields_are_validated_with_their_path():
    from cogcore.recipe import RecipeError, validate

    base = {
        "name": "x",
        "sources": [{"name": "s", "path": "docs"}],
        "base_model": {"path": "m"},
        "index": {"embedder": "e"},
    }
    ok = validate(
        {
            **base,
            "eval": {
                "lm_eval_tasks": ["hellaswag", "arc_easy"],
                "backend": "vllm",
                "lm_eval_limit": 50,
                "openbook_passages": 0,
                "canary_candidates": 200,
            },
        }
    )
    assert ok.eval.lm_eval_tasks == ["hellaswag", "arc_easy"] and ok.eval.backend == "vllm"
    assert validate(base).eval.backend == "auto" and validate(base).eval.lm_eval_tasks == []
    for bad, where in (
        ({"lm_eval_tasks": ["hellaswag,arc_easy"]}, "eval.lm_eval_tasks"),
        ({"backend": "tpu"}, "eval.backend"),
        ({"lm_eval_limt": 5}, "eval.lm_eval_limt"),
        ({"canary_candidates": 1}, "eval.canary_candidates"),
    ):
        with pytest.raises(RecipeError) as error:
            validate({**base, "eval": bad})
        assert error.value.problems[0].startswith(where), error.value.problems
