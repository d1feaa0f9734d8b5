"""The tool-call protocol between a model and its tools: hermes-style markup, read as data.

The assistant calls a tool as `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (the
Qwen2.5 / Hermes layout that vLLM's `hermes` parser reads). `parse_tool_calls` turns generated text
into calls, parsed as JSON only and bounded in size, depth and number, never evaluated; the runtime
dispatches them to declared tools, training writes them, BFCL scores them. `template_messages`
prepares OpenAI-style messages for a chat template: arguments as mappings, and every string that
came from a document or a model neutralized (cogcore.untrusted_text), so that only the template
itself writes turn tokens and tool markup.

    content, calls, errors = parse_tool_calls(generated_text)
    prompt = tokenizer.apply_chat_template(template_messages(messages, control_strings(tokenizer)), ...)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from cogcore.untrusted_text import neutralize

# No `\s*` around the lazy group: against a long whitespace run it backtracks quadratically (50k
# spaces took minutes); the call is stripped instead.
_TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)
# A call is a name and a few arguments. A model that runs away (a bracket repeated until
# max_new_tokens) must get an error back, not crash the loop: Python's JSON parser recurses once per
# nesting level (100k `[` raise RecursionError), and so do schema checks and re-serialization.
MAX_CALL_CHARS = 16_000
MAX_CALL_DEPTH = 32
MAX_CALLS = 16  # per turn: each one runs a tool
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def parse_tool_calls(text: str) -> tuple[str, list[dict], list[str]]:
    """Split generated text into (content, calls, errors). Calls are parsed as JSON data only.

    A call is {"name": str, "arguments": dict}; anything else is reported in `errors` (the runtime
    sends those back to the model) and never executed; so are calls beyond MAX_CALLS, longer than
    MAX_CALL_CHARS or nested deeper than MAX_CALL_DEPTH.
    """
    calls, errors = [], []
    raws = [raw.strip() for raw in _TOOL_CALL.findall(text)]
    for raw in raws[:MAX_CALLS]:
        call, problem = _read_call(raw)
        if problem:
            errors.append(f"malformed tool call ({problem}): {raw[:200]}")
        else:
            calls.append(call)
    if len(raws) > MAX_CALLS:
        errors.append(
            f"too many tool calls in one turn ({len(raws)}); the first {MAX_CALLS} were read, "
            f"the other {len(raws) - MAX_CALLS} were not run"
        )
    content = _TOOL_CALL.sub("", text).replace("<|im_end|>", "").strip()
    return content, calls, errors


def _read_call(raw: str) -> tuple[dict | None, str | None]:
    """(call, None), or (None, what is wrong with it)."""
    if len(raw) > MAX_CALL_CHARS:
        return None, f"too long: {len(raw)} characters, at most {MAX_CALL_CHARS}"
    if _nesting(raw) > MAX_CALL_DEPTH:
        return None, f"nested deeper than {MAX_CALL_DEPTH} levels"
    try:
        # strict=False: a control character inside a string (which constrained decoding lets through)
        # is data; the arguments are checked against the tool's schema next.
        obj = json.loads(raw, strict=False)
    except json.JSONDecodeError as e:
        return None, f"not JSON: {e.msg}"
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None, "needs a name"
    args = obj.get("arguments", {})
    if isinstance(args, str):  # JSON inside a JSON string: its nesting was not counted above
        if _nesting(args) > MAX_CALL_DEPTH:
            return None, f"arguments nested deeper than {MAX_CALL_DEPTH} levels"
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return None, "arguments are not JSON"
    if not isinstance(args, dict):
        return None, "arguments must be an object"
    return {"name": obj["name"], "arguments": args}, None


def _nesting(raw: str) -> int:
    """How deep arrays and objects nest in raw, brackets inside strings not counted."""
    depth = deepest = 0
    for bracket in re.findall(r"[\[\]{}]", _JSON_STRING.sub('""', raw)):
        depth = depth + 1 if bracket in "[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


def template_messages(messages: list[dict], controls: Iterable[str] = ()) -> list[dict]:
    """Messages as a chat template expects them: tool-call arguments as mappings (most model templates
    print `arguments | tojson`, which would quote a JSON string), no training-only keys (`weight`).

    With `controls` (`untrusted_text.control_strings(tokenizer)`), every content and argument string
    is neutralized: a search result, a question made from a document or a model's own words cannot
    forge a turn, a call or the end of a tool result, while the template's own markup still parses.
    """
    out = []
    for m in messages:
        m = {k: v for k, v in m.items() if k != "weight"}
        if m.get("tool_calls"):
            m["tool_calls"] = [_call_with_mapping(c) for c in m["tool_calls"]]
        out.append(_neutralized_message(m, frozenset(controls)) if controls else m)
    return out


def _call_with_mapping(call: dict) -> dict:
    fn = call.get("function", call)  # OpenAI's {"function": {...}} or a bare {"name", "arguments"}
    if not isinstance(fn.get("arguments"), str):
        return call
    fn = {**fn, "arguments": json.loads(fn["arguments"])}
    return {**call, "function": fn} if "function" in call else fn


def _neutralized_message(m: dict, controls: frozenset[str]) -> dict:
    """Content and call arguments neutralized; roles and tool names kept, so that the template still
    tells turns apart and calls still name their tools."""
    m = dict(m)
    if isinstance(m.get("content"), str):
        m["content"] = neutralize(m["content"], controls)
    if m.get("tool_calls"):
        m["tool_calls"] = [_neutralized_call(c, controls) for c in m["tool_calls"]]
    return m


def _neutralized_call(call: dict, controls: frozenset[str]) -> dict:
    fn = call.get("function", call)
    if "arguments" in fn:
        fn = {**fn, "arguments": _neutralized_value(fn["arguments"], controls)}
    return {**call, "function": fn} if "function" in call else fn


def _neutralized_value(value, controls: frozenset[str]):
    if isinstance(value, str):
        return neutralize(value, controls)
    if isinstance(value, list):
        return [_neutralized_value(v, controls) for v in value]
    if isinstance(value, dict):
        return {_neutralized_value(k, controls): _neutralized_value(v, controls) for k, v in value.items()}
    return value
