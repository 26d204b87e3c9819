"""AlignRec-style feature-quality metrics: item-CF against a per-user loop, planted features rank as they should,
and the `recx eval metric=feature_quality` command."""

from __future__ import annotations

import json

import pytest
import torch

from recx import cli
from recx.lis.feature_quality import ItemCFScores, feature_quality, masked_vectors
from recx.lis.signals import History
from tests.unit.test_lis_pieces import tiny_data

TINY = ["dataset.source.n_users=300", "dataset.source.n_items=240", "dataset.source.interactions_per_user=30"]


def test_item_cf_matches_a_per_user_loop():
    data = tiny_data()
    vectors = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    scores = ItemCFScores(History(*data.seen_csr(("train",)), data.n_items), vectors, knn_k=2)(torch.arange(4))
    unit = vectors / vectors.norm(dim=1, keepdim=True)
    cos = unit @ unit.T
    cos.fill_diagonal_(-2)  # never its own neighbour
    for u in range(4):
        history = data.train[data.train[:, 0] == u, 1].tolist()
        expected = torch.zeros(6)
        for j in history:
            top = torch.topk(cos[j], 2)
            expected[top.indices] += top.values.clamp_min(0) / len(history)
        assert torch.allclose(scores[u], expected, atol=1e-6)


def test_masking_zeroes_one_modality_for_the_chosen_share_of_items():
    features = {"a": torch.ones(100, 2), "b": torch.ones(100, 3)}
    x = masked_vectors(features, "a", 0.3, seed=0)
    hidden = x[:, :2].abs().sum(1) == 0
    assert 15 < int(hidden.sum()) < 45 and bool((x[:, 2:] != 0).all())


def test_planted_factors_rank_far_above_noise_and_masking_the_signal_hurts():
    from recx.data.prepare import prepare
    from recx.data.splits import TemporalRatioSplit
    from recx.data.synthetic import SyntheticMM

    data = prepare(SyntheticMM(n_users=300, n_items=240, interactions_per_user=30), TemporalRatioSplit(),
                   modalities=("latent",))
    noise = torch.randn(data.n_items, 16, generator=torch.Generator().manual_seed(0))
    truth = feature_quality(data, {"latent": data.item_features["latent"]})
    random = feature_quality(data, {"noise": noise})
    both = feature_quality(data, {"latent": data.item_features["latent"], "noise": noise})
    for kind in ("zero_shot", "item_cf"):
        assert truth[kind]["recall@20"] > random[kind]["recall@20"] + 0.2, (kind, truth[kind], random[kind])
    # hiding the informative modality costs more than hiding the noise
    assert both["masked"]["latent"]["recall@20"] < both["masked"]["noise"]["recall@20"]


def test_command_writes_metrics_and_refuses_unknown_sets(tmp_path, capsys):
    out = tmp_path / "fq"
    assert cli.main(["eval", "metric=feature_quality", *TINY, "features=[features,feature:latent]",
                     f"hydra.run.dir={out}"]) == 0
    results = json.loads((out / "metrics.json").read_text())["feature_quality"]
    assert set(results) == {"image+text", "latent"} and "masked" in results["image+text"]
    assert "zero-shot R@20" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["eval", "metric=feature_quality", *TINY, "features=clip", f"hydra.run.dir={tmp_path / 'bad'}"])
    assert exit_info.value.code == 2 and "unknown feature set" in capsys.readouterr().err
