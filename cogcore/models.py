"""Which model to load, loading it (a hub id, a local folder or a GGUF file), and saving it back.

`ModelSpec` is the one description of a model to load: path, dtype, whether its remote code may run,
and whether its weights load as 4-bit NF4. Built once from the recipe's `base_model`; a model
trained from it is the same spec at another path (`spec.at(folder)`), so no stage can drop a flag
on the way (a base model that needs remote code needs it in every stage that reloads its weights).

    spec = ModelSpec.from_section(recipe.base_model)
    model, tokenizer = spec.load()
    model, tokenizer = spec.at(run / "train/cpt/model").load()

A GGUF file is dequantized by transformers on load (~40 s for a 135M model on 2 cores); the result
is cached as a plain safetensors folder under `$COGCORE_CACHE` (default `~/.cache/cogcore`), keyed
by the file's path, size and mtime, so later runs load in seconds. Weights load from safetensors
only, and remote code runs only when the recipe sets `trust_remote_code: true`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cache_root() -> Path:
    return Path(os.environ.get("COGCORE_CACHE", Path.home() / ".cache" / "cogcore"))


@dataclass(frozen=True)
class ModelSpec:
    """A model to load. `quantize_4bit`: NF4 weights on this process's GPU (QLoRA; needs CUDA and
    bitsandbytes)."""

    path: str  # hub id, local folder or .gguf file
    dtype: str  # float32 | bfloat16 | float16
    trust_remote_code: bool
    quantize_4bit: bool = False  # a property of how a stage loads the base, never of a saved model

    @classmethod
    def from_section(cls, section, quantize_4bit: bool = False) -> ModelSpec:
        """From the recipe's `base_model` section (path resolved)."""
        return cls(
            path=section.path,
            dtype=section.dtype,
            trust_remote_code=section.trust_remote_code,
            quantize_4bit=quantize_4bit,
        )

    def at(self, path: str | Path) -> ModelSpec:
        """A model trained from this one and saved at `path`: the same dtype and remote-code trust."""
        return replace(self, path=str(path), quantize_4bit=False)

    def local_path(self) -> str:
        """What transformers, lm-eval and vLLM load: the cached folder of a .gguf file, else the path."""
        return str(gguf_as_folder(Path(self.path))) if self.path.endswith(".gguf") else self.path

    def load(self):
        """(model, tokenizer)."""
        tokenizer = self.load_tokenizer()
        return self.load_model(), tokenizer

    def load_tokenizer(self):
        """The tokenizer; one without a pad token pads with its end-of-text token."""
        tokenizer = AutoTokenizer.from_pretrained(self.local_path(), trust_remote_code=self.trust_remote_code)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    def load_model(self) -> PreTrainedModel:
        quantized = _nf4_kwargs() if self.quantize_4bit else {}
        return AutoModelForCausalLM.from_pretrained(
            self.local_path(),
            dtype=DTYPES[self.dtype],
            use_safetensors=True,
            trust_remote_code=self.trust_remote_code,
            **quantized,
        )


def _nf4_kwargs() -> dict:
    """QLoRA's storage (Dettmers et al. 2023): NF4 weights, double-quantized scales, bf16 compute.
    Each process holds a whole copy on its own GPU (LOCAL_RANK under accelerate/torchrun)."""
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    return {"quantization_config": config, "device_map": {"": int(os.environ.get("LOCAL_RANK", "0"))}}


def gguf_as_folder(gguf: Path) -> Path:
    """Dequantize a GGUF file once into a cached safetensors folder and return the folder."""
    st = gguf.stat()
    key = hashlib.sha1(f"{gguf.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    folder = cache_root() / "gguf" / f"{gguf.stem}-{key}"
    if (folder / "config.json").exists():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The dequantized weights are plain fp32; keeping the GGUF quantizer would make
    # save_pretrained refuse (or re-quantize) them.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tokenizer, tmp)
    os.replace(tmp, folder)  # atomic: a killed conversion never leaves a half folder behind
    return folder


def save_model(model: PreTrainedModel, tokenizer, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def count_params(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
