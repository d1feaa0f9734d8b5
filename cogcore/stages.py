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
from cogcore.stage_inputs import (check_tool_conversations, check_tool_rows, check_training_split, curated_splits,
                                  heldout_problem, require_conversations, require_documents,
                                  require_something_to_evaluate, warn)

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
    from cogcore.curate.readers import ReadLimits, list_files

    cfg = recipe.curate
    limits = ReadLimits(**cfg.limits.model_dump())
    specs = [SourceSpec(s["name"], s["path"], s["format"], s["text_field"], s["id_field"], s["title_field"],
                        tuple(s["meta_fields"]), follow_links=s["follow_links"], limits=limits) for s in r["sources"]]
    stamps = [file_stamp(f) for s in specs for f in list_files(s.path, s.follow_links)]

    def go(folder: Path) -> None:
        from cogcore.curate.executors import make_executor

        curate(specs, folder, _curate_plan(recipe, r), make_executor(cfg.executor, cfg.workers, cfg.ray_address))

    # Where curation runs does not change what it produces: not part of the fingerprint.
    content = {k: v for k, v in r["curate"].items() if k not in ("executor", "workers", "ray_address")}
    return Stage("curate", "curate", (), go, {"sources": r["sources"], "files": stamps, "curate": content,
                                               "facts": {k: r["facts"][k] for k in ("kinds", "patterns", "terms")},
                                               "seed": recipe.seed},
                 resumes=True)  # a killed run skips the shards it finished


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
                   "max_upsample": reb.max_upsample} if reb.enabled else None,
        warn_drop_fraction=cfg.warn_drop_fraction, max_drop_fraction=cfg.max_drop_fraction)


def _index(recipe: Recipe, r: dict, run: Path) -> Stage:
    def go(folder: Path) -> None:
        from cogcore.retrieval import Embedder, build_index

        cfg = recipe.index
        docs = read_jsonl(run / "curate" / "docs.jsonl")
        require_documents("index", len(docs))
        embedder = Embedder(r["index"]["embedder"], batch_size=cfg.batch_size)
        # The search settings land in index.json, so every later SearchIndex.load uses them.
        stats = build_index(docs, folder, embedder,
                            chunk_chars=cfg.chunk_chars, overlap=cfg.chunk_overlap, index_type=cfg.type,
                            header=cfg.chunk_header, mode=cfg.search_mode, rrf_k=cfg.rrf_k,
                            fusion_weights=(cfg.weights.dense, cfg.weights.bm25),
                            reranker=r["index"]["reranker"], rerank_top=cfg.rerank_top)
        write_json_atomic(folder / "stats.json", stats)

    reranker = r["index"]["reranker"]
    # resumes=False: a killed build embeds every chunk again (nothing is kept between batches).
    return Stage("index", "index", ("curate",), go, {"index": r["index"], "embedder": file_stamp(r["index"]["embedder"]),
                                                     **({"reranker": file_stamp(reranker)} if reranker else {})},
                 resumes=False)


def _train_settings(cfg, seed: int, trust_remote_code: bool = False):
    from cogcore.train.trainer import TrainSettings

    return TrainSettings(method=cfg.method, lora_r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                         lora_targets=cfg.lora.target_modules if isinstance(cfg.lora.target_modules, str)
                         else tuple(cfg.lora.target_modules),
                         max_steps=cfg.max_steps or TrainSettings.max_steps, batch_size=cfg.batch_size,
                         grad_accum=cfg.grad_accum, lr=cfg.lr,
                         warmup_ratio=cfg.warmup_ratio, save_steps=cfg.save_steps, logging_steps=cfg.logging_steps,
                         seed=seed, max_tokens=getattr(cfg, "max_tokens", None),
                         gradient_checkpointing=cfg.gradient_checkpointing, trust_remote_code=trust_remote_code)


def _load_base(r: dict, recipe: Recipe):
    from cogcore.train.loading import load_model_and_tokenizer

    return load_model_and_tokenizer(r["base_model"]["path"], recipe.base_model.dtype, recipe.base_model.trust_remote_code)


def _cpt(recipe: Recipe, r: dict, run: Path) -> Stage:
    cfg = recipe.train.cpt

    def go(folder: Path) -> None:
        if not cfg.enabled:
            write_json_atomic(folder / "metrics.json", {"skipped": True, "reason": "train.cpt.enabled is false"})
            return
        from cogcore.runner import file_sha256
        from cogcore.train.data_cache import cached_rows
        from cogcore.train.launch import launch_stage, plan_from_recipe
        from cogcore.train.loading import load_model_and_tokenizer
        from cogcore.train.trainer import check_method

        check_method(cfg.method, "train.cpt.method")  # before any loading: qlora needs CUDA and bitsandbytes
        check_training_split("train.cpt", curated_splits(run), recipe.curate.heldout_fraction)
        model, tok = load_model_and_tokenizer(r["base_model"]["path"], recipe.base_model.dtype,
                                              recipe.base_model.trust_remote_code, quantize_4bit=cfg.method == "qlora")
        # Tokenized once; a resumed (or relaunched) stage loads the Arrow rows instead of tokenizing again.
        key = {**config, "docs": file_sha256(run / "curate" / "docs.jsonl"),
               "facts": file_sha256(run / "curate" / "facts.jsonl")}
        rows, counts = cached_rows(folder, key, lambda counts: _cpt_rows(recipe, r, run, folder, model, tok, counts))
        settings = _train_settings(cfg, recipe.seed, recipe.base_model.trust_remote_code)
        metrics = launch_stage(model, tok, rows, folder, settings, "train.cpt", plan_from_recipe(recipe.train.distributed),
                               r["base_model"]["path"], recipe.base_model.dtype, recipe.base_model.trust_remote_code,
                               quantize_4bit=cfg.method == "qlora")
        write_json_atomic(folder / "metrics.json", {**metrics, "data": counts})

    config = {"cpt": r["train"]["cpt"], "base_model": r["base_model"], "base_stamp": file_stamp(r["base_model"]["path"]),
              "strategy": {k: r["facts"][k] for k in ("strategy", "max_calls_per_doc", "train_copied_facts",
                                                      "toolformer", "canaries")},
              "seed": recipe.seed}
    if cfg.replay is not None:
        from cogcore.curate.readers import list_files

        config["replay_files"] = [file_stamp(f) for f in list_files(r["train"]["cpt"]["replay"]["path"])]
    return Stage("train.cpt", "train/cpt", ("curate",), go, config, resumes=True)  # from its last checkpoint


def _cpt_rows(recipe: Recipe, r: dict, run: Path, folder: Path, model, tok, counts: dict):
    """train.cpt's rows, streamed: the documents encoded under the facts strategy, replay text
    after them, packed; `counts` filled on the way (for metrics.json's `data`)."""
    from cogcore.train.cpt_data import encode_documents, pack_rows, read_replay, with_replay

    cfg, facts_cfg = recipe.train.cpt, recipe.facts
    docs, facts, calls, extra = _cpt_text(recipe, run, folder, model, tok)
    counts.update(extra)
    encoded = encode_documents(tok, docs, facts, facts_cfg.strategy, counts, facts_cfg.max_calls_per_doc, calls,
                               facts_cfg.train_copied_facts, progress=True)
    if cfg.replay is not None:
        replay = r["train"]["cpt"]["replay"]
        encoded = with_replay(encoded, tok, read_replay(replay["path"], replay["format"], replay["text_field"], counts),
                              cfg.replay.ratio, counts, progress=True)
    yield from pack_rows(encoded, cfg.seq_len, cfg.packing, counts)


def _cpt_text(recipe: Recipe, run: Path, folder: Path, model, tok) -> tuple[list[dict], list[dict], dict | None, dict]:
    """The training documents and facts of train.cpt: canaries planted (recorded in canaries.json for
    the eval stage), the Toolformer filter's calls (scored under the base model; each call's losses in
    toolformer.jsonl), and rebalancing's repeats; plus counts for metrics.json."""
    facts_cfg = recipe.facts
    docs = [d for d in read_jsonl(run / "curate" / "docs.jsonl") if d["meta"]["split"] == "train"]
    ids = {d["id"] for d in docs}
    facts = [f for f in read_jsonl(run / "curate" / "facts.jsonl") if f["doc_id"] in ids]
    extra: dict = {}
    if facts_cfg.canaries.count:
        from cogcore.canaries import plant_in_training
        from cogcore.curate.facts import FactDetector

        c = facts_cfg.canaries
        detector = FactDetector(facts_cfg.kinds, patterns=facts_cfg.patterns or None, terms=facts_cfg.terms or None)
        docs, facts, record = plant_in_training(docs, facts, detector, c.count, c.controls, c.repeats,
                                                seed=recipe.seed, digits=c.digits)
        write_json_atomic(folder / "canaries.json", {**record, "strategy": facts_cfg.strategy})
        extra["canaries"] = {"planted": c.count, "controls": c.controls, "repeats": c.repeats,
                             "secrets_detected_as_facts": sum(record["secret_is_fact"].values())}
    calls = None
    if facts_cfg.strategy == "toolcall" and facts_cfg.toolformer.enabled:
        from cogcore.train.toolformer import select_calls

        t = facts_cfg.toolformer
        calls, extra["toolformer"] = select_calls(model, tok, docs, facts, facts_cfg.max_calls_per_doc, tau=t.tau,
                                                  limit=t.limit, seed=recipe.seed, batch_size=t.batch_size,
                                                  log_path=folder / "toolformer.jsonl")
    if facts_cfg.canaries.count or calls is not None:  # what `cogcore inspect --doc` must show instead of curate's
        changed = {d["id"] for d in docs if d["meta"].get("canaries")} if calls is None else ids
        facts_of: dict[str, list[dict]] = {}
        for f in facts:
            facts_of.setdefault(f["doc_id"], []).append(f)
        with open(folder / "training_docs.jsonl", "w") as out:
            for d in docs:
                if d["id"] in changed:
                    row = {"id": d["id"], "text": d["text"], "meta": d["meta"], "facts": facts_of.get(d["id"], []),
                           "calls": None if calls is None else [c.to_dict() for c in calls.get(d["id"], [])]}
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
    # Rebalancing may ask for a thin cluster's documents to be repeated (meta.upsample).
    docs = [d for d in docs for _ in range(d["meta"].get("upsample", 1))]
    return docs, facts, calls, extra


def _tools(recipe: Recipe, r: dict, run: Path) -> Stage:
    from cogcore.resources import ResourceError, resolve_path

    cfg = recipe.train.tools

    def go(folder: Path) -> None:
        from collections import Counter

        from cogcore.questions import make_questions
        from cogcore.retrieval import SEARCH_TOOL, SearchIndex
        from cogcore.train.chat_template import choose_chat_template
        from cogcore.train.launch import launch_stage, plan_from_recipe
        from cogcore.train.loading import load_model_and_tokenizer, save_model
        from cogcore.train.tools_data import plan_counts, read_conversation_files, synthesize, tokenize_conversations

        for i, f in enumerate(files if cfg.enabled else []):
            if not Path(f).is_file():
                raise FileNotFoundError(f"train.tools.conversation_files.{i}: {f} does not exist")
        if cfg.enabled:  # before any loading
            check_tool_conversations(curated_splits(run), recipe.curate.heldout_fraction, files)
        cpt_model = run / "train" / "cpt" / "model"
        if cpt_model.exists():
            model, tok = load_model_and_tokenizer(str(cpt_model), recipe.base_model.dtype)
        else:
            model, tok = _load_base(r, recipe)
        # One template for training, evaluation and serving: the base model's own when it lists tools
        # and writes hermes <tool_call> JSON (vLLM's hermes parser reads it), else ChatML + hermes.
        tok.chat_template, template_used = choose_chat_template(tok)
        tools = [SEARCH_TOOL] + [t.schema() for t in recipe.tools]
        write_json_atomic(folder / "tools.json", r["tools"])  # the recipe's tools, for `cogcore ask` and eval
        if not cfg.enabled:
            save_model(model, tok, folder / "model")
            write_json_atomic(folder / "metrics.json", {"skipped": True, "reason": "train.tools.enabled is false",
                                                        "chat_template": template_used})
            return
        docs = read_jsonl(run / "curate" / "docs.jsonl")
        train_ids = {d["id"] for d in docs if d["meta"]["split"] == "train"}
        facts = [f for f in read_jsonl(run / "curate" / "facts.jsonl") if f["doc_id"] in train_ids]
        titles = {d["id"]: d["meta"].get("title", "") for d in docs}
        # Twice as many questions as conversations: a kind draws only on facts the index finds (or not).
        questions = make_questions(facts, titles, 2 * cfg.conversations, seed=recipe.seed, one_per_doc=False)
        conversations, requested = synthesize(questions, SearchIndex.load(run / "index"),
                                              plan_counts(cfg.conversations, cfg.mix.model_dump()), seed=recipe.seed)
        from_files, file_stats = read_conversation_files([Path(f) for f in files], tools)
        conversations += from_files
        require_conversations(len(conversations), len(train_ids), len(facts), len(from_files))
        (folder / "conversations.jsonl").write_text("".join(json.dumps(c, ensure_ascii=False) + "\n"
                                                            for c in conversations))
        rows, too_long = tokenize_conversations(tok, conversations, cfg.seq_len, tools)
        check_tool_rows(len(rows), too_long, cfg.seq_len)
        # Workers (several processes) load the same model the stage did: the cpt output, else the base.
        metrics = launch_stage(model, tok, rows, folder, _train_settings(cfg, recipe.seed), "train.tools",
                               plan_from_recipe(recipe.train.distributed),
                               *((str(cpt_model), recipe.base_model.dtype) if cpt_model.exists() else
                                 (r["base_model"]["path"], recipe.base_model.dtype, recipe.base_model.trust_remote_code)))
        data = {"conversations": len(conversations), "kinds": dict(Counter(c["kind"] for c in conversations)),
                "requested": requested, "conversation_files": file_stats,
                "answer_found": sum(c["found"] for c in conversations if c["kind"] != "file"),
                "rows": len(rows), "skipped_too_long": too_long}
        write_json_atomic(folder / "metrics.json", {**metrics, "data": data, "chat_template": template_used})

    # Relative conversation files resolve against the working directory (as `cogcore run` is started).
    files = []
    for path in r["train"]["tools"]["conversation_files"]:
        try:
            files.append(resolve_path(path, Path.cwd()))
        except ResourceError:
            files.append(path)  # the stage reports it, naming the field
    config = {"tools": r["train"]["tools"], "recipe_tools": r["tools"], "files": [file_stamp(f) for f in files],
              "base_model": r["base_model"], "seed": recipe.seed}
    return Stage("train.tools", "train/tools", ("curate", "index", "train.cpt"), go, config,
                 resumes=True)  # from its last checkpoint


def _eval(recipe: Recipe, r: dict, run: Path) -> Stage:
    cfg = recipe.eval

    def go(folder: Path) -> None:
        import lm_eval
        import torch

        from cogcore.eval.agentic import run_agentic
        from cogcore.eval.memorization import canary_exposures, max_exposure, memorization_summary
        from cogcore.eval.tasks import (check_task_names, choose_backend, make_lm, retrieve_passages, run_lm_eval,
                                        run_standard_tasks, task_manager, write_tasks)
        from cogcore.questions import make_questions
        from cogcore.retrieval import SearchIndex
        from cogcore.train.loading import gguf_as_folder, load_model_and_tokenizer

        backend = choose_backend(cfg.backend)
        docs = read_jsonl(run / "curate" / "docs.jsonl")
        heldout = [d for d in docs if d["meta"]["split"] == "heldout"]
        split_of = {d["id"]: d["meta"]["split"] for d in docs}
        facts = read_jsonl(run / "curate" / "facts.jsonl")
        titles = {d["id"]: d["meta"].get("title", "") for d in docs}
        questions = make_questions([f for f in facts if split_of.get(f["doc_id"]) == "heldout"], titles,
                                   max(cfg.questions, cfg.agentic_questions), seed=recipe.seed)
        train_questions = make_questions([f for f in facts if split_of.get(f["doc_id"]) == "train"], titles,
                                         cfg.questions, seed=recipe.seed)
        # A warning, not an error: eval still runs what has data (train recall, standard tasks, BFCL, canaries).
        problem = warn(heldout_problem(curated_splits(run), len(questions), recipe.curate.heldout_fraction))
        index = SearchIndex.load(run / "index")
        asked = questions[:cfg.questions]
        passages = retrieve_passages(index, asked, cfg.openbook_passages) if cfg.openbook_passages else None
        tasks = write_tasks(folder / "tasks", asked, facts, heldout[:cfg.perplexity_docs], recipe.seed,
                            passages=passages, train_questions=train_questions)
        manager = task_manager(folder / "tasks", with_defaults=bool(cfg.lm_eval_tasks))
        check_task_names(cfg.lm_eval_tasks, manager)  # before any model is loaded
        canaries_path = run / "train" / "cpt" / "canaries.json"
        record = json.loads(canaries_path.read_text()) if canaries_path.exists() else None
        require_something_to_evaluate(problem, len(tasks), bool(cfg.lm_eval_tasks or cfg.bfcl.enabled or record))
        device = "cuda" if torch.cuda.is_available() else "cpu"
        results = {"lm_eval_version": lm_eval.__version__, "backend": backend, "lm_eval": {}, "standard_tasks": {},
                   "questions": len(questions), "train_questions": len(train_questions),
                   "warnings": [problem] if problem else []}
        exposures = {}

        def score(name: str, model, tok, path: str, trust: bool) -> None:
            lm = make_lm(backend, model, tok, path, cfg.batch_size, recipe.base_model.dtype, trust)
            if tasks:
                results["lm_eval"][name] = run_lm_eval(lm, manager, tasks)
            results["standard_tasks"][name] = run_standard_tasks(
                lm, manager, cfg.lm_eval_tasks, cfg.lm_eval_limit,
                skip={t: v for t, v in results["standard_tasks"].get("trained", {}).items() if "skipped" in v})
            del lm  # a vLLM engine holds its share of the GPU until it is gone
            if device == "cuda":
                torch.cuda.empty_cache()
            if record is not None:
                exposures[name] = canary_exposures(model, tok, record, cfg.canary_candidates, recipe.seed)

        trained, tok = load_model_and_tokenizer(str(run / FINAL_MODEL), recipe.base_model.dtype)
        trained.to(device)
        score("trained", trained, tok, str(run / FINAL_MODEL), False)
        if tasks or cfg.lm_eval_tasks or record is not None:  # the base model: what training changed
            base, base_tok = _load_base(r, recipe)
            base_path = r["base_model"]["path"]
            score("base", base.to(device), base_tok, str(gguf_as_folder(Path(base_path)))
                  if base_path.endswith(".gguf") else base_path, recipe.base_model.trust_remote_code)
            del base
        canaries = None
        if record is not None:
            canaries = {**exposures["trained"], "base": exposures["base"], "max_possible": max_exposure(record),
                        "repeats": record.get("repeats"), "strategy": record.get("strategy"),
                        "candidates": cfg.canary_candidates}
        results["memorization"] = memorization_summary(results["lm_eval"], canaries)
        if cfg.agentic_questions and questions:
            from cogcore.runtime import run_tools

            results["agentic"] = run_agentic(trained, tok, index, questions[:cfg.agentic_questions],
                                             folder / "agentic.jsonl", cfg.max_new_tokens, cfg.batch_size,
                                             tools=run_tools(run, index))
            results["samples"] = read_jsonl(folder / "agentic.jsonl")[:10]
        if cfg.bfcl.enabled:
            from cogcore.eval.bfcl import run_bfcl

            results["bfcl"] = run_bfcl(trained, tok, tuple(cfg.bfcl.categories), cfg.bfcl.limit, cfg.batch_size,
                                       cfg.bfcl.max_new_tokens, out_path=folder / "bfcl.jsonl")
        if cfg.throughput.enabled:
            from cogcore.eval.throughput import measure_serving

            t, gpu = cfg.throughput, next(trained.parameters()).is_cuda
            results["measured_throughput"] = measure_serving(
                trained, t.batch or (16 if gpu else 4), t.prompt_tokens or (1024 if gpu else 256),
                t.output_tokens or (256 if gpu else 32), seed=recipe.seed)
        write_json_atomic(folder / "results.json", results)

    # train.cpt is upstream for its canaries.json: a new planting is a new memorization result.
    return Stage("eval", "eval", ("curate", "index", "train.cpt", "train.tools"), go,
                 {"eval": r["eval"], "seed": recipe.seed, "base_model": r["base_model"]})


def _report(r: dict, run: Path) -> Stage:
    def go(folder: Path) -> None:
        from cogcore.eval.report import build_report

        build_report(run, folder)  # reads the run's files, writes only the folder it is given

    return Stage("report", "report", ("curate", "index", "train.cpt", "train.tools", "eval"), go, {"report": r["report"]})
