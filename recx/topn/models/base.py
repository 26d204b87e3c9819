"""The top-N model protocol.

Every top-N model is a plain ``nn.Module`` built from the prepared dataset (``Model(data, **hyperparameters)``) and
implements RecBole's single full-ranking contract, typed:

* ``loss(batch) -> Tensor | None``: the training loss of one batch of ``{"users", "pos", "neg"}`` int64 tensors
  (``None`` for models with nothing to train, e.g. Pop);
* ``score(users) -> Tensor [B, n_items]``: a score for every item, higher is better; the shared scorer masks seen
  items and takes the top-K, so models never deal with masking or evaluation;
* optionally ``user_item_vectors() -> (U [n_users, d], I [n_items, d])`` when ``score`` is an inner product, so the
  faiss backend can be used, and ``training_vectors()`` when training uses other vectors than scoring (a pruned or
  per-epoch graph), so a plug-in's loss sees what the model's own loss would;
* ``item_representations() -> Tensor [n_items, d]``: what the item side has learned (used by LIS/AIS).

Gather rows with ``index_select`` (or ``nn.Embedding``), not ``x[idx]``, on anything that needs gradients: on CPU with
several threads the backward of advanced indexing accumulates repeated indices in a thread-dependent order, so two
identically seeded runs drift apart by ~1e-9 and stop being reproducible.

Whatever is expensive to derive for scoring (e.g. LightGCN's propagated embeddings) is cached while the module is in
eval mode and dropped as soon as it goes back to training, so evaluation never recomputes it per batch and training
never sees stale values.
"""

from __future__ import annotations

import itertools
from typing import Callable

import torch
from torch import nn


#: model-config keys that configure the family's LightningModule rather than the model's constructor
MODULE_KEYS = ("lr", "weight_decay", "lr_decay", "lr_decay_every")
#: model-config keys that describe the model and are passed to nothing
META_KEYS = ("name", "family")
#: ``score_with`` values: ``current`` (evaluation recomputes the user/item tables from the weights it evaluates; recx)
#: or ``last_batch`` (it scores with the tables the epoch's last training batch computed, one optimiser step older
#: and in training mode: what MMRec's MMGCN, GRCN, DualGNN, DRAGON and SLMRec keep in ``self.result``/``all_items``).
#: Under DDP each process keeps its own last batch's tables (MMRec has no multi-process training to follow).
SCORE_WITH = ("current", "last_batch")


class DerivedState(nn.Module):
    """A module holding tensors derived from the data (adjacency matrices, kNN graphs) as plain attributes.

    They are not learned, so they are not buffers and stay out of checkpoints; the attributes named in ``derived``
    (a tensor, an object with ``.to(device)`` such as a graph, a list of those, or None) follow the parameters to
    whatever device ``.to()``/``.cuda()`` moves the module to.
    """

    derived: tuple[str, ...] = ()

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        anchor = next(itertools.chain(self.parameters(), self.buffers()), None)
        if anchor is not None:
            for name in self.derived:
                value = getattr(self, name, None)
                if isinstance(value, list):
                    setattr(self, name, [v.to(anchor.device) for v in value])
                elif value is not None:
                    setattr(self, name, value.to(anchor.device))
        return out


class TopNModel(DerivedState):
    """Base class: eval-mode caching plus default implementations derived from ``user_item_vectors``."""

    #: whether the model reads item features (``dataset.modalities``); checked before data preparation.
    uses_features: bool = False

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        self._eval_cache: dict[str, object] = {}
        self.score_with = "current"  # see score_with_last_batch

    # -------------------------------------------------------------- caching
    def train(self, mode: bool = True):
        self._eval_cache.clear()
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        self._eval_cache.clear()  # new weights: whatever was derived from the old ones is stale
        return super()._load_from_state_dict(*args, **kwargs)

    def cached(self, key: str, compute: Callable[[], object]):
        """``compute()`` once per eval phase; always fresh in training mode (gradients must flow)."""
        if self.training or torch.is_grad_enabled():
            return compute()
        if key not in self._eval_cache:
            self._eval_cache[key] = compute()
        return self._eval_cache[key]

    # ------------------------------------------------- last batch's tables
    def score_with_last_batch(self, score_with: str, dim: int) -> None:
        """Constructor helper for models offering ``score_with``: with ``last_batch``, keep a ``[n_users + n_items,
        dim]`` table that :meth:`remember_batch_tables` fills and evaluation scores with. It is a buffer, so a
        checkpoint carries it and ``recx eval`` re-scores exactly what training scored."""
        if score_with not in SCORE_WITH:
            from recx.errors import ConfigError

            raise ConfigError(f"unknown score_with '{score_with}'", field="model.score_with",
                              fix=f"use one of {', '.join(SCORE_WITH)}")
        self.score_with = score_with
        if score_with == "last_batch":
            self.register_buffer("last_batch_tables", torch.zeros(self.n_users + self.n_items, dim))
            self.register_buffer("last_batch_kept", torch.zeros((), dtype=torch.bool))

    @property
    def keeps_last_batch(self) -> bool:
        """Whether ``loss`` should hand its tables to :meth:`remember_batch_tables` (``score_with=last_batch``, in
        training)."""
        return self.score_with == "last_batch" and self.training

    def remember_batch_tables(self, users: torch.Tensor, items: torch.Tensor) -> None:
        """Called by ``loss`` with the full user/item tables it computed (no-op unless ``score_with=last_batch``)."""
        if not self.keeps_last_batch:
            return
        with torch.no_grad():
            self.last_batch_tables[: self.n_users].copy_(users)
            self.last_batch_tables[self.n_users:].copy_(items)
            self.last_batch_kept.fill_(True)

    def scoring_tables(self, compute: Callable[[], tuple[torch.Tensor, torch.Tensor]]):
        """``compute()``, or, with ``score_with=last_batch`` outside training once a batch has run, the kept tables."""
        if self.score_with == "last_batch" and not self.training and bool(self.last_batch_kept):
            return self.last_batch_tables[: self.n_users], self.last_batch_tables[self.n_users:]
        return compute()

    # ------------------------------------------------------------- contract
    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        raise NotImplementedError

    def on_epoch_start(self, epoch: int) -> None:
        """Per-epoch work before training batches (e.g. FREEDOM's edge pruning). The global RNG is already seeded
        from ``(seed, epoch)`` by the module, so random choices here and in ``loss`` replay exactly on resume."""

    def user_item_vectors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return None

    def training_vectors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The user/item vectors the model's own loss trains in this batch (a wrapper such as the BMA plug-in builds
        its loss on them). Equal to :meth:`user_item_vectors` unless training differs from scoring: FREEDOM's pruned
        graph, LATTICE's per-epoch learned graph."""
        return self.user_item_vectors()

    def score(self, users: torch.Tensor) -> torch.Tensor:
        vectors = self.user_item_vectors()
        if vectors is None:
            raise NotImplementedError(f"{type(self).__name__} must implement score() or user_item_vectors()")
        user_vecs, item_vecs = vectors
        return user_vecs[users] @ item_vecs.T

    def item_representations(self) -> torch.Tensor:
        vectors = self.user_item_vectors()
        if vectors is None:
            raise NotImplementedError(f"{type(self).__name__} has no item representations")
        return vectors[1]
