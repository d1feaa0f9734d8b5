"""Readers on hostile or damaged input: a bad byte loses one record, not a file; a Windows-1252
text file is recoded and marked; links out of a source's folder are reported, not read, and a
link loop cannot hang the walk; decompression bombs and runaway lines stop at the recipe's caps
in bounded memory; a file with a million bad rows stays a few reports; deep JSON nesting is one
skipped record."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import signal
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import pytest

from cogcore.curate.readers import EXAMPLES_PER_REASON, ReadLimits, Unreadable, list_files, read_source


def read(path, **kw) -> tuple[list[dict], list[Unreadable]]:
    items = list(read_source(str(path), "src", **kw))
    return [i for i in items if isinstance(i, dict)], [i for i in items if isinstance(i, Unreadable)]


@contextmanager
def within(seconds: int):
    """Fail instead of hanging (glob.glob recursing through a link loop runs for hours)."""

    def alarm(*_):
        raise TimeoutError(f"still running after {seconds}s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def jsonl(texts: list[str]) -> bytes:
    return "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()


# 1. Encoding: one bad byte costs one record; a cp1252 text file is kept and marked.


@pytest.mark.parametrize("gz", [False, True])
def test_a_bad_byte_in_jsonl_loses_that_record_only(tmp_path, gz):
    lines = jsonl([f"record {i}" for i in range(300)]).split(b"\n")
    lines[100] = lines[100].replace(b"record", b"r\xe9cord")  # a Latin-1 byte inside a UTF-8 file
    data = b"\n".join(lines)
    path = tmp_path / ("d.jsonl.gz" if gz else "d.jsonl")
    path.write_bytes(gzip.compress(data) if gz else data)
    docs, bad = read(path)
    assert [d["text"] for d in docs] == [f"record {i}" for i in range(300) if i != 100]
    assert [(u.path, u.reason.split(":")[0]) for u in bad] == [(f"{path.name}#100", "bad_encoding")]
    assert "0xe9" in bad[0].reason


@pytest.mark.parametrize("kind, delimiter", [("csv", ","), ("tsv", "\t")])
def test_a_bad_byte_in_csv_loses_that_row_only(tmp_path, kind, delimiter):
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["text", "n"])
    writer.writerows([[f"row {i}", i] for i in range(300)])
    lines = buf.getvalue().encode().split(b"\n")
    lines[101] = b"caf\xe9" + delimiter.encode() + b"100"  # row 100 (line 0 is the header)
    (tmp_path / f"d.{kind}").write_bytes(b"\n".join(lines))
    docs, bad = read(tmp_path / f"d.{kind}")
    assert [d["text"] for d in docs] == [f"row {i}" for i in range(300) if i != 100]
    assert [(u.path, u.reason.split(":")[0]) for u in bad] == [(f"d.{kind}#100", "bad_encoding")]


@pytest.mark.parametrize("name", ["a.txt", "a.md", "a.rst", "a.html", "a.txt.gz"])
def test_windows_1252_text_files_are_recoded_and_marked(tmp_path, name):
    text = (
        "<html><title>Caf\u00e9</title><body><p>Cr\u00e8me br\u00fbl\u00e9e costs \u20ac5 \u2013 "
        "served every day at the caf\u00e9 on the corner of the main square.</p></body></html>"
        if "html" in name
        else "Caf\u00e9 cr\u00e8me \u2013 \u20ac5, na\u00efve r\u00e9sum\u00e9.\n"
    )
    raw = text.encode("cp1252")
    (tmp_path / name).write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    docs, bad = read(tmp_path / name)
    assert bad == [] and len(docs) == 1
    assert docs[0]["meta"]["encoding"] == "cp1252"
    assert "cr\u00e8me" in docs[0]["text"].lower() and "\u20ac5" in docs[0]["text"]
    utf8, _ = read(_write(tmp_path / "u" / name, text.encode()))
    assert "encoding" not in utf8[0]["meta"]  # only a recoded document carries the mark


def test_text_that_is_neither_utf8_nor_cp1252_is_reported(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"abc \x81\x8d\x8f\x90\x9d def")  # bytes cp1252 leaves undefined
    (tmp_path / "b.json").write_bytes(b'[{"text": "caf\xe9"}]')  # json must be UTF-8: nothing to guess
    docs, bad = read(tmp_path)
    assert docs == [] and {Path(u.path).name: u.reason.split(":")[0] for u in bad} == {
        "a.txt": "bad_encoding",
        "b.json": "bad_encoding",
    }


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


# 2. Links and folders: nothing outside a source's root is read unless the recipe says so.


@pytest.fixture
def linked(tmp_path):
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_text("outside secret")
    (outside / "dir" / "deep.txt").write_text("outside deep")
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "real.txt").write_text("inside text")
    (corpus / "sub" / "more.txt").write_text("inside more")
    os.symlink(outside / "secret.txt", corpus / "x.txt")
    os.symlink(outside / "dir", corpus / "d")
    os.symlink(corpus / "real.txt", corpus / "alias.txt")  # stays inside: read
    os.symlink(corpus / "sub", corpus / "sub_alias")  # stays inside: its files are read under sub/
    os.symlink(tmp_path / "nowhere.txt", corpus / "broken.txt")
    return corpus


def test_links_out_of_the_source_folder_are_reported_not_read(linked):
    docs, bad = read(linked)
    assert sorted(d["text"] for d in docs) == ["inside more", "inside text", "inside text"]
    reasons = {Path(u.path).name: u.reason for u in bad}
    assert set(reasons) == {"x.txt", "d", "broken.txt"}
    assert reasons["x.txt"].startswith("link_outside_root: ") and "secret.txt" in reasons["x.txt"]
    assert reasons["d"].startswith("link_outside_root: ") and "follow_links" in reasons["d"]
    assert reasons["broken.txt"].startswith("broken_link")
    assert sorted(p.name for p in list_files(str(linked))) == ["alias.txt", "more.txt", "real.txt"]


def test_follow_links_reads_what_the_links_lead_to(linked):
    docs, bad = read(linked, follow_links=True)
    assert {"outside secret", "outside deep"} <= {d["text"] for d in docs}
    assert [Path(u.path).name for u in bad] == ["broken.txt"]
    assert "x.txt" in {p.name for p in list_files(str(linked), follow_links=True)}


def test_a_glob_does_not_follow_links_out_of_its_root(linked):
    docs, bad = read(linked / "**" / "*.txt")
    assert sorted(d["text"] for d in docs) == ["inside more", "inside text", "inside text"]
    assert {Path(u.path).name: u.reason.split(":")[0] for u in bad} == {
        "x.txt": "link_outside_root",
        "d": "link_outside_root",
        "broken.txt": "broken_link",
    }


@pytest.mark.parametrize("follow", [False, True])
@pytest.mark.parametrize("as_glob", [False, True])
def test_a_link_loop_cannot_hang_the_walk(tmp_path, follow, as_glob):
    corpus = tmp_path / "corpus"
    (corpus / "a" / "b").mkdir(parents=True)
    (corpus / "a" / "b" / "doc.txt").write_text("the only document")
    os.symlink("..", corpus / "a" / "b" / "up")
    os.symlink(".", corpus / "a" / "self")
    os.symlink(corpus, corpus / "a" / "root")
    os.symlink(tmp_path, corpus / "a" / "out")  # outside the root, and holding it
    with within(20):
        docs, bad = read(corpus / "**" / "*.txt" if as_glob else corpus, follow_links=follow)
    assert [d["text"] for d in docs] == ["the only document"]
    reasons = [(Path(u.path).relative_to(corpus).as_posix(), u.reason.split(":")[0]) for u in bad]
    assert reasons == ([("a/out/corpus", "link_loop")] if follow else [("a/out", "link_outside_root")])


def test_a_folder_that_cannot_be_listed_is_reported(tmp_path, monkeypatch):
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "a.txt").write_text("hidden from us")
    (tmp_path / "b.txt").write_text("readable")
    real_scandir = os.scandir

    def scandir(path="."):  # tests run as root here, where chmod 000 does not deny anything
        if Path(path) == tmp_path / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    docs, bad = read(tmp_path)
    assert [d["text"] for d in docs] == ["readable"]
    assert [(Path(u.path).name, u.reason) for u in bad] == [("locked", "unreadable_folder: Permission denied")]


def test_files_are_listed_in_path_order_with_hidden_names_skipped(tmp_path):
    for rel in ["b/z.txt", "a.txt", "a/c.txt", "a/.h/x.txt", ".git/y.txt", "c.md"]:
        _write(tmp_path / rel, b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_files(str(tmp_path))] == [
        "a/c.txt",
        "a.txt",
        "b/z.txt",
        "c.md",
    ]
    assert [p.name for p in list_files(str(tmp_path / "*.txt"))] == ["a.txt"]
    assert [p.name for p in list_files(str(tmp_path / "**" / "*.txt"))] == ["c.txt", "a.txt", "z.txt"]
    assert [p.name for p in list_files(str(tmp_path / "[ab]" / "*.txt"))] == ["c.txt", "z.txt"]


# 3. Caps: over-cap input is skipped and reported, in bounded memory.


def test_a_line_over_the_record_cap_is_skipped_in_bounded_memory(tmp_path):
    huge = json.dumps({"text": "x" * (8 << 20)}).encode()  # one 8 MiB line
    (tmp_path / "d.jsonl.gz").write_bytes(gzip.compress(jsonl(["before"]) + huge + b"\n" + jsonl(["after"])))
    tracemalloc.start()
    try:
        docs, bad = read(tmp_path / "d.jsonl.gz", limits=ReadLimits(max_record_bytes=64 << 10))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [d["text"] for d in docs] == ["before", "after"]
    assert [(u.path, u.reason.split(":")[0]) for u in bad] == [("d.jsonl.gz#1", "record_too_large")]
    assert "curate.limits.max_record_bytes" in bad[0].reason
    assert peak < 2 << 20, peak  # the 8 MiB line was never held whole


def test_a_csv_row_over_the_record_cap_is_skipped(tmp_path):
    rows = b"text,n\nshort,1\n" + b"y" * 5000 + b",2\nlast,3\n"
    (tmp_path / "d.csv").write_bytes(rows)
    docs, bad = read(tmp_path / "d.csv", limits=ReadLimits(max_record_bytes=1000))
    assert [d["text"] for d in docs] == ["short", "last"]
    assert [(u.path, u.reason.split(":")[0]) for u in bad] == [("d.csv#1", "record_too_large")]


def test_a_record_from_json_over_the_record_cap_is_skipped(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps([{"text": "ok"}, {"text": "z" * 5000}]))
    docs, bad = read(tmp_path / "d.json", limits=ReadLimits(max_record_bytes=1000))
    assert [d["text"] for d in docs] == ["ok"] and [u.path for u in bad] == ["d.json#1"]


@pytest.mark.parametrize("name", ["bomb.txt.gz", "bomb.html.gz", "bomb.json.gz", "bomb.md"])
def test_a_document_over_the_document_cap_is_skipped_in_bounded_memory(tmp_path, name):
    raw = b"[" + b" " * (16 << 20) + b"]" if "json" in name else b"a" * (16 << 20)  # 16 MiB of one byte
    (tmp_path / name).write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    (tmp_path / "fine.txt").write_text("still read")
    tracemalloc.start()
    try:
        docs, bad = read(tmp_path, limits=ReadLimits(max_document_bytes=1 << 20))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [d["text"] for d in docs] == ["still read"]
    assert [(Path(u.path).name, u.reason.split(":")[0]) for u in bad] == [(name, "document_too_large")]
    assert "curate.limits.max_document_bytes" in bad[0].reason
    assert peak < 4 << 20, peak


def test_a_file_over_the_file_cap_keeps_what_came_before_then_is_reported(tmp_path):
    (tmp_path / "d.jsonl.gz").write_bytes(gzip.compress(jsonl([f"record {i:04d}" for i in range(1000)])))
    docs, bad = read(tmp_path / "d.jsonl.gz", limits=ReadLimits(max_file_bytes=2500))
    line = len(jsonl(["record 0000"]))
    assert [d["text"] for d in docs] == [f"record {i:04d}" for i in range(2500 // line)]
    assert [(Path(u.path).name, u.reason.split(":")[0]) for u in bad] == [("d.jsonl.gz", "file_too_large")]
    assert "curate.limits.max_file_bytes" in bad[0].reason


def test_a_pdf_over_the_file_cap_is_reported(tmp_path):
    (tmp_path / "big.pdf").write_bytes(b"%PDF-1.4\n" + b"%" * 5000)
    docs, bad = read(tmp_path / "big.pdf", limits=ReadLimits(max_file_bytes=1000))
    assert docs == [] and bad[0].reason.startswith("file_too_large: ")


def test_the_limits_must_be_positive():
    with pytest.raises(ValueError, match="max_record_bytes"):
        ReadLimits(max_record_bytes=0)


def test_a_file_with_many_bad_records_yields_a_few_examples_and_one_count(tmp_path):
    rows = [json.dumps({"text": f"good {i}"}) if i % 100 == 0 else "{broken" for i in range(5000)]
    (tmp_path / "d.jsonl").write_text("\n".join(rows) + "\n")
    docs, bad = read(tmp_path / "d.jsonl")
    assert len(docs) == 50
    listed = [u for u in bad if u.count == 1]
    assert len(listed) == EXAMPLES_PER_REASON and all(u.path.startswith("d.jsonl#") for u in listed)
    (summary,) = [u for u in bad if u.count > 1]
    assert summary.path == "d.jsonl" and summary.count == 4950 - EXAMPLES_PER_REASON
    assert summary.reason == f"bad_jsonl: {summary.count} more records of this file (4950 in all)"


# 4. Deep nesting: one skipped record (or file), never a RecursionError that ends the run.


def test_deeply_nested_json_is_skipped_and_reading_goes_on(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "a.jsonl").write_text(f'{{"text": "first"}}\n{deep}\n{{"text": {deep}}}\n{{"text": "last"}}\n')
    (tmp_path / "b.json").write_text(deep)
    (tmp_path / "c.txt").write_text("a plain file after them")
    docs, bad = read(tmp_path)
    assert [d["text"] for d in docs] == ["first", "last", "a plain file after them"]
    assert [(Path(u.path).name, u.reason.split(":")[0]) for u in bad] == [
        ("a.jsonl#1", "too_deeply_nested"),
        ("a.jsonl#2", "too_deeply_nested"),
        ("b.json", "too_deeply_nested"),
    ]


def test_meta_values_nested_too_deep_to_write_are_skipped(tmp_path):
    nested = "[" * 600 + "]" * 600  # parses, but pickling a shard then fails with RecursionError
    (tmp_path / "a.jsonl").write_text(
        f'{{"text": "kept", "m": 1}}\n{{"text": "deep meta", "m": {nested}}}\n{{"text": "deep id", "i": {nested}}}\n'
    )
    docs, bad = read(tmp_path / "a.jsonl", meta_fields=("m",), id_field="i")
    assert [d["text"] for d in docs] == ["kept"]
    assert [(u.path, u.reason.split(":")[0]) for u in bad] == [
        ("a.jsonl#1", "too_deeply_nested"),
        ("a.jsonl#2", "too_deeply_nested"),
    ]
