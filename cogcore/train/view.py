"""One document as continued pretraining sees it: for `cogcore inspect RUN --doc ID`.

The text is the rendered training text (search calls and results included under `toolcall`),
built by the same code that builds the training rows; every character whose token carries no loss
(a masked fact, a tool result) is shown inside ⟦ ⟧, and each call opens with ▶. A header line
gives the strategy and the counts. Masking is per token, so a bracket may take in a character or
two around a fact (the token " $200" covers the space before the value).

    print(render_training_view(tokenizer, doc, facts_of_doc, "toolcall"))
"""

from __future__ import annotations

from cogcore.train.cpt_data import DEFAULT_MAX_CALLS, PlannedCall, encode_document, plan_calls
from cogcore.train.packing import IGNORE_INDEX

MASK_OPEN, MASK_CLOSE, CALL_MARK = "⟦", "⟧", "▶"


def render_training_view(
    tokenizer,
    doc: dict,
    facts: list[dict],
    strategy: str,
    max_calls_per_doc: int = DEFAULT_MAX_CALLS,
    calls: list[PlannedCall] | None = None,
    train_copied_facts: bool = False,
) -> str:
    """The document exactly as the model is trained on it, masked spans in ⟦ ⟧ and calls marked ▶."""
    facts = [f for f in facts if f["doc_id"] == doc["id"]]
    if strategy == "toolcall" and calls is None:
        calls = plan_calls(doc, facts, max_calls_per_doc)
    enc = encode_document(
        tokenizer, doc["text"], [(f["start"], f["end"]) for f in facts], strategy, calls or [], train_copied_facts
    )
    masked = bytearray(len(enc.text))
    call_starts = set()
    previous_role = None
    for (start, end), label, role in zip(enc.offsets, enc.labels, enc.roles):
        if label == IGNORE_INDEX:
            masked[start:end] = b"\x01" * (end - start)
        if role == "call" and previous_role != "call":
            call_starts.add(len(enc.text[:start]) + len(enc.text[start:]) - len(enc.text[start:].lstrip()))
        previous_role = role
    out, inside = [], False
    for i, ch in enumerate(enc.text):
        if masked[i] != inside:
            out.append(MASK_OPEN if masked[i] else MASK_CLOSE)
            inside = bool(masked[i])
        if i in call_starts:
            out.append(CALL_MARK)
        out.append(ch)
    if inside:
        out.append(MASK_CLOSE)
    n_calls = len(call_starts)
    no_loss = enc.labels.count(IGNORE_INDEX)
    header = (
        f"[{doc['id']}] strategy={strategy}: {len(enc.ids)} tokens, {no_loss} without loss "
        f"({MASK_OPEN}…{MASK_CLOSE}), {len(facts)} facts, {n_calls} calls ({CALL_MARK})"
    )
    return header + "\n" + "".join(out)
