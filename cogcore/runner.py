"""The run directory, its manifest, and the skip / resume / force logic.

A stage's fingerprint hashes the recipe sections it reads, the files it reads from outside the run
(sources, base model) and the recorded output hashes of the stages it reads from. A stage whose
fingerprint is unchanged and whose manifest entry says complete is skipped. A stage that died
half-way left `<stage dir>/.fingerprint` behind but no manifest entry: if the fingerprint still
matches, the stage runs again in the same folder and resumes (training from its last checkpoint);
otherwise the folder is wiped first. The manifest entry is written last, so its presence means the
stage finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import yaml

from cogcore import __version__

MANIFEST = "manifest.json"
FINGERPRINT_FILE = ".fingerprint"


@dataclass(frozen=True)
class Stage:
    """One step of the build: where it writes, what it reads, and the function that does it."""

    name: str
    folder: str
    upstream: tuple[str, ...]
    run: Callable[[Path], None]  # called with the stage folder; writes only inside it
    config: dict = field(default_factory=dict)  # recipe sections and external file stamps it reads


def write_json_atomic(path: Path, data) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_stamp(path: str | Path) -> dict:
    """A cheap identity for an external input: a big base model is not re-hashed on every run."""
    p = Path(path)
    if not p.exists():
        return {"path": str(path)}  # a hub id: the name is all we know
    if p.is_dir():
        return {"path": str(p), "files": sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns)
                                               for f in p.iterdir() if f.is_file())}
    st = p.stat()
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class RunDir:
    """`runs/<name>/`: the resolved recipe, one folder per stage, and manifest.json."""

    def __init__(self, path: Path, log: Callable[[str], None] = print):
        self.path = Path(path)
        self.log = log

    def manifest(self) -> dict:
        p = self.path / MANIFEST
        return json.loads(p.read_text()) if p.exists() else {"stages": {}}

    def save_resolved_recipe(self, data: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "recipe.resolved.yaml").write_text(yaml.safe_dump(data, sort_keys=False))

    def fingerprint(self, stage: Stage, manifest: dict) -> str:
        upstream = {}
        for name in stage.upstream:
            entry = manifest["stages"].get(name)
            upstream[name] = entry["outputs"] if entry else None
        blob = json.dumps({"version": __version__, "config": stage.config, "upstream": upstream},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def execute(self, stages: list[Stage], force: set[str] = frozenset()) -> dict[str, str]:
        """Run stages in order; return {stage: 'ran' | 'skipped'}."""
        outcome = {}
        for stage in stages:
            manifest = self.manifest()
            missing = [u for u in stage.upstream if u not in manifest["stages"]]
            if missing:
                raise StageError(f"stage {stage.name} needs {', '.join(missing)} first "
                                 f"(run `cogcore run` or the earlier stage commands)")
            fp = self.fingerprint(stage, manifest)
            entry = manifest["stages"].get(stage.name)
            if entry and entry.get("status") == "complete" and entry["fingerprint"] == fp \
                    and stage.name not in force:
                self.log(f"[skip] {stage.name}: unchanged since {entry['ended']} (use --force {stage.name} to re-run)")
                outcome[stage.name] = "skipped"
                continue
            self._run_stage(stage, fp, manifest, fresh=stage.name in force)
            outcome[stage.name] = "ran"
        return outcome

    def _run_stage(self, stage: Stage, fp: str, manifest: dict, fresh: bool) -> None:
        folder = self.path / stage.folder
        marker = folder / FINGERPRINT_FILE
        resuming = marker.exists() and marker.read_text().strip() == fp and not fresh
        manifest["stages"].pop(stage.name, None)
        self.path.mkdir(parents=True, exist_ok=True)  # usable without save_resolved_recipe first
        write_json_atomic(self.path / MANIFEST, manifest)  # its old entry no longer describes the folder
        if not resuming and folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(fp)
        self.log(f"[{'resume' if resuming else 'run'}] {stage.name}")
        started, t0 = _now(), time.time()
        stage.run(folder)
        entry = {"fingerprint": fp, "status": "complete", "started": started, "ended": _now(),
                 "seconds": round(time.time() - t0, 2), "outputs": self._hash_outputs(folder)}
        manifest = self.manifest()
        manifest["stages"][stage.name] = entry
        write_json_atomic(self.path / MANIFEST, manifest)
        self.log(f"[done] {stage.name} in {entry['seconds']:.1f}s")

    def _hash_outputs(self, folder: Path) -> dict[str, str]:
        out = {}
        for f in sorted(folder.rglob("*")):
            if f.is_file() and f.name != FINGERPRINT_FILE and "checkpoint-" not in str(f.relative_to(folder)):
                out[str(f.relative_to(self.path))] = file_sha256(f)
        return out


class StageError(RuntimeError):
    """A stage cannot run (its inputs are missing); the message says what to do."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
