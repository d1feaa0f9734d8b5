"""What a curation run reads and does, as plain typed objects built from the recipe.

`CuratePlan.from_sections` is the one place where the recipe's `curate` and `facts` sections become
the settings of the steps (pipeline.py runs them); it repeats none of the schema's defaults:

    plan = CuratePlan.from_sections(
        curate=recipe.curate,
        facts=recipe.facts,
        seed=recipe.seed,
        embedder=recipe.index.embedder,
    )
    curate([SourceSpec.from_section(s, recipe.curate.limits) for s in recipe.sources], out, plan)
"""

from __future__ import annotations

from dataclasses import dataclass

from cogcore.curate.boilerplate import BoilerplateSettings
from cogcore.curate.minhash import MinHashConfig
from cogcore.curate.names import NameSettings
from cogcore.curate.pii import PiiRedactor
from cogcore.curate.readers import ReadLimits
from cogcore.curate.rebalance import RebalanceSettings
from cogcore.curate.semdedup import SemanticDedupSettings
from cogcore.curate.steps import Step
from cogcore.recipe import QUALITY_FILTERS, CurateConfig, FactsConfig, ReadLimitsConfig, Source, filter_class


@dataclass(frozen=True)
class SourceSpec:
    """One source to read: its files, how to read them, and the bounds on what a file may cost."""

    name: str
    path: str
    format: str
    text_field: str
    id_field: str | None
    title_field: str | None
    meta_fields: tuple[str, ...]
    follow_links: bool  # read links that lead out of the source's root too
    limits: ReadLimits  # the recipe's curate.limits (the same for every source)

    @classmethod
    def from_section(cls, source: Source, limits: ReadLimitsConfig) -> SourceSpec:
        """One of the recipe's `sources` (path resolved), read under `curate.limits`."""
        return cls(
            name=source.name,
            path=source.path,
            format=source.format,
            text_field=source.text_field,
            id_field=source.id_field,
            title_field=source.title_field,
            meta_fields=tuple(source.meta_fields),
            follow_links=source.follow_links,
            limits=ReadLimits(**limits.model_dump()),
        )


@dataclass(frozen=True)
class CuratePlan:
    """The steps a run takes and their settings; a step that is off is None (or False, or empty)."""

    min_chars: int
    heldout_fraction: float
    batch_size: int
    seed: int
    fact_kinds: tuple[str, ...]  # empty: the detector's default kinds
    fact_patterns: dict[str, str]  # kind -> regex, the recipe's own
    fact_terms: dict[str, list[str]]  # kind -> terms matched as whole words
    fact_names: NameSettings | None  # learn the `name` kind's vocabulary from the corpus; None: don't
    boilerplate: BoilerplateSettings | None
    filters: tuple[Step, ...]  # quality filters, after the length filter
    redactor: PiiRedactor | None
    exact_dedup: bool
    minhash: MinHashConfig | None
    semantic: SemanticDedupSettings | None
    rebalance: RebalanceSettings | None
    embedder: str  # sentence-transformers folder: what semantic dedup and rebalancing embed with
    warn_drop_fraction: float | None  # warn when a step drops more of its input than this; None = never
    max_drop_fraction: float | None  # fail when a step drops more of its input than this; None = never

    @classmethod
    def from_sections(cls, *, curate: CurateConfig, facts: FactsConfig, seed: int, embedder: str) -> CuratePlan:
        """The plan of the recipe's `curate` and `facts` sections; `embedder` is its `index.embedder`."""
        dedup, rebalance = curate.dedup, curate.rebalance
        return cls(
            min_chars=curate.min_chars,
            heldout_fraction=curate.heldout_fraction,
            batch_size=curate.batch_size,
            seed=seed,
            fact_kinds=tuple(facts.kinds),
            fact_patterns=dict(facts.patterns),
            fact_terms={kind: list(terms) for kind, terms in facts.terms.items()},
            fact_names=NameSettings(
                min_docs=facts.names.min_docs,
                max_doc_share=facts.names.max_doc_share,
                max_lower_share=facts.names.max_lower_share,
            )
            if facts.names.learn and "name" in facts.kinds
            else None,
            boilerplate=BoilerplateSettings(
                min_docs=curate.boilerplate.min_docs,
                min_fraction=curate.boilerplate.min_fraction,
            )
            if curate.boilerplate.enabled
            else None,
            filters=tuple(
                filter_class(name)(**getattr(curate.quality, name).params)
                for name in QUALITY_FILTERS
                if getattr(curate.quality, name).enabled
            ),
            redactor=PiiRedactor(
                kinds=tuple(curate.pii.kinds),
                entropy_threshold=curate.pii.entropy_threshold,
            )
            if curate.pii.enabled
            else None,
            exact_dedup=dedup.exact,
            minhash=MinHashConfig(
                shingle_size=dedup.minhash.shingle_size,
                num_perm=dedup.minhash.bands * dedup.minhash.rows,
                bands=dedup.minhash.bands,
                rows=dedup.minhash.rows,
                seed=seed,
                verify=dedup.minhash.verify,
                threshold=dedup.minhash.threshold,
            )
            if dedup.minhash.enabled
            else None,
            semantic=SemanticDedupSettings(
                threshold=dedup.semantic.threshold,
                clusters=dedup.semantic.clusters,
            )
            if dedup.semantic.enabled
            else None,
            rebalance=RebalanceSettings(
                clusters=rebalance.clusters,
                max_share=rebalance.max_share,
                upsample_below=rebalance.upsample_below,
                max_upsample=rebalance.max_upsample,
            )
            if rebalance.enabled
            else None,
            embedder=embedder,
            warn_drop_fraction=curate.warn_drop_fraction,
            max_drop_fraction=curate.max_drop_fraction,
        )
