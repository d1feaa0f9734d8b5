"""Files as every stage writes and reads them: atomically, as JSON or JSON lines, hashed.

A file another stage (or a resumed run) reads must never be seen half-written, so each writer here
writes a temporary file in the same folder and renames it over the target: the rename is atomic,
and a killed writer leaves the old file (or none), never a torn one.

    write_json_atomic(folder / "metrics.json", metrics)
    write_jsonl_atomic(folder / "conversations.jsonl", conversations)
    for doc in iter_jsonl(run / "curate" / "docs.jsonl"):
        ...
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary path beside `path`, then rename it over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_json_atomic(path: Path, data) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: Path, rows: Iterable[dict]) -> int:
    """One JSON object per line, streamed (rows may be a generator); returns the number written."""
    n = 0

    def write(tmp: Path) -> None:
        nonlocal n
        with open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1

    write_atomic(path, write)
    return n


def replace_folder_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """A folder cannot be renamed over a non-empty one: write a temporary folder, move the old one
    aside, rename the new one in, then delete the old one. Only folders this function made are
    deleted (its own temporary and set-aside names, with this process's id)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        write(tmp)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def iter_jsonl(path: Path) -> Iterator[dict]:
    """The objects of a JSON-lines file, one at a time (blank lines skipped)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def read_jsonl(path: Path) -> list[dict]:
    return list(iter_jsonl(path))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
