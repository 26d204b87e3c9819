"""The LTR LightningModule: optimisation around any LTR model, and evaluation on true relevance labels.

Validation and test score every query's full list and average per-query metrics from :mod:`recx.metrics.ltr`
(NDCG@k with gain 2^r−1, ERR@10, MAP). Model selection uses the validation ``monitor`` (NDCG@10 by default) on true
labels, as ULTRA and allRank do; test metrics never select anything.
"""

from __future__ import annotations

from typing import Any, Sequence

import lightning.pytorch as pl
import torch

from recx.ltr.models.base import LTRModel
from recx.training import LossSteps, SameEvaluation, log_evaluation

STAGE_SPLIT = {"val": "valid", "test": "test"}


def query_metrics(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, ks: Sequence[int],
                  err_k: int = 10, max_label: int = 4, idcg_zero: str = "zero",
                  simulated_clicks: bool = False, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Per-query values ``[B]`` of every reported metric.

    ``pos_acc@k`` is STARank's own "NDCG" (position accuracy, :func:`recx.metrics.ltr.position_accuracy_ndcg`), logged
    beside standard NDCG so runs can be compared with the numbers its code prints. ``simulated_clicks`` adds STARank's
    simulation-based metrics: expected clicks in the top 10 under STARank's click model
    (:func:`recx.ltr.clicks.simulation_metric_constants`): PBM in closed form and UBM by Monte Carlo (64 impressions
    per query).
    """
    from recx.ltr import clicks
    from recx.metrics import ltr

    out = {f"ndcg@{k}": ltr.ndcg_at_k(scores, labels, mask, k, idcg_zero=idcg_zero) for k in ks}
    out.update({f"pos_acc@{k}": ltr.position_accuracy_ndcg(scores, labels, mask, k) for k in ks})
    out[f"err@{err_k}"] = ltr.err_at_k(scores, labels, mask, err_k, max_label=max_label)
    out["map"] = ltr.average_precision(scores, labels, mask)
    out["mrr"] = ltr.reciprocal_rank(scores, labels, mask)
    if simulated_clicks:
        sim = clicks.simulation_metric_constants(max_label)
        gamma = sim["click_prob"]
        graded = labels.clamp_max(len(gamma) - 1)
        out["clicks_pbm@10"] = ltr.expected_clicks_pbm(scores, graded, mask, sim["examination"], gamma, 10)
        out["clicks_ubm@10"] = ltr.expected_clicks_ubm_mc(scores, graded, mask, sim["ubm_table"], gamma, 64,
                                                          generator or torch.Generator().manual_seed(0), 10)
    return out


class LTRModule(LossSteps, SameEvaluation, pl.LightningModule):
    def __init__(self, net: LTRModel, lr: float = 1e-3, weight_decay: float = 0.0, ks: Sequence[int] = (1, 3, 5, 10),
                 monitor: str = "ndcg@10", idcg_zero: str = "zero", max_label: int | None = None,
                 simulated_clicks: bool = True, seed: int = 0) -> None:
        super().__init__()
        self.net = net
        self.lr, self.weight_decay = lr, weight_decay
        self.ks = sorted(int(k) for k in ks)
        self.monitor, self.idcg_zero, self.max_label = monitor, idcg_zero, max_label
        self.seed = seed
        self.simulated_clicks = simulated_clicks
        self._generator: torch.Generator | None = None
        self.results: dict[str, dict[str, float]] = {}
        self.recx_config: dict[str, Any] | None = None
        self._sums: dict[str, float] = {}
        self._count = 0

    # -------------------------------------------------------------- training
    nan_fix = "lower model.lr, or check the features for extreme values (dataset normalization)"

    def batch_size_of(self, batch: dict[str, torch.Tensor]) -> int:
        return batch["mask"].shape[0]

    def configure_optimizers(self):
        params = self.optimizer_parameters()
        return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay) if params else None

    # ------------------------------------------------------------ evaluation
    def _start(self, split: str) -> None:  # every split is scored the same way
        self._sums, self._count = {}, 0
        self._generator = torch.Generator().manual_seed(self.seed)  # the same UBM impressions at every evaluation
        if self.max_label is None:  # ERR's grade scale: the dataset's highest label (4 on MSLR, 1 on binary data)
            dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
            self.max_label = int(dm.data.max_label) if dm is not None else 4

    def _step(self, batch: dict[str, torch.Tensor]) -> None:
        scores = self.net.score(batch)
        values = query_metrics(scores.cpu(), batch["labels"].cpu(), batch["mask"].cpu(), self.ks,
                               max_label=self.max_label, idcg_zero=self.idcg_zero,
                               simulated_clicks=self.simulated_clicks, generator=self._generator)
        for name, v in values.items():
            self._sums[name] = self._sums.get(name, 0.0) + float(v.sum())
        self._count += batch["mask"].shape[0]

    def _finish(self, stage: str) -> dict[str, float]:
        if self._trainer is not None and self.trainer.world_size > 1:  # DDP: every process scored other queries
            import torch.distributed as dist

            shares: list = [None] * self.trainer.world_size
            dist.all_gather_object(shares, (self._sums, self._count))
            self._sums, self._count = {}, 0
            for sums, count in shares:
                for name, v in sums.items():
                    self._sums[name] = self._sums.get(name, 0.0) + v
                self._count += count
        values = {k: v / max(self._count, 1) for k, v in self._sums.items()}
        values["n_queries"] = float(self._count)
        self.results[STAGE_SPLIT[stage]] = values
        log_evaluation(self, stage, {k: v for k, v in values.items() if k != "n_queries"}, self.monitor)
        return values
