"""Tool-use conversations: synthesized from training facts and the real search index, or read from
the user's own files; tokenized with loss on assistant turns only.

Synthesized kinds (shares set by the recipe's `train.tools.mix`); every tool result is what the
real index (through the runtime's own dispatch) returns:

- single: a cloze question about a fact, one `search` call, the value with its source.
- multi: two questions about facts of different documents, two calls in one turn, an answer per
  question with its source.
- no_call: the answer is already in the conversation (the user quotes the sentence, or asks which
  document an earlier answer came from): the assistant answers without a call.
- tool_error: a bad call (empty query, unknown argument, wrong type) gets the tool's real error;
  the assistant retries once with the corrected call. The bad call carries no loss (`weight: 0`).
- unanswerable: the result shown does not hold the value: the assistant says it could not find it
  (so the model learns not to invent a value).

User files hold OpenAI-format lines (`{"messages": [...]}`); a line whose roles, tool names or
arguments do not fit the declared tools is skipped and counted by reason.

    conversations, counts = synthesize(questions, index, plan_counts(64, mix))
    rows, too_long = tokenize_conversations(tokenizer, conversations, seq_len=512, tools=[SEARCH_TOOL])
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from cogcore.questions import Question, answer_matches
from cogcore.retrieval import DEFAULT_K, SEARCH_TOOL, SearchIndex, format_hits, run_search_tool, shorten
from cogcore.retrieval.hits import Hit
from cogcore.retrieval.tool import MAX_PASSAGE_CHARS
from cogcore.runtime import argument_error, dispatch
from cogcore.train.chat_template import TemplateError, tokenize_with_mask
from cogcore.train.packing import IGNORE_INDEX
from cogcore.untrusted_text import control_strings

NOT_FOUND = "I could not find that in the documents."
KINDS = ("single", "multi", "no_call", "tool_error", "unanswerable")
FOLLOW_UP = "Which document is that from?"
# Mistakes a model makes with search (None stands for the question's query); their error text comes
# from the runtime's dispatch and the real tool, as at serving.
BAD_ARGUMENTS = ({"query": ""}, {"question": None}, {"query": None, "k": "three"})


def plan_counts(total: int, mix: dict[str, float]) -> dict[str, int]:
    """Conversations per kind: `total` split by the shares in `mix` (largest remainder)."""
    weight = sum(mix.values())
    exact = {k: total * mix.get(k, 0) / weight for k in KINDS}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(KINDS, key=lambda k: counts[k] - exact[k])[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def _call(name: str, arguments: dict) -> dict:
    # Arguments as a JSON string: in a datasets (Arrow) column, dicts of different calls are merged into one
    # struct holding every key seen, so each call would come back with the other calls' keys set to null.
    return {"type": "function", "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}}


def _record(kind: str, questions: list[Question], found: bool, messages: list[dict]) -> dict:
    return {"kind": kind, "fact_ids": [q.fact_id for q in questions], "found": found, "messages": messages}


def _holding(q: Question, hits: list[Hit]) -> Hit | None:
    # Judge by the passage text the model is shown (cut to MAX_PASSAGE_CHARS), not the whole
    # chunk: answering with a value the result does not show would teach the model to guess.
    return next((h for h in hits if answer_matches(q.answer, shorten(h.text, MAX_PASSAGE_CHARS))), None)


def _answer(q: Question, hit: Hit | None) -> str:
    return f"{q.answer} (source: {hit.doc_id})" if hit else NOT_FOUND


def single(q: Question, hits: list[Hit]) -> dict:
    """One call; the value and its source, or NOT_FOUND when the shown result lacks it."""
    hit = _holding(q, hits)
    return _record(
        "single" if hit else "unanswerable",
        [q],
        hit is not None,
        [
            {"role": "user", "content": q.question},
            {"role": "assistant", "content": "", "tool_calls": [_call("search", {"query": q.query})]},
            {"role": "tool", "name": "search", "content": format_hits(hits)},
            {"role": "assistant", "content": _answer(q, hit)},
        ],
    )


def multi(q1: Question, hits1: list[Hit], q2: Question, hits2: list[Hit]) -> dict:
    """Two questions, two calls in one turn, one answer line per question."""
    h1, h2 = _holding(q1, hits1), _holding(q2, hits2)
    return _record(
        "multi",
        [q1, q2],
        bool(h1 and h2),
        [
            {"role": "user", "content": f"Two questions.\n1. {q1.question}\n2. {q2.question}"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [_call("search", {"query": q1.query}), _call("search", {"query": q2.query})],
            },
            {"role": "tool", "name": "search", "content": format_hits(hits1)},
            {"role": "tool", "name": "search", "content": format_hits(hits2)},
            {"role": "assistant", "content": f"1. {_answer(q1, h1)}\n2. {_answer(q2, h2)}"},
        ],
    )


def quoted(q: Question) -> dict:
    """No call: the user quotes the sentence that holds the value."""
    return _record(
        "no_call",
        [q],
        True,
        [
            {"role": "user", "content": f'From our documents: "{q.context}"\n{q.question}'},
            {"role": "assistant", "content": f"{q.answer} (from the text you quoted)"},
        ],
    )


def follow_up(q: Question, hits: list[Hit]) -> dict:
    """No call in the last turn: which document an earlier, found answer came from."""
    conv = single(q, hits)
    hit = _holding(q, hits)
    title = f" ({hit.title})" if hit.title else ""
    conv["messages"] += [
        {"role": "user", "content": FOLLOW_UP},
        {"role": "assistant", "content": f"It is from {hit.doc_id}{title}."},
    ]
    return {**conv, "kind": "no_call"}


def tool_error(q: Question, hits: list[Hit], search_tools: dict, variant: int) -> dict:
    """A bad call, the runtime's real error for it, then one corrected call and the answer."""
    bad = {k: q.query if v is None else v for k, v in BAD_ARGUMENTS[variant % len(BAD_ARGUMENTS)].items()}
    error = dispatch(search_tools, {"name": "search", "arguments": bad})
    if not error.startswith("error:"):  # a bad call that the tool accepted would teach nothing
        raise RuntimeError(f"search accepted the bad arguments {bad}")
    conv = single(q, hits)
    user, *rest = conv["messages"]
    conv["messages"] = [
        user,
        {"role": "assistant", "content": "", "tool_calls": [_call("search", bad)], "weight": 0},
        {"role": "tool", "name": "search", "content": error},
        *rest,
    ]
    return {**conv, "kind": "tool_error"}


def build_conversations(questions: list[Question], index: SearchIndex, k: int = DEFAULT_K) -> list[dict]:
    """One single-call conversation per question, with the tool result from the real index."""
    return [single(q, hits) for q, hits in zip(questions, index.search_many([q.query for q in questions], k=k))]


def synthesize(
    questions: list[Question], index: SearchIndex, counts: dict[str, int], seed: int = 0, k: int = DEFAULT_K
) -> tuple[list[dict], dict]:
    """Conversations of each kind, up to `counts[kind]`, each question used once; and, per kind,
    how many were asked for and made (a small corpus may not have enough found or unfound facts).

    Kinds take turns in proportion to their counts, so a short pool shortens every kind alike.
    """
    results = index.search_many([q.query for q in questions], k=k)
    pool = list(zip(questions, results))
    random.Random(seed).shuffle(pool)
    found = [(q, h) for q, h in pool if _holding(q, h)]
    unfound = [(q, h) for q, h in pool if not _holding(q, h)]
    search_tools = {"search": (SEARCH_TOOL, lambda args: run_search_tool(index, args, MAX_PASSAGE_CHARS))}
    out: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    turns = sorted(((n + 0.5) / counts[kind], KINDS.index(kind)) for kind in KINDS for n in range(counts[kind]))
    for _, kind_index in turns:
        kind = KINDS[kind_index]
        conv = _make(kind, len(out[kind]), found, unfound, search_tools)
        if conv:
            out[kind].append(conv)
    made = {kind: {"requested": counts[kind], "made": len(out[kind])} for kind in KINDS}
    return [conv for kind in KINDS for conv in out[kind]], made


def _make(kind: str, n: int, found: list, unfound: list, search_tools: dict) -> dict | None:
    """The n-th conversation of a kind, taking its questions off the pools; None when they are empty."""
    if kind == "unanswerable":
        return single(*unfound.pop(0)) if unfound else None
    if kind == "no_call":  # alternately a quoted sentence (any question) and a follow-up (a found one)
        if n % 2 and found:
            return follow_up(*found.pop(0))
        return quoted((unfound or found).pop(0)[0]) if unfound or found else None
    if not found:
        return None
    if kind == "single":
        return single(*found.pop(0))
    if kind == "tool_error":
        return tool_error(*found.pop(0), search_tools, n)
    q1, h1 = found[0]
    other = next((i for i, (q2, _) in enumerate(found) if q2.doc_id != q1.doc_id), None)
    if other is None:
        return None
    q2, h2 = found.pop(other)
    found.pop(0)
    return multi(q1, h1, q2, h2)


def tokenize_conversations(
    tokenizer, conversations: list[dict], seq_len: int, tools: list[dict] | None = None, template: str | None = None
) -> tuple[list[dict], int]:
    """Rows of {input_ids, labels} with loss on trained assistant turns only; skip rows over seq_len.

    `tools` (default: search alone) is listed in every system prompt, as at serving; `template`
    defaults to the tokenizer's own chat template. Message text (search results, questions made from
    documents, user files) is neutralized (cogcore.untrusted_text): no document forges a turn or a call.
    """
    tools = [SEARCH_TOOL] if tools is None else tools
    controls = control_strings(tokenizer)
    rows, too_long = [], 0
    for conv in conversations:
        try:
            ids, mask = tokenize_with_mask(tokenizer, conv["messages"], tools, template, controls)
        except TemplateError as e:  # name the conversation: a user file's line, or a synthesized kind
            raise TemplateError(f"conversation {conv.get('source') or conv['kind']}: {e}") from None
        if len(ids) > seq_len:
            too_long += 1  # cutting would drop the answer, the part that matters most
            continue
        rows.append({"input_ids": ids, "labels": [t if m else IGNORE_INDEX for t, m in zip(ids, mask)]})
    return rows, too_long


MESSAGE_KEYS = {"role", "content", "tool_calls", "tool_call_id", "name", "weight"}
LINE_KEYS = {"messages", "tools", "parallel_tool_calls"}


class LineError(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def read_conversation_files(paths: list[Path], tools: list[dict]) -> tuple[list[dict], dict]:
    """Valid conversations from JSONL files, and {lines, kept, skipped: {reason: n}, examples}.

    A line is kept only when its roles are in order, its content is text, and every tool call names
    a declared tool (`tools`, OpenAI function schemas) with arguments valid against its schema.
    """
    declared = {t["function"]["name"]: (t, None) for t in tools}
    conversations, skipped, examples, lines = [], Counter(), {}, 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                lines += 1
                try:
                    conversations.append(
                        {
                            "kind": "file",
                            "source": f"{path.name}:{number}",
                            "fact_ids": [],
                            "found": True,
                            "messages": _valid_messages(line, declared),
                        }
                    )
                except LineError as e:
                    skipped[e.reason] += 1
                    examples.setdefault(e.reason, f"{path.name}:{number}: {e}")
    return conversations, {
        "files": len(paths),
        "lines": lines,
        "kept": len(conversations),
        "skipped": dict(sorted(skipped.items())),
        "examples": examples,
    }


def _valid_messages(line: str, declared: dict) -> list[dict]:
    """The messages of one conversation file line, checked (LineError names the reason) and
    normalized: content parts joined, an assistant's missing content empty."""
    obj = _line_object(line, declared)
    messages, open_calls = [], 0
    for n, m in enumerate(obj["messages"]):
        m = _valid_message(n, m)
        open_calls = _calls_still_open(n, m["role"], open_calls)
        if m["role"] == "assistant":
            calls = m.get("tool_calls") or []
            m = {**m, "content": m.get("content") or ""}
            if calls:
                m["tool_calls"] = [_valid_call(n, c, declared) for c in calls]
            open_calls = len(calls)
        messages.append(m)
    if not any(m["role"] == "assistant" and m.get("weight", 1) for m in messages):
        raise LineError("no_assistant", "no assistant message to train on")
    return messages


def _line_object(line: str, declared: dict) -> dict:
    """The line's JSON object: a non-empty `messages` list, known keys, only declared tools."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise LineError("not_json", f"not JSON ({e.msg})") from None
    except RecursionError:  # Python's parser recurses per level: a line nested ~1000 deep
        raise LineError("not_json", "not JSON that can be read (nested too deeply)") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list) or not obj["messages"]:
        raise LineError("no_messages", 'a line must be an object with a non-empty "messages" list')
    if set(obj) - LINE_KEYS:
        raise LineError("bad_keys", f"unknown key(s) {sorted(set(obj) - LINE_KEYS)}; allowed: {sorted(LINE_KEYS)}")
    for tool in obj.get("tools") or []:
        name = (tool.get("function") or {}).get("name") if isinstance(tool, dict) else None
        if name not in declared:
            raise LineError("undeclared_tool", f"tools lists {name!r}, which the recipe does not declare")
    return obj


def _valid_message(n: int, m) -> dict:
    """Message `n` on its own: keys, role, text content (parts joined), weight."""
    if not isinstance(m, dict) or set(m) - MESSAGE_KEYS:
        raise LineError("bad_message", f"message {n}: must be an object with keys from {sorted(MESSAGE_KEYS)}")
    role = m.get("role")
    if role not in ("system", "user", "assistant", "tool") or (role == "system" and n != 0):
        raise LineError("bad_role", f"message {n}: role {role!r} (system only first; user, assistant, tool)")
    calls = m.get("tool_calls") or []
    if _text_parts(m.get("content")):  # OpenAI content parts, text only: joined
        m = {**m, "content": "".join(p["text"] for p in m["content"])}
    if not (isinstance(m.get("content"), str) or role == "assistant" and calls and m.get("content") is None):
        raise LineError("bad_content", f"message {n}: content must be text")
    if m.get("weight", 1) not in (0, 1) or "weight" in m and role != "assistant":
        raise LineError("bad_message", f"message {n}: weight is 0 or 1, on assistant messages only")
    return m


def _calls_still_open(n: int, role: str, open_calls: int) -> int:
    """Calls without a result after message `n`: each tool message answers one, and nothing else
    may come between a call and its results."""
    if role == "tool":
        if open_calls == 0:
            raise LineError("tool_without_call", f"message {n}: a tool result with no call before it")
        return open_calls - 1
    if open_calls:
        raise LineError("call_without_result", f"message {n}: a call before it has no tool result")
    return open_calls


def _text_parts(content) -> bool:
    return (
        isinstance(content, list)
        and bool(content)
        and all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content)
    )


def _valid_call(n: int, call, declared: dict) -> dict:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise LineError("bad_tool_call", f"message {n}: a tool call needs function.name")
    if fn["name"] not in declared:
        raise LineError("undeclared_tool", f"message {n}: calls {fn['name']!r}, which the recipe does not declare")
    args = fn.get("arguments", {})
    try:
        args = json.loads(args) if isinstance(args, str) else args
    except json.JSONDecodeError:
        raise LineError("bad_arguments", f"message {n}: {fn['name']} arguments are not JSON") from None
    if not isinstance(args, dict):
        raise LineError("bad_arguments", f"message {n}: {fn['name']} arguments must be an object")
    problem = argument_error(declared[fn["name"]][0], args)
    if problem:
        raise LineError("bad_arguments", f"message {n}: {fn['name']} arguments: {problem}")
    return _call(fn["name"], args)
