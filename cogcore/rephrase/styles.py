"""The rewrite styles and their default prompts: what the generator is asked to turn a passage into.

Each prompt holds `{passage}` where the passage goes. The styles follow WRAP (Maini et al. 2024,
"Rephrasing the Web"): an encyclopedic rewrite, a question-answer rewrite, and a plain list of the
passage's facts; a recipe may change any prompt or add styles of its own (`rephrase.prompts`).
Every prompt asks for what the fact gate checks, in words a small instruct model follows: every
value kept as written, nothing added.

    prompt = build_prompt(DEFAULT_PROMPTS["qa"], passage)
"""

from __future__ import annotations

PLACEHOLDER = "{passage}"

_KEEP = (
    "Keep every number, date, amount, identifier and name exactly as the passage writes it, and add "
    "nothing that the passage does not say."
)
DEFAULT_PROMPTS = {
    "wikipedia": (
        "Rewrite the following passage in the style of a Wikipedia article: neutral, clear, in full "
        f"sentences. {_KEEP}\n\nPassage:\n{PLACEHOLDER}"
    ),
    "qa": (
        "Turn the following passage into questions and answers that a new employee could study. Write each "
        f"pair as 'Q: ...' on one line and 'A: ...' on the next. {_KEEP}\n\nPassage:\n{PLACEHOLDER}"
    ),
    "knowledge_list": (
        "List the facts that the following passage states, one short bullet point ('- ') each, under a "
        f"title line. {_KEEP}\n\nPassage:\n{PLACEHOLDER}"
    ),
}
DEFAULT_STYLES = tuple(DEFAULT_PROMPTS)


def build_prompt(template: str, passage: str) -> str:
    """The template with the passage in place of `{passage}` (replaced once: the passage's own
    braces are left as they are)."""
    return template.replace(PLACEHOLDER, passage, 1)


def check_prompt(style: str, template: str) -> None:
    """ValueError naming the style when its prompt has no place for the passage."""
    if template.count(PLACEHOLDER) != 1:
        raise ValueError(f"the prompt of style {style!r} must hold {PLACEHOLDER} exactly once (where the passage goes)")
