"""Tool-use conversations synthesized from training facts and the real search index.

Each conversation: the user asks a cloze question about a fact; the assistant calls `search` with
a query made from the fact's sentence; the tool result is what the real index returns for that
query; the assistant answers with the value and its source when the result holds it, and says it
could not find it when it does not (so the model learns not to invent a value). Only assistant
tokens carry loss (the template's generation markers give the mask).
"""

from __future__ import annotations

import json

from cogcore.questions import Question, answer_matches
from cogcore.retrieval import DEFAULT_K, SEARCH_TOOL, SearchIndex, format_hits, shorten
from cogcore.retrieval.tool import MAX_PASSAGE_CHARS

NOT_FOUND = "I could not find that in the documents."


def build_conversations(questions: list[Question], index: SearchIndex, k: int = DEFAULT_K) -> list[dict]:
    """One conversation per question, with the tool result from the real index."""
    results = index.search_many([q.query for q in questions], k=k)
    conversations = []
    for q, hits in zip(questions, results):
        # Judge by the passage text the model is shown (cut to MAX_PASSAGE_CHARS), not the whole
        # chunk: answering with a value the result does not show would teach the model to guess.
        found = next((h for h in hits if answer_matches(q.answer, shorten(h.text, MAX_PASSAGE_CHARS))), None)
        answer = f"{q.answer} (source: {found.doc_id})" if found else NOT_FOUND
        conversations.append({
            "fact_id": q.fact_id, "found": found is not None,
            "messages": [
                {"role": "user", "content": q.question},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"type": "function", "function": {"name": "search", "arguments": json.dumps({"query": q.query})}}]},
                {"role": "tool", "name": "search", "content": format_hits(hits)},
                {"role": "assistant", "content": answer},
            ]})
    return conversations


def tokenize_conversations(tokenizer, conversations: list[dict], seq_len: int) -> tuple[list[dict], int]:
    """Rows of {input_ids, labels} with loss on assistant tokens only; skip rows over seq_len."""
    rows, too_long = [], 0
    for conv in conversations:
        enc = tokenizer.apply_chat_template(conv["messages"], tools=[SEARCH_TOOL], tokenize=True,
                                            return_dict=True, return_assistant_tokens_mask=True)
        ids, mask = list(enc["input_ids"]), list(enc["assistant_masks"])
        if len(ids) > seq_len:
            too_long += 1  # cutting would drop the answer, the part that matters most
            continue
        rows.append({"input_ids": ids, "labels": [t if m else -100 for t, m in zip(ids, mask)]})
    return rows, too_long
