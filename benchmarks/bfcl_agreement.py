"""Agreement of cogcore's BFCL scorer with BFCL's own checker, on the same model outputs.

Model outputs are made without a model, from real BFCL entries: the ground truth (the first allowed
value of each parameter) and systematic mutations of it (wrong function, missing required
parameter, extra parameter, wrong type, wrong value, extra / dropped / reordered parallel calls,
no call, an unparseable call, a call on an irrelevance entry). Each output is rendered as the
hermes text the model would emit, then judged twice:

- cogcore: `parse_tool_calls` + `cogcore.eval.bfcl_checker.check` (what `run_bfcl` does);
- BFCL: its own code, run from the installed bfcl-eval package: the Qwen function-calling
  handler's `decode_ast` (hermes `<tool_call>` parsing), `eval_runner._evaluate_single_ast_entry`
  / `_evaluate_single_relevance_entry` and `ast_checker`.

    .venv/bin/pip install --no-deps bfcl-eval
    .venv/bin/python benchmarks/bfcl_agreement.py                 # every entry of 10 categories
    .venv/bin/python benchmarks/bfcl_agreement.py --dots          # names shown with dots, not '_'
    .venv/bin/python benchmarks/bfcl_agreement.py --categories simple_python parallel --limit 50

bfcl-eval imports every vendor SDK it supports at module import (anthropic, openai, cohere, ...),
so its modules are not imported whole: the checker module is loaded from its file with a stub for
`bfcl_eval.constants.model_config` (only `underscore_to_dot` is read from it), and the few runner,
handler and utils functions are compiled from their source text. Nothing of this reaches cogcore.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import random
import sys
import typing
from collections import defaultdict
from pathlib import Path
from types import ModuleType, SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cogcore.eval.bfcl import score_output  # noqa: E402
from cogcore.eval.bfcl_data import CATEGORIES, BfclEntry, data_dir, load_category, to_tool_name  # noqa: E402

_MISSING = object()
# A well-typed value per BFCL parameter type, for the made-up call of the relevance outputs
# (whether a call is made is what irrelevance scores, not its arguments).
VALUE_OF_TYPE = {"integer": 1, "float": 1.0, "boolean": True, "array": [], "tuple": [], "dict": {}}


# ---- BFCL's own verdicts ------------------------------------------------------------------------


def _load_ast_checker(root: Path) -> ModuleType:
    stub = ModuleType("bfcl_eval.constants.model_config")
    stub.MODEL_CONFIG_MAPPING = {
        "cogcore-fc": SimpleNamespace(underscore_to_dot=True),
        "cogcore-fc-dots": SimpleNamespace(underscore_to_dot=False),
    }
    saved = sys.modules.get(stub.__name__)
    sys.modules[stub.__name__] = stub
    try:
        spec = importlib.util.spec_from_file_location(
            "_bfcl_reference_ast_checker", root / "eval_checker/ast_eval/ast_checker.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            sys.modules.pop(stub.__name__)
        else:
            sys.modules[stub.__name__] = saved
    return module


def _compile_functions(path: Path, names: set[str], namespace: dict, class_name: str | None = None) -> None:
    """Define the named top-level (or class_name's) functions of a source file in namespace, undecorated."""
    tree = ast.parse(path.read_text())
    body = tree.body
    if class_name:
        body = next(n for n in body if isinstance(n, ast.ClassDef) and n.name == class_name).body
    found = [n for n in body if isinstance(n, ast.FunctionDef) and n.name in names]
    assert {n.name for n in found} == names, f"{path}: missing {names - {n.name for n in found}}"
    for node in found:
        node.decorator_list = []
    exec(compile(ast.Module(body=found, type_ignores=[]), str(path), "exec"), namespace)


class BfclReference:
    """BFCL's pipeline for one hermes-format model output: decode, format check, AST / relevance check."""

    def __init__(self):
        root = data_dir().parent  # the installed bfcl_eval package
        enums = importlib.import_module("bfcl_eval.constants.enums")  # dependency-free
        self.Language, self.ReturnFormat = enums.Language, enums.ReturnFormat
        ns = {
            "re": __import__("re"),
            "json": json,
            "Any": typing.Any,
            "BaseHandler": object,
            "Language": enums.Language,
            "ReturnFormat": enums.ReturnFormat,
            "ast_checker": _load_ast_checker(root).ast_checker,
        }
        _compile_functions(root / "utils.py", {"is_function_calling_format_output", "is_empty_output"}, ns)
        _compile_functions(
            root / "eval_checker/eval_runner.py", {"_evaluate_single_ast_entry", "_evaluate_single_relevance_entry"}, ns
        )
        _compile_functions(
            root / "model_handler/local_inference/qwen_fc.py",
            {"decode_ast", "_extract_tool_calls"},
            ns,
            class_name="QwenFCHandler",
        )
        self.handler = type(
            "QwenFCDecoder",
            (),
            {"decode_ast": ns["decode_ast"], "_extract_tool_calls": staticmethod(ns["_extract_tool_calls"])},
        )()
        self.ns = ns

    def verdict(self, entry: BfclEntry, text: str, underscore_names: bool = True) -> tuple[bool, str]:
        model = "cogcore-fc" if underscore_names else "cogcore-fc-dots"
        prompt = {"id": entry.id, "function": entry.functions}
        if entry.possible_answer is None:
            r = self.ns["_evaluate_single_relevance_entry"](self.handler, entry.id, text, prompt, model, entry.category)
        else:
            r = self.ns["_evaluate_single_ast_entry"](
                self.handler,
                entry.id,
                text,
                entry.possible_answer,
                prompt,
                model,
                entry.category,
                language=self.Language.PYTHON,
                return_format=self.ReturnFormat.PYTHON,
                has_tool_call_tag=False,
            )
        return r["valid"], r.get("error_type", "")


# ---- model outputs: the ground truth and its mutations ---------------------------------------


def render(calls: list[dict]) -> str:
    """Calls as the chat template writes them; no call is a plain answer."""
    if not calls:
        return "None of the functions can answer this."
    return "\n".join(
        f"<tool_call>\n{json.dumps({'name': c['name'], 'arguments': c['arguments']})}\n</tool_call>" for c in calls
    )


def _shown(name: str, underscore_names: bool) -> str:
    return to_tool_name(name) if underscore_names else name


def _first_allowed(options: list):
    return next((o for o in options if o != ""), _MISSING)


def _chosen_dict(allowed: dict) -> dict:
    """An allowed dict is written {key: [allowed values]}: take the first of each."""
    chosen = {k: _first_allowed(v) for k, v in allowed.items()}
    return {k: v for k, v in chosen.items() if v is not _MISSING}


def answer_calls(entry: BfclEntry, underscore_names: bool = True, optional: bool = True) -> list[dict]:
    """The ground truth as calls: each parameter takes its first allowed value other than "" (which
    marks an optional parameter); with optional=False, optional parameters the doc does not require
    are left out."""
    calls = []
    for answer in entry.possible_answer:
        name, allowed = next(iter(answer.items()))
        parameters = next(f for f in entry.functions if f["name"] == name)["parameters"]
        properties, required = parameters["properties"], parameters.get("required", [])
        args = {}
        for param, options in allowed.items():
            value, doc = _first_allowed(options), properties.get(param, {})
            if value is _MISSING or (not optional and "" in options and param not in required):
                continue
            if doc.get("type") == "dict" and isinstance(value, dict):
                value = _chosen_dict(value)
            elif doc.get("items", {}).get("type") == "dict" and isinstance(value, list):
                value = [_chosen_dict(v) if isinstance(v, dict) else v for v in value]
            args[param] = value
        calls.append({"name": _shown(name, underscore_names), "arguments": args})
    return calls


def _retyped(value):
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return 12345
    return json.dumps(value)


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 7919
    if isinstance(value, str):
        return value + " cogcore"
    if isinstance(value, list):
        return value + value[:1] if value else ["cogcore"]
    if isinstance(value, dict):
        return {**value, "cogcore": 1}
    return "cogcore"


def _with_first(calls: list[dict], **changes) -> list[dict]:
    return [{**calls[0], **changes}] + calls[1:]


def _relevance_outputs(entry: BfclEntry, underscore_names: bool) -> dict[str, tuple[list, bool]]:
    fn = entry.functions[0] if entry.functions else {"name": "lookup", "parameters": {"properties": {}}}
    properties = fn["parameters"]["properties"]
    args = {p: VALUE_OF_TYPE.get(properties.get(p, {}).get("type"), "x") for p in fn["parameters"].get("required", [])}
    call = {"name": _shown(fn["name"], underscore_names), "arguments": args}
    return {"no_call": ([], True), "a_call": ([call], False)}


def _near_misses(calls: list[dict], properties: dict) -> dict[str, tuple[list, bool]]:
    """Changes BFCL forgives (int for float, case and punctuation of strings) and some it does not."""
    args, out = calls[0]["arguments"], {}

    def first(kind, test=lambda v: True):
        return next((p for p, v in args.items() if properties.get(p, {}).get("type") == kind and test(v)), None)

    if p := first("float", lambda v: type(v) is float and v.is_integer()):
        out["int_for_float"] = (_with_first(calls, arguments={**args, p: int(args[p])}), True)
    if p := first("integer", lambda v: type(v) is int):
        out["float_for_int"] = (_with_first(calls, arguments={**args, p: float(args[p])}), False)
    if p := first("string", lambda v: type(v) is str and v.strip()):
        variant = args[p].upper().replace(" ", "-") + "."
        out["string_variant"] = (_with_first(calls, arguments={**args, p: variant}), True)
    if p := first("array", lambda v: type(v) is list and len(set(map(repr, v))) > 1):
        out["list_reordered"] = (_with_first(calls, arguments={**args, p: args[p][::-1]}), False)
    return out


FUZZ_VALUES = [
    None,
    0,
    1,
    -1,
    2.5,
    10.0,
    True,
    False,
    "",
    " ",
    "x",
    "New York",
    "1",
    [],
    [1, 2],
    ["a", "b"],
    [[1]],
    [{}],
    [{"a": 1}],
    {},
    {"a": 1},
    {"a": [1]},
]


def fuzzed(entry: BfclEntry, rng: random.Random, underscore_names: bool = True) -> str:
    """The ground truth with one parameter of one call set to a random value (or dropped), drawn
    from plain JSON values and the entry's own allowed values: for agreement on odd inputs."""
    calls = answer_calls(entry, underscore_names)
    call = rng.choice(calls)
    doc = next(f for f in entry.functions if _shown(f["name"], underscore_names) == call["name"])
    param = rng.choice(sorted(doc["parameters"]["properties"]) or ["x"])
    allowed = [v for a in entry.possible_answer for opts in next(iter(a.values())).values() for v in opts]
    value = rng.choice(FUZZ_VALUES + allowed + [_MISSING])
    args = {k: v for k, v in call["arguments"].items() if k != param}
    if value is not _MISSING:
        args[param] = value
    return render([c if c is not call else {**call, "arguments": args} for c in calls])


def mutations(entry: BfclEntry, underscore_names: bool = True) -> dict[str, tuple[str, bool]]:
    """{mutation: (model output text, the verdict the mutation is meant to earn)}. A few earn
    another verdict on some entries (a reversed list that the answer allows too, a ground truth
    that breaks its own function doc): the "as intended" column counts how often they do not."""
    unparseable = '<tool_call>\n{"name": "f", "arguments": {\n</tool_call>'
    if entry.possible_answer is None:
        out = _relevance_outputs(entry, underscore_names)
        return {**{k: (render(c), ok) for k, (c, ok) in out.items()}, "unparseable_call": (unparseable, True)}
    calls = answer_calls(entry, underscore_names)
    first, args = calls[0], calls[0]["arguments"]
    doc = next(f for f in entry.functions if _shown(f["name"], underscore_names) == first["name"])
    other = next(
        (
            _shown(f["name"], underscore_names)
            for f in entry.functions
            if _shown(f["name"], underscore_names) != first["name"]
        ),
        first["name"] + "_v2",
    )
    out = {
        "ground_truth": (calls, True),
        "optional_left_out": (answer_calls(entry, underscore_names, False), True),
        "no_call": ([], False),
        "extra_call": (calls + calls[:1], False),
        "wrong_name": (_with_first(calls, name=other), False),
        "extra_param": (_with_first(calls, arguments={**args, "cogcore_extra": "x"}), False),
    }
    if dropped := next((p for p in doc["parameters"].get("required", []) if p in args), None):
        out["missing_required"] = (_with_first(calls, arguments={k: v for k, v in args.items() if k != dropped}), False)
    if args:
        param, value = next(iter(args.items()))
        out["wrong_type"] = (_with_first(calls, arguments={**args, param: _retyped(value)}), False)
        out["wrong_value"] = (_with_first(calls, arguments={**args, param: _changed(value)}), False)
    out.update(_near_misses(calls, doc["parameters"]["properties"]))
    if len(calls) > 1:
        out["reordered"] = (calls[::-1], True)
        out["dropped_call"] = (calls[:-1], False)
    return {**{k: (render(c), ok) for k, (c, ok) in out.items()}, "unparseable_call": (unparseable, False)}


# ---- agreement -----------------------------------------------------------------------------------


def agreement_rows(
    entries: list[BfclEntry], reference: BfclReference, underscore_names: bool = True, fuzz: int = 0, seed: int = 0
) -> list[dict]:
    """One row per (entry, output): both verdicts and error types. `fuzz` random outputs per AST
    entry are added (expected verdict None: a random change may or may not be an error)."""
    rows, rng = [], random.Random(seed)
    for entry in entries:
        outputs = mutations(entry, underscore_names)
        if entry.possible_answer is not None:
            outputs.update({f"fuzz_{i}": (fuzzed(entry, rng, underscore_names), None) for i in range(fuzz)})
        for mutation, (text, expected) in outputs.items():
            ours = score_output(entry, text, underscore_names)
            try:
                theirs, their_kind = reference.verdict(entry, text, underscore_names)
            except Exception as e:  # a crash in BFCL's checker is a row of its own
                theirs, their_kind = None, f"raised {type(e).__name__}"
            rows.append(
                {
                    "id": entry.id,
                    "category": entry.category,
                    "mutation": mutation.split("_")[0] if mutation.startswith("fuzz_") else mutation,
                    "expected": expected,
                    "ours": ours["valid"],
                    "bfcl": theirs,
                    "our_kind": ours["error"].split(": ", 1)[0],
                    "bfcl_kind": their_kind,
                }
            )
    return rows


def table(rows: list[dict], key: str) -> list[str]:
    groups = defaultdict(list)
    for r in rows:
        groups[r[key]].append(r)
    lines = [
        f"| {key} | verdicts | agree with BFCL | cogcore pass | BFCL pass | as intended | same error type |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rs in list(groups.items()) + [("all", rows)]:
        n, agree = len(rs), sum(r["ours"] == r["bfcl"] for r in rs)
        meant = [r for r in rs if r["expected"] is not None]
        intended = f"{sum(r['ours'] == r['expected'] for r in meant) / len(meant):.1%}" if meant else "-"
        both_failed = [r for r in rs if r["ours"] is False and r["bfcl"] is False]
        kinds = sum(r["our_kind"] == r["bfcl_kind"] for r in both_failed)
        lines.append(
            f"| {name} | {n} | {agree}/{n} ({agree / n:.2%}) | {sum(r['ours'] for r in rs) / n:.1%} | "
            f"{sum(bool(r['bfcl']) for r in rs) / n:.1%} | {intended} | {kinds}/{len(both_failed)} |"
        )
    return lines


def parsing_note(entries: list[BfclEntry], reference: BfclReference, underscore_names: bool) -> str:
    """The one deliberate divergence, in parsing rather than checking: a call written without the
    newlines around its JSON (which `parse_tool_calls` and vLLM's hermes parser accept)."""
    ast_entries = [e for e in entries if e.possible_answer is not None]
    texts = [
        render(answer_calls(e, underscore_names))
        .replace("<tool_call>\n", "<tool_call>")
        .replace("\n</tool_call>", "</tool_call>")
        for e in ast_entries
    ]
    ours = sum(score_output(e, t, underscore_names)["valid"] for e, t in zip(ast_entries, texts))
    theirs = sum(reference.verdict(e, t, underscore_names)[0] for e, t in zip(ast_entries, texts))
    return (
        f"Parsing (not in the tables): ground truths written <tool_call>{{...}}</tool_call> without newlines "
        f"pass cogcore on {ours}/{len(texts)} entries, BFCL's Qwen-FC decoder on {theirs}/{len(texts)}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--categories", nargs="+", default=list(CATEGORIES))
    parser.add_argument("--limit", type=int, default=None, help="entries per category (default: all)")
    parser.add_argument("--dots", action="store_true", help="function names shown as in BFCL ('math.factorial')")
    parser.add_argument("--fuzz", type=int, default=5, help="random one-parameter changes per entry")
    args = parser.parse_args()
    reference = BfclReference()
    entries = [e for c in args.categories for e in load_category(c, args.limit)]
    rows = agreement_rows(entries, reference, underscore_names=not args.dots, fuzz=args.fuzz)
    print(f"$ python benchmarks/bfcl_agreement.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"{len(entries)} BFCL entries, {len(rows)} verdicts; names {'with dots' if args.dots else 'dots as _'}\n")
    print("\n".join(table(rows, "category")) + "\n")
    print("\n".join(table(rows, "mutation")) + "\n")
    for r in [r for r in rows if r["ours"] != r["bfcl"]][:20]:
        print("DISAGREE", r)
    print(parsing_note(entries, reference, not args.dots))


if __name__ == "__main__":
    main()
