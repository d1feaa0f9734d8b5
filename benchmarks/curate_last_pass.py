"""Curation's last phase alone: learn the names, apply the global decisions, find the facts and write
docs.jsonl / facts.jsonl, on 1 and on 2 workers, over pass 2's shards of a curation run.

    .venv/bin/python benchmarks/scale.py --quick          # or any `cogcore curate` run: its work/p2 is the input
    .venv/bin/python benchmarks/curate_last_pass.py \\
        --run /tmp/cogcore-scale/runs/scale-0.25gb --shards 12 --workers 1,2

The run's recipe (recipe.resolved.yaml) gives the plan; the first `--shards` shards of its
`curate*/work/p2` are copied into `--work` and the phase runs there once per worker count, from
learning the names to the renamed output files (the global decisions, made before it, are not
timed). MB/s is the text entering the phase (pass 2's documents, UTF-8) over the phase's wall
time; the outputs of every worker count are compared by hash. The load average is printed: the
figures are only as quiet as the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TQDM_DISABLE", "1")

from cogcore.curate import pipeline  # noqa: E402  (the phase's own private functions, timed as the stage runs them)
from cogcore.curate.executors import LocalExecutor  # noqa: E402
from cogcore.curate.global_steps import global_steps  # noqa: E402
from cogcore.curate.plan import CuratePlan  # noqa: E402
from cogcore.recipe import load_recipe  # noqa: E402

OUTPUTS = ("docs.jsonl", "facts.jsonl", "names.json")


def main() -> None:
    args = _parse()
    run = Path(args.run)
    recipe = load_recipe(run / "recipe.resolved.yaml", check_paths=False)
    plan = CuratePlan.from_sections(
        curate=recipe.curate, facts=recipe.facts, seed=recipe.seed, embedder=recipe.index.embedder
    )
    p2 = sorted(run.glob("curate*/work/p2"))[0]
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"load average before: {os.getloadavg()[0]:.1f} (1 min), {os.cpu_count()} cores")
    digests = {}
    for workers in [int(w) for w in args.workers.split(",")]:
        out = Path(args.work) / f"w{workers}"
        row, digests[workers] = _time_phase(p2, args.shards, out, plan, workers)
        print(" | ".join(f"{k} {v}" for k, v in row.items()))
    same = len(set(digests.values())) == 1
    print(f"load average after: {os.getloadavg()[0]:.1f}; outputs identical across worker counts: {same}")


def _time_phase(p2: Path, shards: int, out: Path, plan: CuratePlan, workers: int) -> tuple[dict, str]:
    shutil.rmtree(out, ignore_errors=True)
    (out / "work" / "p2").mkdir(parents=True)
    for k in range(shards):
        shutil.copy(p2 / f"{k:06d}.pkl", out / "work" / "p2")
    totals = pipeline._run_pass("pass 2/2", LocalExecutor(1), None, iter(()), out / "work" / "p2")  # read back
    docs = lambda: pipeline._shard_docs(out / "work" / "p2", totals.shards)  # noqa: E731
    mb = sum(len(d["text"].encode()) for batch in docs() for d in batch) / 1e6
    steps, _ = global_steps(totals, plan, docs, out / "work")  # decided before the phase: not timed
    t0 = time.perf_counter()
    written = pipeline._write_documents(out, plan, totals, steps, {}, LocalExecutor(workers))
    seconds = time.perf_counter() - t0
    digest = hashlib.sha256(b"".join((out / name).read_bytes() for name in OUTPUTS)).hexdigest()[:12]
    row = {
        "workers": workers,
        "docs in": len(totals.ids),
        "MB in": round(mb, 1),
        "docs out": written.docs_out,
        "facts": sum(written.facts.values()),
        "seconds": round(seconds, 1),
        "MB/s": round(mb / seconds, 3),
        "outputs sha256": digest,
    }
    return row, digest


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="a run folder whose curate*/work/p2 holds pass 2's shards")
    ap.add_argument("--shards", type=int, default=4, help="how many of pass 2's shards to take, from the first")
    ap.add_argument("--workers", default="1,2", help="worker counts to time, comma-separated")
    ap.add_argument("--work", default="/tmp/cogcore-last-pass")
    return ap.parse_args()


if __name__ == "__main__":
    main()
