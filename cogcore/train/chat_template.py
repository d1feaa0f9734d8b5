"""The chat template the trained model ships with: ChatML with hermes-style tool calls.

Tools are listed in the system turn inside `<tools></tools>`; the assistant calls one as
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`; results come back in a user turn inside
`<tool_response></tool_response>`. This is the Qwen2.5 / Hermes layout, which vLLM's `hermes`
tool parser reads, so the saved model serves with tool calling and no cogcore code.

Assistant output sits inside `{% generation %}` markers, so `apply_chat_template(...,
return_assistant_tokens_mask=True)` tells which tokens the model must learn to produce.
`arguments` may be a mapping or a JSON string (datasets stores them as strings; see STACK-NOTES).
"""

from __future__ import annotations

import json
import re

DEFAULT_SYSTEM = "You are a helpful assistant. Use the search tool to look up facts in the company documents."

CHAT_TEMPLATE = (
    "{%- set default_system = '" + DEFAULT_SYSTEM + "' -%}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set system = messages[0]['content'] -%}{%- set rest = messages[1:] -%}"
    "{%- else -%}{%- set system = default_system -%}{%- set rest = messages -%}{%- endif -%}"
    "{{- '<|im_start|>system\\n' + system -}}"
    "{%- if tools -%}"
    "{{- '\\n\\n# Tools\\n\\nYou may call functions to help with the user query. Function signatures are within <tools></tools>:\\n<tools>' -}}"
    "{%- for tool in tools -%}{{- '\\n' + (tool | tojson) -}}{%- endfor -%}"
    "{{- '\\n</tools>\\n\\nFor each call, return a JSON object with the function name and arguments within <tool_call></tool_call>:\\n"
    "<tool_call>\\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\\n</tool_call>' -}}"
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

_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


def parse_tool_calls(text: str) -> tuple[str, list[dict], list[str]]:
    """Split generated text into (content, calls, errors). Calls are parsed as JSON data only.

    A call is {"name": str, "arguments": dict}; anything else is reported in `errors` (the runtime
    sends those back to the model) and never executed.
    """
    calls, errors = [], []
    for raw in _TOOL_CALL.findall(text):
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            errors.append(f"malformed tool call (not JSON: {e.msg}): {raw[:200]}")
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            errors.append(f"malformed tool call (needs a name): {raw[:200]}")
            continue
        args = obj.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                errors.append(f"malformed tool call (arguments are not JSON): {raw[:200]}")
                continue
        if not isinstance(args, dict):
            errors.append(f"malformed tool call (arguments must be an object): {raw[:200]}")
            continue
        calls.append({"name": obj["name"], "arguments": args})
    content = _TOOL_CALL.sub("", text).replace("<|im_end|>", "").strip()
    return content, calls, errors
