"""The LIS evaluator: AIS of item representations and LIS of preference data, against a trained recommender.

**Definition implemented** (a reconstruction: the paper, arXiv 2508.04963, has no public code or formula; see
docs/topn.md "LIS" for the sources). With ``s_R(u, i)`` the recommender's score and ``h(u, i)`` one extra signal
(:mod:`recx.lis.signals`), a *light ranker* scores ``r(u, i) = w_R · z_R(s_R) + w_h · z_h(h)``, where ``z`` standardises
a signal with the mean and standard deviation it has on the fitting sample. The two weights are fitted by pairwise
logistic regression (``min Σ softplus(-(r(u,i⁺) - r(u,i⁻)))`` + a small L2 term, L-BFGS, starting from the recommender
alone) on **validation** positives with sampled negatives, and the ranker is evaluated on **test** positives:

* ``AUC`` — sampled: ``negatives`` items per held-out positive, drawn uniformly from the items the user never
  interacted with in any split; ties count one half; mean over held-out ``(user, item)`` pairs;
* ``Recall@K`` / ``NDCG@K`` — full ranking with the shared scorer and metrics (training, and validation items when the
  run masks them, removed).

Then, for a representation ``E`` and a preference dataset ``P``::

    AIS(E) = AUC(R + h_E) − AUC(R)        LIS(P) = AUC(R + h_P) − AUC(R)        ratio = AIS(E) / LIS(P)

(and the same differences for Recall/NDCG, reported as ``gain/<metric>``). LIS of the test-period co-engagement is the
ceiling: the preference signal of the evaluation period itself, as an item representation that encoded it perfectly
would carry it.

Everything runs in user chunks on one device: signals are sparse × dense / sparse × sparse products, AUC samples are
gathered from each chunk's score matrix, and no Python loop runs over users.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from recx.data.interactions import InteractionData, pairs_to_csr
from recx.errors import ConfigError, DataError
from recx.lis.preference import normalise_graph
from recx.lis.signals import CachedSignal, History, PreferenceSignal, RepresentationSignal
from recx.metrics.auc import sampled_auc
from recx.metrics.topk import TopKMetrics
from recx.scoring.topk import TorchTopK, chunk_size_for
from recx.topn.sampling import pair_keys, sample_negatives

ScoreFn = Callable[[torch.Tensor], torch.Tensor]

DEFINITION = ("reconstruction of LIS/AIS (arXiv 2508.04963, no public code): light ranker "
              "w_R*z(s_R) + w_h*z(h) fitted by pairwise logistic regression on validation, evaluated on test; "
              "h = mean similarity of the candidate to the user's training items under a representation (AIS) or a "
              "normalised co-engagement graph (LIS); AIS/LIS = AUC gain over the recommender alone")


@dataclass
class Samples:
    """Held-out positives sorted by user, each with ``N`` sampled negatives."""

    users: torch.Tensor  # [P]
    positives: torch.Tensor  # [P]
    negatives: torch.Tensor  # [P, N]


def draw_samples(pairs: torch.Tensor, n_items: int, interacted_keys: torch.Tensor, n_negatives: int,
                 generator: torch.Generator, max_positives: int | None = None) -> Samples:
    """Positives ``pairs`` (deduplicated, subsampled to ``max_positives``) with negatives never interacted with."""
    pairs = torch.unique(pairs, dim=0)
    if max_positives is not None and pairs.shape[0] > max_positives:
        keep = torch.randperm(pairs.shape[0], generator=generator)[:max_positives]
        pairs = pairs[keep.sort().values]
    order = torch.argsort(pairs[:, 0], stable=True)
    pairs = pairs[order]
    users = pairs[:, 0].repeat_interleave(n_negatives)
    negatives = sample_negatives(users, n_items, interacted_keys, generator).view(-1, n_negatives)
    return Samples(pairs[:, 0].contiguous(), pairs[:, 1].contiguous(), negatives)


def gather(signal: ScoreFn, samples: list[Samples], chunk: int, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Values of ``signal`` at every sample's positives ``[P]`` and negatives ``[P, N]``, one pass over users."""
    users = torch.unique(torch.cat([s.users for s in samples]))
    pos_parts: list[list[torch.Tensor]] = [[] for _ in samples]
    neg_parts: list[list[torch.Tensor]] = [[] for _ in samples]
    for begin in range(0, users.numel(), chunk):
        batch = users[begin:begin + chunk]
        scores = signal(batch.to(device)).float()
        lo, hi = int(batch[0]), int(batch[-1])
        for k, s in enumerate(samples):
            a, b = torch.searchsorted(s.users, torch.tensor([lo, hi + 1])).tolist()
            if a == b:
                continue
            rows = torch.searchsorted(batch, s.users[a:b]).to(scores.device)
            pos_parts[k].append(scores[rows, s.positives[a:b].to(scores.device)].cpu())
            neg_parts[k].append(scores[rows.unsqueeze(1), s.negatives[a:b].to(scores.device)].cpu())
    out = []
    for k, s in enumerate(samples):
        n = s.negatives.shape[1]
        pos = torch.cat(pos_parts[k]) if pos_parts[k] else torch.empty(0)
        neg = torch.cat(neg_parts[k]) if neg_parts[k] else torch.empty(0, n)
        out.append((pos, neg))
    return out


@dataclass
class Standardiser:
    mean: float
    std: float

    @classmethod
    def fit(cls, pos: torch.Tensor, neg: torch.Tensor) -> "Standardiser":
        values = torch.cat([pos.reshape(-1), neg.reshape(-1)]).double()
        std = float(values.std()) if values.numel() > 1 else 0.0
        return cls(float(values.mean()) if values.numel() else 0.0, std if std > 1e-12 else 1.0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def fit_pairwise_weights(pos: torch.Tensor, neg: torch.Tensor, l2: float = 1e-4, max_iter: int = 50) -> torch.Tensor:
    """Weights ``w [F]`` minimising ``mean softplus(-(pos - neg)·w) + l2‖w‖²`` (pos ``[P,F]``, neg ``[P,N,F]``).

    The problem is convex with a handful of parameters, so Newton's method with exact ``F × F`` Hessians and step
    halving converges in a few passes over the pairs. Starts from ``w = e₀`` (the recommender alone).
    """
    diff = (pos.unsqueeze(1) - neg).reshape(-1, pos.shape[1]).double()
    n_features = diff.shape[1]
    w = torch.zeros(n_features, dtype=torch.float64)
    w[0] = 1.0
    eye = torch.eye(n_features, dtype=torch.float64)

    def objective(v: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.softplus(-(diff @ v)).mean() + l2 * (v * v).sum()

    current = objective(w)
    for _ in range(max_iter):
        p = torch.sigmoid(-(diff @ w))  # = -d softplus(-m)/dm
        grad = -(diff * p.unsqueeze(1)).mean(0) + 2 * l2 * w
        hessian = (diff * (p * (1 - p)).unsqueeze(1)).T @ diff / diff.shape[0] + 2 * l2 * eye
        step = torch.linalg.solve(hessian, grad)
        scale = 1.0
        while scale > 1e-6:
            candidate = w - scale * step
            value = objective(candidate)
            if value <= current:
                break
            scale /= 2
        else:
            break
        converged = float(current - value) < 1e-12
        w, current = candidate, value
        if converged or float(grad.abs().max()) < 1e-10:
            break
    return w.float()


class LeakageEvaluator:
    """Computes base metrics, AIS per representation, LIS per preference dataset and the AIS/LIS ratios."""

    def __init__(self, data: InteractionData, *, negatives: int = 100, ks=(10, 20), seed: int = 0,
                 mask_valid_at_test: bool = True, memory_budget_mb: float = 256, max_positives: int = 100_000,
                 max_fit_pairs: int = 100_000, device=None) -> None:
        for split in ("valid", "test"):
            if data.split(split).shape[0] == 0:
                raise DataError(f"LIS needs {split} interactions to fit and evaluate its ranker; '{data.name}' has none",
                                field=split, fix="use a split with validation and test parts, or disable LIS "
                                                 "(callbacks.lis.enabled=false)")
        if int(negatives) < 1:
            raise ConfigError("LIS needs at least one sampled negative per positive", field="callbacks.lis.negatives",
                              fix="e.g. negatives=100")
        self.data = data
        self.negatives, self.ks, self.seed = int(negatives), sorted(int(k) for k in ks), int(seed)
        self.mask_splits = ("train", "valid") if mask_valid_at_test else ("train",)
        self.memory_budget_mb, self.max_positives = memory_budget_mb, max_positives
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.history = History(*data.seen_csr(("train",)), data.n_items, device=self.device)
        keys = pair_keys(torch.cat([data.train, data.valid, data.test]), data.n_items)
        self.fit_samples = draw_samples(data.valid, data.n_items, keys, self.negatives,
                                        torch.Generator().manual_seed(self.seed), max_positives)
        self.eval_samples = draw_samples(data.test, data.n_items, keys, self.negatives,
                                         torch.Generator().manual_seed(self.seed + 1), max_positives)
        self.chunk = chunk_size_for(data.n_items, memory_budget_mb)
        self._seen = data.seen_csr(self.mask_splits)
        self._truth = pairs_to_csr(data.test, data.n_users, data.n_items)
        self._test_users = torch.unique(data.test[:, 0])
        # the two weights need far fewer pairs than the AUC estimate: fit on at most ~max_fit_pairs of them
        self.fit_negatives = max(1, min(self.negatives, max_fit_pairs // max(1, self.fit_samples.users.numel())))

    # ---------------------------------------------------------------------------------------------- building blocks
    def _cached(self, signal: ScoreFn) -> ScoreFn:
        return CachedSignal(signal, self.data.n_users, self.data.n_items, self.chunk, self.memory_budget_mb,
                            self.device)

    def _values(self, signal: ScoreFn):
        return gather(signal, [self.fit_samples, self.eval_samples], self.chunk, self.device)

    def _full_ranking(self, score_fn: ScoreFn) -> dict[str, float]:
        ranker = TorchTopK(max(self.ks), *self._seen, self.memory_budget_mb, device=self.device,
                           n_items=self.data.n_items)
        metric = TopKMetrics(["recall", "ndcg"], self.ks, *self._truth, n_items=self.data.n_items)
        for batch, items, _ in ranker.rank(score_fn, self._test_users):
            metric.update(items.cpu(), batch.cpu())
        return {k: float(v) for k, v in metric.compute().items() if "@" in k}

    # ------------------------------------------------------------------------------------------------------ run
    @torch.no_grad()
    def evaluate(self, base: ScoreFn, representations: dict[str, torch.Tensor] | None = None,
                 preferences: dict[str, torch.Tensor] | None = None,
                 reports: dict[str, dict] | None = None) -> dict:
        """``base``: the recommender's ``score(users)``; ``representations``: name → item vectors ``[n_items, d]``;
        ``preferences``: name → co-engagement graph ``C`` (sparse ``[n_items, n_items]``)."""
        started = time.perf_counter()
        reports = reports or {}
        base = self._cached(base)
        (b_fit_pos, b_fit_neg), (b_pos, b_neg) = self._values(base)
        z_base = Standardiser.fit(b_fit_pos, b_fit_neg)
        base_metrics = {"auc": sampled_auc(b_pos, b_neg), **self._full_ranking(base)}

        def with_signal(name: str, signal: ScoreFn, kind: str) -> dict:
            signal = self._cached(signal)
            (fit_pos, fit_neg), (pos, neg) = self._values(signal)
            z = Standardiser.fit(fit_pos, fit_neg)
            n_fit = self.fit_negatives
            w = fit_pairwise_weights(torch.stack([z_base(b_fit_pos), z(fit_pos)], -1),
                                     torch.stack([z_base(b_fit_neg[:, :n_fit]), z(fit_neg[:, :n_fit])], -1))
            w_base, w_extra = float(w[0]), float(w[1])
            auc = sampled_auc(w_base * z_base(b_pos) + w_extra * z(pos), w_base * z_base(b_neg) + w_extra * z(neg))

            def combined(users: torch.Tensor) -> torch.Tensor:
                return w_base * z_base(base(users).float()) + w_extra * z(signal(users).float())

            ranking = self._full_ranking(combined)
            gain_name = "ais" if kind == "representation" else "lis"
            out = {gain_name: auc - base_metrics["auc"], "auc": auc, **ranking,
                   **{f"gain/{k}": v - base_metrics[k] for k, v in ranking.items()},
                   "weights": {"recommender": w_base, kind: w_extra}}
            if name in reports:
                out["source"] = reports[name]
            return out

        rep_results = {name: with_signal(name, RepresentationSignal(self.history, vectors), "representation")
                       for name, vectors in (representations or {}).items()}
        pref_results = {name: with_signal(name, PreferenceSignal(self.history, normalise_graph(graph)), "preference")
                        for name, graph in (preferences or {}).items()}
        ratios = {r: {p: (rv["ais"] / pv["lis"] if abs(pv["lis"]) > 1e-12 else None)
                      for p, pv in pref_results.items()} for r, rv in rep_results.items()}
        return {
            "definition": DEFINITION,
            "protocol": {"fit_split": "valid", "eval_split": "test", "history": "train",
                         "negatives_per_positive": self.negatives,
                         "fit_negatives_per_positive": self.fit_negatives,
                         "negative_sampling": "uniform over items the user never interacted with (any split)",
                         "fit_positives": int(self.fit_samples.users.numel()),
                         "eval_positives": int(self.eval_samples.users.numel()),
                         "masked_in_full_ranking": list(self.mask_splits), "seed": self.seed},
            "base": base_metrics,
            "representations": rep_results,
            "preferences": pref_results,
            "ratios": ratios,
            "time_s": round(time.perf_counter() - started, 3),
        }
