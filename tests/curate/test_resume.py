"""A curation run killed part-way, started again, gives exactly the output of an uninterrupted run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import dataclasses, os, signal, sys
    from pathlib import Path
    from cogcore.curate import passes
    from cogcore.curate.pipeline import curate
    from cogcore.curate.plan import CuratePlan, SourceSpec
    from cogcore.recipe import CurateConfig, FactsConfig, ReadLimitsConfig, Source

    class KillSwitch:
        # Passes documents through; with KILL_AFTER set, SIGKILLs its own process on that batch:
        # a crash at an arbitrary point of pass 2, with shards of both passes on disk.
        name = "kill_switch"
        calls = 0
        def run(self, docs):
            KillSwitch.calls += 1
            if os.environ.get("KILL_AFTER") and KillSwitch.calls == int(os.environ["KILL_AFTER"]):
                os.kill(os.getpid(), signal.SIGKILL)
            return docs, []

    if os.environ.get("KILL_IN_LAST_PASS"):  # the same crash in the last pass, which finds facts shard by shard
        last_pass, shards = passes.LastPass.__call__, []
        def killing_last_pass(self, docs):
            shards.append(1)
            if len(shards) == int(os.environ["KILL_IN_LAST_PASS"]):
                os.kill(os.getpid(), signal.SIGKILL)
            return last_pass(self, docs)
        passes.LastPass.__call__ = killing_last_pass

    src, out = sys.argv[1], Path(sys.argv[2])
    section = CurateConfig(min_chars=20, heldout_fraction=0.2, batch_size=50, boilerplate={"enabled": False},
                           pii={"enabled": False}, dedup={"minhash": {"enabled": False}})
    plan = CuratePlan.from_sections(curate=section, facts=FactsConfig(kinds=["money", "number"]), seed=0,
                                    embedder="unused")
    plan = dataclasses.replace(plan, filters=(KillSwitch(),))  # no recipe field names it: a test's own step
    source = SourceSpec.from_section(Source(name="s", path=src, id_field="id"), ReadLimitsConfig())
    curate([source], out, plan)
""")


def _corpus(path: Path) -> None:
    rows = [
        {"id": f"d{i}", "text": f"Record {i % 400} says the fee is ${i % 400 % 97}.00 for {i % 400 % 13} items."}
        for i in range(1000)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _run(src: Path, out: Path, kill_after: int | None = None, kill_in_last_pass: int | None = None):
    env = {"PATH": "/usr/bin:/bin", "TQDM_DISABLE": "1"}
    if kill_after:
        env["KILL_AFTER"] = str(kill_after)
    if kill_in_last_pass:
        env["KILL_IN_LAST_PASS"] = str(kill_in_last_pass)
    return subprocess.run([sys.executable, "-c", SCRIPT, str(src), str(out)], env=env, capture_output=True, text=True)


def test_killed_run_resumes_to_the_same_output(tmp_path):
    src = tmp_path / "docs.jsonl"
    _corpus(src)
    assert _run(src, tmp_path / "whole").returncode == 0

    killed = _run(src, tmp_path / "resumed", kill_after=8)
    assert killed.returncode == -9  # really killed, mid-way through pass 2
    done_before = len(list((tmp_path / "resumed" / "work" / "p2").glob("*.pkl")))
    assert 0 < done_before < 20 and not (tmp_path / "resumed" / "docs.jsonl").exists()

    again = _run(src, tmp_path / "resumed")
    assert again.returncode == 0, again.stderr
    _assert_same_output(tmp_path / "resumed", tmp_path / "whole")


def test_run_killed_while_finding_facts_resumes_to_the_same_output(tmp_path):
    src = tmp_path / "docs.jsonl"
    _corpus(src)
    assert _run(src, tmp_path / "whole").returncode == 0

    killed = _run(src, tmp_path / "resumed", kill_in_last_pass=12)
    assert killed.returncode == -9
    done_before = len(list((tmp_path / "resumed" / "work" / "p3").glob("*.pkl")))
    assert 0 < done_before < 20 and not (tmp_path / "resumed" / "docs.jsonl").exists()

    again = _run(src, tmp_path / "resumed")
    assert again.returncode == 0, again.stderr
    _assert_same_output(tmp_path / "resumed", tmp_path / "whole")


def _assert_same_output(resumed_dir: Path, whole_dir: Path) -> None:
    for name in ("docs.jsonl", "facts.jsonl", "clusters.jsonl"):
        assert (resumed_dir / name).read_text() == (whole_dir / name).read_text(), name
    whole = json.loads((whole_dir / "stats.json").read_text())
    resumed = json.loads((resumed_dir / "stats.json").read_text())
    strip = lambda steps: [{k: v for k, v in s.items() if k != "seconds"} for s in steps]  # noqa: E731
    assert strip(resumed["steps"]) == strip(whole["steps"])
    assert whole["steps"][-1]["dropped"] == {"exact_duplicate": 600}
