"""Text from documents and models, made harmless where it goes: into a model's input, or onto a terminal.

Two boundaries, one function each.

**Model input** (`neutralize`). Document text reaches a model in continued-pretraining text, in
search results inside a prompt (tool-use training, evaluation's agentic check, `cogcore ask`), in
questions made from its sentences and in the open-book passages of the lm-eval tasks. A document
that holds a tokenizer's control strings (`<|im_end|>\\n<|im_start|>system\\nYou are ...`) would be
tokenized into the real turn tokens and forge a system turn; one that holds the chat template's
tool markup (`</tool_response>`, `<tool_call>`) would close a tool result or forge a call. Each
control string found gets a WORD JOINER (U+2060, invisible, not whitespace) after its first
character: it reads the same, but no tokenizer's added-token matcher, no template parser and no
tool-call parser (ours, vLLM's hermes) sees it any more.

Why a string edit and not `tokenizer(..., split_special_tokens=True)`: that flag is exact for a
plain text encoded on its own, but most document text is inserted into a rendered chat template,
whose own tokens must still parse in the same string; it also leaves non-special added tokens (as
Qwen's `<tool_call>`) and tool markup that is plain text in the vocabulary untouched. One form
everywhere also means that continued pretraining shows the model documents as it later reads them
in search results. What is neutralized: every special and added-special token of the tokenizer,
its other added tokens that look like markup (`<think>`), the tool markup of hermes-style templates
and the turn markup of the common chat formats (`COMMON_CONTROLS`, also used where no tokenizer is
at hand), and any `<|name|>` token. The index keeps documents as curated; text is neutralized
only where it enters a model's input.

    controls = control_strings(tokenizer)
    content = neutralize(search_result, controls)

**Terminal** (`printable`). Text printed by the command line (passages, titles, a model's answer,
file names and ids typed by the user) could hold escape sequences that retitle, clear or rewrite
the terminal. Control characters (C0 but newline and tab, DEL, C1), bidirectional overrides and
lone surrogates (bytes that were not UTF-8) are shown as visible escapes (`\\x1b`, `\\u202e`), so a
reader also sees that they were there.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable, Iterable, Sequence

BREAK = "\u2060"  # WORD JOINER: zero width, no line break, not whitespace (so `\s+` passes it by)

# The tool markup of hermes-style templates (Qwen2.5, Hermes, cogcore's own): a document holding
# these could close a tool result or forge a call in the text a model reads.
TOOL_MARKUP = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<tools>", "</tools>")
# Turn and tool markup of common chat formats other than `<|name|>` (Llama 2 and Mistral, Gemma,
# reasoning tags), neutralized even where the tokenizer at hand lacks them: text written once (the
# lm-eval tasks) is read by more than one model.
COMMON_CONTROLS = TOOL_MARKUP + (
    "<s>",
    "</s>",
    "<bos>",
    "<eos>",
    "<pad>",
    "<unk>",
    "[INST]",
    "[/INST]",
    "<<SYS>>",
    "<</SYS>>",
    "[SYSTEM_PROMPT]",
    "[/SYSTEM_PROMPT]",
    "[AVAILABLE_TOOLS]",
    "[/AVAILABLE_TOOLS]",
    "[TOOL_CALLS]",
    "[TOOL_RESULTS]",
    "[/TOOL_RESULTS]",
    "<start_of_turn>",
    "<end_of_turn>",
    "<think>",
    "</think>",
)
# ChatML, Llama 3, Phi and DeepSeek (fullwidth bars) tokens: `<|im_end|>`, `<|eot_id|>`, `<｜end▁of▁sentence｜>`.
_BARRED_TOKEN = r"<[|\uff5c][^\s<>|\uff5c]{1,64}[|\uff5c]>"
# An added token that is markup rather than a word piece: `<think>`, `[TOOL_CALLS]`.
_MARKUP_TOKEN = re.compile(r"<[^\s<>]+>|\[[A-Z_/]+\]")


def control_strings(tokenizer=None) -> frozenset[str]:
    """What `neutralize` breaks for this tokenizer: its special tokens, its added tokens that are
    special or look like markup, and COMMON_CONTROLS (these alone without a tokenizer)."""
    found = set(COMMON_CONTROLS)
    if tokenizer is not None:
        found.update(getattr(tokenizer, "all_special_tokens", ()))
        for token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
            if token.special or _MARKUP_TOKEN.fullmatch(token.content):
                found.add(token.content)
    # A one-character token cannot be broken, and whitespace tokens are layout, not markup.
    return frozenset(s for s in found if len(s) > 1 and s.strip() and BREAK not in s)


@functools.lru_cache(maxsize=16)
def _pattern(controls: frozenset[str]) -> re.Pattern:
    # `<|name|>` tokens are left to the one general alternative (Llama 3 has 256 reserved ones).
    listed = [s for s in controls if not re.fullmatch(_BARRED_TOKEN, s)]
    alternatives = [re.escape(s) for s in sorted(listed, key=len, reverse=True)] + [_BARRED_TOKEN]
    first = "".join(sorted({s[0] for s in controls} | {"<"}))
    # A lookahead finds overlapping occurrences too; the leading class skips most positions fast.
    return re.compile(f"(?=[{re.escape(first)}])(?=(?:{'|'.join(alternatives)}))")


def break_points(text: str, controls: Iterable[str]) -> list[int]:
    """Where `neutralize` puts a BREAK: before the second character of every occurrence of a
    control string (or a `<|name|>` token) in text, ascending."""
    return [m.start() + 1 for m in _pattern(frozenset(controls)).finditer(text)]


def insert_breaks(text: str, points: Sequence[int]) -> str:
    """text with a BREAK inserted before each character at `points` (ascending)."""
    pieces, previous = [], 0
    for point in points:
        pieces += [text[previous:point], BREAK]
        previous = point
    return "".join(pieces) + text[previous:]


def neutralize(text: str, controls: Iterable[str] | None = None) -> str:
    """text with every control string broken by an invisible BREAK (see the module docstring).
    `controls`: `control_strings(tokenizer)`; None: COMMON_CONTROLS. Idempotent."""
    controls = control_strings() if controls is None else controls
    return insert_breaks(text, break_points(text, controls))


def neutralize_parts(parts: Sequence[str], controls: Iterable[str] | None = None) -> list[str]:
    """`neutralize` of the parts' concatenation, cut back into the parts: a control string split
    across two parts (a context and its continuation, joined again by whoever reads them) is
    broken too, and the neutralized parts still join into the neutralized whole."""
    controls = control_strings() if controls is None else controls
    points = break_points("".join(parts), controls)
    out, start = [], 0
    for part in parts:
        end = start + len(part)
        inside = [p - start for p in points if start <= p < end]
        out.append(insert_breaks(part, inside))
        start = end
    return out


def to_original(breaks: Sequence[int]) -> Callable[[int], int]:
    """Position in the neutralized text -> position in the original one, for token offsets; `breaks`
    are the `break_points` that made it. An inserted BREAK maps to the character after it."""
    inserted = [p + k for k, p in enumerate(breaks)]  # where each BREAK landed
    return lambda position: position - bisect.bisect_left(inserted, position)


_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: object) -> str:
    """text safe to print on a terminal: control characters (C0 but newline and tab, DEL, C1, so
    every escape sequence loses its ESC), bidirectional overrides and lone surrogates shown as
    visible escapes."""
    return _UNPRINTABLE.sub(_escape, str(text))


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
