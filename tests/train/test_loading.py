"""Loading a base model from a folder or a GGUF file (converted once, then cached), and saving it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cogcore.models import ModelSpec, count_params, gguf_as_folder, save_model

TEXTS = ["The standard account costs 5 USD per month.", "International wires cost 25 USD."]


@pytest.fixture(scope="module")
def llm_dir(make_tiny_llm):
    return make_tiny_llm(TEXTS)


def _logits(model, tok, text="The standard account costs 5 USD."):
    with torch.no_grad():
        return model(tok(text, return_tensors="pt").input_ids).logits


def test_load_folder(llm_dir):
    model, tok = ModelSpec(str(llm_dir), "float32", trust_remote_code=False).load()
    assert model.config.model_type == "llama" and next(model.parameters()).dtype == torch.float32
    assert tok.pad_token == "<|im_end|>" and tok.eos_token == "<|im_end|>"
    reference = AutoModelForCausalLM.from_pretrained(llm_dir)
    torch.testing.assert_close(_logits(model, tok), _logits(reference, tok))
    bf16, _ = ModelSpec(str(llm_dir), "bfloat16", trust_remote_code=False).load()
    assert next(bf16.parameters()).dtype == torch.bfloat16


def test_missing_pad_token_falls_back_to_eos(llm_dir, tmp_path):
    folder = tmp_path / "nopad"
    shutil.copytree(llm_dir, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("pad_token", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert AutoTokenizer.from_pretrained(folder).pad_token is None
    _, tok = ModelSpec(str(folder), "float32", trust_remote_code=False).load()
    assert tok.pad_token == tok.eos_token == "<|im_end|>"


def test_pickled_weights_are_refused(llm_dir, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(llm_dir, folder)
    state = AutoModelForCausalLM.from_pretrained(llm_dir).state_dict()
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(OSError):
        ModelSpec(str(folder), "float32", trust_remote_code=False).load()


def test_save_model_round_trip(llm_dir, tmp_path):
    model, tok = ModelSpec(str(llm_dir), "float32", trust_remote_code=False).load()
    save_model(model, tok, tmp_path / "out")
    assert (tmp_path / "out" / "model.safetensors").exists()
    again, tok2 = ModelSpec(str(tmp_path / "out"), "float32", trust_remote_code=False).load()
    torch.testing.assert_close(_logits(again, tok2), _logits(model, tok))
    trainable, total = count_params(model)
    assert trainable == total == sum(p.numel() for p in model.parameters())
    model.model.embed_tokens.weight.requires_grad_(False)
    assert count_params(model) == (total - model.model.embed_tokens.weight.numel(), total)


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order (convert_hf_to_gguf.py), which transformers undoes on load."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(src: Path, out: Path) -> Path:
    """An unquantized (F32) llama GGUF of the tiny model, with its byte-level BPE tokenizer."""
    import gguf

    model = AutoModelForCausalLM.from_pretrained(src)
    tok = AutoTokenizer.from_pretrained(src)
    cfg = model.config
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    writer.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    tj = json.loads((src / "tokenizer.json").read_text())
    tokens = sorted(tj["model"]["vocab"], key=tj["model"]["vocab"].get)
    specials = {t["content"] for t in tj["added_tokens"]}
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in specials else 1 for t in tokens])  # 3: control, 1: normal
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]])
    writer.add_bos_token_id(tok.bos_token_id)
    writer.add_eos_token_id(tok.eos_token_id)
    writer.add_pad_token_id(tok.pad_token_id)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    for i in range(cfg.num_hidden_layers):
        hf, gg = f"model.layers.{i}.", f"blk.{i}."
        names |= {
            hf + "input_layernorm.weight": gg + "attn_norm.weight",
            hf + "post_attention_layernorm.weight": gg + "ffn_norm.weight",
            hf + "self_attn.q_proj.weight": gg + "attn_q.weight",
            hf + "self_attn.k_proj.weight": gg + "attn_k.weight",
            hf + "self_attn.v_proj.weight": gg + "attn_v.weight",
            hf + "self_attn.o_proj.weight": gg + "attn_output.weight",
            hf + "mlp.gate_proj.weight": gg + "ffn_gate.weight",
            hf + "mlp.up_proj.weight": gg + "ffn_up.weight",
            hf + "mlp.down_proj.weight": gg + "ffn_down.weight",
        }
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied to the embeddings; a GGUF without output.weight ties them too
        w = tensor.float().numpy()
        if "q_proj" in name:
            w = _permute(w, cfg.num_attention_heads)
        elif "k_proj" in name:
            w = _permute(w, cfg.num_key_value_heads)
        writer.add_tensor(names[name], np.ascontiguousarray(w))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def test_gguf_is_converted_once_and_cached(llm_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("COGCORE_CACHE", str(tmp_path / "cache"))
    gguf_file = write_tiny_gguf(llm_dir, tmp_path / "tiny.gguf")
    model, tok = ModelSpec(str(gguf_file), "float32", trust_remote_code=False).load()
    reference, ref_tok = AutoModelForCausalLM.from_pretrained(llm_dir), AutoTokenizer.from_pretrained(llm_dir)
    text = "International wires cost 25 USD.<|im_end|>"
    assert tok(text)["input_ids"] == ref_tok(text)["input_ids"]
    torch.testing.assert_close(_logits(model, tok), _logits(reference, ref_tok))

    (folder,) = (tmp_path / "cache" / "gguf").iterdir()
    assert folder.name.startswith("tiny-") and (folder / "model.safetensors").exists()
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert gguf_as_folder(gguf_file) == folder  # second time: the cache, no conversion
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    # A changed file gets a new conversion.
    os.utime(gguf_file, ns=(stamp + 10**9, stamp + 10**9))
    assert gguf_as_folder(gguf_file) != folder
    assert sorted(p.name.endswith(".tmp") for p in (tmp_path / "cache" / "gguf").iterdir()) == [False, False]
