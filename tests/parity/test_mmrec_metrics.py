"""recx's metric code gives MMRec's values on MMRec's own top-K lists (tests/parity/mmrec_metrics.json).

The fixture was written by scripts/mmrec_metric_fixture.py under MMRec (commit in the file): a seeded integer score
matrix with ties, training items masked as MMRec masks them, MMRec's ``torch.topk`` lists and MMRec's Recall / NDCG /
Precision / MAP at K ∈ {1, 5, 10, 20, 50}, including users with more held-out items than K (where Recall's and
NDCG's/MAP's denominators differ) and K beyond the number of held-out items.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from recx.data.interactions import pairs_to_csr
from recx.metrics.topk import TopKMetrics, compute_topk_metrics, hit_matrix

FIXTURE = json.loads((Path(__file__).parent / "mmrec_metrics.json").read_text())


def _truth_csr():
    pairs = torch.tensor([(u, i) for u, items in enumerate(FIXTURE["truth"]) for i in items])
    return pairs_to_csr(pairs, len(FIXTURE["truth"]), FIXTURE["n_items"])


def test_metric_functions_match_mmrec_on_its_topk_lists():
    topk = torch.tensor(FIXTURE["topk"])
    users = torch.arange(topk.shape[0])
    indptr, indices = _truth_csr()
    hits, n_pos = hit_matrix(topk, users, indptr, indices, FIXTURE["n_items"])
    ours = compute_topk_metrics(hits, n_pos, ["recall", "ndcg", "precision", "map"], FIXTURE["ks"])
    assert set(ours) == set(FIXTURE["values"])
    for key, expected in FIXTURE["values"].items():
        assert ours[key].mean().item() == pytest.approx(expected, abs=1e-6), key


def test_accumulator_over_batches_matches_mmrec():
    """The path evaluation takes (TopKMetrics over user batches) gives the same means."""
    topk = torch.tensor(FIXTURE["topk"])
    indptr, indices = _truth_csr()
    metric = TopKMetrics(metrics=["recall", "ndcg", "precision", "map"], ks=FIXTURE["ks"], truth_indptr=indptr,
                         truth_indices=indices, n_items=FIXTURE["n_items"])
    for chunk in torch.arange(topk.shape[0]).split(7):
        metric.update(topk[chunk], chunk)
    values = {k: float(v) for k, v in metric.compute().items()}
    for key, expected in FIXTURE["values"].items():
        assert values[key] == pytest.approx(expected, abs=1e-6), key
