"""How many positions a base model has, read cheaply: from a config dict (a folder's config.json, or
a loaded model's `config.to_dict()`), or from the first keys of a GGUF file's header.

Validation uses it where the model is on disk (`cogcore validate` stays well under a second); the
training stages use it on the loaded model before they train, so a hub id is checked there too.

    model_positions(Path("models/SmolLM2-135M.gguf"))  # (8192, "llama.context_length in the GGUF metadata")
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import BinaryIO

# The names configs give the longest sequence a model was built for, most common first.
POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")
# Rope scalings that stretch the trained context by `factor` (llama3's is already in max_position_embeddings).
STRETCHING_ROPE = ("linear", "dynamic", "yarn")


def model_positions(path: Path) -> tuple[int, str] | None:
    """(positions, where that came from) for a model folder with config.json or a .gguf file;
    None where neither is readable here (a hub id, a file that is not what it says)."""
    if path.is_dir() and (path / "config.json").is_file():
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        found = positions_limit(config) if isinstance(config, dict) else None
        return (found[0], f"{found[1]} in config.json") if found else None
    if path.suffix == ".gguf" and path.is_file():
        return gguf_positions(path)
    return None


def positions_limit(config: dict) -> tuple[int, str] | None:
    """(positions, the config key that gives them), from a transformers config as a dict."""
    for cfg in (config, config.get("text_config") or {}):
        for key in POSITION_KEYS:
            limit = cfg.get(key)
            if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
                return _with_rope_scaling(cfg, limit, key)
    return None


def _with_rope_scaling(cfg: dict, limit: int, key: str) -> tuple[int, str]:
    rope = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    kind = rope.get("rope_type", rope.get("type")) if isinstance(rope, dict) else None
    factor = rope.get("factor") if kind in STRETCHING_ROPE else None
    if isinstance(factor, (int, float)) and factor > 1:
        stretched = int(factor * rope.get("original_max_position_embeddings", limit))
        if stretched > limit:
            return stretched, f"{key} with {kind} rope scaling x{factor:g}"
    return limit, key


# GGUF metadata value types (the GGUF spec): fixed sizes in bytes; 8 = string, 9 = array.
_GGUF_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_INTS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 10: "<Q", 11: "<q"}
_STRING, _ARRAY = 8, 9


def gguf_positions(path: Path) -> tuple[int, str] | None:
    """`<architecture>.context_length` from a GGUF header. Only the keys up to it are read: the
    gguf package's reader parses all metadata, the tokenizer's vocabulary included (1.6 s for a
    135M model's file, 5x a whole `cogcore validate`)."""
    try:
        with path.open("rb") as f:
            if f.read(4) != b"GGUF" or _unpack(f, "<I") < 2:  # version 1 had 32-bit lengths; long gone
                return None
            _unpack(f, "<Q")  # tensor count
            arch, lengths = None, {}
            for _ in range(_unpack(f, "<Q")):
                key, kind = _read_string(f), _unpack(f, "<I")
                if key == "general.architecture" and kind == _STRING:
                    arch = _read_string(f)
                elif key.endswith(".context_length") and kind in _GGUF_INTS:
                    lengths[key] = _unpack(f, _GGUF_INTS[kind])
                else:
                    _skip_value(f, kind)
                if arch and f"{arch}.context_length" in lengths:
                    key = f"{arch}.context_length"
                    return (lengths[key], f"{key} in the GGUF metadata") if lengths[key] > 0 else None
    except (OSError, ValueError, UnicodeDecodeError, struct.error, RecursionError):
        return None
    return None


def _unpack(f: BinaryIO, fmt: str) -> int:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("the GGUF header ends early")
    return struct.unpack(fmt, data)[0]


def _read_string(f: BinaryIO) -> str:
    n = _unpack(f, "<Q")
    if n > 1 << 16:  # keys and architecture names are short; this is not a GGUF header
        raise ValueError("implausible GGUF string length")
    return f.read(n).decode("utf-8")


def _skip_value(f: BinaryIO, kind: int) -> None:
    if kind in _GGUF_SIZES:
        f.seek(_GGUF_SIZES[kind], 1)
    elif kind == _STRING:
        f.seek(_unpack(f, "<Q"), 1)
    elif kind == _ARRAY:
        item, count = _unpack(f, "<I"), _unpack(f, "<Q")
        if item in _GGUF_SIZES:
            f.seek(_GGUF_SIZES[item] * count, 1)
        else:
            for _ in range(count):  # strings (a vocabulary) or nested arrays: one length at a time
                _skip_value(f, item)
    else:
        raise ValueError(f"unknown GGUF value type {kind}")
