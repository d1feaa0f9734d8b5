"""training_docs.jsonl: the documents train.cpt changed, written and found again as typed rows
(what `cogcore inspect RUN --doc ID` shows), and a row of another shape named with its file."""

from __future__ import annotations

import json

import pytest

from cogcore.stage_files import RunFileError
from cogcore.train.cpt_data import PlannedCall
from cogcore.train.training_docs import TrainingDoc, find_training_doc, write_training_docs

DOCS = [
    {"id": "a", "text": "Fee: 5 USD.", "meta": {"canaries": ["canary-000"]}},
    {"id": "b", "text": "Open on Mondays.", "meta": {}},
]
FACTS = [{"id": "a:5", "doc_id": "a", "start": 5, "end": 10, "text": "5 USD", "kind": "amount", "context": ""}]


def test_changed_documents_are_found_as_trained(tmp_path):
    path = tmp_path / "training_docs.jsonl"
    write_training_docs(path, DOCS, FACTS, calls=None)  # canaries only: the documents holding one
    assert find_training_doc(path, "a") == TrainingDoc(
        id="a", text=DOCS[0]["text"], meta=DOCS[0]["meta"], facts=FACTS, calls=None
    )
    assert find_training_doc(path, "b") is None and find_training_doc(tmp_path / "none.jsonl", "a") is None

    call = PlannedCall(doc_id="a", at=5, spans=((5, 10),), query="fee", result="1. [a] Fee: 5 USD.")
    write_training_docs(path, DOCS, FACTS, calls={"a": [call]})  # the Toolformer filter chose: every document
    assert find_training_doc(path, "a").calls == [call] and find_training_doc(path, "b").calls == []
    assert find_training_doc(path, "a").document() == {"id": "a", "text": DOCS[0]["text"], "meta": DOCS[0]["meta"]}


def test_a_row_of_another_shape_names_the_file(tmp_path):
    path = tmp_path / "training_docs.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "Fee", "meta": {}, "facts": []}) + "\n")
    with pytest.raises(RunFileError, match=r"training_docs.jsonl \(record 1\): missing fields calls: .*train.cpt"):
        find_training_doc(path, "a")
