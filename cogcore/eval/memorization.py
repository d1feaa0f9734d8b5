"""Memorization figures of the eval stage: canary exposure and recall of training facts.

train.cpt writes `train/cpt/canaries.json` (`cogcore.canaries.CanaryRecord`) when a recipe plants
canaries. The eval stage scores every planted and control canary on the trained and the base model
(`canary_exposures`), and `memorization_summary` puts those beside the lm-eval accuracies of
`cogcore_train_recall` (facts of training documents) and `cogcore_closedbook` (held-out facts), so
that runs with `keep`, `mask` and `toolcall` can be read side by side.

Reading exposure: about 1 bit for a secret the model knows nothing about (the controls), up to
log2 of the secret space (19.9 bits for 6 digits) for one it ranks first among all candidates.
"""

from __future__ import annotations

from cogcore.canaries import CanaryRecord, exposure
from cogcore.eval.results import CanaryExposures, CanaryScores, ExposureSummary, Memorization


def canary_exposures(
    model, tokenizer, record: CanaryRecord, candidates: int, seed: int = 0, batch_size: int = 64
) -> CanaryExposures:
    """The planted canaries' and the controls' exposure on one model, each group's summary holding
    the mean and max exposure and the per-canary figures."""
    return CanaryExposures(
        **{
            group: _summary(
                [
                    exposure(model, tokenizer, c, candidates=candidates, seed=seed, batch_size=batch_size)
                    for c in canaries
                ]
            )
            for group, canaries in record.groups().items()
        }
    )


def _summary(scores: list[dict]) -> ExposureSummary:
    if not scores:
        return ExposureSummary(n=0)
    values = [s["exposure"] for s in scores]
    return ExposureSummary(
        n=len(scores),
        mean_exposure=sum(values) / len(values),
        max_exposure=max(values),
        mean_exposure_fit=sum(s["exposure_fit"] for s in scores) / len(scores),
        per_canary=scores,
    )


def memorization_summary(lm_eval: dict, canaries: CanaryScores | None) -> Memorization:
    """results.json's `memorization`: canary exposure (trained, and base under `base`), and the
    trained and base accuracy on training facts and held-out facts."""
    from cogcore.eval.tasks import CLOSEDBOOK, TRAIN_RECALL

    def accuracy(task: str) -> dict:
        return {model: res.get(task, {}).get("acc") for model, res in lm_eval.items()}

    return Memorization(train_recall=accuracy(TRAIN_RECALL), heldout_closedbook=accuracy(CLOSEDBOOK), canaries=canaries)
