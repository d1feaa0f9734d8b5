"""A base model that needs its own code (`base_model.trust_remote_code: true`) through every stage
that loads a model: train.cpt, train.tools (reloads train.cpt's model), eval (the trained and the
base model) and `cogcore ask` (the trained model). The model here is a tiny Llama whose folder
declares its own model type and classes in a modeling file beside the weights (`auto_map`), as
models published with custom code do: transformers refuses to load it, or anything saved from it,
unless remote code is allowed. Every load must therefore carry the recipe's flag; one that drops
it fails the run.
"""

from __future__ import annotations

import json

import pytest
import yaml
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from cogcore.cli import app
from tests.test_pipeline import _recipe

MODELING = """
from transformers import LlamaConfig, LlamaForCausalLM


class RemoteLlamaConfig(LlamaConfig):
    model_type = "cogcore_remote_llama"


class RemoteLlamaForCausalLM(LlamaForCausalLM):
    config_class = RemoteLlamaConfig
"""


def needing_remote_code(folder):
    """Turn a saved tiny Llama into a model transformers loads only with trust_remote_code=True: a
    model type of its own, implemented by the modeling file in the folder."""
    (folder / "modeling_remote.py").write_text(MODELING)
    config = json.loads((folder / "config.json").read_text())
    config.update(
        model_type="cogcore_remote_llama",
        architectures=["RemoteLlamaForCausalLM"],
        auto_map={
            "AutoConfig": "modeling_remote.RemoteLlamaConfig",
            "AutoModelForCausalLM": "modeling_remote.RemoteLlamaForCausalLM",
        },
    )
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _refuses_without_remote_code(folder) -> None:
    with pytest.raises(ValueError, match="trust_remote_code"):
        AutoModelForCausalLM.from_pretrained(folder)


def test_a_base_model_that_needs_remote_code_is_reloaded_with_it_by_every_stage(
    tmp_path, make_tiny_llm, make_tiny_embedder
):
    path, run = _recipe(tmp_path, make_tiny_llm, make_tiny_embedder)
    recipe = yaml.safe_load(path.read_text())
    base = needing_remote_code(make_tiny_llm(["The monthly fee for the Blue account is $5.00."] * 3))
    _refuses_without_remote_code(base)
    recipe["base_model"] = {"path": str(base), "trust_remote_code": True}
    recipe["train"] = {
        "cpt": {"max_steps": 1, "seq_len": 64, "batch_size": 2, "save_steps": 10},
        "tools": {"max_steps": 1, "seq_len": 1024, "batch_size": 2, "conversations": 4, "save_steps": 10},
    }
    recipe["eval"] = {
        "questions": 2,
        "perplexity_docs": 1,
        "openbook_passages": 0,
        "agentic_questions": 1,
        "max_new_tokens": 4,
        "bfcl": {"enabled": False},
        "throughput": {"enabled": False},
    }
    path.write_text(yaml.safe_dump(recipe))
    cli = CliRunner()

    done = cli.invoke(app, ["run", str(path)])
    assert done.exit_code == 0, done.output
    for stage in ("cpt", "tools"):
        trained = run / "train" / stage / "model"
        # save_pretrained kept the model's code beside its weights: the folder loads on its own...
        assert (trained / "modeling_remote.py").exists()
        assert json.loads((trained / "config.json").read_text())["model_type"] == "cogcore_remote_llama"
        # ...and only with remote code allowed, so every stage that reloaded it passed the flag.
        _refuses_without_remote_code(trained)
    assert (run / "eval" / "results.json").exists()

    asked = cli.invoke(
        app,
        [
            "ask",
            str(run),
            "What is the monthly fee for the Blue account?",
            "--max-new-tokens",
            "4",
            "--max-rounds",
            "1",
        ],
    )
    assert asked.exit_code == 0, asked.output
    assert "answer" in asked.output
