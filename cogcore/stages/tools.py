"""The train.tools stage: tool-use fine-tuning on conversations synthesized from training facts and
the real index (and the recipe's conversation files); writes train/tools/ (model/ with the chat
template, conversations.jsonl, tools.json, metrics.json).

    cogcore train recipes/demo.yaml
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from cogcore.io import write_json_atomic, write_jsonl_atomic
from cogcore.models import ModelSpec, save_model
from cogcore.questions import make_questions
from cogcore.recipe import Recipe
from cogcore.retrieval import SEARCH_TOOL, SearchIndex
from cogcore.stages import CPT_MODEL
from cogcore.stages.corpus import TRAIN, load_corpus
from cogcore.stages.inputs import check_tool_conversations, check_tool_rows, curated_splits, require_conversations
from cogcore.tracking import Tracking, environment
from cogcore.train.chat_template import choose_chat_template
from cogcore.train.distributed import plan_from_recipe
from cogcore.train.launch import launch_stage
from cogcore.train.metrics import METRICS_FILE, TrainMetrics
from cogcore.train.tools_data import plan_counts, read_conversation_files, synthesize, tokenize_conversations
from cogcore.train.trainer import TrainSettings


def run(recipe: Recipe, run_dir: Path, folder: Path) -> None:
    cfg = recipe.train.tools
    # 1. What can fail cheaply fails before the model loads.
    if cfg.enabled:
        check_inputs(recipe, run_dir)
    # 2. The model continued pretraining made (else the base), with the template it will ship with:
    # the base model's own when it lists tools and writes hermes <tool_call> JSON (vLLM's hermes
    # parser reads it), else ChatML + hermes. One template for training, evaluation and serving.
    spec = starting_model(recipe, run_dir)
    model, tok = spec.load()
    tok.chat_template, template_used = choose_chat_template(tok)
    write_json_atomic(folder / "tools.json", [t.model_dump(mode="json") for t in recipe.tools])  # for ask and eval
    if not cfg.enabled:
        save_model(model, tok, folder / "model")
        skipped = TrainMetrics.skipped_stage("train.tools.enabled is false", chat_template=template_used)
        skipped.write(folder / METRICS_FILE)
        return
    # 3. Conversations, tokenized with the loss on the assistant's turns only.
    tools = [SEARCH_TOOL] + [t.schema() for t in recipe.tools]
    conversations, data = make_conversations(recipe, run_dir, tools)
    write_jsonl_atomic(folder / "conversations.jsonl", conversations)
    rows, too_long = tokenize_conversations(tok, conversations, seq_len=cfg.seq_len, tools=tools)
    check_tool_rows(len(rows), too_long, cfg.seq_len)
    # 4. Train; workers (several processes) load the same model the stage did.
    tracking = Tracking.from_section(recipe.tracking, recipe.name)
    with environment(tracking, run_dir, "train.tools"):
        metrics = launch_stage(
            model,
            tok,
            rows,
            folder=folder,
            settings=TrainSettings.from_section(cfg, seed=recipe.seed, report_to=tracking.backends),
            label="train.tools",
            plan=plan_from_recipe(recipe.train.distributed),
            model_spec=spec,
        )
    if metrics is not None:  # None on a machine other than machine_rank 0, which records the run
        data.update(rows=len(rows), skipped_too_long=too_long)
        if cfg.rl.enabled:  # 5. GRPO on the search tool, from the fine-tuned model; it replaces it
            data["rl"] = reinforce(recipe, run_dir, spec.at(folder / "model"), folder, tracking)
        metrics.with_data(data, chat_template=template_used).write(folder / METRICS_FILE)


def reinforce(recipe: Recipe, run_dir: Path, spec: ModelSpec, folder: Path, tracking: Tracking) -> dict:
    """GRPO on training-fact questions in the customer's form (not the conversations' questions:
    fresh ones, seeded apart), rewarded by the answer holding the value; the merged model is
    written over `folder/model`. Returns what it did for metrics.json."""
    from cogcore.curate.facts import FactDetector
    from cogcore.eval.fact_sets import ValueMatcher
    from cogcore.train.rl import RlSettings, train_grpo

    cfg = recipe.train.tools.rl
    corpus = load_corpus(run_dir)
    questions = make_questions(
        corpus.facts_in(TRAIN), corpus.titles(), limit=cfg.questions, seed=recipe.seed + 1, forms={"customer": 1.0}
    )
    model, tok = spec.load()
    settings = RlSettings(**cfg.model_dump(exclude={"enabled"}), seed=recipe.seed)
    with environment(tracking, run_dir, "train.tools.rl"):
        model, record = train_grpo(
            model,
            tok,
            SearchIndex.load(run_dir / "index"),
            questions,
            settings,
            folder / "rl",
            ValueMatcher(FactDetector()),
            report_to=tracking.backends,
        )
    save_model(model, tok, folder / "model")
    return {"questions": len(questions), **record}


def check_inputs(recipe: Recipe, run_dir: Path) -> None:
    """The recipe's conversation files exist, and there is something to make conversations from."""
    files = recipe.train.tools.conversation_files
    for i, f in enumerate(files):
        if not Path(f).is_file():
            raise FileNotFoundError(f"train.tools.conversation_files.{i}: {f} does not exist")
    check_tool_conversations(curated_splits(run_dir), recipe.curate.heldout_fraction, files)


def starting_model(recipe: Recipe, run_dir: Path) -> ModelSpec:
    """train.cpt's output when it trained one, else the base model; either way the base's dtype and
    remote-code trust (a model that needs remote code needs it at every load)."""
    base = ModelSpec.from_section(recipe.base_model)
    cpt_model = run_dir / CPT_MODEL
    return base.at(cpt_model) if cpt_model.exists() else base


def make_conversations(recipe: Recipe, run_dir: Path, tools: list[dict]) -> tuple[list[dict], dict]:
    """Synthesized conversations (kinds in the shares of train.tools.mix) and the recipe's files; and
    the counts for metrics.json."""
    cfg = recipe.train.tools
    corpus = load_corpus(run_dir)
    facts = corpus.facts_in(TRAIN)
    # Twice as many questions as conversations: a kind draws only on facts the index finds (or not).
    questions = make_questions(
        facts,
        corpus.titles(),
        limit=2 * cfg.conversations,
        seed=recipe.seed,
        one_per_doc=False,
        forms=cfg.question_forms.model_dump(),
    )
    conversations, requested = synthesize(
        questions,
        SearchIndex.load(run_dir / "index"),
        counts=plan_counts(cfg.conversations, mix=cfg.mix.model_dump()),
        seed=recipe.seed,
    )
    from_files, file_stats = read_conversation_files([Path(f) for f in cfg.conversation_files], tools)
    conversations += from_files
    require_conversations(len(conversations), len(corpus.split(TRAIN)), len(facts), len(from_files))
    data = {
        "conversations": len(conversations),
        "kinds": dict(Counter(c["kind"] for c in conversations)),
        "question_forms": cfg.question_forms.model_dump(),
        "requested": requested,
        "conversation_files": file_stats,
        "answer_found": sum(c["found"] for c in conversations if c["kind"] != "file"),
    }
    return conversations, data
