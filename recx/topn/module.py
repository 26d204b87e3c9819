"""The top-N LightningModule: optimisation, logging and full-ranking evaluation around any top-N model.

The model (``net``) holds the paper's math; this module owns everything shared: the optimiser, the NaN-loss guard,
and evaluation through the one shared scorer (:mod:`recx.scoring`, seen-item masking + deterministic top-K in
memory-bounded chunks) feeding the one metrics module (:mod:`recx.metrics.topk`). Validation and test run the same
code path, and so does ``recx eval``, which is why a re-scored checkpoint prints the numbers training printed.
"""

from __future__ import annotations

from typing import Any, Sequence

import lightning.pytorch as pl
import torch

from recx.errors import ConfigError
from recx.metrics.topk import TopKMetrics
from recx.scoring import make_ranker
from recx.topn.models.base import TopNModel
from recx.training import LossSteps, SameEvaluation, log_evaluation

STAGE_SPLIT = {"val": "valid", "test": "test"}
#: ``metric.during_training``: what a validation round inside ``fit`` computes
DURING_TRAINING = ("accuracy", "all")


class TopNModule(LossSteps, SameEvaluation, pl.LightningModule):
    def __init__(
        self,
        net: TopNModel,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_decay: float = 1.0,
        lr_decay_every: int = 50,
        metrics: Sequence[str] = ("recall", "ndcg", "precision", "hit_rate", "mrr", "map"),
        ks: Sequence[int] = (10, 20),
        monitor: str = "recall@20",
        scorer: str = "torch",
        memory_budget_mb: int = 256,
        cold_threshold: int | None = None,
        seed: int = 0,
        metric_decimals: int | None = None,
        during_training: str = "accuracy",
    ) -> None:
        super().__init__()
        self.net = net
        self.lr, self.weight_decay = lr, weight_decay
        self.lr_decay, self.lr_decay_every = lr_decay, lr_decay_every
        self.metric_names, self.ks = list(metrics), sorted(int(k) for k in ks)
        self.monitor = monitor
        self.scorer, self.memory_budget_mb = scorer, memory_budget_mb
        self.cold_threshold = cold_threshold
        self.seed = seed
        #: round every metric to this many decimals before it is logged, selected on and reported (MMRec: 4, so
        #: early stopping and the best epoch see the rounded values and a tie at 4 decimals is no improvement)
        self.metric_decimals = metric_decimals
        #: what the validation rounds inside ``fit`` compute: "accuracy" (the ranking metrics, which selection and
        #: early stopping read) or "all" (also the cold-start view and coverage/popularity/Gini). The validation of
        #: the best checkpoint and the test always compute everything; skipping the extra views per epoch keeps one
        #: evaluation pass near the bare score + mask + top-K cost.
        if during_training not in DURING_TRAINING:
            raise ConfigError(f"metric.during_training={during_training!r} is not one of {', '.join(DURING_TRAINING)}",
                              field="metric.during_training", fix="use metric.during_training=accuracy or all")
        self.during_training = during_training
        self.results: dict[str, dict[str, float]] = {}
        #: the resolved run config, stored in every checkpoint so `recx eval` can rebuild the run from it alone
        self.recx_config: dict[str, Any] | None = None
        self._ranker = None
        self._metric: TopKMetrics | None = None
        self._cold_metric: TopKMetrics | None = None

    # -------------------------------------------------------------- training
    nan_fix = "lower model.lr, raise model.reg_weight, or check the input features for extreme values"

    def batch_size_of(self, batch: dict[str, torch.Tensor]) -> int:
        return batch["users"].shape[0]

    def configure_optimizers(self):
        params = self.optimizer_parameters()
        if not params:
            return None
        optimizer = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.lr_decay == 1.0:
            return optimizer
        decay, every = self.lr_decay, self.lr_decay_every
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: decay ** (epoch / every))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # ------------------------------------------------------------ evaluation
    def _start(self, split: str) -> None:
        dm = self.trainer.datamodule
        seen_indptr, seen_indices = dm.seen_csr(split)
        truth_indptr, truth_indices = dm.truth_csr(split)
        self._ranker = make_ranker(self.scorer, k=max(self.ks), seen_indptr=seen_indptr, seen_indices=seen_indices,
                                   memory_budget_mb=self.memory_budget_mb, device=self.device,
                                   n_items=dm.data.n_items)
        full_view = self.during_training == "all" or self.trainer.state.fn != "fit"
        self._metric = TopKMetrics(
            metrics=self.metric_names, ks=self.ks, truth_indptr=truth_indptr, truth_indices=truth_indices,
            n_items=dm.data.n_items, item_popularity=dm.data.item_popularity() if full_view else None,
        ).to(self.device)
        self._skipped = dm.skipped_users(split)
        self._cold_metric = None
        if self.cold_threshold is not None and full_view:
            cold_indptr, cold_indices, self._n_cold = dm.cold_truth_csr(split, self.cold_threshold)
            self._cold_metric = TopKMetrics(metrics=self.metric_names, ks=self.ks, truth_indptr=cold_indptr,
                                            truth_indices=cold_indices, n_items=dm.data.n_items).to(self.device)

    def _step(self, batch: dict[str, torch.Tensor]) -> None:
        users = batch["users"].to(self.device)
        if self.scorer == "faiss":
            user_vecs, item_vecs = self.net.user_item_vectors()
            items, _ = self._ranker.rank_all_vectors(user_vecs, item_vecs, users)
        else:
            items, _ = self._ranker.rank_all(self.net.score, users)
        self._metric.update(items.to(self.device), users)
        if self._cold_metric is not None:
            self._cold_metric.update(items.to(self.device), users)

    def _finish(self, stage: str) -> dict[str, float]:
        split = STAGE_SPLIT[stage]
        values = {k: float(v) for k, v in self._metric.compute().items()}
        if self.metric_decimals is not None:
            values = {k: round(v, self.metric_decimals) if "@" in k else v for k, v in values.items()}
        values["n_skipped_users"] = values.get("n_skipped_users", 0.0) + self._skipped
        if self._cold_metric is not None:
            # the cold-start view: the same top-K lists judged on held-out items with few training interactions only
            cold = {k: float(v) for k, v in self._cold_metric.compute().items()}
            if self.metric_decimals is not None:
                cold = {k: round(v, self.metric_decimals) if "@" in k else v for k, v in cold.items()}
            values.update({f"cold/{k}": v for k, v in cold.items() if "@" in k})
            values["cold/n_users"] = cold.get("n_users", 0.0)
            values["cold/n_items"] = float(self._n_cold)
        self.results[split] = values
        log_evaluation(self, stage, {k: v for k, v in values.items() if "@" in k}, self.monitor)
        self._metric, self._ranker, self._cold_metric = None, None, None
        return values
