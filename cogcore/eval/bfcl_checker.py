"""BFCL's AST checker: is a model's list of tool calls one of the possible answers?

A re-statement of `bfcl_eval/eval_checker/ast_eval/ast_checker.py` (Python language) and of the
relevance rule in `bfcl_eval/eval_checker/eval_runner.py`, verdict for verdict, quirks included
(`benchmarks/bfcl_agreement.py` runs both on the same outputs and reports the agreement):

- simple: exactly one call, to the (only) function, checked as below;
- multiple: exactly one call, to the function named by the answer, among several offered;
- parallel / parallel_multiple: as many calls as answers, in any order, matched greedily (each
  answer takes the first unmatched call that passes, so a right set of calls can fail when one
  call fits two answers: BFCL's parallel_178 reversed);
- irrelevance: valid when the model makes no call.

A call passes when: its name is the function's (with '.' read as '_' for OpenAI-style names);
every required parameter is present; no parameter is unknown to the doc or the answer; each
value has the doc's type (an int passes for a float; a value of the answer's own type passes too,
BFCL's "variable" case); the value is among the allowed ones, strings compared after
`standardize` (no spaces or `,./-_*^`, lower case), lists element-wise, dicts key by key; and
every answer parameter the call leaves out is optional ("" among its allowed values).
"""

from __future__ import annotations

import re

PYTHON_TYPES = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}
NESTED_TYPES = ("array", "tuple")  # checked one level deep, as BFCL does
_PUNCT = re.compile(r"[ ,./\-_*^]")


class Fail(Exception):
    """A failed check; `kind` is BFCL's error_type (e.g. "simple_function_checker:wrong_func_name")."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def check(
    category: str,
    functions: list[dict],
    calls: list[dict],
    possible_answer: list[dict] | None,
    underscore_names: bool = True,
) -> tuple[bool, str]:
    """(valid, error) for one BFCL entry; calls are [{"name": str, "arguments": dict}] as
    `parse_tool_calls` returns them; error is "" when valid, else "<BFCL error_type>: <why>".

    `underscore_names` says the model was shown `math_factorial` for `math.factorial` (`to_tools`).
    """
    try:
        if "irrelevance" in category:
            if calls:
                raise Fail("irrelevance_error:decoder_success", f"{len(calls)} call(s) where none was wanted")
            return True, ""
        output = [{c["name"]: c["arguments"]} for c in calls]
        if "parallel" in category:
            _check_parallel(functions, output, possible_answer, underscore_names)
        elif "multiple" in category:
            _count(output, len(possible_answer), "multiple_function_checker")
            expected = _find(functions, _name_of(possible_answer[0]))
            _check_call(expected, output[0], possible_answer[0], underscore_names)
        else:
            _count(output, 1, "simple_function_checker")
            _check_call(functions[0], output[0], possible_answer[0], underscore_names)
    except Fail as fail:
        return False, str(fail)
    return True, ""


def standardize(text: str) -> str:
    """BFCL's string normalization: 'April 1, 2024' and 'april 1 2024' compare equal."""
    return _PUNCT.sub("", text).lower().replace("'", '"')


def _count(output: list, wanted: int, checker: str) -> None:
    if len(output) != wanted:
        raise Fail(f"{checker}:wrong_count", f"expected {wanted} call(s), got {len(output)}")


def _name_of(answer: dict) -> str:
    return next(iter(answer))


def _find(functions: list[dict], name: str) -> dict:
    for fn in functions:
        if fn["name"] == name:
            return fn
    raise Fail("ast_checker:unknown_function", f"{name!r} is not among the entry's functions")


def _check_parallel(functions, output, answers, underscore_names) -> None:
    _count(output, len(answers), "parallel_function_checker_no_order")
    matched: set[int] = set()
    for i, answer in enumerate(answers):
        fn = _find(functions, _name_of(answer))
        for index, call in enumerate(output):
            if index in matched:
                continue
            try:
                _check_call(fn, call, answer, underscore_names)
            except Fail:
                continue
            matched.add(index)
            break
        else:
            raise Fail(
                "parallel_function_checker_no_order:cannot_find_match",
                f"no call matches answer {i} ({_name_of(answer)})",
            )


def _check_call(fn: dict, call: dict, answer: dict, underscore_names: bool) -> None:
    """BFCL's simple_function_checker: one {name: arguments} against one {name: {param: allowed}}."""
    allowed = answer[_name_of(answer)]
    name = fn["name"].replace(".", "_") if underscore_names else fn["name"]
    if name not in call:
        raise Fail("simple_function_checker:wrong_func_name", f"function {name!r} not called")
    args = call[name]
    properties = fn["parameters"]["properties"]
    for param in fn["parameters"].get("required", []):
        if param not in args:
            raise Fail("simple_function_checker:missing_required", f"missing required parameter {param!r}")
    for param, value in args.items():
        if param not in properties or param not in allowed:
            raise Fail("simple_function_checker:unexpected_param", f"unexpected parameter {param!r}")
        _check_value(param, value, properties[param], allowed[param])
    for param, options in allowed.items():
        if param not in args and "" not in options:
            raise Fail("simple_function_checker:missing_optional", f"parameter {param!r} left out but not optional")


def _check_value(param: str, value, doc: dict, options: list) -> None:
    declared = doc.get("type")
    expected = PYTHON_TYPES.get(declared, str)
    nested = PYTHON_TYPES.get(doc.get("items", {}).get("type")) if declared in NESTED_TYPES else None
    if declared == "tuple" and type(value) is tuple:
        value = list(value)
    if declared == "float" and type(value) is int:  # Python's int-to-float promotion is allowed
        value = float(value)
    valid, is_variable = _type_ok(value, options, expected, nested)
    if not valid:
        nested_error = type(value) is expected and type(value) is _answer_type(options)  # BFCL's labelling
        error = "type_error:nested" if nested_error else "type_error:simple"
        raise Fail(error, f"{param!r}: expected {declared}, got {type(value).__name__} {value!r}")
    # A value of the answer's own type (a "variable") skips the structured comparisons below.
    if not is_variable:
        if expected is dict:
            kind = _dict_error(value, options)
            return _expect(kind is None, kind, param, value, options)
        if expected is list and nested is dict:
            kind = _list_of_dicts_error(value, options)
            return _expect(kind is None, kind, param, value, options)
        if expected is str:
            allowed = [standardize(o) for o in options if type(o) is str]
            return _expect(standardize(value) in allowed, "value_error:string", param, value, options)
        if expected is list:
            allowed = [[_std(x) for x in o] for o in options]
            return _expect([_std(x) for x in value] in allowed, "value_error:list/tuple", param, value, options)
    _expect(value in options, "value_error:others", param, value, options)


def _expect(ok: bool, kind: str, param: str, value, options: list) -> None:
    if not ok:
        raise Fail(kind, f"{param!r}: {value!r} is not one of {options!r}")


def _std(value):
    return standardize(value) if type(value) is str else value


def _answer_type(options: list):
    """The type of the first non-optional allowed value, which BFCL takes as the intended type."""
    return next((type(o) for o in options if o != ""), None)


def _type_ok(value, options: list, expected: type, nested: type | None) -> tuple[bool, bool]:
    """BFCL's type_checker: (valid, is_variable). Types are exact (a bool is not an int). A list's
    items must all fit the item type (or the item type of some allowed list), one level deep;
    an allowed value that is not a list (such as "") waives the item check."""
    answer_type = _answer_type(options)
    is_variable = answer_type is not None and answer_type is not expected
    if type(value) is expected:
        if nested is None:
            return True, is_variable
        for option in options:
            if type(option) is list and not all(_type_ok(item, option, nested, None)[0] for item in value):
                continue
            return True, is_variable
        return False, False
    if answer_type is not None and type(value) is answer_type:
        return True, True
    return False, False


def _dict_error(value: dict, options: list) -> str | None:
    """None when some allowed dict has every key of value with an allowed value and value lacks only
    optional keys; else BFCL's error type for the last allowed dict tried."""
    kind = "dict_checker:unclear"  # no allowed dict at all ("" only)
    for option in options:
        if option == "":
            continue
        kind = None
        for key, item in value.items():
            if key not in option:
                kind = "value_error:dict_key"
                break
            if _std(item) not in [_std(o) for o in option[key]]:
                kind = "value_error:dict_value"
                break
        if any(key not in value and "" not in allowed for key, allowed in option.items()):
            kind = "value_error:dict_key"
        if kind is None:
            return None
    return kind


def _list_of_dicts_error(value: list, options: list) -> str | None:
    """None when some allowed list has as many dicts as value, each matching in order ("" stands
    for an empty list); else BFCL's error type for the last allowed list tried."""
    kind = "list_dict_checker:unclear"
    for option in options:
        if not isinstance(option, (list, str)) or len(option) != len(value):
            kind = "value_error:list_dict_count"
            continue
        kind = None
        for item, allowed in zip(value, option):
            kind = _dict_error(item, [allowed]) if isinstance(item, dict) else "value_error:dict_value"
            if kind:
                break
        if kind is None:
            return None
    return kind
