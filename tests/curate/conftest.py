"""Curation plans and sources built the way the curate stage builds them: from recipe sections.

- `bare_plan(**curate)`: a `CuratePlan` from a `curate` section with boilerplate removal, PII
  redaction and near dedup off (so only unique ids, normalize, the length filter and exact dedup
  run unless a test turns more on), `curate` fields laid over it; `kinds`: the facts section's kinds.
- `source(name, path, **fields)`: a `SourceSpec` from a `sources` entry, read under the default limits.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cogcore.curate.plan import CuratePlan, SourceSpec
from cogcore.recipe import CurateConfig, FactsConfig, ReadLimitsConfig, Source

BARE = {"boilerplate": {"enabled": False}, "pii": {"enabled": False}, "dedup": {"minhash": {"enabled": False}}}


def _laid_over(base: dict, fields: dict) -> dict:
    out = dict(base)
    for key, value in fields.items():
        nested = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = _laid_over(base[key], value) if nested else value
    return out


def build_bare_plan(
    *, kinds: tuple[str, ...] | None = None, seed: int = 0, embedder: str = "unused", **curate
) -> CuratePlan:
    facts = FactsConfig() if kinds is None else FactsConfig(kinds=list(kinds))
    return CuratePlan.from_sections(
        curate=CurateConfig.model_validate(_laid_over(BARE, curate)), facts=facts, seed=seed, embedder=embedder
    )


def build_source(name: str, path: str, **fields) -> SourceSpec:
    return SourceSpec.from_section(Source(name=name, path=path, **fields), ReadLimitsConfig())


@pytest.fixture(scope="session")
def bare_plan() -> Callable[..., CuratePlan]:
    return build_bare_plan


@pytest.fixture(scope="session")
def source() -> Callable[..., SourceSpec]:
    return build_source
