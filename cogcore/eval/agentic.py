"""The agentic check: the trained model, with the real search tool, answers held-out questions.

Scored per question: did it call search, did the search return a passage holding the answer
(retrieval hit), and does its final answer hold the expected value (accuracy). Every transcript
is written to `eval/agentic.jsonl`, so each figure can be checked by reading them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from cogcore.eval.results import AgenticScores
from cogcore.questions import Question, answer_matches
from cogcore.retrieval import SEARCH_TOOL, SearchIndex, run_search_tool
from cogcore.runtime import ToolRuntime


def run_agentic(
    model,
    tokenizer,
    index: SearchIndex,
    questions: list[Question],
    out_path: Path,
    max_new_tokens: int,
    batch_size: int,
    tools=None,
    constrain: str = "none",
) -> AgenticScores:
    """`tools`: what the model was trained with (`runtime.run_tools`); by default `search` alone.
    `constrain`: tool calls constrained to their schema as generated (`runtime.ToolRuntime`)."""
    tools = tools or {"search": (SEARCH_TOOL, lambda a: run_search_tool(index, a))}
    runtime = ToolRuntime(
        model, tokenizer, tools=tools, max_new_tokens=max_new_tokens, batch_size=batch_size, constrain=constrain
    )
    transcripts = runtime.answer_many([q.question for q in questions])
    rows = []
    for q, t in zip(questions, transcripts):
        rows.append(
            {
                "fact_id": q.fact_id,
                "question": q.question,
                "expected": q.answer,
                "answer": t.answer,
                "correct": answer_matches(q.answer, strip_echo(t.answer)),
                "called_search": any(c["name"] == "search" for c in t.calls),
                "retrieval_hit": any(answer_matches(q.answer, passages(c["result"])) for c in t.calls),
                "calls": t.calls,
                "errors": t.errors,
                "seconds": round(t.seconds, 2),
            }
        )
    out_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return summarize(rows)


_ECHO = re.compile(r"<tool_response>.*?(?:</tool_response>|$)|^\s*\d+\. \[[^\]]*\].*$|^error:.*$", re.S | re.M)


def strip_echo(answer: str) -> str:
    """The answer without text the model copied from tool output (passages, errors): a value
    found only in a parroted passage list is not an answer."""
    return _ECHO.sub("", answer)


_PASSAGE_LABEL = re.compile(r"^\d+\. \[[^\]]*\] ?", re.M)


def passages(result: str) -> str:
    """A search result's passage text without its "1. [doc | title]" labels (an answer of "1" is
    not found in a list numbered from 1)."""
    return _PASSAGE_LABEL.sub("", result)


def summarize(rows: list[dict]) -> AgenticScores:
    """Rates over the questions; calls per answer (tool calls made per question answered) and the
    latency of a whole answer, tool calls included (mean, p50, p90)."""
    n = len(rows)
    if n == 0:
        return AgenticScores(n=0)
    seconds = sorted(r["seconds"] for r in rows)
    return AgenticScores(
        n=n,
        accuracy=sum(r["correct"] for r in rows) / n,
        call_rate=sum(r["called_search"] for r in rows) / n,
        retrieval_hit_rate=sum(r["retrieval_hit"] for r in rows) / n,
        calls_per_answer=sum(len(r["calls"]) for r in rows) / n,
        malformed_calls=sum(len(r["errors"]) for r in rows),
        seconds_per_answer=sum(seconds) / n,
        latency_p50_s=percentile(seconds, 50),
        latency_p90_s=percentile(seconds, 90),
    )


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-th percentile of sorted values, linearly interpolated (numpy's default)."""
    at = (len(sorted_values) - 1) * q / 100
    low = int(at)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (at - low)
