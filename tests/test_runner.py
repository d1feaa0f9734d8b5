"""The run directory: skip if unchanged, re-run on change (and downstream), force, resume, wipe."""

import hashlib
import json
from pathlib import Path

import pytest

from cogcore.runner import FINGERPRINT_FILE, MANIFEST, RunDir, Stage, StageError


class Build:
    """Two small stages, `a` then `b` (b reads a's output), that count their calls."""

    def __init__(self, root: Path):
        self.logs: list[str] = []
        self.run_dir = RunDir(root / "runs" / "x", log=self.logs.append)
        self.calls = {"a": 0, "b": 0}

    def stages(self, a_word="alpha", b_suffix="!", a_fixed_output=False) -> list[Stage]:
        def run_a(folder: Path) -> None:
            self.calls["a"] += 1
            (folder / "out.txt").write_text("constant" if a_fixed_output else a_word)

        def run_b(folder: Path) -> None:
            self.calls["b"] += 1
            upstream = (self.run_dir.path / "a" / "out.txt").read_text()
            (folder / "sub").mkdir(exist_ok=True)
            (folder / "sub" / "out.txt").write_text(upstream.upper() + b_suffix)

        return [Stage("a", "a", (), run_a, {"word": a_word}),
                Stage("b", "b", ("a",), run_b, {"suffix": b_suffix})]


def test_first_run_runs_everything_and_records_the_manifest(tmp_path):
    build = Build(tmp_path)
    assert build.run_dir.execute(build.stages()) == {"a": "ran", "b": "ran"}
    assert (build.run_dir.path / "b" / "sub" / "out.txt").read_text() == "ALPHA!"
    manifest = json.loads((build.run_dir.path / MANIFEST).read_text())
    entry = manifest["stages"]["b"]
    assert set(entry) == {"fingerprint", "status", "started", "ended", "seconds", "outputs"}
    assert entry["status"] == "complete" and entry["seconds"] >= 0 and entry["started"] <= entry["ended"]
    assert entry["outputs"] == {"b/sub/out.txt": hashlib.sha256(b"ALPHA!").hexdigest()}  # marker excluded
    assert (build.run_dir.path / "b" / FINGERPRINT_FILE).read_text() == entry["fingerprint"]
    assert entry["fingerprint"] != manifest["stages"]["a"]["fingerprint"]


def test_unchanged_stages_are_skipped_and_say_so(tmp_path):
    build = Build(tmp_path)
    build.run_dir.execute(build.stages())
    first = build.run_dir.manifest()
    build.logs.clear()
    assert build.run_dir.execute(build.stages()) == {"a": "skipped", "b": "skipped"}
    assert build.calls == {"a": 1, "b": 1}
    assert [line.split(":")[0] for line in build.logs] == ["[skip] a", "[skip] b"]
    assert "unchanged since" in build.logs[0] and "--force a" in build.logs[0]
    assert build.run_dir.manifest() == first


def test_changed_config_reruns_the_stage_and_downstream(tmp_path):
    build = Build(tmp_path)
    build.run_dir.execute(build.stages())
    assert build.run_dir.execute(build.stages(a_word="beta")) == {"a": "ran", "b": "ran"}
    assert (build.run_dir.path / "b" / "sub" / "out.txt").read_text() == "BETA!"
    # b's own config change re-runs b only
    assert build.run_dir.execute(build.stages(a_word="beta", b_suffix="?")) == {"a": "skipped", "b": "ran"}
    assert build.calls == {"a": 2, "b": 3}


def test_downstream_is_skipped_when_upstream_reran_to_identical_outputs(tmp_path):
    build = Build(tmp_path)
    build.run_dir.execute(build.stages(a_fixed_output=True))
    outcome = build.run_dir.execute(build.stages(a_word="other", a_fixed_output=True))
    assert outcome == {"a": "ran", "b": "skipped"}  # fingerprints hash upstream outputs, not upstream config


def test_force_reruns_an_unchanged_stage_from_a_clean_folder(tmp_path):
    build = Build(tmp_path)
    build.run_dir.execute(build.stages())
    stray = build.run_dir.path / "b" / "stray.txt"
    stray.write_text("left by hand")
    assert build.run_dir.execute(build.stages(), force={"b"}) == {"a": "skipped", "b": "ran"}
    assert build.calls == {"a": 1, "b": 2}
    assert not stray.exists()


def test_a_stage_that_died_half_way_resumes_in_the_same_folder(tmp_path):
    build = Build(tmp_path)
    build.run_dir.execute(build.stages())
    seen = []

    def dies(folder: Path) -> None:
        (folder / "checkpoint-1").mkdir()
        (folder / "checkpoint-1" / "state.txt").write_text("step 1")
        raise RuntimeError("killed")

    def resumes(folder: Path) -> None:
        seen.append((folder / "checkpoint-1" / "state.txt").read_text())
        (folder / "model.txt").write_text("done")

    config = {"steps": 2}
    with pytest.raises(RuntimeError, match="killed"):
        build.run_dir.execute([Stage("t", "t", ("a",), dies, config)])
    assert "t" not in build.run_dir.manifest()["stages"]  # no entry: it did not finish
    marker = build.run_dir.path / "t" / FINGERPRINT_FILE
    assert marker.exists()
    build.logs.clear()
    assert build.run_dir.execute([Stage("t", "t", ("a",), resumes, config)]) == {"t": "ran"}
    assert seen == ["step 1"]
    assert "[resume] t" in build.logs
    entry = build.run_dir.manifest()["stages"]["t"]
    assert entry["fingerprint"] == marker.read_text()
    assert set(entry["outputs"]) == {"t/model.txt"}  # checkpoints are not outputs


def test_a_died_stage_with_a_changed_fingerprint_starts_from_a_wiped_folder(tmp_path):
    build = Build(tmp_path)
    build.run_dir.execute(build.stages())

    def dies(folder: Path) -> None:
        (folder / "partial.txt").write_text("half")
        raise RuntimeError("killed")

    leftovers = []
    with pytest.raises(RuntimeError):
        build.run_dir.execute([Stage("t", "t", ("a",), dies, {"steps": 2})])
    build.logs.clear()
    build.run_dir.execute([Stage("t", "t", ("a",), lambda f: leftovers.append(sorted(p.name for p in f.iterdir())),
                                 {"steps": 3})])
    assert leftovers == [[FINGERPRINT_FILE]]
    assert "[run] t" in build.logs


def test_a_rerun_stage_loses_its_old_manifest_entry_until_it_finishes(tmp_path):
    build = Build(tmp_path)
    build.run_dir.execute(build.stages())

    def dies(folder: Path) -> None:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        build.run_dir.execute([Stage("b", "b", ("a",), dies, {"suffix": "changed"})])
    assert set(build.run_dir.manifest()["stages"]) == {"a"}


def test_missing_upstream_raises_a_helpful_stage_error(tmp_path):
    build = Build(tmp_path)
    with pytest.raises(StageError, match=r"stage b needs a first \(run `cogcore run`"):
        build.run_dir.execute(build.stages()[1:])
    assert build.calls == {"a": 0, "b": 0}


def test_resolved_recipe_is_saved_beside_the_run(tmp_path):
    build = Build(tmp_path)
    build.run_dir.save_resolved_recipe({"name": "x", "train": {"cpt": {"max_steps": 3}}})
    text = (build.run_dir.path / "recipe.resolved.yaml").read_text()
    assert text.splitlines()[0] == "name: x" and "max_steps: 3" in text
