"""LIS/AIS behave as the paper says they should, on planted data (synthetic_mm with its true item factors)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def planted_report():
    import lightning.pytorch as pl

    from recx.data.prepare import prepare
    from recx.data.splits import TemporalRatioSplit
    from recx.data.synthetic import SyntheticMM
    from recx.lis import leakage_report
    from recx.topn.datamodule import TopNDataModule
    from recx.topn.models.bpr import BPR
    from recx.topn.module import TopNModule

    data = prepare(SyntheticMM(), TemporalRatioSplit(), modalities=("image", "latent"))
    pl.seed_everything(0, verbose=False)
    net = BPR(data, embedding_dim=32)
    trainer = pl.Trainer(max_epochs=5, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                         reload_dataloaders_every_n_epochs=1)
    trainer.fit(TopNModule(net, lr=5e-3), TopNDataModule(data=data, batch_size=1024))
    net.eval()
    noise = torch.randn(data.n_items, 16, generator=torch.Generator().manual_seed(1))
    import numpy as np
    import tempfile
    from pathlib import Path

    noise_file = Path(tempfile.mkdtemp()) / "noise.npy"
    np.save(noise_file, noise.numpy())  # raw synthetic item ids are 0..n-1, so rows line up
    return leakage_report(data, net.score, net=net, representations=["feature:latent", "feature:image", "model",
                                                                      str(noise_file)],
                          preferences=["train", "test", "shuffled:test"],
                          load_feature=lambda m: data.item_features[m])


def test_leaked_test_period_preferences_beat_shuffled_and_train_period_ones(planted_report):
    lis = {name: row["lis"] for name, row in planted_report["preferences"].items()}
    # measured: test 0.040, train 0.012, shuffled 0.000 (BPR after 5 epochs, AUC over 100 sampled negatives)
    assert lis["test"] > lis["train"] + 0.01, lis
    assert lis["test"] > lis["shuffled:test"] + 0.02, lis
    assert abs(lis["shuffled:test"]) < 0.005, lis
    test_recall_gain = planted_report["preferences"]["test"]["gain/recall@20"]
    assert test_recall_gain > planted_report["preferences"]["train"]["gain/recall@20"] + 0.05


def test_true_item_factors_approach_the_ceiling_and_noise_adds_nothing(planted_report):
    reps = planted_report["representations"]
    ceiling = planted_report["preferences"]["test"]["lis"]
    # measured: AIS(latent) 0.037 vs LIS(test) 0.040; AIS(noise) 0.0001
    assert reps["latent"]["ais"] > 0.7 * ceiling, (reps["latent"]["ais"], ceiling)
    assert planted_report["ratios"]["latent"]["test"] == pytest.approx(reps["latent"]["ais"] / ceiling)
    assert abs(reps["noise"]["ais"]) < 0.003, reps["noise"]
    assert abs(reps["noise"]["weights"]["representation"]) < 0.1  # the ranker learns to ignore it
    # a noisy view of the truth recovers most of it; the truth itself is the best representation
    assert reps["latent"]["ais"] >= reps["image"]["ais"] > 0.5 * reps["latent"]["ais"]


def test_report_states_its_protocol(planted_report):
    protocol = planted_report["protocol"]
    assert protocol["negatives_per_positive"] == 100 and protocol["fit_split"] == "valid"
    assert protocol["eval_split"] == "test" and protocol["fit_positives"] > 0
    assert "reconstruction" in planted_report["definition"]
