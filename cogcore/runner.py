"""The run directory, its manifest, and the skip / resume / force logic.

A stage's fingerprint hashes the recipe sections it reads, the files it reads from outside the run
(sources, base model) and the recorded output hashes of the stages it reads from. A stage whose
fingerprint is unchanged and whose manifest entry says complete is skipped.

A stage never builds in its output folder: it builds beside it, in `<folder>.new/` marked with its
fingerprint (`.fingerprint`), and only when it succeeds does that folder replace the old output
(the old one is moved to `<folder>.old/` and deleted) and its manifest entry get written. A re-run
that fails (a bad setting, a full disk, Ctrl-C, kill -9) leaves the previous complete output and
its manifest entry as they were; the next run retries. Started again with the same fingerprint, a
stage that declares `resumes` carries on in its `.new/` folder (curation from its finished shards,
training from its last checkpoint); any other stage starts over there, and says so. The manifest
entry is written last, so its presence means the stage finished.

cogcore deletes only folders that carry its marker (and empty ones): a stage, `.new` or `.old`
folder holding anyone else's files stops the command before any stage runs. `RunDir.lock()` holds
the run directory for one writing command at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from cogcore import __version__
from cogcore.io import file_sha256, write_json_atomic, write_text_atomic

MANIFEST = "manifest.json"
RESOLVED_RECIPE = "recipe.resolved.yaml"
FINGERPRINT_FILE = ".fingerprint"
STAGING_SUFFIX = ".new"  # where a stage builds until it succeeds
ASIDE_SUFFIX = ".old"  # the old output, for the moment of the swap
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class Stage:
    """One step of the build: where it writes, what it reads, and the function that does it."""

    name: str
    folder: str
    upstream: tuple[str, ...]
    run: Callable[[Path], None]  # called with the folder to build in; writes only inside it, and
    # records no absolute path to it in its files: the folder is renamed when the stage succeeds
    config: dict = field(default_factory=dict)  # recipe sections and external file stamps it reads
    resumes: bool = False  # started again after a kill, it carries on from what it left (else: starts over)


def file_stamp(path: str | Path) -> dict:
    """A cheap identity for an external input: a big base model is not re-hashed on every run."""
    p = Path(path)
    if not p.exists():
        return {"path": str(path)}  # a hub id: the name is all we know
    if p.is_dir():
        return {
            "path": str(p),
            "files": sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in p.iterdir() if f.is_file()),
        }
    st = p.stat()
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class RunDir:
    """`runs/<name>/`: the resolved recipe, one folder per stage, and manifest.json."""

    def __init__(self, path: Path, log: Callable[[str], None] = print):
        self.path = Path(path)
        self.log = log

    def manifest(self) -> dict:
        p = self.path / MANIFEST
        if not p.exists():
            return {"stages": {}}
        try:
            return json.loads(p.read_text())
        except ValueError as e:  # written atomically, so damaged from outside
            raise StageError(
                f"{p} is not valid JSON ({e}): restore it, or delete it to run every stage again "
                "(their folders are replaced as they finish)"
            ) from None

    def save_resolved_recipe(self, data: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path / RESOLVED_RECIPE, yaml.safe_dump(data, sort_keys=False))

    def saved_recipe(self):
        """The recipe the run was last started with (every path absolute), typed; StageError when
        the run has none or it no longer validates."""
        from cogcore.recipe import RecipeError, parse_yaml, validate

        path = self.path / RESOLVED_RECIPE
        if not path.is_file():
            raise StageError(f"{path} is missing: is {self.path} a run directory (has any stage run)?")
        try:
            return validate(parse_yaml(path.read_text(encoding="utf-8")))
        except (RecipeError, ValueError, yaml.YAMLError) as e:
            raise StageError(
                f"{path} is not a recipe this version of cogcore reads ({e}); run the recipe again"
            ) from None

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory for one command that writes to it; RunLocked, naming the holder's
        pid, while another holds it. The kernel releases the lock with its process, even a killed one."""
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / LOCK_FILE, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "unknown"
                raise RunLocked(
                    f"{self.path} is in use by another cogcore command (pid {holder}); "
                    "wait for it to finish, or stop it, then run again"
                ) from None
            f.truncate(0)
            f.write(f"{os.getpid()}\n")
            f.flush()
            try:
                yield
            finally:
                f.truncate(0)
                fcntl.flock(f, fcntl.LOCK_UN)

    def fingerprint(self, stage: Stage, manifest: dict) -> str:
        upstream = {}
        for name in stage.upstream:
            entry = manifest["stages"].get(name)
            upstream[name] = entry["outputs"] if entry else None
        blob = json.dumps(
            {"version": __version__, "config": stage.config, "upstream": upstream}, sort_keys=True, default=str
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def execute(self, stages: list[Stage], force: set[str] = frozenset()) -> dict[str, str]:
        """Run stages in order; return {stage: 'ran' | 'skipped'}."""
        self._check_owned(stages)
        outcome = {}
        for stage in stages:
            manifest = self.manifest()
            missing = [u for u in stage.upstream if u not in manifest["stages"]]
            if missing:
                raise StageError(
                    f"stage {stage.name} needs {', '.join(missing)} first "
                    f"(run `cogcore run` or the earlier stage commands)"
                )
            fp = self.fingerprint(stage, manifest)
            entry = manifest["stages"].get(stage.name)
            if entry and entry.get("status") == "complete" and entry["fingerprint"] == fp and stage.name not in force:
                staging = _beside(self.path / stage.folder, STAGING_SUFFIX)
                left = (
                    (
                        f"; {staging.relative_to(self.path)} holds an unfinished attempt of it "
                        "(delete it to free the space)"
                    )
                    if staging.exists()
                    else ""
                )
                self.log(
                    f"[skip] {stage.name}: unchanged since {entry['ended']} (use --force {stage.name} to re-run){left}"
                )
                outcome[stage.name] = "skipped"
                continue
            self._run_stage(stage, fp, fresh=stage.name in force)
            outcome[stage.name] = "ran"
        return outcome

    def _check_owned(self, stages: list[Stage]) -> None:
        """Before anything runs: every folder a stage may replace or delete must be cogcore's."""
        for stage in stages:
            final = self.path / stage.folder
            for path in (final, _beside(final, STAGING_SUFFIX), _beside(final, ASIDE_SUFFIX)):
                if not _owned(path):
                    raise StageError(
                        f"{path} exists but was not written by cogcore (it has no {FINGERPRINT_FILE}), and the "
                        f"{stage.name} stage would replace it: move it out of {self.path}, or give the recipe "
                        "another `name` or `run_dir`"
                    )

    def _run_stage(self, stage: Stage, fp: str, fresh: bool) -> None:
        final = self.path / stage.folder
        staging = _beside(final, STAGING_SUFFIX)
        self._prepare(stage, final, staging, fp, fresh)
        started, t0 = _now(), time.time()
        try:
            stage.run(staging)
        except Exception as error:  # KeyboardInterrupt passes as it is
            raise StageFailed(stage.name, staging, final.exists(), error) from error
        entry = {
            "fingerprint": fp,
            "status": "complete",
            "started": started,
            "ended": _now(),
            "seconds": round(time.time() - t0, 2),
            "outputs": self._hash_outputs(staging, final),
        }
        self._swap_in(stage.name, staging, final)
        manifest = self.manifest()
        manifest["stages"][stage.name] = entry
        write_json_atomic(self.path / MANIFEST, manifest)
        self.log(f"[done] {stage.name} in {entry['seconds']:.1f}s")

    def _prepare(self, stage: Stage, final: Path, staging: Path, fp: str, fresh: bool) -> None:
        """Make the staging folder: the one a killed run left when the stage resumes, else a new one."""
        if (
            stage.resumes
            and not fresh
            and not staging.exists()
            and _marker(final) == fp
            and stage.name not in self.manifest()["stages"]
        ):
            os.replace(final, staging)  # killed in its own folder (run directories from before staging)
        note = ""
        if staging.exists():
            if _marker(staging) == fp and not fresh:
                if stage.resumes:
                    self.log(f"[resume] {stage.name}")
                    return
                note = " (this stage does not resume: the unfinished earlier attempt is discarded)"
            _remove(staging)
        staging.mkdir(parents=True)
        (staging / FINGERPRINT_FILE).write_text(fp)
        self.log(f"[run] {stage.name}{note}")

    def _swap_in(self, name: str, staging: Path, final: Path) -> None:
        """The new output replaces the old. The old manifest entry describes the old output, so it goes
        first: killed in between, the stage has no entry and runs again."""
        manifest = self.manifest()
        if manifest["stages"].pop(name, None) is not None:
            write_json_atomic(self.path / MANIFEST, manifest)
        aside = _beside(final, ASIDE_SUFFIX)
        if aside.exists():
            _remove(aside)  # left by a swap that was killed
        if final.exists():
            os.replace(final, aside)
        os.replace(staging, final)
        if aside.exists():
            _remove(aside)

    def _hash_outputs(self, staging: Path, final: Path) -> dict[str, str]:
        """{path in the run directory once swapped in: sha256}, checkpoints and the marker left out."""
        out = {}
        for f in sorted(staging.rglob("*")):
            inner = f.relative_to(staging)
            if f.is_file() and f.name != FINGERPRINT_FILE and "checkpoint-" not in str(inner):
                out[str((final / inner).relative_to(self.path))] = file_sha256(f)
        return out


class StageError(RuntimeError):
    """A stage cannot run (its inputs are missing, a folder in its way); the message says what to do."""


class RunLocked(StageError):
    """Another command is writing to the run directory."""


class StageFailed(RuntimeError):
    """A stage raised (its exception is the __cause__). `folder` holds its unfinished work; `kept`:
    a previous complete output is still in place."""

    def __init__(self, stage: str, folder: Path, kept: bool, error: Exception):
        super().__init__(f"stage {stage} failed: {type(error).__name__}: {error}")
        self.stage, self.folder, self.kept, self.error = stage, folder, kept, error


def claim_folder(folder: Path) -> None:
    """Let a command outside a run (`cogcore report RUN_DIR`) write a stage's folder: create it with a
    marker (no stage's fingerprint), or check that it is cogcore's already; StageError otherwise."""
    if not _owned(folder):
        raise StageError(
            f"{folder} exists but was not written by cogcore (it has no {FINGERPRINT_FILE}): "
            "move it out of the run directory first"
        )
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / FINGERPRINT_FILE
    if not marker.exists():
        marker.write_text("written outside a run\n")


def _beside(folder: Path, suffix: str) -> Path:
    return folder.with_name(folder.name + suffix)


def _marker(folder: Path) -> str | None:
    try:
        return (folder / FINGERPRINT_FILE).read_text().strip()
    except OSError:
        return None


def _owned(path: Path) -> bool:
    """Nothing there, an empty folder, or a folder carrying cogcore's marker."""
    if not path.exists() and not path.is_symlink():
        return True
    if path.is_symlink() or not path.is_dir():
        return False
    return (path / FINGERPRINT_FILE).is_file() or not any(path.iterdir())


def _remove(folder: Path) -> None:
    """Delete one of cogcore's own folders, its marker last: interrupted, it is still recognizably ours."""
    for child in folder.iterdir():
        if child.name == FINGERPRINT_FILE:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    (folder / FINGERPRINT_FILE).unlink(missing_ok=True)
    folder.rmdir()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
