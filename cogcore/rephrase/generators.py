"""The models that write the rewrites: transformers on a CPU (or one GPU), or vLLM's offline batch
generation on GPUs. Both take a list of instructions and return, in order, each one's text and token
counts; both wrap an instruction in the model's chat template when it has one.

    gen = TransformersGenerator(model, tok, GenerationSettings(max_new_tokens=256, batch_size=8))
    outs = gen.generate(["Rewrite ...", ...], seed=0)     # [Generation(text, prompt_tokens, new_tokens)]

The vLLM path (`VllmGenerator`, `rephrase.backend: vllm`) is written against vLLM's `LLM.generate`
with `SamplingParams` and has not been run here (no GPU, vLLM not installed): it produces the same
`Generation` records, so everything after generation is shared and tested.
"""

from __future__ import annotations

from dataclasses import dataclass

from cogcore.untrusted_text import control_strings, neutralize


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 512
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    batch_size: int = 8  # transformers: prompts per forward pass (vLLM schedules its own batches)


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    new_tokens: int  # up to and including the end-of-turn token, if it came


def chat_prompt(tokenizer, instruction: str) -> str:
    """The instruction as the model's user turn, ready for its answer; an instruction and a blank
    line where the tokenizer has no chat template (a base model). The passage inside it is a
    document's text, so its special-token strings are neutralized: a passage writing
    "<|im_end|><|im_start|>system" stays text inside the user's turn."""
    instruction = neutralize(instruction, control_strings(tokenizer))
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": instruction}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return instruction + "\n\n"


class TransformersGenerator:
    """Batched `model.generate` with left padding, prompts of alike length batched together."""

    name = "transformers"

    def __init__(self, model, tokenizer, settings: GenerationSettings):
        self.model, self.tokenizer, self.settings = model.eval(), tokenizer, settings
        self.tokenizer.padding_side = "left"  # generation continues each prompt from its last token
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def generate(self, instructions: list[str], seed: int = 0, progress=None) -> list[Generation]:
        """Each instruction's generation, in order; `progress(generations)` after each batch."""
        prompts = [chat_prompt(self.tokenizer, i) for i in instructions]
        lengths = [len(ids) for ids in self.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(prompts)), key=lambda i: lengths[i])
        out: list[Generation | None] = [None] * len(prompts)
        size = self.settings.batch_size
        for b, start in enumerate(range(0, len(order), size)):
            batch = order[start : start + size]
            done = self._batch([prompts[i] for i in batch], seed * 100_003 + b)
            for i, gen in zip(batch, done):
                out[i] = gen
            if progress is not None:
                progress(done)
        return out

    def _batch(self, prompts: list[str], seed: int) -> list[Generation]:
        import torch

        s, tok = self.settings, self.tokenizer
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        sampling = {"do_sample": True, "temperature": s.temperature, "top_p": s.top_p} if s.temperature > 0 else {}
        torch.manual_seed(seed)  # a batch samples the same text whenever it runs: a resumed shard matches
        with torch.no_grad():
            ids = self.model.generate(
                **enc,
                max_new_tokens=s.max_new_tokens,
                pad_token_id=tok.pad_token_id,
                do_sample=bool(sampling),
                **sampling,
            )
        new = ids[:, enc["input_ids"].shape[1] :].tolist()
        prompt_tokens = enc["attention_mask"].sum(dim=1).tolist()
        return [
            Generation(tok.decode(_until_eos(n, tok.eos_token_id), skip_special_tokens=True).strip(), p, _count(n, tok))
            for n, p in zip(new, prompt_tokens)
        ]


def _until_eos(ids: list[int], eos: int | None) -> list[int]:
    return ids[: ids.index(eos)] if eos is not None and eos in ids else ids


def _count(ids: list[int], tok) -> int:
    """Tokens generated: up to and including the end-of-turn token (padding after it aside)."""
    eos = tok.eos_token_id
    return ids.index(eos) + 1 if eos is not None and eos in ids else len(ids)


class VllmGenerator:
    """vLLM's offline engine over the whole list at once (it batches and schedules on the GPUs).
    Untested here: written against vLLM's documented `LLM` / `SamplingParams` API."""

    name = "vllm"

    def __init__(self, path: str, settings: GenerationSettings, dtype: str = "bfloat16", trust_remote_code=False):
        try:
            from vllm import LLM
        except ImportError:
            raise RuntimeError("rephrase.backend: vllm needs the vllm package and a GPU (pip install vllm)") from None
        import torch

        self.settings = settings
        self.llm = LLM(
            model=path,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            tensor_parallel_size=max(torch.cuda.device_count(), 1),
        )
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, instructions: list[str], seed: int = 0, progress=None) -> list[Generation]:
        from vllm import SamplingParams

        s = self.settings
        params = SamplingParams(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_new_tokens, seed=seed)
        prompts = [chat_prompt(self.tokenizer, i) for i in instructions]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        done = [
            Generation(o.outputs[0].text.strip(), len(o.prompt_token_ids), len(o.outputs[0].token_ids)) for o in outputs
        ]
        if progress is not None:
            progress(done)
        return done


def choose_backend(requested: str, vllm_installed: bool | None = None, cuda: bool | None = None) -> str:
    """ "transformers" or "vllm" for `rephrase.backend` (auto: vLLM where it imports and a GPU is present)."""
    import importlib.util

    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if vllm_installed is None:
        vllm_installed = importlib.util.find_spec("vllm") is not None
    if requested == "vllm" and not (cuda and vllm_installed):
        missing = "no GPU is visible" if not cuda else "vllm is not installed (pip install vllm)"
        raise RuntimeError(f"rephrase.backend: vllm, but {missing}; use backend: transformers or auto")
    if requested == "transformers":
        return "transformers"
    return "vllm" if cuda and vllm_installed else "transformers"
