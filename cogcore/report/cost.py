"""What a model costs to serve and to train: a roofline estimate from its config.json alone.

The report calls `cost_table(config, gpus)` on the trained model's `config.json`; from Python:

    from cogcore.hardware import GPUS, ModelShape
    from cogcore.report.cost import estimate
    shape = ModelShape.from_config(json.load(open("runs/demo/train/tools/model/config.json")))
    estimate(shape, GPUS["h100"], dtype="bf16", batch=16)

The GPU profiles, the model's shape and its FLOPs live in `cogcore.hardware`, which training's
throughput figures use too; this module adds what serving and training cost on them.

Conventions (the same ones as llm-analysis and LLM-Viewer; see also Williams et al., "Roofline: an
insightful visual performance model", CACM 2009):

- Parameters: embeddings V*h; per layer q and o h*(H*d), k and v h*(K*d) (grouped-query
  attention, K kv heads of width d), gated MLP 3*h*I, two RMSNorm weight vectors h; a final norm h;
  an lm_head V*h unless tied to the embeddings.
- Forward FLOPs per token at a KV length of `context`: 2*N_matmul (one multiply-add per weight
  of every matrix the token goes through: attention, MLP and lm_head, not the embedding lookup)
  plus attention 2*2*L*context*(H*d) (scores Q.K^T and the weighted sum over V, 2 FLOPs per
  multiply-add each). Norms, softmax and activations are ignored (<1%).
- KV cache per token: 2 (K and V) * L * K * d * bytes.
- Weights: params * bytes, with bf16 = 2, fp8 = 1, int4 = 0.5 bytes. The int4 figure ignores the
  group scales and zero points (about +3% at group size 128) and that embeddings and lm_head are
  often left in bf16.

Roofline for serving a static batch of B requests, each P prompt tokens and O output tokens:

    decode step  t_d = max((W_read + B*C*kv) / (eta_mem*BW),  B*F(C) / (eta_flop*PEAK))
                 with C = P + O/2, the mean KV length over the generation
    decode tok/s = B / t_d (aggregate), 1 / t_d per stream; per-output-token latency = t_d
    prefill      t_p = max((W + B*P*kv) / (eta_mem*BW),  B*P*F(P/2) / (eta_flop*PEAK))
    prefill tok/s = B*P / t_p; time to first token = t_p (the whole batch arrives together)
    memory       W + B*(P+O)*kv, fits if <= 0.9 * GPU memory (vLLM's default utilization)
    $ per 1M tokens = price_per_hour / (tokens/s * 3600) * 1e6, input from prefill tok/s and
                      output from decode tok/s.

W_read is the bytes one decode step streams: all weights except the input embedding table when
it is untied (a step reads one row of it). Efficiency factors follow llm-analysis: compute at most
0.7 of peak for inference (0.5 for training), memory 0.9 ("aggressive"). Peak compute is the dense
bf16 figure for every dtype: weight-only int4 dequantizes to bf16, and fp8 tensor cores (2x on
Hopper/Ada) are left out, so fp8 compute-bound figures are conservative. The model ignores
activations, framework overhead, scheduling and continuous batching; treat it as an upper bound on
throughput, which real servers reach a fraction of at large batch (vLLM 0.6.0 measures 8,088 output
tok/s for Llama-3.1-8B on one GPU on ShareGPT, LambdaLabsML/vllm-benchmark; this model bounds
Llama-3-8B bf16 on an H100 at batch 256, 256 prompt + 256 output tokens, at about 27.7k).

Training: 6*N*D FLOPs (Kaplan et al. 2020) at a model FLOPs utilization `mfu` of peak.
"""

from __future__ import annotations

from cogcore.hardware import (
    BYTES_PER_PARAM,
    GpuProfile,
    ModelShape,
    flops_per_token,
    kv_cache_bytes_per_token,
    param_count,
    resolve_gpu,
    weights_bytes,
)

ETA_FLOP_INFERENCE = 0.7  # llm-analysis: compute efficiency at most 0.7 for inference
ETA_MEM = 0.9  # llm-analysis: memory efficiency 0.9, "aggressive"
MEMORY_UTILIZATION = 0.9  # vLLM gpu_memory_utilization default: the rest is left to activations


def _decode_read_bytes(s: ModelShape, dtype: str) -> float:
    # An untied input embedding is looked up, not streamed: a step reads one row of it.
    skipped = 0 if s.tied else s.vocab * s.hidden
    return (param_count(s) - skipped) * BYTES_PER_PARAM[dtype]


def _dollars_per_million(price_per_hour: float, tokens_per_s: float) -> float:
    return price_per_hour / (tokens_per_s * 3600) * 1e6


def estimate(
    shape: ModelShape,
    gpu: str | GpuProfile,
    dtype: str = "bf16",
    batch: int = 16,
    prompt_tokens: int = 1024,
    output_tokens: int = 256,
    price_per_hour: float | None = None,
    kv_dtype: str = "bf16",
    eta_flop: float = ETA_FLOP_INFERENCE,
    eta_mem: float = ETA_MEM,
) -> dict:
    """Serving figures for one model on one GPU under the roofline in the module docstring."""
    g = resolve_gpu(gpu)
    price = g.price_per_hour if price_per_hour is None else price_per_hour
    bw, peak = eta_mem * g.mem_bw_gbs * 1e9, eta_flop * g.tflops * 1e12
    kv = kv_cache_bytes_per_token(shape, kv_dtype)
    weights = weights_bytes(shape, dtype)

    context = prompt_tokens + output_tokens / 2
    decode_mem = (_decode_read_bytes(shape, dtype) + batch * context * kv) / bw
    decode_compute = batch * flops_per_token(shape, context) / peak
    step = max(decode_mem, decode_compute)

    prompt_batch = batch * prompt_tokens
    prefill = max((weights + prompt_batch * kv) / bw, prompt_batch * flops_per_token(shape, prompt_tokens / 2) / peak)

    memory = weights + batch * (prompt_tokens + output_tokens) * kv
    decode_tps, prefill_tps = batch / step, prompt_batch / prefill
    return {
        "gpu": g.name,
        "dtype": dtype,
        "batch": batch,
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "decode_tokens_per_s": decode_tps,
        "decode_tokens_per_s_per_stream": 1 / step,
        "decode_bound": "memory" if decode_mem >= decode_compute else "compute",
        "prefill_tokens_per_s": prefill_tps,
        "time_to_first_token_s": prefill,
        "time_per_output_token_s": step,
        "memory_gb": memory / 1e9,
        "gpu_memory_gb": g.memory_gb,
        "fits": memory <= MEMORY_UTILIZATION * g.memory_gb * 1e9,
        "price_per_hour": price,
        "price_source": g.price_source if price_per_hour is None else "given",
        "usd_per_1m_input": _dollars_per_million(price, prefill_tps),
        "usd_per_1m_output": _dollars_per_million(price, decode_tps),
    }


def model_summary(shape: ModelShape, dtypes: tuple[str, ...] = ("bf16", "fp8", "int4")) -> dict:
    """Size figures that do not depend on the GPU."""
    return {
        "params": param_count(shape),
        "weights_gb": {d: weights_bytes(shape, d) / 1e9 for d in dtypes},
        "kv_cache_bytes_per_token_bf16": kv_cache_bytes_per_token(shape, "bf16"),
        "flops_per_token_ctx0": flops_per_token(shape, 0),
    }


def cost_table(
    config: dict,
    gpus: list[str],
    prices: dict[str, float] | None = None,
    dtype: str = "bf16",
    batch: int = 16,
    prompt_tokens: int = 1024,
    output_tokens: int = 256,
) -> list[dict]:
    """One `estimate` row per GPU key, prices overridden by `prices` ({key: $/hour})."""
    shape = ModelShape.from_config(config)
    rows = []
    for key in gpus:
        row = estimate(shape, resolve_gpu(key, prices), dtype, batch, prompt_tokens, output_tokens)
        rows.append({"gpu_key": key, "params": param_count(shape), **row})
    return rows


def training_cost(
    n_params: int,
    tokens: int,
    gpu: str | GpuProfile = "h100",
    mfu: float = 0.4,
    price_per_hour: float | None = None,
) -> dict:
    """6*N*D FLOPs at `mfu` of dense bf16 peak on one GPU: seconds, GPU-hours and dollars."""
    g = resolve_gpu(gpu)
    price = g.price_per_hour if price_per_hour is None else price_per_hour
    flops = 6 * n_params * tokens
    seconds = flops / (mfu * g.tflops * 1e12)
    return {
        "gpu": g.name,
        "mfu": mfu,
        "flops": flops,
        "seconds": seconds,
        "gpu_hours": seconds / 3600,
        "usd": seconds / 3600 * price,
    }


# Training MFU assumed where none was measured on the profile: OLMo-core reports 39-48% on H100s
# for 1B-8B models, litgpt 52% for TinyLlama on A100s; llm-analysis caps training compute at 0.5.
ASSUMED_TRAIN_MFU = 0.4


def achieved_mfu(n_params: int, tokens: int, seconds: float, gpu: str | GpuProfile) -> float:
    """Model FLOPs utilization of a finished run: 6*N*D / seconds over the profile's dense peak."""
    return 6 * n_params * tokens / seconds / (resolve_gpu(gpu).tflops * 1e12)


def estimate_from_params(
    n_params: float,
    gpu: str | GpuProfile,
    dtype: str = "bf16",
    batch: int = 16,
    price_per_hour: float | None = None,
    eta_flop: float = ETA_FLOP_INFERENCE,
    eta_mem: float = ETA_MEM,
) -> dict:
    """Decode figures for a model known only by its parameter count (a published score's row).

    The roofline above without the KV cache and attention terms: a decode step streams the weights
    once and does 2*N FLOPs per stream. It is optimistic next to `estimate`, which knows the shape.
    """
    g = resolve_gpu(gpu)
    price = g.price_per_hour if price_per_hour is None else price_per_hour
    step = max(
        n_params * BYTES_PER_PARAM[dtype] / (eta_mem * g.mem_bw_gbs * 1e9),
        batch * 2 * n_params / (eta_flop * g.tflops * 1e12),
    )
    return {
        "gpu": g.name,
        "decode_tokens_per_s": batch / step,
        "price_per_hour": price,
        "usd_per_1m_output": _dollars_per_million(price, batch / step),
    }
