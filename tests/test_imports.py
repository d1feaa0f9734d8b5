"""Packages import only downward, and no module imports itself back through others.

Layers, top to bottom: the command line (`cli`); the stages (`cogcore.stages`: where recipe sections
meet library calls); the stage packages (`curate`, `retrieval`, `train`, `eval`), which do not import
each other, except retrieval's search (the tool every stage searches with); and the shared modules
(`cogcore/*.py`: recipe schema, run directory, io, hardware, models, tool protocol, ...), which import
no package above them. The recipe schema alone may read names from the stage packages it validates
against (fact kinds, PII kinds, read limits, BFCL categories), and any module may use the search
tool's definition (`retrieval.tool`, `retrieval.hits`). Every import counts, inside functions too: a function-level
import is a dependency that waits for its first call.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cogcore

ROOT = Path(cogcore.__file__).parent
STAGE_PACKAGES = {"curate", "retrieval", "train", "eval"}
SHARED_READS_STAGE_PACKAGES = {"cogcore.recipe": {"curate", "eval"}}  # the names it validates against
# The search tool's definition and its hits: what every stage (and the model's runtime) searches with.
SEARCH_TOOL = {"cogcore.retrieval.tool", "cogcore.retrieval.hits"}


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
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
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
    if parts[1] in ("cli", "stages"):
        return parts[1]
    return "shared"


def test_stage_packages_do_not_import_each_other_or_anything_above_them():
    wrong = []
    for module, targets in _graph().items():
        layer = _layer(module)
        for target in targets:
            other = _layer(target)
            if layer in STAGE_PACKAGES and (other in ("cli", "stages")
                                            or (other in STAGE_PACKAGES and other not in (layer, "retrieval"))):
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
            if other in ("cli", "stages") or (other in STAGE_PACKAGES and other not in allowed
                                              and target not in SEARCH_TOOL):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_module_imports_itself_back():
    graph = _graph()
    cycles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_the_checks_see_a_real_crossing():
    """The walker must find what it is looking for: train's cpt data reads from retrieval."""
    assert "cogcore.retrieval.tool" in _graph()["cogcore.train.cpt_data"]
