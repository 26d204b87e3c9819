"""LIS building blocks against independent oracles: sampled AUC (sklearn), co-engagement and normalisation (dense
algebra by hand), the history signals (a per-user loop), the pairwise ranker fit (sklearn's logistic regression)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from recx.data.interactions import InteractionData
from recx.errors import ConfigError, DataError
from recx.lis.evaluator import draw_samples, fit_pairwise_weights
from recx.lis.preference import (normalise_graph, pairs_file_graph, period_coengagement, resolve_preference,
                                 shuffle_graph)
from recx.lis.representation import expand_representations, load_vectors_file, resolve_representation
from recx.lis.signals import History, PreferenceSignal, RepresentationSignal
from recx.metrics.auc import pair_auc, sampled_auc
from recx.topn.sampling import pair_keys


def tiny_data() -> InteractionData:
    """4 users × 6 items; users 0 and 1 share items {0, 1} in train and {2, 3} in test."""
    t = lambda rows: torch.tensor(rows, dtype=torch.long)  # noqa: E731
    train = t([[0, 0], [0, 1], [1, 0], [1, 1], [2, 4], [2, 5], [3, 0], [3, 5]])
    valid = t([[0, 5], [1, 4], [2, 0], [3, 1]])
    test = t([[0, 2], [0, 3], [1, 2], [1, 3], [2, 1], [3, 2]])
    return InteractionData("tiny", 4, 6, train, valid, test, [f"u{i}" for i in range(4)],
                           [str(10 + i) for i in range(6)]).validate()


def test_pair_auc_matches_sklearn_per_positive_with_ties():
    g = torch.Generator().manual_seed(0)
    pos = torch.randint(0, 5, (40,), generator=g).float()  # few distinct values: plenty of ties
    neg = torch.randint(0, 5, (40, 7), generator=g).float()
    ours = pair_auc(pos, neg)
    for p in range(40):
        y = np.r_[1, np.zeros(7)]
        s = np.r_[pos[p].item(), neg[p].numpy()]
        assert ours[p].item() == pytest.approx(roc_auc_score(y, s))
    assert sampled_auc(pos, neg) == pytest.approx(float(ours.mean()))
    assert sampled_auc(torch.empty(0), torch.empty(0, 7)) != sampled_auc(torch.empty(0), torch.empty(0, 7))  # NaN


def test_period_coengagement_is_the_off_diagonal_of_AtA():
    data = tiny_data()
    for period in ("train", "valid", "test"):
        pairs = data.split(period)
        a = torch.zeros(4, 6)
        a[pairs[:, 0], pairs[:, 1]] = 1
        expected = a.T @ a
        expected.fill_diagonal_(0)
        assert torch.equal(period_coengagement(data, period).to_dense(), expected)
    # test period: users 0 and 1 both engaged items 2 and 3 -> weight 2
    assert period_coengagement(data, "test").to_dense()[2, 3] == 2


def test_normalised_graph_is_symmetric_degree_normalisation():
    c = period_coengagement(tiny_data(), "train").to_dense()
    d = c.sum(1)
    inv = torch.where(d > 0, d.rsqrt(), torch.zeros_like(d))
    expected = inv[:, None] * c * inv[None, :]
    assert torch.allclose(normalise_graph(period_coengagement(tiny_data(), "train")).to_dense(), expected)


def test_shuffled_graph_keeps_degrees_but_moves_links():
    graph = period_coengagement(tiny_data(), "train")
    shuffled = shuffle_graph(graph, seed=3)
    assert torch.equal(torch.sort(graph.to_dense().sum(1)).values, torch.sort(shuffled.to_dense().sum(1)).values)
    assert not torch.equal(graph.to_dense(), shuffled.to_dense())


def test_pair_file_uses_raw_ids_and_reports_unknown_ones(tmp_path):
    data = tiny_data()
    path = tmp_path / "pairs.csv"
    path.write_text("item_a,item_b,weight\n10,11,2.5\n12,99,1\n15,13,1\n")
    graph, report = pairs_file_graph(path, data)
    dense = graph.to_dense()
    assert dense[0, 1] == dense[1, 0] == 2.5 and dense[5, 3] == 1
    assert report["pairs_read"] == 3 and report["pairs_kept"] == 2 and report["pairs_with_unknown_items"] == 1
    (tmp_path / "none.tsv").write_text("98\t99\n")
    with pytest.raises(DataError, match="none of the 1 pairs"):
        pairs_file_graph(tmp_path / "none.tsv", data)
    (tmp_path / "bad.txt").write_text("10 11 x\n")
    with pytest.raises(DataError, match="weight"):
        pairs_file_graph(tmp_path / "bad.txt", data)
    with pytest.raises(DataError, match="not found"):
        resolve_preference(str(tmp_path / "missing.csv"), data)
    with pytest.raises(DataError, match="unknown preference"):
        resolve_preference("tomorrow", data)


def test_history_signals_match_a_per_user_loop():
    data = tiny_data()
    history = History(*data.seen_csr(("train",)), data.n_items)
    vectors = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    unit = vectors / vectors.norm(dim=1, keepdim=True)
    graph = normalise_graph(period_coengagement(data, "test")).to_dense()
    rep, pref = RepresentationSignal(history, vectors), PreferenceSignal(history, normalise_graph(
        period_coengagement(data, "test")))
    users = torch.tensor([3, 0, 2])
    got_rep, got_pref = rep(users), pref(users)
    for row, u in enumerate(users.tolist()):
        items = data.train[data.train[:, 0] == u, 1]
        assert torch.allclose(got_rep[row], (unit[items] @ unit.T).mean(0), atol=1e-6)
        assert torch.allclose(got_pref[row], graph[items].mean(0), atol=1e-6)


def test_pairwise_fit_matches_sklearn_logistic_regression_on_differences():
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(300, 2, generator=g) + torch.tensor([0.8, 0.3])
    neg = torch.randn(300, 5, 2, generator=g)
    l2 = 1e-3
    ours = fit_pairwise_weights(pos, neg, l2=l2)
    diff = (pos.unsqueeze(1) - neg).reshape(-1, 2).double().numpy()
    # P(pos beats neg) = σ(w·Δ): logistic regression of label 1 on Δ and label 0 on -Δ, no intercept; sklearn's
    # objective ½‖w‖² + C Σ log-loss over 2n rows equals ours (mean over n, + l2‖w‖²) when C = 1 / (4 n l2)
    x = np.vstack([diff, -diff])
    y = np.r_[np.ones(len(diff)), np.zeros(len(diff))]
    reference = LogisticRegression(fit_intercept=False, C=1 / (4 * len(diff) * l2), tol=1e-10, max_iter=1000)
    reference.fit(x, y)
    assert np.allclose(ours.numpy(), reference.coef_[0], atol=1e-3)


def test_negative_samples_avoid_every_interaction_and_are_reproducible():
    data = tiny_data()
    keys = pair_keys(torch.cat([data.train, data.valid, data.test]), data.n_items)
    a = draw_samples(data.test, data.n_items, keys, 4, torch.Generator().manual_seed(0))
    b = draw_samples(data.test, data.n_items, keys, 4, torch.Generator().manual_seed(0))
    assert torch.equal(a.negatives, b.negatives)
    assert bool((a.users[1:] >= a.users[:-1]).all())
    touched = set(map(tuple, torch.cat([data.train, data.valid, data.test]).tolist()))
    for u, row in zip(a.users.tolist(), a.negatives.tolist()):
        assert all((u, i) not in touched for i in row)


def test_representation_files_and_specs(tmp_path):
    data = tiny_data()
    rows = np.zeros((20, 2), dtype=np.float32)
    rows[10:16] = np.arange(12, dtype=np.float32).reshape(6, 2)
    np.save(tmp_path / "vec.npy", rows)  # rows indexed by raw item id (MMRec convention)
    vectors, report = load_vectors_file(tmp_path / "vec.npy", data)
    assert torch.equal(vectors[1], torch.tensor([2.0, 3.0])) and report["items_missing"] == 0
    np.savez(tmp_path / "vec.npz", item_ids=np.array(["11", "15"]), vectors=np.ones((2, 3), dtype=np.float32))
    vectors, report = load_vectors_file(tmp_path / "vec.npz", data)
    assert vectors[1].sum() == 3 and vectors[0].sum() == 0 and report["items_missing"] == 4
    np.save(tmp_path / "nan.npy", np.full((20, 2), np.nan, dtype=np.float32))
    with pytest.raises(DataError, match="NaN"):
        load_vectors_file(tmp_path / "nan.npy", data)
    with pytest.raises(ConfigError, match="needs a trained model"):
        resolve_representation("model", data)
    with pytest.raises(ConfigError, match="unknown representation"):
        resolve_representation("clip", data)
    assert expand_representations(["model", "features", "feature:text"], ["image", "text"]) == [
        "model", "feature:image", "feature:text"]


def test_results_do_not_depend_on_chunking_or_caching():
    from recx.lis import popularity_scores
    from recx.lis.evaluator import LeakageEvaluator

    data = tiny_data()
    vectors = {"v": torch.randn(6, 3, generator=torch.Generator().manual_seed(2))}
    graphs = {"test": period_coengagement(data, "test")}
    big = LeakageEvaluator(data, negatives=2, ks=(2,)).evaluate(popularity_scores(data), vectors, graphs)
    # a budget below one score row: no signal is cached and every chunk holds a single user
    small = LeakageEvaluator(data, negatives=2, ks=(2,), memory_budget_mb=1e-6).evaluate(popularity_scores(data),
                                                                                          vectors, graphs)
    for key in ("base", "representations", "preferences", "ratios"):
        assert small[key] == big[key], key
