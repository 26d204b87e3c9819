"""MAGUS pieces: the simulated user's rules, the word graph, propagation, success metrics, and MAGUS beating
item-only rounds on planted data."""

import math

import pytest
import torch

from recx.interactive.graph import build_word_graph
from recx.interactive.rounds import (PropagationWeights, RoundSettings, UserModel, answer_queries, run_rounds,
                                     success_at)
from recx.interactive.words import words_from_lists


def test_user_accepts_a_query_iff_all_its_words_are_the_targets():
    words = words_from_lists([["a", "x"], ["b", "x"], ["a", "y"]])
    graph = build_word_graph(words, torch.tensor([[0, 0], [0, 2], [1, 1]]), 2, min_items=1)
    node = {n: i for i, n in enumerate(graph.names)}
    target_nodes = graph.node_items.bool()[torch.tensor([0, 1])]  # user 0 wants item 0 {a, x}; user 1 item 1 {b, x}
    queries = torch.tensor([[node["a"], node["x"], node["a & x"], node["y"]],
                            [node["a"], node["x"], node["x & b"], node["a & y"]]])
    assert answer_queries(queries, target_nodes).tolist() == [[True, True, True, False], [False, True, True, False]]


def test_graph_edges_follow_co_occurrence_in_interactions():
    # users either like {a, c} items or {b} items: a and c go together (R+), a and b exclude each other (R-)
    words = words_from_lists([["a"], ["c"], ["b"], ["a"], ["c"], ["b"]])
    pairs = torch.tensor([[u, i] for u in range(4) for i in ((0, 1, 3, 4) if u < 2 else (2, 5))])
    graph = build_word_graph(words, pairs, 4, min_items=10, threshold=0.1)
    node = {n: i for i, n in enumerate(graph.names)}
    assert graph.names == ["a", "c", "b"]  # no pair reaches min_items
    assert graph.positive[node["a"], node["c"]] > 0 and graph.negative[node["a"], node["c"]] == 0
    assert graph.negative[node["a"], node["b"]] > 0 and graph.positive[node["a"], node["b"]] == 0
    assert torch.allclose(graph.positive.sum(1)[graph.positive.sum(1) > 0], torch.ones(2))


def test_success_metrics_hand_case():
    found = torch.tensor([1, 3, 3, 11])  # 11 = never found within 10 rounds
    m = success_at(found, 10)
    assert m["success@1"] == 0.25 and m["success@2"] == 0.25 and m["success@3"] == 0.75 and m["success@10"] == 0.75
    assert m["mean_rounds"] == pytest.approx((1 + 3 + 3 + 11) / 4)


def test_item_only_walks_down_the_base_ranking():
    words = words_from_lists([["w"]] * 6)
    graph = build_word_graph(words, torch.tensor([[0, 0]]), 1, min_items=10)
    scores = torch.tensor([[6.0, 5.0, 4.0, 3.0, 2.0, 1.0]])
    seen = torch.tensor([[False, True, False, False, False, False]])
    settings = RoundSettings(rounds=3, items_per_round=2, queries_per_round=1)
    # item 1 is seen (never shown): round 1 shows {0, 2}, round 2 {3, 4}, round 3 {5}
    for target, expected in ((2, 1), (4, 2), (5, 3)):
        assert run_rounds("item_only", scores, seen, torch.tensor([target]), graph, settings).item() == expected


def test_answers_eliminate_contradicting_items_and_never_the_target():
    # 4 items, words {colour} x {size}; the base ranks the target last; one informative query per round
    words = words_from_lists([["red", "big"], ["red", "small"], ["blue", "big"], ["blue", "small"]])
    graph = build_word_graph(words, torch.tensor([[0, 0], [0, 3]]), 1, min_items=10)
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    seen = torch.zeros(1, 4, dtype=torch.bool)
    settings = RoundSettings(rounds=4, items_per_round=1, queries_per_round=1)
    found = {s: run_rounds(s, scores, seen, torch.tensor([3]), graph, settings, PropagationWeights(1.0, 0.0)).item()
             for s in ("item_only", "magus")}
    assert found["item_only"] == 4
    assert found["magus"] < 4  # round 1 shows item 0 and asks a word that halves the rest


def planted_session(seed=0, n_users=400):
    g = torch.Generator().manual_seed(seed)
    n_items = 600
    cat, brand, size = (torch.randint(0, n, (n_items,), generator=g) for n in (8, 6, 4))
    words = words_from_lists([[f"c{c}", f"b{b}", f"s{s}"] for c, b, s in zip(cat.tolist(), brand.tolist(),
                                                                             size.tolist())])
    liked = torch.randint(0, 8, (n_users,), generator=g)  # each user likes one category
    pairs, targets = [], []
    for u in range(n_users):
        pool = (cat == liked[u]).nonzero().flatten()
        pick = pool[torch.randperm(len(pool), generator=g)[:11]]
        pairs += [[u, int(i)] for i in pick[:10]]
        targets.append(int(pick[10]))
    pairs = torch.tensor(pairs)
    seen = torch.zeros(n_users, n_items, dtype=torch.bool)
    seen[pairs[:, 0], pairs[:, 1]] = True
    base = torch.randn(n_users, n_items, generator=g) + 1.5 * (cat.unsqueeze(0) == liked.unsqueeze(1)).float()
    return base, seen, torch.tensor(targets), build_word_graph(words, pairs, n_users, min_items=5)


def test_magus_beats_item_only_rounds_at_t5_on_planted_data():
    base, seen, targets, graph = planted_session()
    result = {s: success_at(run_rounds(s, base, seen, targets, graph, RoundSettings(), PropagationWeights(),
                                       torch.Generator().manual_seed(1)), 10)
              for s in ("item_only", "magus", "random_query")}
    assert result["magus"]["success@1"] == result["item_only"]["success@1"]  # the same first page
    assert result["magus"]["success@5"] > result["item_only"]["success@5"] + 0.3  # measured 1.00 vs 0.41
    assert result["magus"]["success@5"] > result["random_query"]["success@5"]  # informative queries matter


def test_words_file_gives_any_dataset_words_and_names_bad_lines(tmp_path):
    from recx.errors import DataError
    from recx.interactive.words import read_words_file

    path = tmp_path / "words.csv"
    path.write_text("# item,words\nB01,Baby|Toys\nB03,Baby\nZZZ,Other\n")
    words = read_words_file(path, ["B01", "B02", "B03"])
    assert words.of(0) == ["Baby", "Toys"] and words.of(1) == [] and words.of(2) == ["Baby"]
    path.write_text("B01 Baby\n")
    with pytest.raises(DataError, match="line 1"):
        read_words_file(path, ["B01"])


# --- issue 18: the noisy user, soft evidence, learned propagation weights -------------------------------------------

def test_noisy_user_flip_and_unknown_rates_match_and_are_seeded_per_user():
    from recx.interactive.rounds import UserModel, user_answers

    n_users, n_nodes = 4000, 50
    target_nodes = torch.rand(n_users, n_nodes, generator=torch.Generator().manual_seed(0)) < 0.3
    queries = torch.arange(n_nodes).repeat(n_users, 1)
    truth = target_nodes.float() * 2 - 1
    user = UserModel(error_rate=0.1, unknown_rate=0.2, seed=7)
    ids = torch.arange(n_users)
    answers = user_answers(queries, target_nodes, user, 3, ids)
    known = answers != 0
    assert (~known).float().mean().item() == pytest.approx(0.2, abs=0.01)  # 200,000 answers
    assert (answers[known] != truth[known]).float().mean().item() == pytest.approx(0.1, abs=0.005)
    # deterministic per (seed, round, user): the same user in another batch, at another position, answers the same
    sub = torch.tensor([3999, 5, 17])
    assert torch.equal(user_answers(queries[sub], target_nodes[sub], user, 3, ids[sub]), answers[sub])
    assert not torch.equal(user_answers(queries, target_nodes, user, 4, ids), answers)  # another round
    assert not torch.equal(user_answers(queries, target_nodes, UserModel(0.1, 0.2, seed=8), 3, ids), answers)
    assert torch.equal(user_answers(queries, target_nodes, UserModel(), 3, ids), truth)  # the exact user


def test_noisy_answers_are_soft_evidence_so_the_target_is_always_found():
    # 8 items, 1 shown per round, 8 rounds: every item is shown unless answers eliminate it. A wrong answer under hard
    # elimination removes the target for good; as soft evidence it only pushes it down.
    words = words_from_lists([[c, s, m] for c in ("red", "blue") for s in ("big", "small") for m in ("wool", "silk")])
    graph = build_word_graph(words, torch.tensor([[0, 0], [0, 7]]), 1, min_items=10)
    n_users = 300
    scores = torch.arange(8, 0, -1).float().repeat(n_users, 1)
    seen = torch.zeros(n_users, 8, dtype=torch.bool)
    targets = torch.full((n_users,), 7)  # ranked last by the base
    settings = RoundSettings(rounds=8, items_per_round=1, queries_per_round=1)
    noisy = UserModel(error_rate=0.3, unknown_rate=0.1, seed=1)
    found = run_rounds("magus", scores, seen, targets, graph, settings, PropagationWeights(1.0, 0.0), user=noisy)
    assert (found <= 8).all()
    # the same answers taken as exact (hard elimination) lose the target for the users who got a wrong answer
    hard = UserModel(error_rate=0.3, unknown_rate=0.1, seed=1)
    hard_found = run_rounds("magus", scores, seen, targets, graph, settings, PropagationWeights(1.0, 0.0),
                            user=_HardEliminating(hard))
    assert (hard_found > 8).float().mean() > 0.2


class _HardEliminating(UserModel):
    """A noisy user whose answers the system wrongly trusts as exact (the pre-issue-18 elimination)."""

    def __init__(self, user):
        super().__init__(user.error_rate, user.unknown_rate, user.seed, user.stream)

    @property
    def contradiction_log_ratio(self):
        return float("-inf")


def test_soft_evidence_weight_is_the_log_likelihood_ratio():
    assert UserModel(0.1, 0.1).contradiction_log_ratio == pytest.approx(math.log(0.1 / 0.9))
    assert UserModel().contradiction_log_ratio == float("-inf")


def test_user_model_and_fit_method_config_errors():
    from recx.errors import ConfigError
    from recx.interactive.recipe import fit_weights

    assert UserModel.from_config({"kind": "exact", "error_rate": 0.3}).exact
    assert UserModel.from_config({"kind": "noisy", "error_rate": 0.2, "unknown_rate": 0.1}).error_rate == 0.2
    for bad, field in (({"kind": "lazy"}, "model.user.kind"), ({"error_rate": 0.5}, "model.user.error_rate"),
                       ({"unknown_rate": 1.0}, "model.user.unknown_rate")):
        with pytest.raises(ConfigError) as err:
            UserModel.from_config(bad)
        assert err.value.field == field
    base, seen, targets, graph = planted_session()
    with pytest.raises(ConfigError, match="fit method"):
        fit_weights(base, seen, targets, graph, RoundSettings(), {"method": "newton"})


def test_no_graph_is_magus_without_propagation():
    base, seen, targets, graph = planted_session()
    user = UserModel(0.1, 0.1, seed=3)
    w = PropagationWeights(beta=1.0, alpha=0.7, alpha_neg=0.4)
    no_graph = run_rounds("no_graph", base, seen, targets, graph, RoundSettings(), w, user=user)
    zeroed = run_rounds("magus", base, seen, targets, graph, RoundSettings(), PropagationWeights(1.0, 0.0, 0.0),
                        user=user)
    assert torch.equal(no_graph, zeroed)
    assert not torch.equal(run_rounds("magus", base, seen, targets, graph, RoundSettings(), w, user=user), no_graph)


def test_learned_weights_differ_from_the_grid_and_improve_validation():
    from recx.interactive.recipe import fit_weights

    base, seen, targets, graph = planted_session(seed=2, n_users=200)
    user = UserModel(0.2, 0.1, seed=5)
    fit = {"beta": [0.5, 2.0], "alpha": [0.0, 1.0], "steps": 12, "lr": 0.1}
    grid_w, grid = fit_weights(base, seen, targets, graph, RoundSettings(), {**fit, "method": "grid"}, user)
    learned_w, learned = fit_weights(base, seen, targets, graph, RoundSettings(), fit, user)
    assert learned["grid_best"] == grid_w.as_dict()  # the gradient starts from the grid's best
    assert learned_w.as_dict() != grid_w.as_dict()
    assert learned["valid"]["mean_rounds"] < grid["valid"]["mean_rounds"]
    assert learned["path"][-1]["loss"] < learned["path"][0]["loss"]  # the session cross-entropy went down
