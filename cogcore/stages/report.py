"""The report stage: every stage's files -> report/ (report.md, report.html, cost.json, charts).

cogcore report recipes/demo.yaml     (or, from the files alone: cogcore report runs/demo)
"""

from __future__ import annotations

from pathlib import Path

from cogcore.recipe import Recipe
from cogcore.report.run_report import build_report


def run(recipe: Recipe, run_dir: Path, folder: Path) -> None:
    build_report(run_dir, folder)  # reads the run's files, writes only the folder it is given
