"""The Berkeley Function Calling Leaderboard's single-turn Python data, read from the `bfcl-eval` package.

The package ships the questions (`data/BFCL_v4_<category>.json`, one JSON entry a line) and the
possible answers (`data/possible_answer/BFCL_v4_<category>.json`); only those files are read, so
the package is installed with `pip install --no-deps bfcl-eval` and never imported (importing it
pulls in every vendor SDK it supports).

    entries = load_category("parallel", limit=20)
    tools = to_tools(entries[0].functions)   # OpenAI tool schemas for apply_chat_template(tools=...)

Function docs are written in BFCL's own dialect ("dict" for object, "float", "tuple", "any");
`to_tools` converts them the way BFCL does for OpenAI-style function-calling models
(`bfcl_eval.model_handler.utils.convert_to_tool`), dots in names included: the model sees
`math_factorial` for `math.factorial`, and the checker maps the expected name the same way.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

# The single-turn categories scored by AST match (Python). BFCL v3 called simple_python "simple".
AST_CATEGORIES = (
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
)
RELEVANCE_CATEGORIES = ("irrelevance", "live_irrelevance")
CATEGORIES = AST_CATEGORIES + RELEVANCE_CATEGORIES
DEFAULT_CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
ALIASES = {"simple": "simple_python"}

# bfcl_eval.constants.type_mappings.GORILLA_TO_OPENAPI
GORILLA_TO_OPENAPI = {
    "integer": "integer",
    "number": "number",
    "float": "number",
    "string": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "dict": "object",
    "object": "object",
    "tuple": "array",
    "any": "string",
    "byte": "integer",
    "short": "integer",
    "long": "integer",
    "double": "number",
    "char": "string",
    "ArrayList": "array",
    "Array": "array",
    "HashMap": "object",
    "Hashtable": "object",
    "Queue": "array",
    "Stack": "array",
    "Any": "string",
    "String": "string",
    "Bigint": "integer",
}
PYTHON_HINT = " Note that the provided function is in Python 3 syntax."  # BFCL adds it to every description


@dataclass
class BfclEntry:
    id: str
    category: str
    messages: list[dict]  # the single turn: [system?, user, ...]
    functions: list[dict]  # BFCL function docs, as shipped
    possible_answer: list[dict] | None  # [{func_name: {param: [allowed values]}}]; None for (ir)relevance


def data_dir() -> Path:
    """The `data/` folder of the installed bfcl-eval package, found without importing it."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("BFCL data needs the bfcl-eval package: pip install --no-deps bfcl-eval")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def canonical_category(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in CATEGORIES:
        raise ValueError(f"unknown BFCL category {name!r}; allowed: {', '.join(CATEGORIES)} (or 'simple')")
    return name


def _category_file(folder: Path, category: str) -> Path:
    # The newest release wins: BFCL_v4_x.json over BFCL_v3_x.json.
    pattern = re.compile(rf"BFCL_v(\d+)_{category}\.json")
    found = {int(m[1]): p for p in folder.iterdir() if (m := pattern.fullmatch(p.name))}
    if not found:
        raise FileNotFoundError(f"no BFCL file for {category!r} in {folder}")
    return found[max(found)]


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_category(category: str, limit: int | None = None) -> list[BfclEntry]:
    """The first `limit` entries of a category (all when None), in BFCL's file order."""
    category = canonical_category(category)
    folder = data_dir()
    questions = _read_jsonl(_category_file(folder, category))[:limit]
    answers = {}
    if category in AST_CATEGORIES:
        answer_file = _category_file(folder / "possible_answer", category)
        answers = {a["id"]: a["ground_truth"] for a in _read_jsonl(answer_file)}
    entries = []
    for q in questions:
        if len(q["question"]) != 1:
            raise ValueError(f"{q['id']}: expected one turn, found {len(q['question'])}")
        entries.append(
            BfclEntry(
                q["id"],
                category,
                q["question"][0],
                q["function"],
                answers[q["id"]] if category in AST_CATEGORIES else None,
            )
        )
    return entries


def to_tool_name(name: str) -> str:
    """OpenAI function names allow no '.', so BFCL replaces it with '_' for function-calling models."""
    return name.replace(".", "_")


def to_tools(functions: list[dict]) -> list[dict]:
    """OpenAI tool schemas ({"type": "function", "function": {...}}) for BFCL function docs."""
    tools = []
    for fn in copy.deepcopy(functions):
        fn["name"] = to_tool_name(fn["name"])
        fn["description"] = fn.get("description", "") + PYTHON_HINT
        fn["parameters"]["type"] = "object"
        fn["parameters"]["properties"] = _openai_properties(fn["parameters"].get("properties", {}))
        tools.append({"type": "function", "function": fn})
    return tools


def _openai_properties(properties: dict) -> dict:
    """BFCL's `_cast_to_openai_type`: map types, mark floats, recurse into objects and array items
    (list of any, list of list of any, list of dict, list of list of dict, dict of any)."""
    for prop in properties.values():
        kind = prop.get("type")
        if kind == "float":
            prop["format"] = "float"
            prop["description"] = prop.get("description", "") + " This is a float type value."
        prop["type"] = GORILLA_TO_OPENAPI.get(kind, "string")
        if prop["type"] not in ("array", "object"):
            continue
        if "properties" in prop:
            prop["properties"] = _openai_properties(prop["properties"])
        elif "items" in prop:
            items = prop["items"]
            items["type"] = GORILLA_TO_OPENAPI.get(items.get("type"), "string")
            if items["type"] == "array" and "items" in items:
                items["items"]["type"] = GORILLA_TO_OPENAPI.get(items["items"].get("type"), "string")
            elif items["type"] == "object" and "properties" in items:
                items["properties"] = _openai_properties(items["properties"])
    return properties
