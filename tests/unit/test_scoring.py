"""recx.scoring: seen-item masking, the deterministic tie rule, chunking invariance and backend agreement.

The references are deliberately naive (a dense boolean mask, a stable full sort) so that they are obviously right.
"""

from __future__ import annotations

import sys

import pytest
import torch

from recx.data.interactions import pairs_to_csr
from recx.errors import ConfigError, TrainingError
from recx.scoring import make_ranker
from recx.scoring.topk import TorchTopK, chunk_size_for, mask_seen_, topk_deterministic

NEG_INF = float("-inf")


def random_csr(n_users: int, n_items: int, n_pairs: int, seed: int = 0, empty_users=()):
    g = torch.Generator().manual_seed(seed)
    pairs = torch.stack([torch.randint(0, n_users, (n_pairs,), generator=g),
                         torch.randint(0, n_items, (n_pairs,), generator=g)], 1)
    keep = ~torch.isin(pairs[:, 0], torch.tensor(list(empty_users), dtype=torch.long))
    return pairs_to_csr(pairs[keep], n_users, n_items)


def dense_seen(indptr, indices, n_items):
    n_users = indptr.numel() - 1
    mask = torch.zeros(n_users, n_items, dtype=torch.bool)
    rows = torch.repeat_interleave(torch.arange(n_users), indptr[1:] - indptr[:-1])
    mask[rows, indices] = True
    return mask


def reference_topk(scores: torch.Tensor, k: int):
    """Stable full sort: score descending, ties by ascending item id; -inf slots get id -1."""
    values, items = torch.sort(scores, dim=1, descending=True, stable=True)
    values, items = values[:, :k], items[:, :k].clone()
    items[values == NEG_INF] = -1
    return values, items


def reference_rank(user_vecs, item_vecs, users, indptr, indices, k):
    scores = user_vecs[users] @ item_vecs.T
    scores[dense_seen(indptr, indices, item_vecs.shape[0])[users]] = NEG_INF
    values, items = reference_topk(scores, k)
    return items, values


# ------------------------------------------------------------------------------------------------- masking
def test_mask_matches_dense_reference_with_empty_rows_last_user_and_duplicates():
    n_users, n_items = 40, 25
    indptr, indices = random_csr(n_users, n_items, 300, empty_users=(3, 17))
    assert indptr[4] == indptr[3] and indptr[18] == indptr[17]
    users = torch.tensor([0, 3, 39, 17, 5, 5, 39, 12])  # empty rows, the last user, duplicates
    scores = torch.randn(users.numel(), n_items)
    expected = scores.clone()
    expected[dense_seen(indptr, indices, n_items)[users]] = NEG_INF
    out = mask_seen_(scores, users, indptr, indices)
    assert out is scores
    assert torch.equal(scores, expected)
    assert torch.isfinite(scores[1]).all() and torch.isfinite(scores[3]).all()


def test_mask_with_no_seen_items_at_all_is_a_no_op():
    indptr, indices = torch.zeros(6, dtype=torch.long), torch.empty(0, dtype=torch.long)
    scores = torch.randn(3, 4)
    before = scores.clone()
    mask_seen_(scores, torch.tensor([0, 4, 4]), indptr, indices)
    assert torch.equal(scores, before)


def test_mask_rejects_out_of_range_users():
    indptr, indices = random_csr(5, 6, 10)
    with pytest.raises(ValueError, match="user ids"):
        mask_seen_(torch.zeros(1, 6), torch.tensor([5]), indptr, indices)


# ------------------------------------------------------------------------------------------------- ties
@pytest.mark.parametrize("k", [1, 2, 5, 13, 40, 64])
def test_ties_follow_stable_sort_reference(k):
    g = torch.Generator().manual_seed(k)
    scores = torch.randint(0, 4, (50, 64), generator=g).float()  # popularity-like: heavy ties at every boundary
    scores[0] = 1.0  # a row that is one big tie
    values, items = topk_deterministic(scores.clone(), k)
    ref_values, ref_items = reference_topk(scores, k)
    assert torch.equal(items, ref_items)
    assert torch.equal(values, ref_values)


def test_rows_with_ties_inside_the_list_only_are_reordered_by_id():
    """Distinct rows keep topk's order; a row whose tie lies inside the top-K (not at its boundary) is re-ordered by
    id -- the path where only some rows of a chunk are sorted again."""
    g = torch.Generator().manual_seed(3)
    scores = torch.rand(40, 30, generator=g)
    for row in (2, 17, 39):  # the two best items of these rows tie; the boundary stays unambiguous
        best = scores[row].argsort(descending=True)[:2]
        scores[row, best] = 2.0
    scores[5, :] = -float("inf")
    scores[5, 7] = 1.0
    values, items = topk_deterministic(scores.clone(), 4)
    ref_values, ref_items = reference_topk(scores, 4)
    ref_items = ref_items.masked_fill(ref_values == float("-inf"), -1)
    assert torch.equal(items, ref_items)
    assert torch.equal(values, ref_values)
    assert (items[[2, 17, 39], 0] < items[[2, 17, 39], 1]).all()


def test_tie_crossing_the_boundary_takes_the_smallest_ids():
    scores = torch.tensor([[0.0, 5.0, 3.0, 3.0, 3.0, 3.0, 1.0, 3.0]])
    values, items = topk_deterministic(scores, 3)
    assert items.tolist() == [[1, 2, 3]]
    assert values.tolist() == [[5.0, 3.0, 3.0]]


def test_fewer_rankable_items_than_k_gives_minus_one():
    scores = torch.tensor([[0.5, NEG_INF, 0.2, NEG_INF, NEG_INF], [NEG_INF] * 5, [1.0, 2.0, 3.0, 4.0, 5.0]])
    values, items = topk_deterministic(scores, 4)
    assert items.tolist() == [[0, 2, -1, -1], [-1, -1, -1, -1], [4, 3, 2, 1]]
    assert torch.isneginf(values[0, 2:]).all() and torch.isneginf(values[1]).all()


def test_k_larger_than_catalogue_and_nan_scores_are_reported():
    with pytest.raises(ConfigError, match="exceeds the number of items"):
        topk_deterministic(torch.zeros(2, 3), 4)
    with pytest.raises(ConfigError):
        topk_deterministic(torch.zeros(2, 3), 0)
    with pytest.raises(TrainingError, match="NaN"):
        topk_deterministic(torch.tensor([[0.0, float("nan"), 1.0]]), 2)


def test_chunk_size_for():
    assert chunk_size_for(1000, 1, bytes_per_score=4, copies=3) == 2**20 // 12000
    assert chunk_size_for(10**9, 1) == 1
    with pytest.raises(ConfigError):
        chunk_size_for(10, 0)


# ------------------------------------------------------------------------------------------ ranking API
def make_problem(n_users=120, n_items=90, d=6, seed=0, integer=False, heavy_ties=False):
    g = torch.Generator().manual_seed(seed)
    if heavy_ties:  # a handful of distinct scores; user 1 is all zeros, so every item ties for it
        user_vecs = torch.randint(0, 2, (n_users, 2), generator=g).float()
        item_vecs = torch.randint(0, 3, (n_items, 2), generator=g).float()
        user_vecs[1] = 0.0
    elif integer:  # small integer vectors: many exactly tied inner products, representable exactly in float32
        user_vecs = torch.randint(-2, 3, (n_users, d), generator=g).float()
        item_vecs = torch.randint(-2, 3, (n_items, d), generator=g).float()
    else:
        user_vecs, item_vecs = torch.randn(n_users, d, generator=g), torch.randn(n_items, d, generator=g)
    indptr, indices = random_csr(n_users, n_items, n_users * 12, seed=seed + 1, empty_users=(0, 5, n_users - 2))
    # user 5 has seen all but 3 items: fewer rankable items than k
    heavy = torch.stack([torch.full((n_items - 3,), 5), torch.arange(3, n_items)], 1)
    rows = torch.repeat_interleave(torch.arange(n_users), indptr[1:] - indptr[:-1])
    indptr, indices = pairs_to_csr(torch.cat([torch.stack([rows, indices], 1), heavy]), n_users, n_items)
    return user_vecs, item_vecs, indptr, indices


def test_torch_ranker_matches_reference_and_is_chunking_invariant():
    user_vecs, item_vecs, indptr, indices = make_problem(integer=True)
    users = torch.cat([torch.arange(120), torch.tensor([5, 5, 119])])
    k = 10
    ref_items, ref_values = reference_rank(user_vecs, item_vecs, users, indptr, indices, k)
    assert (ref_items[5] == -1).sum() == k - 3
    one = TorchTopK(k, indptr, indices, memory_budget_mb=1024)
    many = TorchTopK(k, indptr, indices, memory_budget_mb=90 * 12 * 7 / 2**20)  # 7 users per chunk
    items_one, values_one = one.rank_all_vectors(user_vecs, item_vecs, users)
    chunks = list(many.rank_vectors(user_vecs, item_vecs, users))
    assert len(chunks) == 18
    assert torch.equal(torch.cat([c[0] for c in chunks]), users)
    items_many, values_many = torch.cat([c[1] for c in chunks]), torch.cat([c[2] for c in chunks])
    for items, values in ((items_one, values_one), (items_many, values_many)):
        assert torch.equal(items, ref_items)
        assert torch.equal(values, ref_values)


def test_rank_with_score_fn_learns_n_items_and_masks():
    user_vecs, item_vecs, indptr, indices = make_problem(seed=3)
    ranker = TorchTopK(7, indptr, indices, memory_budget_mb=90 * 12 * 5 / 2**20)
    users = torch.arange(30, 70)
    items, values = ranker.rank_all(lambda u: user_vecs[u] @ item_vecs.T, users)
    ref_items, ref_values = reference_rank(user_vecs, item_vecs, users, indptr, indices, 7)
    assert ranker.n_items == 90
    # float matmul rounding may depend on how many rows are multiplied at once, so values match to rounding only
    assert torch.equal(items, ref_items) and torch.allclose(values, ref_values, atol=1e-5, rtol=0)
    empty_items, empty_values = ranker.rank_all(lambda u: user_vecs[u] @ item_vecs.T, torch.empty(0, dtype=torch.long))
    assert empty_items.shape == (0, 7) and empty_values.shape == (0, 7)


def test_no_seen_csr_ranks_everything():
    user_vecs, item_vecs, _, _ = make_problem(seed=4)
    items, _ = TorchTopK(5).rank_all_vectors(user_vecs, item_vecs, torch.arange(10))
    ref = reference_topk(user_vecs[:10] @ item_vecs.T, 5)[1]
    assert torch.equal(items, ref)


def test_make_ranker_rejects_unknown_backend():
    with pytest.raises(ConfigError, match="unknown scorer"):
        make_ranker("annoy", k=5)


# ------------------------------------------------------------------------------------------ faiss backend
@pytest.mark.parametrize("ties", ["distinct", "tied", "heavy"])
@pytest.mark.parametrize("budget_mb", [1024, 90 * 12 * 9 / 2**20], ids=["one-chunk", "chunked"])
def test_faiss_agrees_with_torch(ties, budget_mb):
    pytest.importorskip("faiss")
    user_vecs, item_vecs, indptr, indices = make_problem(integer=ties == "tied", heavy_ties=ties == "heavy", seed=7)
    users = torch.cat([torch.arange(120).flip(0), torch.tensor([5, 0, 0])])
    k = 12
    t_items, t_values = make_ranker("torch", k=k, seen_indptr=indptr, seen_indices=indices,
                                    memory_budget_mb=budget_mb).rank_all_vectors(user_vecs, item_vecs, users)
    f_ranker = make_ranker("faiss", k=k, seen_indptr=indptr, seen_indices=indices, memory_budget_mb=budget_mb)
    f_items, f_values = f_ranker.rank_all_vectors(user_vecs, item_vecs, users)
    assert f_items.dtype == torch.long and f_values.dtype == torch.float32
    assert torch.equal(torch.isneginf(f_values), torch.isneginf(t_values))
    finite = torch.isfinite(t_values)
    assert torch.allclose(f_values[finite], t_values[finite], atol=1e-5, rtol=0)
    assert torch.equal(f_items.sort(1).values, t_items.sort(1).values)  # same sets
    assert torch.equal(f_items, t_items)  # distinct scores, or exact integer ties: identical lists
    seen = dense_seen(indptr, indices, 90)
    picked = f_items.clamp(min=0)
    assert not (seen[users].gather(1, picked) & (f_items >= 0)).any()


def test_faiss_ranks_vectors_only():
    pytest.importorskip("faiss")
    ranker = make_ranker("faiss", k=3)
    with pytest.raises(ConfigError, match="inner-product"):
        ranker.rank_all(lambda u: torch.zeros(len(u), 5), torch.arange(2))


def test_missing_faiss_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` raise ImportError
    with pytest.raises(ConfigError, match="faiss") as info:
        make_ranker("faiss", k=3)
    assert "pip install -c constraints.txt faiss-cpu" in str(info.value)


# ------------------------------------------------------------------------------------------------- CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("csr_on", ["cpu", "cuda"])
def test_cuda_gives_the_cpu_result(csr_on):
    user_vecs, item_vecs, indptr, indices = make_problem(integer=True, seed=11)
    users = torch.arange(120)
    cpu_items, cpu_values = TorchTopK(10, indptr, indices).rank_all_vectors(user_vecs, item_vecs, users)
    ranker = TorchTopK(10, indptr, indices, memory_budget_mb=90 * 12 * 7 / 2**20,
                       device="cuda" if csr_on == "cuda" else None)
    items, values = ranker.rank_all_vectors(user_vecs.cuda(), item_vecs.cuda(), users.cuda())
    assert items.is_cuda
    assert torch.equal(items.cpu(), cpu_items)
    assert torch.equal(values.cpu(), cpu_values)
    scores = torch.randint(0, 3, (40, 90)).float()
    cuda_result = topk_deterministic(scores.cuda(), 17)
    cpu_result = topk_deterministic(scores, 17)
    assert all(torch.equal(a.cpu(), b) for a, b in zip(cuda_result, cpu_result))
