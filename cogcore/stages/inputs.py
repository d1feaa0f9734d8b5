"""What a stage says when the stages before it left it nothing to work on.

Every stage reads its input from the run directory. When that input is empty (no curated document,
every document held out, no held-out fact to ask about) the stage says what is empty, why, and which
recipe field changes it: a `StageError` where it could produce nothing useful, a logged warning
where it can still measure something. The stages (cogcore/stages/) check the split before they
load any model, so an empty training split costs seconds, not a model load:

    problem = training_split_problem("train.cpt", curated_splits(run), heldout_fraction=0.5)
    # 'train.cpt: 0 of 3 curated documents are in the training split (curate.heldout_fraction = 0.5)'
"""

from __future__ import annotations

import logging
from pathlib import Path

from cogcore.curate.stats import STATS_FILE, CurateStats
from cogcore.runner import StageError

log = logging.getLogger(__name__)

HELDOUT_TASKS = "the closed-book, open-book, cloze and perplexity tasks and the agentic check"


def warn(problem: str | None) -> str | None:
    """Log a problem the stage can work around; return it (for the stage's own record)."""
    if problem:
        log.warning(problem)
    return problem


def curated_splits(run: Path) -> dict[str, int]:
    """Curated documents per split ({"train": n, "heldout": m}), as curation recorded them."""
    stats = CurateStats.read(run / "curate" / STATS_FILE)
    if stats is None:
        raise StageError(f"{run / 'curate' / STATS_FILE} does not exist: run curation first (cogcore curate RECIPE)")
    return stats.splits


def require_documents(stage: str, n_docs: int) -> None:
    if not n_docs:
        raise StageError(
            f"{stage}: curate/docs.jsonl holds no documents, so there is nothing to {stage}; "
            f"re-run curation (cogcore curate RECIPE --force curate) and see `cogcore inspect RUN`"
        )


def training_split_problem(stage: str, splits: dict[str, int], heldout_fraction: float) -> str | None:
    """Why `stage` has no training document, or None when it has some."""
    if splits.get("train", 0):
        return None
    total = sum(splits.values())
    if not total:
        return f"{stage}: curation kept no documents (see `cogcore inspect RUN`)"
    return (
        f"{stage}: 0 of {total:,} curated documents are in the training split "
        f"(curate.heldout_fraction = {heldout_fraction})"
    )


def check_training_split(stage: str, splits: dict[str, int], heldout_fraction: float) -> None:
    problem = training_split_problem(stage, splits, heldout_fraction)
    if problem:
        raise StageError(f"{problem}; lower curate.heldout_fraction")


def check_tool_conversations(splits: dict[str, int], heldout_fraction: float, conversation_files: list) -> None:
    """train.tools synthesizes conversations from training facts; files of conversations can stand in."""
    problem = training_split_problem("train.tools", splits, heldout_fraction)
    if problem and not conversation_files:
        raise StageError(
            f"{problem}: no conversations can be synthesized; lower curate.heldout_fraction "
            f"or add train.tools.conversation_files"
        )
    warn(problem and f"{problem}: no conversations are synthesized; training on train.tools.conversation_files only")


def require_conversations(n_conversations: int, n_docs: int, n_facts: int, n_from_files: int) -> None:
    if not n_conversations:
        raise StageError(
            f"train.tools: no conversations to train on: the {n_facts:,} facts of the {n_docs:,} "
            f"training documents gave none, and train.tools.conversation_files gave {n_from_files:,}; "
            f"widen facts.kinds (or facts.patterns, facts.terms) or add train.tools.conversation_files"
        )


def check_tool_rows(n_rows: int, too_long: int, seq_len: int) -> None:
    """Conversations longer than train.tools.seq_len are skipped whole (cutting one would drop its answer)."""
    if too_long and not n_rows:
        raise StageError(
            f"train.tools: all {too_long:,} conversations are longer than train.tools.seq_len = "
            f"{seq_len} tokens, so none can be trained on; raise train.tools.seq_len"
        )
    warn(
        too_long
        and f"train.tools: {too_long:,} of {n_rows + too_long:,} conversations are longer than "
        f"train.tools.seq_len = {seq_len} tokens and are skipped; raise train.tools.seq_len to keep them"
    )


def heldout_problem(splits: dict[str, int], n_questions: int, heldout_fraction: float) -> str | None:
    """What eval cannot measure for lack of held-out documents or facts, or None."""
    held_out = splits.get("heldout", 0)
    if not held_out:
        return (
            f"eval: 0 of {sum(splits.values()):,} curated documents are held out "
            f"(curate.heldout_fraction = {heldout_fraction}): {HELDOUT_TASKS} have no data; "
            f"raise curate.heldout_fraction to measure them"
        )
    if not n_questions:
        return (
            f"eval: the {held_out:,} held-out documents hold no facts to ask about: the closed-book, "
            f"open-book and cloze tasks and the agentic check have no questions; widen facts.kinds "
            f"(or facts.patterns, facts.terms) or raise curate.heldout_fraction"
        )
    return None


def require_something_to_evaluate(problem: str | None, n_tasks: int, other_checks: bool) -> None:
    """`other_checks`: standard lm-eval tasks, BFCL or canaries are configured."""
    if not n_tasks and not other_checks:
        raise StageError(
            f"{problem or 'eval: no task has data'}; the training documents hold no facts either "
            f"(no train-recall task), and eval.lm_eval_tasks and eval.bfcl are not set: "
            f"nothing to evaluate"
        )
