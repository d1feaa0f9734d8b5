"""The stages of a build, each flattened from the recipe into plain arguments for the library.

This is the one place where recipe fields meet library calls (as torchtune's builders do): every
stage below reads only the files of earlier stages in the run directory and writes only its own
folder. `build_stages(recipe, recipe_dir)` returns them in order for `RunDir.execute`.
"""

from __future__ import annotations

import json
from pathlib import Path

from cogcore.recipe import Recipe, resolved_dict
from cogcore.runner import Stage, file_stamp, write_json_atomic

ORDER = ("curate", "index", "train.cpt", "train.tools", "eval", "report")
COMMAND_STAGES = {"curate": ["curate"], "index": ["index"], "train": ["train.cpt", "train.tools"],
                  "eval": ["eval"], "report": ["report"]}
FINAL_MODEL = "train/tools/model"


def read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def build_stages(recipe: Recipe, recipe_dir: Path) -> list[Stage]:
    r = resolved_dict(recipe, recipe_dir)  # absolute paths, overrides applied
    run = recipe.run_path(Path.cwd())
    return [_curate(recipe, r, run), _index(recipe, r, run), _cpt(recipe, r, run),
            _tools(recipe, r, run), _eval(recipe, r, run), _report(r, run)]


def _curate(recipe: Recipe, r: dict, run: Path) -> Stage:
    from cogcore.curate.pipeline import CuratePlan, SourceSpec, curate
    from cogcore.curate.readers import list_files

    cfg = recipe.curate
    specs = [SourceSpec(s["name"], s["path"], s["format"], s["text_field"], s["id_field"], s["title_field"],
                        tuple(s["meta_fields"])) for s in r["sources"]]
    stamps = [file_stamp(f) for s in specs for f in list_files(s.path)]

    def go(folder: Path) -> None:
        from cogcore.curate.executors import make_executor

        curate(specs, folder, _curate_plan(recipe, r), make_executor(cfg.executor, cfg.workers, cfg.ray_address))

    # Where curation runs does not change what it produces: not part of the fingerprint.
    content = {k: v for k, v in r["curate"].items() if k not in ("executor", "workers", "ray_address")}
    return Stage("curate", "curate", (), go, {"sources": r["sources"], "files": stamps, "curate": content,
                                               "facts": {k: r["facts"][k] for k in ("kinds", "patterns", "terms")},
                                               "seed": recipe.seed})


def _curate_plan(recipe: Recipe, r: dict):
    from cogcore.curate.minhash import MinHashConfig
    from cogcore.curate.pii import PiiRedactor
    from cogcore.curate.pipeline import CuratePlan
    from cogcore.recipe import QUALITY_FILTERS, filter_class

    cfg = recipe.curate
    mh, sem, reb = cfg.dedup.minhash, cfg.dedup.semantic, cfg.rebalance
    return CuratePlan(
        min_chars=cfg.min_chars, heldout_fraction=cfg.heldout_fraction, fact_kinds=tuple(recipe.facts.kinds),
        fact_patterns=recipe.facts.patterns or None, fact_terms=recipe.facts.terms or None,
        seed=recipe.seed, batch_size=cfg.batch_size, exact_dedup=cfg.dedup.exact,
        boilerplate=(cfg.boilerplate.min_docs, cfg.boilerplate.min_fraction) if cfg.boilerplate.enabled else None,
        filters=[filter_class(name)(**getattr(cfg.quality, name).params) for name in QUALITY_FILTERS
                 if getattr(cfg.quality, name).enabled],
        redactor=PiiRedactor(tuple(cfg.pii.kinds), cfg.pii.entropy_threshold) if cfg.pii.enabled else None,
        minhash=MinHashConfig(shingle_size=mh.shingle_size, num_perm=mh.bands * mh.rows, bands=mh.bands, rows=mh.rows,
                              seed=recipe.seed, verify=mh.verify, threshold=mh.threshold) if mh.enabled else None,
        embedder=r["index"]["embedder"],
        semantic={"threshold": sem.threshold, "clusters": sem.clusters} if sem.enabled else None,
        rebalance={"clusters": reb.clusters, "max_share": reb.max_share, "upsample_below": reb.upsample_below,
                   "max_upsample": reb.max_upsample} if reb.enabled else None)


def _index(recipe: Recipe, r: dict, run: Path) -> Stage:
    def go(folder: Path) -> None:
        from cogcore.retrieval import Embedder, build_index

        embedder = Embedder(r["index"]["embedder"], batch_size=recipe.index.batch_size)
        stats = build_index(read_jsonl(run / "curate" / "docs.jsonl"), folder, embedder,
                            chunk_chars=recipe.index.chunk_chars, overlap=recipe.index.chunk_overlap)
        write_json_atomic(folder / "stats.json", stats)

    return Stage("index", "index", ("curate",), go, {"index": r["index"], "embedder": file_stamp(r["index"]["embedder"])})


def _train_settings(cfg, seed: int):
    from cogcore.train.trainer import TrainSettings

    return TrainSettings(method=cfg.method, lora_r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                         lora_targets=cfg.lora.target_modules if isinstance(cfg.lora.target_modules, str)
                         else tuple(cfg.lora.target_modules),
                         max_steps=cfg.max_steps, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, lr=cfg.lr,
                         warmup_ratio=cfg.warmup_ratio, save_steps=cfg.save_steps, logging_steps=cfg.logging_steps,
                         seed=seed)


def _load_base(r: dict, recipe: Recipe):
    from cogcore.train.loading import load_model_and_tokenizer

    return load_model_and_tokenizer(r["base_model"]["path"], recipe.base_model.dtype, recipe.base_model.trust_remote_code)


def _cpt(recipe: Recipe, r: dict, run: Path) -> Stage:
    cfg = recipe.train.cpt

    def go(folder: Path) -> None:
        if not cfg.enabled:
            write_json_atomic(folder / "metrics.json", {"skipped": True, "reason": "train.cpt.enabled is false"})
            return
        from cogcore.train.cpt_data import build_cpt_rows
        from cogcore.train.trainer import train

        model, tok = _load_base(r, recipe)
        # Rebalancing may ask for a thin cluster's documents to be repeated (meta.upsample).
        docs = [d for d in read_jsonl(run / "curate" / "docs.jsonl") if d["meta"]["split"] == "train"
                for _ in range(d["meta"].get("upsample", 1))]
        rows, counts = build_cpt_rows(tok, docs, read_jsonl(run / "curate" / "facts.jsonl"), cfg.seq_len,
                                      recipe.facts.strategy, max_calls_per_doc=recipe.facts.max_calls_per_doc,
                                      train_copied_facts=recipe.facts.train_copied_facts)
        metrics = train(model, tok, rows, folder, _train_settings(cfg, recipe.seed), label="train.cpt")
        write_json_atomic(folder / "metrics.json", {**metrics, "data": counts})

    config = {"cpt": r["train"]["cpt"], "base_model": r["base_model"], "base_stamp": file_stamp(r["base_model"]["path"]),
              "strategy": {k: r["facts"][k] for k in ("strategy", "max_calls_per_doc", "train_copied_facts")},
              "seed": recipe.seed}
    return Stage("train.cpt", "train/cpt", ("curate",), go, config)


def _tools(recipe: Recipe, r: dict, run: Path) -> Stage:
    cfg = recipe.train.tools

    def go(folder: Path) -> None:
        from cogcore.questions import make_questions
        from cogcore.retrieval import SearchIndex
        from cogcore.train.chat_template import CHAT_TEMPLATE
        from cogcore.train.loading import load_model_and_tokenizer, save_model
        from cogcore.train.tools_data import build_conversations, tokenize_conversations
        from cogcore.train.trainer import train

        cpt_model = run / "train" / "cpt" / "model"
        if cpt_model.exists():
            model, tok = load_model_and_tokenizer(str(cpt_model), recipe.base_model.dtype)
        else:
            model, tok = _load_base(r, recipe)
        # One template for training, evaluation and serving: ChatML with hermes tool calls.
        tok.chat_template = CHAT_TEMPLATE
        if not cfg.enabled:
            save_model(model, tok, folder / "model")
            write_json_atomic(folder / "metrics.json", {"skipped": True, "reason": "train.tools.enabled is false"})
            return
        docs = read_jsonl(run / "curate" / "docs.jsonl")
        train_ids = {d["id"] for d in docs if d["meta"]["split"] == "train"}
        facts = [f for f in read_jsonl(run / "curate" / "facts.jsonl") if f["doc_id"] in train_ids]
        titles = {d["id"]: d["meta"].get("title", "") for d in docs}
        questions = make_questions(facts, titles, cfg.conversations, seed=recipe.seed, one_per_doc=False)
        conversations = build_conversations(questions, SearchIndex.load(run / "index"))
        (folder / "conversations.jsonl").write_text("".join(json.dumps(c) + "\n" for c in conversations))
        rows, too_long = tokenize_conversations(tok, conversations, cfg.seq_len)
        metrics = train(model, tok, rows, folder, _train_settings(cfg, recipe.seed), label="train.tools")
        data = {"conversations": len(conversations), "answer_found": sum(c["found"] for c in conversations),
                "rows": len(rows), "skipped_too_long": too_long}
        write_json_atomic(folder / "metrics.json", {**metrics, "data": data})

    config = {"tools": r["train"]["tools"], "base_model": r["base_model"], "seed": recipe.seed}
    return Stage("train.tools", "train/tools", ("curate", "index", "train.cpt"), go, config)


def _eval(recipe: Recipe, r: dict, run: Path) -> Stage:
    cfg = recipe.eval

    def go(folder: Path) -> None:
        import lm_eval

        from cogcore.eval.agentic import run_agentic
        from cogcore.eval.tasks import run_lm_eval, write_tasks
        from cogcore.questions import make_questions
        from cogcore.retrieval import SearchIndex
        from cogcore.train.loading import load_model_and_tokenizer

        docs = read_jsonl(run / "curate" / "docs.jsonl")
        heldout = [d for d in docs if d["meta"]["split"] == "heldout"]
        heldout_ids = {d["id"] for d in heldout}
        facts = read_jsonl(run / "curate" / "facts.jsonl")
        titles = {d["id"]: d["meta"].get("title", "") for d in docs}
        questions = make_questions([f for f in facts if f["doc_id"] in heldout_ids], titles,
                                   max(cfg.questions, cfg.agentic_questions), seed=recipe.seed)
        tasks = write_tasks(folder / "tasks", questions[:cfg.questions], facts, heldout[:cfg.perplexity_docs], recipe.seed)
        results = {"lm_eval_version": lm_eval.__version__, "lm_eval": {}, "questions": len(questions)}
        trained, tok = load_model_and_tokenizer(str(run / FINAL_MODEL), recipe.base_model.dtype)
        if tasks:
            results["lm_eval"]["trained"] = run_lm_eval(trained, tok, folder / "tasks", tasks, cfg.batch_size)
            base, base_tok = _load_base(r, recipe)
            results["lm_eval"]["base"] = run_lm_eval(base, base_tok, folder / "tasks", tasks, cfg.batch_size)
            del base
        if cfg.agentic_questions:
            results["agentic"] = run_agentic(trained, tok, SearchIndex.load(run / "index"),
                                             questions[:cfg.agentic_questions], folder / "agentic.jsonl",
                                             cfg.max_new_tokens, cfg.batch_size)
            results["samples"] = read_jsonl(folder / "agentic.jsonl")[:10]
        if cfg.bfcl.enabled:
            from cogcore.eval.bfcl import run_bfcl

            results["bfcl"] = run_bfcl(trained, tok, tuple(cfg.bfcl.categories), cfg.bfcl.limit, cfg.batch_size,
                                       cfg.bfcl.max_new_tokens, out_path=folder / "bfcl.jsonl")
        write_json_atomic(folder / "results.json", results)

    return Stage("eval", "eval", ("curate", "index", "train.tools"), go, {"eval": r["eval"], "seed": recipe.seed,
                                                                        "base_model": r["base_model"]})


def _report(r: dict, run: Path) -> Stage:
    def go(folder: Path) -> None:
        from cogcore.eval.report import build_report

        build_report(run)

    return Stage("report", "report", ("curate", "index", "train.cpt", "train.tools", "eval"), go, {"report": r["report"]})
