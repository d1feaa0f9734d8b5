"""Readers: json (list and dict of records), jsonl, txt, md and their .gz variants; files that cannot
be read are skipped and reported with a reason, and reading goes on. The other formats and .zst are
tested in test_readers_formats.py."""

import gzip
import json
from pathlib import Path

import pytest

from cogcore.curate.readers import Unreadable, detect_format, read_source

RECORDS = [
    {"id": "r1", "body": "First record text.", "title": "One", "lang": "en"},
    {"id": "r2", "body": "Second record text.", "title": "Two", "lang": "fr"},
]


def read(path, **kw) -> tuple[list[dict], list[Unreadable]]:
    items = list(read_source(str(path), "src", **kw))
    docs = [i for i in items if isinstance(i, dict)]
    bad = [i for i in items if isinstance(i, Unreadable)]
    assert len(docs) + len(bad) == len(items)
    return docs, bad


def write(path: Path, data: bytes | str, gz: bool = False) -> Path:
    raw = data.encode() if isinstance(data, str) else data
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_json_list_of_records(tmp_path, gz):
    path = write(tmp_path / ("d.json.gz" if gz else "d.json"), json.dumps(RECORDS), gz)
    docs, bad = read(path, text_field="body", id_field="id", title_field="title", meta_fields=("lang",))
    assert bad == []
    assert [(d["id"], d["text"], d["source"]) for d in docs] == [
        ("r1", "First record text.", "src"),
        ("r2", "Second record text.", "src"),
    ]
    assert docs[1]["meta"] == {"lang": "fr", "title": "Two", "path": f"{path.name}#1"}


def test_json_dict_of_records_takes_ids_from_keys(tmp_path):
    data = {"k1": {"body": "Keyed one."}, "k2": {"body": "Keyed two.", "id": "own-id"}}
    docs, bad = read(write(tmp_path / "d.json", json.dumps(data)), text_field="body", id_field="id")
    assert bad == [] and [(d["id"], d["text"]) for d in docs] == [("k1", "Keyed one."), ("own-id", "Keyed two.")]


def test_json_single_record_object(tmp_path):
    docs, _ = read(write(tmp_path / "d.json", json.dumps({"text": "Just one.", "n": 1})))
    assert [d["text"] for d in docs] == ["Just one."]


@pytest.mark.parametrize("gz", [False, True])
def test_jsonl_with_generated_stable_ids(tmp_path, gz):
    lines = "\n".join(json.dumps({"text": t}) for t in ["a b c", "d e f"]) + "\n\n"
    path = write(tmp_path / ("d.jsonl.gz" if gz else "d.jsonl"), lines, gz)
    docs, bad = read(path)
    assert bad == [] and [d["text"] for d in docs] == ["a b c", "d e f"]
    assert len({d["id"] for d in docs}) == 2 and all(d["id"].startswith("src-") for d in docs)
    again, _ = read(path)
    assert [d["id"] for d in again] == [d["id"] for d in docs]  # ids do not change between reads


@pytest.mark.parametrize("name, gz", [("a.txt", False), ("a.md", False), ("a.txt.gz", True), ("a.md.gz", True)])
def test_text_files_become_one_document_titled_by_first_line(tmp_path, name, gz):
    text = "\n# Fees and limits\n\nWire transfers cost $25.\n"
    docs, bad = read(write(tmp_path / name, text, gz))
    assert bad == [] and len(docs) == 1
    assert docs[0]["text"] == text and docs[0]["meta"]["title"] == "Fees and limits"
    assert docs[0]["meta"]["path"] == str(tmp_path / name)


def test_folder_ids_depend_on_the_relative_path_only(tmp_path):
    for root in (tmp_path / "one", tmp_path / "two"):
        (root / "sub").mkdir(parents=True)
        (root / "sub" / "a.txt").write_text("same")
        (root / ".hidden.txt").write_text("skipped")
    ids = [[d["id"] for d in read(root)[0]] for root in (tmp_path / "one", tmp_path / "two")]
    assert ids[0] == ids[1] and len(ids[0]) == 1


def test_glob_reads_only_matching_files(tmp_path):
    (tmp_path / "a.md").write_text("A")
    (tmp_path / "b.md").write_text("B")
    (tmp_path / "c.txt").write_text("C")
    docs, bad = read(tmp_path / "*.md")
    assert sorted(d["text"] for d in docs) == ["A", "B"] and bad == []


def test_bad_files_are_skipped_with_a_reason_and_reading_goes_on(tmp_path):
    good = gzip.compress(("\n".join(json.dumps({"text": f"line {i} " * 50}) for i in range(300))).encode())
    corrupt_body = good[:20] + bytes(b ^ 0xFF for b in good[20:60]) + good[60:]  # valid header, broken deflate
    files = {
        "a_not_gzip.jsonl.gz": b"this is not gzip",
        "b_corrupt_body.jsonl.gz": corrupt_body,
        "c_truncated.jsonl.gz": good[: len(good) // 2],
        "d_invalid.json": b'[{"text": "unterminated',
        "e_invalid.jsonl": b'{"text": "ok"}\n{"text": \n',
        "f_binary.txt": b"PK\x03\x04\x00\x00binary\x00",
        "g_latin1.md": "caf\u00e9 cr\u00e8me".encode("latin-1"),  # read as cp1252, kept and marked
        "h_image.png": b"\x89PNG\r\n",
        "i_not_records.json": b'"a string"',
        "z_good.txt": b"Readable text.",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    docs, bad = read(tmp_path)
    # Record files are streamed, so one that breaks part-way yields the records before the break,
    # and a bad jsonl line is reported on its own while the lines around it are still read.
    texts: dict[str, list[str]] = {}
    for d in docs:
        texts.setdefault(Path(d["meta"]["path"].split("#")[0]).name, []).append(d["text"])
    assert set(texts) == {"z_good.txt", "e_invalid.jsonl", "c_truncated.jsonl.gz", "g_latin1.md"}
    assert texts["z_good.txt"] == ["Readable text."] and texts["e_invalid.jsonl"] == ["ok"]
    assert texts["g_latin1.md"] == ["caf\u00e9 cr\u00e8me"]
    n = len(texts["c_truncated.jsonl.gz"])
    assert 0 < n < 300 and texts["c_truncated.jsonl.gz"] == [f"line {i} " * 50 for i in range(n)]
    reasons = {Path(u.path).name: u.reason for u in bad}
    assert set(reasons) == set(files) - {"z_good.txt", "e_invalid.jsonl", "g_latin1.md"} | {"e_invalid.jsonl#1"}
    assert reasons["a_not_gzip.jsonl.gz"].startswith("corrupt_gzip: Not a gzipped file")
    assert reasons["b_corrupt_body.jsonl.gz"].startswith("corrupt_gzip: ")
    assert reasons["c_truncated.jsonl.gz"] == "corrupt_gzip: truncated"
    assert reasons["d_invalid.json"].startswith("bad_json: ")
    assert reasons["e_invalid.jsonl#1"].startswith("bad_jsonl: ")
    assert reasons["f_binary.txt"] == "binary_content"
    assert reasons["h_image.png"] == "unsupported_format"
    assert reasons["i_not_records.json"] == "bad_json: expected a list of records"


def test_records_without_text_are_reported_one_by_one(tmp_path):
    rows = [{"text": "kept"}, {"body": "no text field"}, {"text": None}, "not an object", {"text": "kept too"}]
    docs, bad = read(write(tmp_path / "d.json", json.dumps(rows)))
    assert [d["text"] for d in docs] == ["kept", "kept too"]
    assert [(u.path, u.reason) for u in bad] == [
        ("d.json#1", "missing_text_field: text"),
        ("d.json#2", "missing_text_field: text"),
        ("d.json#3", "record_not_an_object"),
    ]


def test_declared_format_wins_over_the_suffix(tmp_path):
    path = write(tmp_path / "export.data", json.dumps({"text": "declared json"}) + "\n")
    assert read(path)[1][0].reason == "unsupported_format"
    docs, bad = read(path, fmt="jsonl")
    assert bad == [] and docs[0]["text"] == "declared json"
    assert detect_format(Path("x.JSONL.GZ"), "auto") == "jsonl"
    assert detect_format(Path("notes.markdown"), "auto") == "md"
    assert detect_format(Path("x.gz"), "auto") is None
