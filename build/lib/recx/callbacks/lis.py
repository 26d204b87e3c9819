"""The LIS callback: after a top-N run is tested, report AIS of item representations and LIS of preference data.

It runs once, on the best checkpoint (``on_test_end`` of the final test), and stores its results in the module's
``results["lis"]``, which ``recx train`` writes to ``metrics.json`` and prints. A representation or preference spec
that cannot be resolved is reported as skipped, and any failure of the evaluator itself is recorded in the results
instead of raised: a finished training run is never lost to its post-training report.
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

import lightning.pytorch as pl
import torch

log = logging.getLogger(__name__)


class LeakageImpactCallback(pl.Callback):
    def __init__(self, representations: Sequence[str] = ("model", "features"),
                 preferences: Sequence[str] = ("train", "valid", "test"), negatives: int = 100, seed: int = 0,
                 max_positives: int = 100_000, ks: Sequence[int] = (10, 20), mask_valid_at_test: bool = True,
                 memory_budget_mb: float = 256, modalities: Sequence[str] = ()) -> None:
        self.settings = dict(modalities=list(modalities), representations=list(representations),
                             preferences=list(preferences), negatives=negatives, seed=seed, max_positives=max_positives, ks=list(ks),
                             mask_valid_at_test=mask_valid_at_test, memory_budget_mb=memory_budget_mb)

    def on_test_end(self, trainer, pl_module) -> None:
        from recx.errors import RecxError
        from recx.lis import leakage_report

        if not trainer.is_global_zero:  # under DDP one process reports; the others would only repeat it
            return
        started = time.perf_counter()
        dm = trainer.datamodule
        net = pl_module.net
        net.eval()
        try:
            with torch.no_grad():
                results = leakage_report(dm.data, net.score, net=net, load_feature=feature_loader(dm),
                                         device=pl_module.device, strict=False, **self.settings)
        except RecxError as exc:
            results = {"error": exc.render()}
        except Exception as exc:  # noqa: BLE001 - a report must not take the finished run down with it
            log.exception("LIS failed")
            results = {"error": f"{type(exc).__name__}: {exc} (traceback in train.log)"}
        results["wall_time_s"] = round(time.perf_counter() - started, 3)
        pl_module.results["lis"] = results


def feature_loader(dm):
    """Load one modality of the datamodule's dataset, building and caching it if needed."""
    from recx.data.prepare import prepare

    def load(modality: str) -> torch.Tensor:
        if modality in dm.data.item_features:
            return dm.data.item_features[modality]
        if getattr(dm, "source", None) is None:
            from recx.errors import DataError

            raise DataError(f"the in-memory dataset has no modality '{modality}'", field="representation")
        return prepare(dm.source, dm.split_strategy, dm.data_dir, modalities=(modality,)).item_features[modality]

    return load
