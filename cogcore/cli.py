"""The `cogcore` command line. Each command is thin: parse, build, run.

cogcore validate recipes/demo.yaml
cogcore run recipes/demo.yaml -o train.cpt.max_steps=4 --force eval
cogcore search runs/demo "overdraft fee"
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

# Before torch is imported: with the default ACTIVE policy, idle OpenMP threads spin, and on a
# loaded machine one query embedding took 130-520 ms instead of 15-25 ms.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402

from cogcore.recipe import RecipeError, load_recipe  # noqa: E402
from cogcore.untrusted_text import printable  # noqa: E402

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help="Build small domain cognitive cores from one recipe: curate -> index -> train -> eval -> report.",
)
err = Console(stderr=True)
out = Console()


def _shown(text: object) -> str:
    """Text from documents, a model or the command line (paths, ids), ready for rich to print: control
    characters escaped (a document could otherwise retitle, clear or rewrite the terminal), then
    rich's markup."""
    return escape(printable(text))


RecipeArg = Annotated[Path, typer.Argument(help="recipe YAML file", show_default=False)]
Overrides = Annotated[
    list[str] | None,
    typer.Option("--override", "-o", help="dotted override, e.g. -o train.cpt.max_steps=10 (repeatable)"),
]
Force = Annotated[
    list[str] | None,
    typer.Option(
        "--force",
        "-f",
        help="re-run this stage even if unchanged: curate, index, select, train, train.cpt, train.tools, "
        "eval, report (repeatable)",
    ),
]


def _load(recipe: Path, overrides: list[str] | None):
    try:
        return load_recipe(recipe, overrides or [])
    except RecipeError as e:
        for line in e.problems:
            err.print(f"[red]error[/red] {_shown(line)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _log(message: str) -> None:
    err.print(f"[bold cyan]cogcore[/] {_shown(message)}", highlight=False, soft_wrap=True)


class _StageWarnings(logging.Handler):
    """Warnings the stages log (a curation step that dropped most of the corpus, an empty split)
    print beside the stage log, not through Python's bare last-resort handler or not at all."""

    def emit(self, record: logging.LogRecord) -> None:
        err.print(
            f"[bold cyan]cogcore[/] [bold yellow]warning[/] {_shown(record.getMessage())}",
            highlight=False,
            soft_wrap=True,
        )


for _name in ("cogcore.curate", "cogcore.stages"):
    logging.getLogger(_name).addHandler(_StageWarnings(logging.WARNING))


def _execute(recipe_path: Path, overrides: list[str] | None, stage_names: list[str], force: list[str] | None) -> None:
    from cogcore.runner import RunDir, StageError, StageFailed
    from cogcore.stages import COMMAND_STAGES, ORDER, build_stages

    recipe = _load(recipe_path, overrides)
    forced = set()
    for name in force or []:
        if name not in ORDER and name not in COMMAND_STAGES:
            err.print(
                f"[red]error[/red] --force {_shown(name)}: unknown stage; allowed: {', '.join(ORDER)}, train",
                soft_wrap=True,
            )
            raise typer.Exit(2)
        forced.update(COMMAND_STAGES.get(name, [name]))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    recipe = recipe.resolved(recipe_path.parent.resolve())
    run_dir = RunDir(recipe.run_path(), log=_log)
    try:
        with run_dir.lock():  # one writing command per run directory; a second one is refused
            stages = [s for s in build_stages(recipe) if s.name in stage_names]
            run_dir.save_resolved_recipe(recipe.model_dump(mode="json"))
            run_dir.execute(stages, force=forced)
    except StageError as e:
        err.print(f"[red]error[/red] {_shown(str(e))}", soft_wrap=True)
        raise typer.Exit(1) from None
    except StageFailed as e:
        _fail(f"in stage {e.stage}", e.error, "the previous output is kept" if e.kept else None)
    except KeyboardInterrupt:
        err.print("interrupted; run again to resume", highlight=False)
        raise typer.Exit(130) from None
    except Exception as e:  # outside any stage, e.g. the run directory cannot be written
        _fail("", e)
    _log(f"run directory: {run_dir.path}")


_debug = False  # set by the global --debug option


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="when a command fails, show the full traceback (as COGCORE_DEBUG=1 does)")
    ] = False,
) -> None:
    global _debug
    _debug = debug


def _debugging() -> bool:
    return _debug or os.environ.get("COGCORE_DEBUG", "").lower() not in ("", "0", "false", "no")


def _fail(where: str, error: BaseException, note: str | None = None) -> NoReturn:
    """One line naming where it failed and why; the traceback too under --debug. Exit code 1."""
    import traceback

    from cogcore.runner import StageError

    debugging = _debugging()
    if debugging:
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    # A StageError's message is written for the user; for anything else, its type says what kind of failure.
    text = str(error) if isinstance(error, StageError) else f"{type(error).__name__}: {error}"
    hints = [h for h in (note, None if debugging else "--debug shows the traceback") if h]
    err.print(
        f"[red]error[/red]{' ' + where if where else ''}: {_shown(text)}" + (f" ({'; '.join(hints)})" if hints else ""),
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(1)


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


@app.command(name="select")
def select_(recipe: RecipeArg, override: Overrides = None, force: Force = None) -> None:
    """Value the training documents (the recipe's scorers) and choose what continued pretraining
    sees within a budget. Writes RUN_DIR/select/."""
    _execute(recipe, override, ["select"], force)


@app.command()
def index(recipe: RecipeArg, override: Overrides = None, force: Force = None) -> None:
    """Chunk and embed the curated documents into a faiss index. Writes RUN_DIR/index/."""
    _execute(recipe, override, ["index"], force)


@app.command()
def rephrase(recipe: RecipeArg, override: Overrides = None, force: Force = None) -> None:
    """Rewrite training documents in easier-to-learn styles with a local instruct model, keeping only
    the rewrites that state every fact of their source and no other (rephrase.enabled). Prints the
    generation's estimated cost first. Writes RUN_DIR/select/ (what it may rewrite) and RUN_DIR/rephrase/."""
    _execute(recipe, override, ["select", "rephrase"], force)


@app.command()
def train(recipe: RecipeArg, override: Overrides = None, force: Force = None) -> None:
    """Continued pretraining (facts kept, masked or replaced by search calls) on what the select stage
    chose (every training document when select is off) and the rephrase stage's kept rewrites (none
    when it is off), then tool-use fine-tuning. Writes RUN_DIR/select/, RUN_DIR/rephrase/ and RUN_DIR/train/."""
    _execute(recipe, override, ["select", "rephrase", "train.cpt", "train.tools"], force)


@app.command()
def ablate(
    recipe: RecipeArg,
    by: Annotated[
        str,
        typer.Option(
            help="what to leave out, one group at a time: source, cluster, or filter "
            "(what each curation filter dropped, added back)"
        ),
    ] = "source",
    override: Overrides = None,
) -> None:
    """Train a proxy without each source (or embedding cluster, `curate.rebalance.clusters` of them) in turn
    and report each one's contribution to the held-out target loss (`select.target`, `select.proxy`).
    `--by filter`: the curated documents plus what each curation filter dropped, each filter's drops left
    out in turn (negative: the filter pays). Needs curation; writes RUN_DIR/ablate/BY.json."""
    from cogcore.runner import RunDir, StageError
    from cogcore.stages.ablate import run_ablation

    loaded = _load(recipe, override).resolved(recipe.parent.resolve())
    run_dir = RunDir(loaded.run_path(), log=_log)
    if "curate" not in run_dir.manifest()["stages"]:
        err.print(
            f"[red]error[/red] {_shown(run_dir.path)} has no finished curation: run `cogcore curate RECIPE` first"
        )
        raise typer.Exit(2)
    try:
        with run_dir.lock():
            rows, path = run_ablation(loaded, run_dir.path, by)
    except (ValueError, StageError) as e:
        err.print(f"[red]error[/red] {_shown(e)}", soft_wrap=True)
        raise typer.Exit(2) from None
    out.print("group | documents | target loss | contribution (loss without it - loss with all)", highlight=False)
    for row in rows:
        out.print(
            f"{_shown(row['group'])} | {row['documents']} | {row['target_loss']:.4f} | {row['contribution']:+.4f}",
            highlight=False,
        )
    out.print(f"wrote {_shown(path)}", highlight=False)


@app.command()
def experiment(
    recipe: RecipeArg,
    override: Overrides = None,
    force: Force = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="folder for the comparison (default: RUN_DIR/../NAME-compare)")
    ] = None,
) -> None:
    """The cognitive-core experiment: from one recipe, a core (facts.strategy toolcall, tool-use
    fine-tuning, answering with search) and a memorizer (strategy keep, no tool stage, trained on as
    many tokens as the core's two stages together), both evaluated on training, held-out and changed
    facts; then `cogcore compare` with the claim's table first. Runs NAME-core and NAME-memorizer."""
    from cogcore.report.compare import CompareError, build_compare
    from cogcore.report.run_files import read_train_metrics
    from cogcore.stages import ORDER

    base = _load(recipe, override)
    extra = list(override or [])
    modes = "eval.fact_sets.modes=[closed_book, tools]"
    core = [*extra, f"name={base.name}-core", "facts.strategy=toolcall", "train.tools.enabled=true", modes]
    _execute(recipe, core, list(ORDER), force)
    core_dir = _load(recipe, core).resolved(recipe.parent.resolve()).run_path()
    tokens = sum(
        (m.tokens_trained or 0)
        for m in (read_train_metrics(core_dir, stage) for stage in ("cpt", "tools"))
        if m is not None and not m.skipped
    )
    memorizer = [*extra, f"name={base.name}-memorizer", "facts.strategy=keep", "train.tools.enabled=false", modes]
    memorizer += [f"train.cpt.max_tokens={tokens}", "train.cpt.max_steps=null"]
    _execute(recipe, memorizer, list(ORDER), force)
    memorizer_dir = _load(recipe, memorizer).resolved(recipe.parent.resolve()).run_path()
    folder = out_dir or core_dir.parent / f"{base.name}-compare"
    try:
        md, html = build_compare([memorizer_dir, core_dir], folder, claim=(0, 1))
    except CompareError as e:
        err.print(f"[red]error[/red] {_shown(e)}", soft_wrap=True)
        raise typer.Exit(2) from None
    out.print(f"core: {tokens:,} training tokens; the memorizer trained on as many", highlight=False)
    out.print(f"wrote {_shown(md)} and {_shown(html)}", highlight=False)


@app.command(name="eval")
def eval_(recipe: RecipeArg, override: Overrides = None, force: Force = None) -> None:
    """lm-eval tasks (closed- and open-book facts, cloze, memorization, perplexity), canary
    exposure, the agentic search check, BFCL. Writes RUN_DIR/eval/."""
    _execute(recipe, override, ["eval"], force)


@app.command()
def report(
    target: Annotated[Path, typer.Argument(help="run directory, or the recipe that made it", show_default=False)],
    override: Overrides = None,
    force: Force = None,
) -> None:
    """Build report.md and report.html from a run directory's files alone."""
    if target.is_dir():
        from cogcore.report.run_report import build_report
        from cogcore.runner import StageError, claim_folder
        from cogcore.stage_files import RunFileError

        try:
            claim_folder(target / "report")
            md, html = build_report(target)
        except (RunFileError, StageError) as e:
            err.print(f"[red]error[/red] {_shown(str(e))}", soft_wrap=True)
            raise typer.Exit(2) from None
        out.print(f"wrote {md}\nwrote {html}")
        return
    _execute(target, override, ["report"], force)


@app.command()
def search(
    run_dir: Annotated[Path, typer.Argument(help="run directory (runs/NAME)", show_default=False)],
    query: Annotated[str, typer.Argument(help="what to look for", show_default=False)],
    k: Annotated[int, typer.Option("-k", help="number of passages", min=1, max=50)] = 5,
    mode: Annotated[
        str | None,
        typer.Option(
            help="hybrid, dense or bm25 (default: the mode the recipe built the index with)", show_default=False
        ),
    ] = None,
) -> None:
    """Search a run's index and print the top passages with their source document."""
    if mode is not None and mode not in ("hybrid", "dense", "bm25"):
        err.print(f"[red]error[/red] --mode: {_shown(repr(mode))} is not allowed; use hybrid, dense or bm25")
        raise typer.Exit(2)
    from cogcore.retrieval.tool import query_problem

    problem = query_problem(query)  # what the search tool refuses, refused alike
    if problem:
        err.print(f"[red]error[/red] {_shown(problem)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    index_dir = run_dir / "index"
    if not (index_dir / "index.json").exists():
        err.print(f"[red]error[/red] {_shown(run_dir)} has no finished index (run `cogcore index RECIPE` first)")
        raise typer.Exit(2)
    from cogcore.retrieval import SearchIndex, canonical_mode
    from cogcore.stage_files import RunFileError

    try:
        index = SearchIndex.load(index_dir)
        used = canonical_mode(mode) if mode else index.mode
        hits = index.search(query, k, mode=used)
    except (ValueError, RunFileError) as e:  # e.g. an index.json of another version: it says what to re-run
        err.print(f"[red]error[/red] {_shown(e)}", soft_wrap=True)
        raise typer.Exit(2) from None
    rerank = f", reranked by {_shown(index.reranker.name)}" if index.reranker else ""
    out.print(f"mode: {'bm25' if used == 'lexical' else used}{rerank}", highlight=False)
    for rank, hit in enumerate(hits, 1):
        out.print(
            f"[bold]{rank}.[/bold] score {hit.score:.3f}  [cyan]{_shown(hit.doc_id)}[/cyan]  {_shown(hit.title)}",
            highlight=False,
        )
        if hit.section:
            out.print(f"   section: {_shown(hit.section)}", highlight=False)
        out.print("   " + _shown(" ".join(hit.text.split())[:400]), highlight=False, soft_wrap=True)


@app.command()
def serve(
    run_dir: Annotated[Path, typer.Argument(help="run directory (runs/NAME)", show_default=False)],
    http: Annotated[bool, typer.Option("--http", help="streamable HTTP instead of stdio")] = False,
    host: Annotated[str, typer.Option(help="HTTP host (no authentication: keep it local)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8765,
) -> None:
    """Serve the run's index to other agents as an MCP tool, `search` (the schema the model is
    trained with). stdio by default, for MCP clients that spawn the command."""
    try:
        from cogcore.retrieval.server import serve as serve_index
    except ImportError:
        err.print("[red]error[/red] serving needs the MCP SDK: pip install 'cogcore[serve]'")
        raise typer.Exit(2) from None
    try:
        serve_index(run_dir / "index", "http" if http else "stdio", host, port)
    except FileNotFoundError as e:  # stdout carries the protocol: errors go to stderr only
        err.print(f"[red]error[/red] {_shown(str(e))}", soft_wrap=True)
        raise typer.Exit(2) from None


@app.command()
def ask(
    run_dir: Annotated[Path, typer.Argument(help="run directory (runs/NAME)", show_default=False)],
    question: Annotated[str, typer.Argument(help="what to ask the trained model", show_default=False)],
    max_new_tokens: Annotated[int, typer.Option(help="tokens per model turn", min=1)] = 128,
    max_rounds: Annotated[int, typer.Option(help="model turns (tool calls) at most", min=1)] = 3,
) -> None:
    """Ask the trained model; it may call the search tool over the run's index and the recipe's tools
    that have a Python implementation. Shows each call, its result, the answer and its sources."""
    model_dir, index_dir = run_dir / "train" / "tools" / "model", run_dir / "index"
    for needed in (model_dir / "config.json", index_dir / "index.json"):
        if not needed.exists():
            err.print(f"[red]error[/red] {_shown(needed)} is missing: run the train and index stages first")
            raise typer.Exit(2)
    try:
        question.encode("utf-8")  # the tokenizer fails on what is not, with a TypeError that names nothing
    except UnicodeEncodeError as e:
        err.print(
            f"[red]error[/red] the question is not valid text: character {e.start} is a lone surrogate, what "
            "bytes that are not UTF-8 become (re-encode it as UTF-8)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2) from None
    from cogcore.models import ModelSpec
    from cogcore.retrieval import SearchIndex
    from cogcore.runner import RunDir, StageError
    from cogcore.runtime import ToolRuntime, run_tools, sources
    from cogcore.stage_files import RunFileError

    try:
        tools = run_tools(run_dir, SearchIndex.load(index_dir))
        # The trained model loads as the base did (dtype, remote code): the run's recipe says how.
        spec = ModelSpec.from_section(RunDir(run_dir).saved_recipe().base_model).at(model_dir)
    except (ValueError, StageError, RunFileError) as e:
        err.print(f"[red]error[/red] {_shown(e)}", soft_wrap=True)
        raise typer.Exit(2) from None
    model, tok = spec.load()
    runtime = ToolRuntime(model, tok, tools, max_new_tokens=max_new_tokens, max_rounds=max_rounds, batch_size=1)
    transcript = runtime.answer_many([question])[0]
    for call in transcript.calls:
        args = json.dumps(call["arguments"], ensure_ascii=False)
        out.print(f"[bold]{_shown(call['name'])}[/bold] {_shown(args)}", highlight=False)
        out.print(_shown(call["result"]), highlight=False, soft_wrap=True)
    for error in transcript.errors:
        out.print(f"[yellow]rejected call[/yellow] {_shown(error)}", highlight=False, soft_wrap=True)
    out.print(f"[bold green]answer[/bold green] {_shown(transcript.answer)}", highlight=False, soft_wrap=True)
    found = sources(transcript)
    if found:
        cited = [f"{doc} (cited)" if doc in transcript.answer else doc for doc in found]
        out.print(f"[bold]sources[/bold] {_shown(', '.join(cited))}", highlight=False, soft_wrap=True)


@app.command()
def inspect(
    run_dir: Annotated[Path, typer.Argument(help="run directory (runs/NAME)", show_default=False)],
    reason: Annotated[str | None, typer.Option(help="show the saved samples of this drop reason")] = None,
    cluster_of: Annotated[str | None, typer.Option(help="show the duplicate group a kept document stands for")] = None,
    doc: Annotated[
        str | None,
        typer.Option(help="show a document exactly as the model is trained on it (masked spans, search calls)"),
    ] = None,
    selection: Annotated[
        bool, typer.Option("--selection", help="what the select stage chose and left, with scores and samples")
    ] = False,
    names: Annotated[
        bool, typer.Option("--names", help="the proper names curation learned as facts (facts.names), to review")
    ] = False,
    rephrase: Annotated[
        bool, typer.Option("--rephrase", help="the rewrites the rephrase stage kept and rejected (why), with samples")
    ] = False,
) -> None:
    """What curation removed and why (drop reasons, samples, duplicate groups), the names it learned,
    what selection chose, what rephrasing kept, and how a document reads in training."""
    from cogcore.curate.inspect import CurateFileError, cluster_lines, name_lines, reason_lines, summary_lines
    from cogcore.runner import StageError
    from cogcore.stage_files import RunFileError

    try:
        if doc:
            lines = [_training_view(run_dir, doc)]
        elif selection:
            from cogcore.valuation.inspect import selection_lines

            lines = selection_lines(run_dir)
        elif rephrase:
            from cogcore.rephrase.inspect import rephrase_lines

            lines = rephrase_lines(run_dir)
        elif names:
            lines = name_lines(run_dir / "curate")
        elif reason:
            lines = reason_lines(run_dir / "curate", reason)
        elif cluster_of:
            lines = cluster_lines(run_dir / "curate", cluster_of)
        else:
            lines = summary_lines(run_dir / "curate")
    except (FileNotFoundError, CurateFileError, StageError, RunFileError) as e:
        err.print(f"[red]error[/red] {_shown(e)}", soft_wrap=True)
        raise typer.Exit(2) from None
    for line in lines:
        out.print(_shown(line), highlight=False, soft_wrap=True)


def _training_view(run_dir: Path, doc_id: str) -> str:
    from cogcore.io import iter_jsonl
    from cogcore.models import ModelSpec
    from cogcore.runner import RunDir
    from cogcore.train.training_docs import TRAINING_DOCS_FILE, find_training_doc
    from cogcore.train.view import render_training_view

    docs_file = run_dir / "curate" / "docs.jsonl"
    if not docs_file.exists():
        raise FileNotFoundError(f"{docs_file} does not exist: has the curate stage run?")
    recipe = RunDir(run_dir).saved_recipe()
    found = [d for d in iter_jsonl(docs_file) if d["id"] == doc_id]
    if not found:
        raise FileNotFoundError(f"no curated document {doc_id!r} in {docs_file}")
    spec = ModelSpec.from_section(recipe.base_model)
    tok = spec.load_tokenizer()
    facts = [f for f in iter_jsonl(run_dir / "curate" / "facts.jsonl") if f["doc_id"] == doc_id]
    doc, calls = found[0], None
    # train.cpt records the documents it changed (canaries planted, calls kept by the Toolformer filter)
    changed = find_training_doc(run_dir / "train" / "cpt" / TRAINING_DOCS_FILE, doc_id)
    if changed is not None:
        doc, facts, calls = changed.document(), changed.facts, changed.calls
    return render_training_view(
        tok,
        doc,
        facts,
        recipe.facts.strategy,
        recipe.facts.max_calls_per_doc,
        calls=calls,
        train_copied_facts=recipe.facts.train_copied_facts,
    )


@app.command()
def compare(
    runs: Annotated[
        list[Path], typer.Argument(help="run directories (runs/NAME) to put side by side", show_default=False)
    ],
    reference: Annotated[
        Path | None,
        typer.Option(
            help="CSV or JSON file of published scores to add as rows (e.g. reference/bfcl_v3_small_models.csv)"
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(help="quality column of the Pareto chart (default: agentic_accuracy, or the first present)"),
    ] = None,
    gpu: Annotated[str, typer.Option(help="GPU profile the $ per 1M output tokens is estimated on")] = "h100",
    out_dir: Annotated[Path, typer.Option("--out", help="folder for compare.md, compare.html, pareto.png")] = Path(
        "compare"
    ),
) -> None:
    """Several runs side by side (quality, serving cost, training cost) with a quality-vs-cost
    Pareto chart, as compare.md and a self-contained compare.html."""
    from cogcore.report.compare import CompareError, build_compare
    from cogcore.stage_files import RunFileError

    try:
        md, html = build_compare(runs, out_dir, reference, metric, gpu.lower())
    except (CompareError, RunFileError, KeyError) as e:  # KeyError: an unknown GPU profile, with the known ones
        err.print(f"[red]error[/red] {_shown(str(e.args[0] if e.args else e))}", soft_wrap=True)
        raise typer.Exit(2) from None
    out.print(f"wrote {md}\nwrote {html}")


def main() -> None:
    app(prog_name="cogcore")


if __name__ == "__main__":
    sys.exit(main())
