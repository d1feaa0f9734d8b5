"""The run directory: skip if unchanged, re-run on change (and downstream), force, resume, wipe;
a stage builds beside its old output and replaces it only when it succeeds; folders cogcore did
not write are never deleted."""

import hashlib
import json
from pathlib import Path

import pytest

from cogcore.runner import FINGERPRINT_FILE, MANIFEST, RunDir, Stage, StageError, StageFailed


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

        return [Stage("a", "a", (), run_a, {"word": a_word}), Stage("b", "b", ("a",), run_b, {"suffix": b_suffix})]


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


def test_a_stage_that_died_half_way_resumes_in_its_staging_folder(tmp_path):
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
        build.run_dir.execute([Stage("t", "t", ("a",), dies, config, resumes=True)])
    assert "t" not in build.run_dir.manifest()["stages"]  # no entry: it did not finish
    assert not (build.run_dir.path / "t").exists()  # nothing in place until it succeeds
    assert (build.run_dir.path / "t.new" / FINGERPRINT_FILE).exists()
    build.logs.clear()
    assert build.run_dir.execute([Stage("t", "t", ("a",), resumes, config, resumes=True)]) == {"t": "ran"}
    assert seen == ["step 1"]
    assert "[resume] t" in build.logs
    entry = build.run_dir.manifest()["stages"]["t"]
    assert entry["fingerprint"] == (build.run_dir.path / "t" / FINGERPRINT_FILE).read_text()
    assert set(entry["outputs"]) == {"t/model.txt"}  # checkpoints are not outputs


def test_a_died_stage_with_a_changed_fingerprint_starts_from_a_wiped_folder(tmp_path):
    build = Build(tmp_path)
    build.run_dir.execute(build.stages())

    def dies(folder: Path) -> None:
        (folder / "partial.txt").write_text("half")
        raise RuntimeError("killed")

    leftovers = []
    with pytest.raises(RuntimeError):
        build.run_dir.execute([Stage("t", "t", ("a",), dies, {"steps": 2}, resumes=True)])
    build.logs.clear()
    build.run_dir.execute(
        [
            Stage(
                "t",
                "t",
                ("a",),
                lambda f: leftovers.append(sorted(p.name for p in f.iterdir())),
                {"steps": 3},
                resumes=True,
            )
        ]
    )
    assert leftovers == [[FINGERPRINT_FILE]]
    assert "[run] t" in build.logs


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


def test_a_stage_builds_beside_its_old_output_and_swaps_it_in_on_success(tmp_path):
    build = Build(tmp_path)
    build.run_dir.execute(build.stages())
    seen = {}

    def rebuild(folder: Path) -> None:
        seen["folder"] = folder.name
        seen["old"] = (build.run_dir.path / "b" / "sub" / "out.txt").read_text()  # still there meanwhile
        (folder / "new.txt").write_text("new")

    build.run_dir.execute([Stage("b", "b", ("a",), rebuild, {"suffix": "changed"})])
    b = build.run_dir.path / "b"
    assert seen == {"folder": "b.new", "old": "ALPHA!"}
    assert sorted(p.name for p in b.iterdir()) == [FINGERPRINT_FILE, "new.txt"]
    assert not (build.run_dir.path / "b.new").exists() and not (build.run_dir.path / "b.old").exists()
    assert set(build.run_dir.manifest()["stages"]["b"]["outputs"]) == {"b/new.txt"}


def test_a_failed_rerun_keeps_the_previous_output_and_its_manifest_entry(tmp_path):
    build = Build(tmp_path)
    build.run_dir.execute(build.stages())
    before = build.run_dir.manifest()

    def bad_setting(folder: Path) -> None:
        (folder / "half.txt").write_text("half")
        raise ValueError("embedder folder is not a model")

    with pytest.raises(StageFailed, match="embedder folder is not a model") as failed:
        build.run_dir.execute([Stage("b", "b", ("a",), bad_setting, {"suffix": "bad"})])
    assert failed.value.stage == "b" and isinstance(failed.value.__cause__, ValueError)
    assert (build.run_dir.path / "b" / "sub" / "out.txt").read_text() == "ALPHA!"
    assert not (build.run_dir.path / "b" / "half.txt").exists()
    assert build.run_dir.manifest() == before
    # The good settings again: nothing to do, the old output is still the complete one.
    assert build.run_dir.execute(build.stages()) == {"a": "skipped", "b": "skipped"}


def test_a_stage_folder_cogcore_did_not_write_is_refused_and_left_alone(tmp_path):
    build = Build(tmp_path)
    mine = build.run_dir.path / "b"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("the user's own notes")
    with pytest.raises(StageError, match=r"b exists but was not written by cogcore") as refused:
        build.run_dir.execute(build.stages())
    assert "move it" in str(refused.value)
    assert build.calls == {"a": 0, "b": 0}  # refused before any stage ran
    assert (mine / "notes.txt").read_text() == "the user's own notes"
    assert not (build.run_dir.path / "b.new").exists()


@pytest.mark.parametrize("leftover", ["b.new", "b.old"])
def test_a_staging_name_cogcore_did_not_write_is_refused_too(tmp_path, leftover):
    build = Build(tmp_path)
    build.run_dir.execute(build.stages())
    theirs = build.run_dir.path / leftover
    theirs.mkdir()
    (theirs / "keep.txt").write_text("mine")
    with pytest.raises(StageError, match=f"{leftover} exists but was not written by cogcore"):
        build.run_dir.execute(build.stages(b_suffix="?"))
    assert (theirs / "keep.txt").read_text() == "mine"


def test_an_empty_folder_in_the_way_is_used(tmp_path):
    build = Build(tmp_path)
    (build.run_dir.path / "a").mkdir(parents=True)
    assert build.run_dir.execute(build.stages()) == {"a": "ran", "b": "ran"}


def test_a_stage_that_does_not_resume_says_it_starts_over(tmp_path):
    build = Build(tmp_path)
    build.run_dir.execute(build.stages())
    leftovers = []

    def dies(folder: Path) -> None:
        (folder / "embedded-half.npy").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        build.run_dir.execute([Stage("t", "t", ("a",), dies, {"n": 1})])
    build.logs.clear()
    build.run_dir.execute(
        [Stage("t", "t", ("a",), lambda f: leftovers.append(sorted(p.name for p in f.iterdir())), {"n": 1})]
    )
    assert leftovers == [[FINGERPRINT_FILE]]
    assert not any(line.startswith("[resume]") for line in build.logs)
    assert "[run] t (this stage does not resume: the unfinished earlier attempt is discarded)" in build.logs


def test_a_skipped_stage_mentions_an_unfinished_attempt_left_beside_it(tmp_path):
    build = Build(tmp_path)
    build.run_dir.execute(build.stages())

    def dies(folder: Path) -> None:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        build.run_dir.execute([Stage("b", "b", ("a",), dies, {"suffix": "other"}, resumes=True)])
    build.logs.clear()
    assert build.run_dir.execute(build.stages()) == {"a": "skipped", "b": "skipped"}
    assert "b.new holds an unfinished attempt of it (delete it to free the space)" in build.logs[1]


def test_a_folder_left_by_a_killed_swap_is_cleaned_up(tmp_path):
    build = Build(tmp_path)
    build.run_dir.execute(build.stages())
    aside = build.run_dir.path / "b.old"  # as if killed between moving the old output aside and deleting it
    aside.mkdir()
    (aside / FINGERPRINT_FILE).write_text("0" * 16)
    build.run_dir.execute(build.stages(b_suffix="?"))
    assert not aside.exists()
    assert (build.run_dir.path / "b" / "sub" / "out.txt").read_text() == "ALPHA?"


def test_a_stage_left_half_way_in_its_final_folder_still_resumes(tmp_path):
    """A run directory from before stages were staged: the killed stage's marker is in its own folder."""
    build = Build(tmp_path)
    build.run_dir.execute(build.stages()[:1])
    config = {"steps": 2}
    fp = build.run_dir.fingerprint(Stage("t", "t", ("a",), print, config), build.run_dir.manifest())
    old = build.run_dir.path / "t"
    (old / "checkpoint-1").mkdir(parents=True)
    (old / "checkpoint-1" / "state.txt").write_text("step 1")
    (old / FINGERPRINT_FILE).write_text(fp)
    seen = []

    def resumes(folder: Path) -> None:
        seen.append((folder / "checkpoint-1" / "state.txt").read_text())

    build.run_dir.execute([Stage("t", "t", ("a",), resumes, config, resumes=True)])
    assert seen == ["step 1"] and "[resume] t" in build.logs


def test_a_damaged_manifest_is_a_stage_error_naming_it(tmp_path):
    build = Build(tmp_path)
    build.run_dir.execute(build.stages())
    (build.run_dir.path / MANIFEST).write_text('{"stages": {"a": {"fing')
    with pytest.raises(StageError, match=r"manifest.json is not valid JSON .*delete it to run every stage again"):
        build.run_dir.execute(build.stages())
    assert (build.run_dir.path / "b" / "sub" / "out.txt").read_text() == "ALPHA!"
