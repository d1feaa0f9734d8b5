"""The `cogcore` command line. Each command is thin: parse, build, run.

    cogcore validate recipes/demo.yaml
    cogcore run recipes/demo.yaml -o train.cpt.max_steps=4 --force eval
    cogcore search runs/demo "overdraft fee"
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

# Before torch is imported: with the default ACTIVE policy, idle OpenMP threads spin, and on a
# loaded machine one query embedding took 130-520 ms instead of 15-25 ms.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402

from cogcore.recipe import RecipeError, load_recipe, resolved_dict  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="markdown",
                  help="Build small domain cognitive cores from one recipe: "
                       "curate -> index -> train -> eval -> report.")
err = Console(stderr=True)
out = Console()

RecipeArg = Annotated[Path, typer.Argument(help="recipe YAML file", show_default=False)]
Overrides = Annotated[Optional[list[str]], typer.Option(
    "--override", "-o", help="dotted override, e.g. -o train.cpt.max_steps=10 (repeatable)")]
Force = Annotated[Optional[list[str]], typer.Option(
    "--force", "-f", help="re-run this stage even if unchanged: curate, index, train, train.cpt, train.tools, "
                          "eval, report (repeatable)")]


def _load(recipe: Path, overrides: list[str] | None):
    try:
        return load_recipe(recipe, overrides or [])
    except RecipeError as e:
        for line in e.problems:
            err.print(f"[red]error[/red] {escape(line)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)


def _log(message: str) -> None:
    err.print(f"[bold cyan]cogcore[/] {escape(message)}", highlight=False, soft_wrap=True)


def _execute(recipe_path: Path, overrides: list[str] | None, stage_names: list[str], force: list[str] | None) -> None:
    from cogcore.runner import RunDir, StageError
    from cogcore.stages import COMMAND_STAGES, ORDER, build_stages

    recipe = _load(recipe_path, overrides)
    forced = set()
    for name in force or []:
        if name not in ORDER and name not in COMMAND_STAGES:
            err.print(f"[red]error[/red] --force {escape(name)}: unknown stage; allowed: {', '.join(ORDER)}, train",
                      soft_wrap=True)
            raise typer.Exit(2)
        forced.update(COMMAND_STAGES.get(name, [name]))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    stages = [s for s in build_stages(recipe, recipe_path.parent.resolve()) if s.name in stage_names]
    run_dir = RunDir(recipe.run_path(Path.cwd()), log=_log)
    run_dir.save_resolved_recipe(resolved_dict(recipe, recipe_path.parent.resolve()))
    try:
        run_dir.execute(stages, force=forced)
    except StageError as e:
        err.print(f"[red]error[/red] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(1)
    _log(f"run directory: {run_dir.path}")


@app.command()
def validate(recipe: RecipeArg, override: Overrides = None) -> None:
    """Check a recipe (schema, values, paths) and nothing else. Exit code 2 on any problem."""
    r = _load(recipe, override)
    out.print(f"[green]ok[/green] {recipe}: recipe '{r.name}' is valid")


@app.command()
def run(recipe: RecipeArg, override: Overrides = None, force: Force = None) -> None:
    """Run every stage; finished stages whose inputs are unchanged are skipped."""
    from cogcore.stages import ORDER

    _execute(recipe, override, list(ORDER), force)


@app.command()
def curate(recipe: RecipeArg, override: Overrides = None, force: Force = None) -> None:
    """Read, clean, filter and deduplicate the sources; find facts. Writes RUN_DIR/curate/."""
    _execute(recipe, override, ["curate"], force)


@app.command()
def index(recipe: RecipeArg, override: Overrides = None, force: Force = None) -> None:
    """Chunk and embed the curated documents into a faiss index. Writes RUN_DIR/index/."""
    _execute(recipe, override, ["index"], force)


@app.command()
def train(recipe: RecipeArg, override: Overrides = None, force: Force = None) -> None:
    """Continued pretraining (facts kept, masked or replaced by search calls), then tool-use
    fine-tuning. Writes RUN_DIR/train/."""
    _execute(recipe, override, ["train.cpt", "train.tools"], force)


@app.command(name="eval")
def eval_(recipe: RecipeArg, override: Overrides = None, force: Force = None) -> None:
    """lm-eval tasks (closed- and open-book facts, cloze, memorization, perplexity), canary
    exposure, the agentic search check, BFCL. Writes RUN_DIR/eval/."""
    _execute(recipe, override, ["eval"], force)


@app.command()
def report(target: Annotated[Path, typer.Argument(help="run directory, or the recipe that made it", show_default=False)],
           override: Overrides = None, force: Force = None) -> None:
    """Build report.md and report.html from a run directory's files alone."""
    if target.is_dir():
        from cogcore.eval.report import build_report

        md, html = build_report(target)
        out.print(f"wrote {md}\nwrote {html}")
        return
    _execute(target, override, ["report"], force)


@app.command()
def search(run_dir: Annotated[Path, typer.Argument(help="run directory (runs/NAME)", show_default=False)],
           query: Annotated[str, typer.Argument(help="what to look for", show_default=False)],
           k: Annotated[int, typer.Option("-k", help="number of passages", min=1, max=50)] = 5,
           mode: Annotated[Optional[str], typer.Option(
               help="hybrid, dense or bm25 (default: the mode the recipe built the index with)",
               show_default=False)] = None) -> None:
    """Search a run's index and print the top passages with their source document."""
    if mode is not None and mode not in ("hybrid", "dense", "bm25"):
        err.print(f"[red]error[/red] --mode: {escape(repr(mode))} is not allowed; use hybrid, dense or bm25")
        raise typer.Exit(2)
    index_dir = run_dir / "index"
    if not (index_dir / "index.json").exists():
        err.print(f"[red]error[/red] {run_dir} has no finished index (run `cogcore index RECIPE` first)")
        raise typer.Exit(2)
    from cogcore.retrieval import SearchIndex, canonical_mode

    index = SearchIndex.load(index_dir)
    used = canonical_mode(mode) if mode else index.mode
    try:
        hits = index.search(query, k, mode=used)
    except ValueError as e:  # e.g. bm25 asked of an index built before BM25 was added
        err.print(f"[red]error[/red] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(2)
    rerank = f", reranked by {index.reranker.name}" if index.reranker else ""
    out.print(f"mode: {'bm25' if used == 'lexical' else used}{rerank}", highlight=False)
    for rank, hit in enumerate(hits, 1):
        out.print(f"[bold]{rank}.[/bold] score {hit.score:.3f}  [cyan]{escape(hit.doc_id)}[/cyan]  {escape(hit.title)}", highlight=False)
        if hit.section:
            out.print(f"   section: {escape(hit.section)}", highlight=False)
        out.print("   " + escape(" ".join(hit.text.split())[:400]), highlight=False, soft_wrap=True)


@app.command()
def serve(run_dir: Annotated[Path, typer.Argument(help="run directory (runs/NAME)", show_default=False)],
          http: Annotated[bool, typer.Option("--http", help="streamable HTTP instead of stdio")] = False,
          host: Annotated[str, typer.Option(help="HTTP host (no authentication: keep it local)")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="HTTP port")] = 8765) -> None:
    """Serve the run's index to other agents as an MCP tool, `search` (the schema the model is
    trained with). stdio by default, for MCP clients that spawn the command."""
    try:
        from cogcore.retrieval.server import serve as serve_index
    except ImportError:
        err.print("[red]error[/red] serving needs the MCP SDK: pip install 'cogcore[serve]'")
        raise typer.Exit(2)
    try:
        serve_index(run_dir / "index", "http" if http else "stdio", host, port)
    except FileNotFoundError as e:  # stdout carries the protocol: errors go to stderr only
        err.print(f"[red]error[/red] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(2)


@app.command()
def ask(run_dir: Annotated[Path, typer.Argument(help="run directory (runs/NAME)", show_default=False)],
        question: Annotated[str, typer.Argument(help="what to ask the trained model", show_default=False)],
        max_new_tokens: Annotated[int, typer.Option(help="tokens per model turn", min=1)] = 128,
        max_rounds: Annotated[int, typer.Option(help="model turns (tool calls) at most", min=1)] = 3) -> None:
    """Ask the trained model; it may call the search tool over the run's index and the recipe's tools
    that have a Python implementation. Shows each call, its result, the answer and its sources."""
    model_dir, index_dir = run_dir / "train" / "tools" / "model", run_dir / "index"
    for needed in (model_dir / "config.json", index_dir / "index.json"):
        if not needed.exists():
            err.print(f"[red]error[/red] {escape(str(needed))} is missing: run the train and index stages first")
            raise typer.Exit(2)
    from cogcore.retrieval import SearchIndex
    from cogcore.runtime import ToolRuntime, run_tools, sources
    from cogcore.train.loading import load_model_and_tokenizer

    try:
        tools = run_tools(run_dir, SearchIndex.load(index_dir))
    except ValueError as e:
        err.print(f"[red]error[/red] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(2)
    model, tok = load_model_and_tokenizer(str(model_dir))
    runtime = ToolRuntime(model, tok, tools, max_new_tokens=max_new_tokens, max_rounds=max_rounds, batch_size=1)
    transcript = runtime.answer_many([question])[0]
    for call in transcript.calls:
        args = json.dumps(call["arguments"], ensure_ascii=False)
        out.print(f"[bold]{escape(call['name'])}[/bold] {escape(args)}", highlight=False)
        out.print(escape(call["result"]), highlight=False, soft_wrap=True)
    for error in transcript.errors:
        out.print(f"[yellow]rejected call[/yellow] {escape(error)}", highlight=False, soft_wrap=True)
    out.print(f"[bold green]answer[/bold green] {escape(transcript.answer)}", highlight=False, soft_wrap=True)
    found = sources(transcript)
    if found:
        cited = [f"{doc} (cited)" if doc in transcript.answer else doc for doc in found]
        out.print(f"[bold]sources[/bold] {escape(', '.join(cited))}", highlight=False, soft_wrap=True)


@app.command()
def inspect(run_dir: Annotated[Path, typer.Argument(help="run directory (runs/NAME)", show_default=False)],
            reason: Annotated[Optional[str], typer.Option(help="show the saved samples of this drop reason")] = None,
            cluster_of: Annotated[Optional[str], typer.Option(
                help="show the duplicate group a kept document stands for")] = None,
            doc: Annotated[Optional[str], typer.Option(
                help="show a document exactly as the model is trained on it (masked spans, search calls)")] = None) -> None:
    """What curation removed and why (drop reasons, samples, duplicate groups), and how a document
    reads in training."""
    from cogcore.curate.inspect import cluster_lines, reason_lines, summary_lines

    try:
        if doc:
            lines = [_training_view(run_dir, doc)]
        elif reason:
            lines = reason_lines(run_dir / "curate", reason)
        elif cluster_of:
            lines = cluster_lines(run_dir / "curate", cluster_of)
        else:
            lines = summary_lines(run_dir / "curate")
    except FileNotFoundError as e:
        err.print(f"[red]error[/red] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(2)
    for line in lines:
        out.print(escape(line), highlight=False, soft_wrap=True)


def _training_view(run_dir: Path, doc_id: str) -> str:
    import yaml

    from cogcore.stages import read_jsonl
    from cogcore.train.loading import gguf_as_folder
    from cogcore.train.view import render_training_view

    recipe_file, docs_file = run_dir / "recipe.resolved.yaml", run_dir / "curate" / "docs.jsonl"
    for needed in (recipe_file, docs_file):
        if not needed.exists():
            raise FileNotFoundError(f"{needed} does not exist: has the curate stage run?")
    facts_cfg = yaml.safe_load(recipe_file.read_text())["facts"]
    found = [d for d in read_jsonl(docs_file) if d["id"] == doc_id]
    if not found:
        raise FileNotFoundError(f"no curated document {doc_id!r} in {docs_file}")
    from transformers import AutoTokenizer

    base = yaml.safe_load(recipe_file.read_text())["base_model"]["path"]
    tok = AutoTokenizer.from_pretrained(str(gguf_as_folder(Path(base))) if base.endswith(".gguf") else base)
    facts = [f for f in read_jsonl(run_dir / "curate" / "facts.jsonl") if f["doc_id"] == doc_id]
    doc, calls = found[0], None
    # train.cpt records the documents it changed (canaries planted, calls kept by the Toolformer filter)
    changed = run_dir / "train" / "cpt" / "training_docs.jsonl"
    if changed.exists():
        from cogcore.train.cpt_data import PlannedCall

        for row in read_jsonl(changed):
            if row["id"] == doc_id:
                doc, facts = {"id": row["id"], "text": row["text"], "meta": row["meta"]}, row["facts"]
                calls = None if row["calls"] is None else [PlannedCall.from_dict(c) for c in row["calls"]]
    return render_training_view(tok, doc, facts, facts_cfg["strategy"], facts_cfg["max_calls_per_doc"],
                                calls=calls, train_copied_facts=facts_cfg["train_copied_facts"])


@app.command()
def compare(runs: Annotated[list[Path], typer.Argument(help="run directories (runs/NAME) to put side by side",
                                                       show_default=False)],
            reference: Annotated[Optional[Path], typer.Option(
                help="CSV or JSON file of published scores to add as rows (e.g. reference/bfcl_v3_small_models.csv)")] = None,
            metric: Annotated[Optional[str], typer.Option(
                help="quality column of the Pareto chart (default: agentic_accuracy, or the first present)")] = None,
            gpu: Annotated[str, typer.Option(help="GPU profile the $ per 1M output tokens is estimated on")] = "h100",
            out_dir: Annotated[Path, typer.Option("--out", help="folder for compare.md, compare.html, pareto.png")] = Path("compare")) -> None:
    """Several runs side by side (quality, serving cost, training cost) with a quality-vs-cost
    Pareto chart, as compare.md and a self-contained compare.html."""
    from cogcore.eval.compare import CompareError, build_compare

    try:
        md, html = build_compare(runs, out_dir, reference, metric, gpu.lower())
    except (CompareError, KeyError) as e:  # KeyError: an unknown GPU profile, with the known ones
        err.print(f"[red]error[/red] {escape(str(e.args[0] if e.args else e))}", soft_wrap=True)
        raise typer.Exit(2)
    out.print(f"wrote {md}\nwrote {html}")


def main() -> None:
    app(prog_name="cogcore")


if __name__ == "__main__":
    sys.exit(main())
