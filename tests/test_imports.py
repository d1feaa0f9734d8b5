"""Packages import only downward, and no module imports itself back through others.

Layers, top to bottom: the command line (`cli`); the stages (`cogcore.stages`: where recipe sections
meet library calls) and the report (`cogcore.report`: the run report and compare, which read every
stage's files, so no stage package may import it; the report stage calls it, and it imports neither
the stages nor the command line); the stage packages (`curate`, `retrieval`, `train`, `eval`), which
do not import each other, except retrieval's search (the tool every stage searches with); and the
shared modules (`cogcore/*.py`: recipe schema, run directory, io, hardware, models, tool protocol,
...), which import no package above them. The recipe schema alone may read names from the stage
packages it validates against (fact kinds, PII kinds, read limits, BFCL categories), and any module
may use the search tool's definition (`retrieval.tool`, `retrieval.hits`) and the stage packages'
file classes (`STAGE_FILES`). Every import counts, inside functions too: a function-level
import is a dependency that waits for its first call.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cogcore

ROOT = Path(cogcore.__file__).parent
STAGE_PACKAGES = {"curate", "retrieval", "valuation", "train", "eval"}
SHARED_READS_STAGE_PACKAGES = {"cogcore.recipe": {"curate", "eval"}}  # the names it validates against
# The search tool's definition and its hits: what every stage (and the model's runtime) searches with.
SEARCH_TOOL = {"cogcore.retrieval.tool", "cogcore.retrieval.hits"}
# A stage package's file classes (what a stage writes for another: train/*/metrics.json): any module
# may read them, and they import only shared modules, so reading one loads no training code.
STAGE_FILES = {"cogcore.train.metrics", "cogcore.eval.results", "cogcore.curate.stats", "cogcore.retrieval.index_files"}
TOP = ("cli", "stages", "report")  # what no stage package and no shared module may import


def _modules() -> dict[str, Path]:
    out = {}
    for f in ROOT.rglob("*.py"):
        parts = ("cogcore", *f.relative_to(ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The cogcore modules `name` imports (a name imported from a package counts as its submodule
    when there is one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    if parts[1] in STAGE_PACKAGES and len(parts) > 1 and (ROOT / parts[1]).is_dir():
        return parts[1]
    if parts[1] in TOP:
        return parts[1]
    return "shared"


def test_stage_packages_do_not_import_each_other_or_anything_above_them():
    wrong = []
    for module, targets in _graph().items():
        layer = _layer(module)
        for target in targets:
            other = _layer(target)
            if target in STAGE_FILES:
                continue
            if layer in STAGE_PACKAGES and (
                other in TOP or (other in STAGE_PACKAGES and other not in (layer, "retrieval"))
            ):
                wrong.append(f"{module} imports {target}")
            if layer == "retrieval" and other in STAGE_PACKAGES - {"retrieval"}:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_shared_modules_import_no_package_above_them():
    wrong = []
    for module, targets in _graph().items():
        if _layer(module) != "shared":
            continue
        allowed = SHARED_READS_STAGE_PACKAGES.get(module, set())
        for target in targets:
            other = _layer(target)
            if other in TOP or (
                other in STAGE_PACKAGES and other not in allowed and target not in SEARCH_TOOL | STAGE_FILES
            ):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_report_imports_neither_the_stages_nor_the_command_line():
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if _layer(module) == "report"
        for target in targets
        if _layer(target) in ("cli", "stages")
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_stage_file_classes_import_only_shared_modules():
    graph = _graph()
    wrong = [
        f"{module} imports {target}" for module in STAGE_FILES for target in graph[module] if _layer(target) != "shared"
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_module_imports_itself_back():
    graph = _graph()
    cycles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_the_checks_see_a_real_crossing():
    """The walker must find what it is looking for: train's cpt data reads from retrieval, and the
    report stage calls the report."""
    graph = _graph()
    assert "cogcore.retrieval.tool" in graph["cogcore.train.cpt_data"]
    assert _layer("cogcore.report.run_report") == "report"
    assert "cogcore.report.run_report" in graph["cogcore.stages.report"]
