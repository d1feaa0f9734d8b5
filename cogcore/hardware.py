"""The hardware and model arithmetic that training and the cost model share.

GPU profiles (peak HBM bandwidth, dense bf16 peak, memory, an hourly price), a decoder's shape read
from its config.json, and its parameter and FLOP counts. Training uses them for MFU
(cogcore.train.throughput), the report for the serving and training cost (cogcore.report.cost).

Conventions (the same ones as llm-analysis and LLM-Viewer):

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

    shape = ModelShape.from_config(json.load(open("runs/demo/train/tools/model/config.json")))
    flops_per_token(shape, context=512), GPUS["h100"].tflops
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

BYTES_PER_PARAM = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int4": 0.5}


@dataclass(frozen=True)
class GpuProfile:
    """One accelerator: peak HBM bandwidth (GB/s), dense bf16 peak (TFLOPS), memory (GB), price."""

    name: str
    mem_bw_gbs: float
    tflops: float
    memory_gb: float
    price_per_hour: float
    price_source: str


# Prices: H100 and A100 are RunPod's on-demand list (mid-2024, as reported); the others are
# assumptions in the same market, to be overridden with real quotes (recipe `report.prices`).
GPUS: dict[str, GpuProfile] = {
    "h100": GpuProfile("H100 SXM", 3350, 989, 80, 3.99, "RunPod on-demand, mid-2024"),
    "h200": GpuProfile("H200", 4800, 989, 141, 4.50, "assumption"),
    "a100": GpuProfile("A100 SXM 80GB", 2039, 312, 80, 1.94, "RunPod on-demand, mid-2024"),
    "l40s": GpuProfile("L40S", 864, 362, 48, 1.00, "assumption"),
    "l4": GpuProfile("L4", 300, 121, 24, 0.50, "assumption"),
    # Measured on the 2-core build machine: ~20 GB/s streaming read (numpy sum over 1 GiB) and
    # ~0.15 TFLOPS fp32 (torch 2048^2 matmul, 2 threads); memory is that machine's 23 GB.
    "cpu-2core": GpuProfile("CPU, 2 cores", 20, 0.15, 23, 0.10, "assumption; measured BW/FLOPS"),
}


def resolve_gpu(gpu: str | GpuProfile, prices: dict[str, float] | None = None) -> GpuProfile:
    """A profile by key (case-insensitive), with its price replaced from `prices` if given."""
    if isinstance(gpu, GpuProfile):
        return gpu
    key = gpu.lower()
    if key not in GPUS:
        raise KeyError(f"unknown GPU {gpu!r}; known: {', '.join(GPUS)}")
    profile = GPUS[key]
    price = {k.lower(): v for k, v in (prices or {}).items()}.get(key)
    if price is None:
        return profile
    return GpuProfile(**{**asdict(profile), "price_per_hour": float(price), "price_source": "given"})


def gpu_key_for(device: str | None) -> str | None:
    """The profile key for a device name ("NVIDIA H100 80GB HBM3", "h100", "cpu-2core"), or None."""
    if not device:
        return None
    name = device.lower()
    if name in GPUS:
        return name
    words = name.replace("-", " ").replace("_", " ").split()
    return next((key for key in GPUS if key in words), None)


def peak_flops(device: str | None) -> tuple[str, float] | None:
    """(profile key, dense bf16 FLOP/s) of a device name, or None (a CPU, an unknown accelerator)."""
    key = gpu_key_for(device)
    if key is None or key.startswith("cpu"):
        return None
    return key, GPUS[key].tflops * 1e12


@dataclass(frozen=True)
class ModelShape:
    """The dimensions of a Llama/Qwen/SmolLM-style decoder, read from a HF config.json."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    qkv_bias: bool = False

    @classmethod
    def from_config(cls, config: dict) -> ModelShape:
        config = config.get("text_config", config)  # multimodal wrappers nest the decoder
        heads = config["num_attention_heads"]
        hidden = config["hidden_size"]
        # Qwen2 has q/k/v biases without saying so in its config; Llama says attention_bias.
        bias = config.get("attention_bias", config.get("model_type") == "qwen2")
        return cls(
            hidden=hidden,
            intermediate=config["intermediate_size"],
            layers=config["num_hidden_layers"],
            heads=heads,
            kv_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or hidden // heads,
            vocab=config["vocab_size"],
            tied=bool(config.get("tie_word_embeddings", False)),
            qkv_bias=bool(bias),
        )


def _layer_matmul_params(s: ModelShape) -> int:
    q_width, kv_width = s.heads * s.head_dim, s.kv_heads * s.head_dim
    attention = 2 * s.hidden * q_width + 2 * s.hidden * kv_width
    return attention + 3 * s.hidden * s.intermediate


def param_count(s: ModelShape) -> int:
    """All parameters, counting a tied embedding/lm_head matrix once."""
    bias = (s.heads + 2 * s.kv_heads) * s.head_dim if s.qkv_bias else 0
    per_layer = _layer_matmul_params(s) + bias + 2 * s.hidden
    embeddings = s.vocab * s.hidden * (1 if s.tied else 2)
    return s.layers * per_layer + s.hidden + embeddings


def flops_per_token(s: ModelShape, context: float) -> float:
    """Forward FLOPs for one token attending to `context` cached tokens (see module docstring)."""
    matmul = s.layers * _layer_matmul_params(s) + s.vocab * s.hidden
    attention = 2 * 2 * s.layers * context * s.heads * s.head_dim
    return 2 * matmul + attention


def kv_cache_bytes_per_token(s: ModelShape, dtype: str = "bf16") -> float:
    return 2 * s.layers * s.kv_heads * s.head_dim * BYTES_PER_PARAM[dtype]


def weights_bytes(s: ModelShape, dtype: str = "bf16") -> float:
    """Bytes to hold the weights; int4 ignores group scales (see module docstring)."""
    return param_count(s) * BYTES_PER_PARAM[dtype]
