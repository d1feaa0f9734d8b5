"""Scoring of the agentic check: a value counts only when the model states it, not when it
parrots the passages the tool returned."""

import pytest

from cogcore.eval.agentic import strip_echo, summarize
from cogcore.eval.results import AgenticScores
from cogcore.questions import answer_matches


def test_value_inside_parroted_passages_is_not_an_answer():
    parroted = "<tool_response>\n1. [doc_savings_002 | Savings]\n2. [doc_fees | Fees] fee is $2"
    assert answer_matches("2", parroted)  # the raw text would score, wrongly
    assert not answer_matches("2", strip_echo(parroted))
    assert not answer_matches("$2", strip_echo("error: malformed tool call: $2"))


def test_a_stated_answer_survives():
    answer = "$2.00 (source: doc_fees)"
    assert strip_echo(answer) == answer and answer_matches("$2.00", strip_echo(answer))


def test_summary_rates():
    rows = [
        {"correct": True, "called_search": True, "retrieval_hit": True, "calls": [{}], "errors": [], "seconds": 2.0},
        {
            "correct": False,
            "called_search": False,
            "retrieval_hit": False,
            "calls": [],
            "errors": ["x"],
            "seconds": 4.0,
        },
    ]
    s = summarize(rows)
    assert s.to_json() == {
        "n": 2,
        "accuracy": 0.5,
        "call_rate": 0.5,
        "retrieval_hit_rate": 0.5,
        "calls_per_answer": 0.5,
        "malformed_calls": 1,
        "seconds_per_answer": 3.0,
        "latency_p50_s": 3.0,
        "latency_p90_s": 3.8,
    }
    assert summarize([]) == AgenticScores(n=0) and summarize([]).to_json() == {"n": 0}


def test_calls_per_answer_and_latency_percentiles():
    import numpy as np

    seconds = [0.5, 9.0, 1.0, 2.0, 1.5, 30.0, 1.2]
    calls = [1, 3, 1, 2, 0, 4, 1]
    rows = [
        {"correct": True, "called_search": c > 0, "retrieval_hit": False, "calls": [{}] * c, "errors": [], "seconds": s}
        for s, c in zip(seconds, calls)
    ]
    s = summarize(rows)
    assert s.calls_per_answer == sum(calls) / len(calls)
    assert s.latency_p50_s == 1.5 and s.latency_p90_s == pytest.approx(np.percentile(seconds, 90))
    assert summarize(rows[:1]).latency_p90_s == 0.5


def test_retrieval_hit_ignores_the_passage_numbering():
    from cogcore.eval.agentic import passages

    result = "1. [doc_a | Fees] The wire fee is $25.\n2. [doc_b | Limits] Daily limit applies."
    assert not answer_matches("1", passages(result)) and not answer_matches("2", passages(result))
    assert answer_matches("$25", passages(result))
