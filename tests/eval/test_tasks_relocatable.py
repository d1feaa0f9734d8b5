"""The eval stage's lm-eval tasks name no absolute path: the stage builds in a folder that is renamed
when it succeeds (`eval.new/` -> `eval/`), and a run directory may be moved or copied, so the tasks
must find their data beside their YAML wherever the folder now is."""

from __future__ import annotations

import json
import shutil

from cogcore.eval import tasks as T
from cogcore.questions import Question


def _questions(n: int) -> list[Question]:
    return [
        Question(
            fact_id=f"f{i}",
            doc_id=f"d{i}",
            kind="money",
            answer=f"${i + 10}",
            question=f"What is fee {i}?",
            query=f"fee {i}",
            context=f"Fee {i} is ${i + 10} a month.",
        )
        for i in range(n)
    ]


def test_tasks_still_load_after_their_folder_is_renamed(tmp_path):
    questions = _questions(6)
    facts = [
        {"id": q.fact_id, "doc_id": q.doc_id, "kind": "money", "text": q.answer, "start": 0, "end": 1}
        for q in questions
    ]
    heldout = [{"id": "d0", "text": "Fee 0 is $10 a month and is waived for students.", "meta": {}}]
    built = tmp_path / "eval.new" / "tasks"
    names = T.write_tasks(built, questions, facts, heldout, seed=0)
    assert T.CLOSEDBOOK in names and T.HELDOUT_PPL in names
    for yaml_file in built.glob("*.yaml"):
        assert str(tmp_path) not in yaml_file.read_text()
    shutil.move(str(tmp_path / "eval.new"), str(tmp_path / "eval"))

    from lm_eval.tasks import get_task_dict

    manager = T.task_manager(tmp_path / "eval" / "tasks", with_defaults=False)
    loaded = get_task_dict([T.CLOSEDBOOK, T.HELDOUT_PPL], manager)
    closed = loaded[T.CLOSEDBOOK]
    data = tmp_path / "eval" / "tasks" / f"{T.CLOSEDBOOK}.jsonl"
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    assert [d["question"] for d in closed.test_docs()] == [r["question"] for r in rows]
    assert len(loaded[T.HELDOUT_PPL].test_docs()) == 1
