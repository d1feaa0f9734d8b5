"""A run directory's files, read into what the report and `cogcore compare` use.

Each reader returns None when its file is missing (its stage has not run) and raises RunFileError,
naming the file and why, when the file is there but cannot be what it should be (cut off mid-write,
valid JSON of the wrong shape, written by another version of cogcore). Stage files are read through
their stage's own class (`CurateStats`, `TrainMetrics`, `EvalResults`), so a reader never guesses at
keys:

    results = read_results(run)            # EvalResults | None
    cpt = read_train_metrics(run, "cpt")   # TrainMetrics | None
    settings = report_settings(read_recipe(run))
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from cogcore.curate.stats import STATS_FILE, CurateStats
from cogcore.eval.results import RESULTS_FILE, EvalResults
from cogcore.recipe import ReportConfig
from cogcore.stage_files import RunFileError, read_json_object
from cogcore.train.metrics import METRICS_FILE, TrainMetrics
from cogcore.valuation.selection_files import MixtureRecord, SelectStats

RECIPE = "recipe.resolved.yaml"
MANIFEST = "manifest.json"
CURATE_STATS = f"curate/{STATS_FILE}"
SELECT_STATS = "select/stats.json"
SELECT_MIXTURE = "select/mixture.json"
TRAIN_STAGES = ("cpt", "tools")
MODEL_CONFIG = "train/tools/model/config.json"  # the final model's, as transformers wrote it
RESULTS = f"eval/{RESULTS_FILE}"
COST = "report/cost.json"  # the report's own cost rows, read by compare where the model is gone


def _kind(data) -> str:
    return {list: "a list", str: "a string", bool: "true or false", type(None): "null"}.get(type(data), "a number")


def read_json(path: Path) -> dict | None:
    """A JSON object the run wrote; None when the file is missing, RunFileError when it is unreadable."""
    return read_json_object(path)


def read_recipe(run_dir: Path) -> dict:
    """recipe.resolved.yaml; {} when missing, RunFileError when it is there but unreadable."""
    path = Path(run_dir) / RECIPE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise RunFileError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
    try:
        data = yaml.safe_load(text) if text else None
    except yaml.YAMLError as e:
        raise RunFileError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if data is not None and not isinstance(data, dict):
        raise RunFileError(f"{path}: expected a mapping of recipe sections, found {_kind(data)}")
    return data or {}


def report_settings(recipe: dict, path: Path | str = RECIPE) -> ReportConfig:
    """The recipe's `report` section as the schema reads it, its defaults filled in (the schema's:
    there are no others). `reference` is taken as written and not checked here: the report falls
    back to its saved copy when the file is no longer reachable."""
    section = dict(recipe.get("report") or {})
    reference = section.pop("reference", None)
    try:
        settings = ReportConfig.model_validate(section)
    except ValidationError as e:
        problems = "; ".join(f"report.{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise RunFileError(f"{path}: {problems}") from None
    return settings.model_copy(update={"reference": reference})


def read_manifest(run_dir: Path) -> dict | None:
    return read_json(Path(run_dir) / MANIFEST)


def read_curate_stats(run_dir: Path) -> CurateStats | None:
    return CurateStats.read(Path(run_dir) / CURATE_STATS)


def read_select_stats(run_dir: Path) -> SelectStats | None:
    return SelectStats.read(run_dir / SELECT_STATS)


def read_ablations(run_dir: Path) -> dict[str, dict]:
    """`cogcore ablate` results by grouping ({"source": {"rows": [...], ...}}); {} when none ran."""
    out = {}
    for path in sorted((run_dir / "ablate").glob("*.json")):
        data = read_json(path)
        if data is not None:
            out[path.stem] = data
    return out


def read_mixture(run_dir: Path) -> MixtureRecord | None:
    return MixtureRecord.read(run_dir / SELECT_MIXTURE)


def read_train_metrics(run_dir: Path, stage: str) -> TrainMetrics | None:
    """train/<stage>/metrics.json (`stage`: cpt or tools)."""
    return TrainMetrics.read(Path(run_dir) / "train" / stage / METRICS_FILE)


def read_model_config(run_dir: Path) -> dict | None:
    """The final model's config.json (its shape, for the cost model)."""
    return read_json(Path(run_dir) / MODEL_CONFIG)


def read_results(run_dir: Path) -> EvalResults | None:
    return EvalResults.read(Path(run_dir) / RESULTS)
