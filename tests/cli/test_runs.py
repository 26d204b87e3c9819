"""A run's life: eval parity, resume after a crash, NaN loss, corrupt checkpoints, run-folder safety."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from omegaconf import OmegaConf

from recx import cli
from recx.errors import CheckpointError, TrainingError
from recx.run import evaluate, load_checkpoint, train


class CrashAtStep(pl.Callback):
    """Simulates a crash (power loss, OOM kill) in the middle of an epoch."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            raise RuntimeError("simulated crash")


class PoisonWeightsAtEpoch(pl.Callback):
    """Makes the loss NaN from a given epoch on, as a diverging optimiser would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            with torch.no_grad():
                pl_module.net.user_embedding.weight.fill_(float("nan"))


def with_callbacks(cfg, *nodes):
    cfg = OmegaConf.create(OmegaConf.to_container(cfg))  # unlock struct mode for the test-only callbacks
    cfg.callbacks.extra = list(nodes)
    return cfg


def eval_cfg(ckpt, run_dir, split="test"):
    return OmegaConf.create({
        "ckpt": str(ckpt), "split": split, "metric": None, "progress": False,
        "hardware": {"accelerator": "cpu", "devices": 1, "precision": "32-true", "strategy": "auto",
                     "num_nodes": 1, "num_threads": 1},  # one thread, as compose_train (tests/conftest.py)
        "paths": {"run_dir": str(run_dir), "data_dir": str(Path(__import__("os").environ["RECX_DATA_DIR"]))},
    })


def test_eval_of_best_checkpoint_reproduces_training_test_metrics(compose_train, tmp_path):
    cfg = compose_train("model=bpr", "trainer.max_epochs=6", "model.lr=0.01")
    results = train(cfg)
    again = evaluate(eval_cfg(results["best_checkpoint"], tmp_path / "eval"))
    assert again["test"] == results["test"]  # exactly: same data, weights, scorer and metrics
    valid = evaluate(eval_cfg(results["best_checkpoint"], tmp_path / "eval-valid", split="valid"))
    assert valid["valid"] == results["valid"]


def test_history_keeps_the_epochs_after_the_best_one(compose_train):
    # a learning rate too small to move the rounded validation metric: epoch 0 stays the best, four epochs run
    results = train(compose_train("model=bpr", "trainer.max_epochs=4", "model.lr=1e-12",
                                  "protocol.metric_decimals=4", "callbacks.early_stopping.enabled=false"))
    assert results["best_epoch"] == 0 and results["epochs_trained"] == 4
    assert [row["epoch"] for row in results["history"]] == [0, 1, 2, 3]


def test_resume_after_crash_reaches_the_uninterrupted_metrics(compose_train, tmp_path):
    args = ("model=lightgcn", "trainer.max_epochs=6", "callbacks.early_stopping.enabled=false", "model.lr=0.01")
    reference = train(compose_train(*args, run_dir=tmp_path / "reference"))

    run_dir = tmp_path / "crashed"
    steps_per_epoch = reference["data"]["train_interactions"] // 512 + 1
    crash = {"_target_": "tests.cli.test_runs.CrashAtStep", "step": 3 * steps_per_epoch + 2}  # mid-epoch 3
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(with_callbacks(compose_train(*args, run_dir=run_dir), crash))
    assert not (run_dir / "metrics.json").exists()
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["epoch"] == 2  # the last completed epoch

    resumed = train(compose_train(*args, "resume=true", run_dir=run_dir))
    assert resumed["resumed_from"].endswith("last.ckpt")
    assert resumed["test"] == reference["test"] and resumed["valid"] == reference["valid"]
    assert resumed["best_epoch"] == reference["best_epoch"]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(compose_train, tmp_path):
    run_dir = tmp_path / "nan"
    cfg = with_callbacks(compose_train("model=bpr", "trainer.max_epochs=6", run_dir=run_dir),
                         {"_target_": "tests.cli.test_runs.PoisonWeightsAtEpoch", "epoch": 2})
    with pytest.raises(TrainingError) as err:
        train(cfg)
    text = err.value.render()
    assert "nan" in text.lower() and "last.ckpt" in text
    last = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def digest_tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_corrupt_checkpoint_exits_2_and_leaves_the_run_folder_alone(compose_train, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(compose_train("model=bpr", "trainer.max_epochs=2", run_dir=run_dir))
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    truncated = run_dir / "checkpoints" / "truncated.ckpt"
    truncated.write_bytes(ckpt.read_bytes()[:1000])
    before = digest_tree(run_dir)
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(truncated)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["eval", f"ckpt={truncated}", f"hydra.run.dir={tmp_path / 'eval'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "truncated.ckpt" in err and "Traceback" not in err
    assert digest_tree(run_dir) == before

    not_recx = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(2)}, not_recx)
    with pytest.raises(CheckpointError, match="not a recx checkpoint"):
        load_checkpoint(not_recx)


def test_eval_ranks_new_items_from_their_features_alone(compose_train, tmp_path, capsys):
    """`recx eval ... new_items=<npz>`: an item copied from a trained item's features scores exactly as that item."""
    import numpy as np

    from recx.run import build_datamodule

    cfg = compose_train("model=motor", "model/backbone=bpr", "trainer.max_epochs=3", "model.n_centroids=16")
    results = train(cfg)
    dm = build_datamodule(cfg)
    dm.setup("test")
    originals = torch.tensor([3, 50, 120, 7, 200, 90])
    new_file = tmp_path / "new.npz"
    np.savez(new_file, **{m: f[originals].numpy() for m, f in dm.data.item_features.items()})

    eval_dir = tmp_path / "eval-new"
    assert cli.main(["eval", f"ckpt={results['best_checkpoint']}", f"new_items={new_file}", "new_items_k=4",
                     f"hydra.run.dir={eval_dir}", "progress=false"]) == 0
    saved = torch.load(eval_dir / "new_items.pt")
    assert saved["top_items"].shape == (dm.data.n_users, 4)
    assert (eval_dir / "metrics.json").read_text().count('"n_new_items": 6') == 1

    # the same ranking the trained catalogue gives those items: new-item vectors equal the trained items' vectors
    ckpt = load_checkpoint(Path(results["best_checkpoint"]))
    from recx.run import build_net

    net = build_net(OmegaConf.create(ckpt["recx"]["config"]).model, dm.data)
    net.load_state_dict({k.removeprefix("net."): v for k, v in ckpt["state_dict"].items()})
    users, items = net.user_item_vectors()
    expected = torch.topk(users @ items[originals].T, 4, dim=1).indices
    assert torch.equal(saved["top_items"], expected)

    # an ID-based checkpoint cannot: exit 2 before anything is scored, with the fix named
    id_run = tmp_path / "id-run"
    id_results = train(compose_train("model=bpr", "trainer.max_epochs=1", run_dir=id_run))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["eval", f"ckpt={id_results['best_checkpoint']}", f"new_items={new_file}",
                  f"hydra.run.dir={tmp_path / 'eval-id'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "model=motor" in err and "Traceback" not in err
    assert not (tmp_path / "eval-id" / "metrics.json").exists()
