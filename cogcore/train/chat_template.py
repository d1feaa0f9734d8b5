"""The chat template the trained model ships with: ChatML with hermes-style tool calls.

Tools are listed in the system turn inside `<tools></tools>`; the assistant calls one as
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`; results come back in a user turn inside
`<tool_response></tool_response>`. This is the Qwen2.5 / Hermes layout, which vLLM's `hermes`
tool parser reads, so the saved model serves with tool calling and no cogcore code.

Assistant output sits inside `{% generation %}` markers, so `apply_chat_template(...,
return_assistant_tokens_mask=True)` tells which tokens the model must learn to produce.
`arguments` may be a mapping or a JSON string (stored as strings: `datasets` merges the keys of
dict columns across rows, so one row's arguments would show another's keys as nulls).

The base model's own template is kept instead when it passes `template_problem` (it lists the
tools, writes hermes `<tool_call>` JSON, and its assistant turns can be located), as Qwen2.5's
does: `choose_chat_template(tokenizer)`. Assistant masks are found by rendering prefixes
(`tokenize_with_mask`), which needs no generation markers and so works for either template.

Message text is untrusted (search results, questions made from documents, a model's own words):
`cogcore.tool_protocol.template_messages` neutralizes the tokenizer's control strings in it before
rendering, so only the template itself writes turn tokens and tool markup.
"""

from __future__ import annotations

from collections.abc import Iterable

from cogcore.tool_protocol import parse_tool_calls, template_messages
from cogcore.untrusted_text import control_strings

DEFAULT_SYSTEM = "You are a helpful assistant. Use the search tool to look up facts in the company documents."

CHAT_TEMPLATE = (
    "{%- set default_system = '" + DEFAULT_SYSTEM + "' -%}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set system = messages[0]['content'] -%}{%- set rest = messages[1:] -%}"
    "{%- else -%}{%- set system = default_system -%}{%- set rest = messages -%}{%- endif -%}"
    "{{- '<|im_start|>system\\n' + system -}}"
    "{%- if tools -%}"
    "{{- '\\n\\n# Tools\\n\\nYou may call functions to help with the user query. "
    "Function signatures are within <tools></tools>:\\n<tools>' -}}"
    "{%- for tool in tools -%}{{- '\\n' + (tool | tojson) -}}{%- endfor -%}"
    "{{- '\\n</tools>\\n\\nFor each call, return a JSON object with the function name and arguments "
    "within <tool_call></tool_call>:\\n"
    '<tool_call>\\n{"name": <function-name>, "arguments": <args-json-object>}\\n</tool_call>\' -}}'
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- for message in rest -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}"
    "{%- if message['content'] -%}{{- message['content'] -}}{%- endif -%}"
    "{%- for call in message.get('tool_calls') or [] -%}"
    "{%- set fn = call['function'] if call['function'] is defined else call -%}"
    "{%- if not loop.first or message['content'] -%}{{- '\\n' -}}{%- endif -%}"
    "{%- set args = fn['arguments'] if fn['arguments'] is string else (fn['arguments'] | tojson) -%}"
    "{{- '<tool_call>\\n{\"name\": \"' + fn['name'] + '\", \"arguments\": ' + args + '}\\n</tool_call>' -}}"
    "{%- endfor -%}"
    "{{- '<|im_end|>' -}}"
    "{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- elif message['role'] == 'tool' -%}"
    "{%- if loop.first or rest[loop.index0 - 1]['role'] != 'tool' -%}{{- '<|im_start|>user' -}}{%- endif -%}"
    "{{- '\\n<tool_response>\\n' + message['content'] + '\\n</tool_response>' -}}"
    "{%- if loop.last or rest[loop.index0 + 1]['role'] != 'tool' -%}{{- '<|im_end|>\\n' -}}{%- endif -%}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


class TemplateError(ValueError):
    """A chat template whose assistant turns cannot be located by rendering prefixes."""


def render(
    tokenizer,
    messages: list[dict],
    tools: list[dict] | None,
    template: str | None = None,
    add_generation_prompt: bool = False,
) -> str:
    return tokenizer.apply_chat_template(
        messages,
        tools=tools or None,
        tokenize=False,
        chat_template=template,
        add_generation_prompt=add_generation_prompt,
    )


def assistant_spans(
    tokenizer,
    messages: list[dict],
    tools: list[dict] | None,
    template: str | None = None,
    controls: Iterable[str] | None = None,
) -> tuple[str, list[tuple[int, int, int]]]:
    """The rendered text and (start, end, message index) of each assistant turn in it.

    A turn starts where the generation prompt for it ends and ends where rendering it ends (trailing
    whitespace left out: the model stops at its end-of-turn token). This needs no `{% generation %}`
    markers, so it works for any template that renders earlier turns the same way whatever follows.
    Message text is neutralized first (`controls`: default the tokenizer's `control_strings`).
    """
    messages = template_messages(messages, control_strings(tokenizer) if controls is None else controls)
    full = render(tokenizer, messages, tools, template)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render(tokenizer, messages[:i], tools, template, add_generation_prompt=True)
        upto = render(tokenizer, messages[: i + 1], tools, template)
        if not (upto.startswith(prompt) and full.startswith(upto)):
            raise TemplateError(
                f"assistant turn {i}: the template renders earlier turns differently once later "
                "turns follow, so the turn cannot be located"
            )
        spans.append((len(prompt), len(upto.rstrip()), i))
    return full, spans


def tokenize_with_mask(
    tokenizer,
    messages: list[dict],
    tools: list[dict] | None,
    template: str | None = None,
    controls: Iterable[str] | None = None,
) -> tuple[list[int], list[int]]:
    """(input_ids, mask) with mask 1 on the tokens of assistant turns to train (weight not 0).

    Each piece between turn boundaries is tokenized on its own, as at inference, where the prompt
    ends at the generation prompt and the model's tokens start there.
    """
    text, spans = assistant_spans(tokenizer, messages, tools, template, controls)
    trained = [(s, e) for s, e, i in spans if messages[i].get("weight", 1) != 0]
    ids, mask, pos = [], [], 0
    for start, end in trained + [(len(text), len(text))]:
        for piece, flag in ((text[pos:start], 0), (text[start:end], 1)):
            if piece:
                piece_ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
                ids += piece_ids
                mask += [flag] * len(piece_ids)
        pos = end
    return ids, mask


PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "probe_lookup",
        "description": "Probe tool: look up a probe value.",
        "parameters": {
            "type": "object",
            "properties": {"key": {"type": "string"}, "n": {"type": "integer"}},
            "required": ["key"],
        },
    },
}
_PROBE_ARGS = {"key": 'probe "quoted" café', "n": 2}
PROBE_CONVERSATION = [
    {"role": "user", "content": "What is the probe value?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "probe_lookup", "arguments": _PROBE_ARGS}}],
    },
    {"role": "tool", "name": "probe_lookup", "content": "probe result 4217"},
    {"role": "assistant", "content": "The probe value is 4217."},
]


def template_problem(tokenizer, template: str) -> str | None:
    """Why `template` cannot carry tool-use training and hermes serving, or None when it can.

    It must list the tools given as `tools=`, render an assistant tool call as a hermes
    `<tool_call>` JSON block that reads back as the same call, show the tool result, and let the
    assistant turns be located by rendering prefixes.
    """
    try:
        text, spans = assistant_spans(tokenizer, PROBE_CONVERSATION, [PROBE_TOOL], template)
    except TemplateError as e:
        return f"its assistant turns cannot be located ({e})"
    except Exception as e:  # a template may raise anything (raise_exception, undefined names)
        return f"it fails on a tool conversation ({type(e).__name__}: {e})"
    fn = PROBE_TOOL["function"]
    if fn["name"] not in text[: spans[0][0]] or fn["description"] not in text[: spans[0][0]]:
        return "it does not list the tools passed as tools="
    if "probe result 4217" not in text:
        return "it does not render tool results"
    (call_start, call_end, _), (answer_start, answer_end, _) = spans
    content, calls, errors = parse_tool_calls(text[call_start:call_end])
    if errors or calls != [{"name": fn["name"], "arguments": _PROBE_ARGS}]:
        return "it does not render tool calls as hermes <tool_call> JSON blocks"
    if "The probe value is 4217." not in text[answer_start:answer_end]:
        return "the final assistant turn cannot be located"
    return None


def choose_chat_template(tokenizer) -> tuple[str, dict]:
    """(template, record): the base tokenizer's own template when it passes `template_problem`,
    else CHAT_TEMPLATE. The record says which was used and why, for metrics.json."""
    own = tokenizer.chat_template
    if isinstance(own, dict):  # named templates: the tool-use one if there is one
        own = own.get("tool_use") or own.get("default")
    if not own:
        return CHAT_TEMPLATE, {"template": "cogcore", "reason": "the base tokenizer has no chat template"}
    if own == CHAT_TEMPLATE:
        return CHAT_TEMPLATE, {"template": "cogcore", "reason": "the base tokenizer already carries it"}
    problem = template_problem(tokenizer, own)
    if problem:
        return CHAT_TEMPLATE, {"template": "cogcore", "reason": f"the base model's template was not used: {problem}"}
    return own, {"template": "base", "reason": "the base model's template renders tools and hermes tool calls"}
