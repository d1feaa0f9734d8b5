"""Readers: turn source files into document records `{id, text, source, meta}`.

A file that cannot be read (corrupt, wrong encoding, binary, not the format it claims) is skipped
and reported as `Unreadable(path, reason)`; the run goes on. Gzip-compressed files (`.gz`) are read
transparently.

    for item in read_source(path="docs/**/*.md", name="handbook"):
        ...  # a Document dict, or an Unreadable
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import itertools
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

TEXT_SUFFIXES = {".txt": "txt", ".md": "md", ".markdown": "md", ".rst": "txt", ".json": "json", ".jsonl": "jsonl"}


@dataclass(frozen=True)
class Unreadable:
    path: str
    reason: str


def list_files(path: str) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        return sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
    return sorted(Path(f) for f in glob.glob(path, recursive=True) if Path(f).is_file())


def detect_format(path: Path, declared: str) -> str | None:
    if declared != "auto":
        return declared
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return TEXT_SUFFIXES.get(suffixes[-1]) if suffixes else None


def read_source(path: str, name: str, fmt: str = "auto", text_field: str = "text",
                id_field: str | None = None, title_field: str | None = None,
                meta_fields: tuple[str, ...] = ()) -> Iterator[dict | Unreadable]:
    root = _source_root(path)
    for file in list_files(path):
        rel = str(file.relative_to(root)) if file.is_relative_to(root) else file.name
        kind = detect_format(file, fmt)
        if kind is None:
            yield Unreadable(str(file), "unsupported_format")
            continue
        try:
            raw = _read_text(file)
        except (OSError, EOFError, zlib.error) as e:  # zlib.error: a gzip whose deflate stream is corrupt
            yield Unreadable(str(file), f"unreadable_file: {type(e).__name__}")
            continue
        except UnicodeDecodeError:
            yield Unreadable(str(file), "bad_encoding")
            continue
        if "\x00" in raw:
            yield Unreadable(str(file), "binary_content")
            continue
        if kind in ("txt", "md"):
            yield {"id": _file_id(name, rel), "text": raw, "source": name,
                   "meta": {"title": _title_from_text(raw, file), "path": str(file)}}
            continue
        try:
            rows = _parse_json(raw, kind)
        except ValueError as e:
            yield Unreadable(str(file), f"bad_{kind}: {str(e)[:80]}")
            continue
        yield from _records(rows, rel, name, text_field, id_field, title_field, meta_fields)


def _read_text(file: Path) -> str:
    if file.suffix.lower() == ".gz":
        with gzip.open(file) as f:
            data = f.read()
    else:
        data = file.read_bytes()
    return data.decode("utf-8")


def _parse_json(raw: str, kind: str) -> list:
    if kind == "jsonl":
        return [json.loads(line) for line in raw.splitlines() if line.strip()]
    data = json.loads(raw)
    if isinstance(data, dict):  # {id: record} or one record
        data = [dict(v, id=v.get("id", k)) if isinstance(v, dict) else v for k, v in data.items()] \
            if all(isinstance(v, dict) for v in data.values()) else [data]
    if not isinstance(data, list):
        raise ValueError("expected a list of records")
    return data


def _records(rows: list, file: str, name: str, text_field: str, id_field: str | None,
             title_field: str | None, meta_fields: tuple[str, ...]) -> Iterator[dict | Unreadable]:
    for i, row in enumerate(rows):
        where = f"{file}#{i}"
        if not isinstance(row, dict):
            yield Unreadable(where, "record_not_an_object")
            continue
        text = row.get(text_field)
        if not isinstance(text, str):
            yield Unreadable(where, f"missing_text_field: {text_field}")
            continue
        doc_id = str(row[id_field]) if id_field and row.get(id_field) is not None else f"{_file_id(name, file)}-{i}"
        meta = {k: row[k] for k in meta_fields if k in row}
        meta["title"] = str(row.get(title_field, "")) if title_field else ""
        meta["path"] = where
        yield {"id": doc_id, "text": text, "source": name, "meta": meta}


def _file_id(name: str, rel: str) -> str:
    # From the path relative to the source's root, so ids are the same on every machine.
    return f"{name}-{hashlib.sha1(rel.encode()).hexdigest()[:10]}"


def _source_root(path: str) -> Path:
    p = Path(path)
    if p.is_dir():
        return p
    if p.is_file():
        return p.parent
    fixed = list(itertools.takewhile(lambda part: not any(ch in part for ch in "*?["), p.parts))
    return Path(*fixed) if fixed else Path(".")


def _title_from_text(text: str, file: Path) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip().lstrip("#").strip()[:120]
    return file.stem
