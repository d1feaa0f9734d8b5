"""Files one stage writes for another: the error their readers raise, and the checks every file's class shares.

Each such file (train/cpt/metrics.json, train/cpt/canaries.json, ...) has one dataclass next to the
code that writes it, with `to_json()` and `from_json()`. `from_json` checks the data with
`check_fields` here, so that a file written by another version of cogcore, cut off, or edited by
hand fails at once with one error that names the file, what is wrong with it and which stage to
re-run, instead of a KeyError deep inside a report.

    data = read_json_object(path)   # None when the file does not exist (its stage has not run)
    check_fields(TrainMetrics, data, where=path, stage="train.cpt")
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterable
from pathlib import Path


class RunFileError(Exception):
    """A run directory's file that is there but cannot be what it should be (cut off mid-write, valid
    JSON of the wrong shape, written by another version). The message names the file and why.
    Deliberately not a ValueError, so that no guard that turns ValueErrors into "could not be built"
    or "not run" hides it."""


def rerun(stage: str) -> str:
    """What the user does about a file that cannot be read: build it again."""
    return f"re-run {stage} (cogcore run RECIPE --force {stage})"


def read_json_object(path: Path) -> dict | None:
    """The JSON object in `path`; None when the file does not exist; RunFileError when it is not one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise RunFileError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise RunFileError(
            f"{path}: not valid JSON ({e}): cut off or damaged; run the stage that writes it again"
        ) from None
    if not isinstance(data, dict):
        raise RunFileError(f"{path}: expected a JSON object, found {_kind(data)}")
    return data


def check_fields(cls, data, where: str | Path, stage: str, required: Iterable[str] | None = None) -> None:
    """Raise RunFileError unless `data` is a JSON object holding every `required` field of the
    dataclass `cls` (default: those without a default), no field it lacks, and values of the
    declared types. Fields typed as another dataclass (or a list of one) are checked by that
    class's own `from_json`."""
    if not isinstance(data, dict):
        raise RunFileError(f"{where}: expected a JSON object, found {_kind(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if required is None:
        required = [n for n, f in fields.items() if _has_no_default(f)]
    problems = []
    if unknown := sorted(set(data) - set(fields)):
        problems.append(f"unknown fields {', '.join(unknown)}")
    if missing := [n for n in required if n not in data]:
        problems.append(f"missing fields {', '.join(missing)}")
    hints = typing.get_type_hints(cls)
    problems += [
        f"unexpected content: {name} is {_kind(value)}, expected {_describe(hints[name])}"
        for name, value in data.items()
        if name in hints and not _matches(value, hints[name])
    ]
    if problems:
        raise RunFileError(
            f"{where}: {'; '.join(problems)}: written by another version of cogcore, or damaged; {rerun(stage)}"
        )


def _has_no_default(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _matches(value, hint) -> bool:
    """Whether a JSON value fits a type hint (a nested dataclass: any object; its class checks it)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is typing.Any:
        return True
    if dataclasses.is_dataclass(hint):
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list) and (not args or all(_matches(v, args[0]) for v in value))
    if origin is dict:
        return isinstance(value, dict) and (not args or all(_matches(v, args[1]) for v in value.values()))
    return isinstance(value, hint)


def _describe(hint) -> str:
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    return " or ".join(sorted({_kind_of_type(a) for a in (typing.get_args(hint) if union else (hint,))}))


def _kind_of_type(hint) -> str:
    origin = typing.get_origin(hint) or hint
    return {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(origin, "an object")


def _kind(data) -> str:
    if isinstance(data, bool):
        return "true or false"
    return {list: "a list", str: "a string", dict: "an object", type(None): "null"}.get(type(data), "a number")
