"""The rephrase stage's accepted rewrites as train.cpt reads them: training text like any other.

Each rewrite goes through the same encoder as the original documents, with the facts the rephrase
stage detected in it, so `mask` leaves its facts out of the loss and `toolcall` puts a search call
before them, as for the originals. They come after the original text, `rephrase.ratio` times its
tokens at most (each rewrite once: a rewrite read twice teaches no more than once), and under the
online mixture they are a group of their own (`rephrased`). Counted in metrics.json's
`data.rephrased`: rewrites available and used, their tokens, masked tokens, the ratio reached.

    rephrased = RephrasedText(run / "rephrase", ratio=1.0, enabled=True)
    encoded = rephrased.after(encoder.encode(records, "docs", counts), encoder, counts)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from cogcore.rephrase.files import count_rewrites, rewrites
from cogcore.train.cpt_data import empty_counts
from cogcore.train.packing import IGNORE_INDEX

Encoded = tuple[list[int], list[int]]


class RephrasedText:
    def __init__(self, folder: Path, ratio: float, enabled: bool):
        self.folder, self.ratio, self.enabled = Path(folder), ratio, enabled

    def after(self, encoded: Iterable[Encoded], encoder, counts: dict) -> Iterator[Encoded]:
        """The original documents' encodings, then the rewrites' (none when the stage is off)."""
        yield from encoded
        yield from self.encoded(encoder, counts["tokens"], counts)

    def encoded(self, encoder, original_tokens: int, counts: dict) -> Iterator[Encoded]:
        """The rewrites' encodings, in file order, until `ratio` x `original_tokens` are reached."""
        if not self.enabled:
            return
        target = round(self.ratio * original_tokens)
        used = counts["rephrased"] = {
            "available": count_rewrites(self.folder),
            "docs": 0,
            "tokens": 0,
            "masked_tokens": 0,
            "target_tokens": target,
        }
        records = ((doc, facts, None) for doc, facts in rewrites(self.folder))
        encoding = empty_counts(encoder.settings)  # every rewrite's; `used` counts what is trained on
        for ids, labels in encoder.encode(records, "rephrased", encoding, total=used["available"]):
            if used["tokens"] >= target:
                break
            used["docs"] += 1
            used["tokens"] += len(ids)
            used["masked_tokens"] += sum(label == IGNORE_INDEX for label in labels)
            yield ids, labels
        used["ratio"] = round(used["tokens"] / original_tokens, 4) if original_tokens else None
