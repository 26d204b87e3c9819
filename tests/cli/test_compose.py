"""Configs compose, models build, and bad choices fail before any heavy work with a message that lists the fix."""

from __future__ import annotations

import pytest

from recx import cli
from recx.errors import ConfigError
from recx.run import build_datamodule, build_net


def run_cli(argv, capsys):
    """Run ``recx <argv>`` in-process; return (exit code, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("model", cli.group_choices("model"))
def test_every_model_composes_and_builds_on_synthetic(model, compose_train):
    cfg = compose_train(f"model={model}")
    cli.check_compatibility(cfg)
    dm = build_datamodule(cfg)
    dm.setup("fit")
    net = build_net(cfg.model, dm.data)
    import torch

    scores = net.eval().score(torch.arange(4))
    assert scores.shape == (4, dm.data.n_items)


@pytest.mark.parametrize("dataset", cli.group_choices("dataset"))
def test_every_dataset_config_composes_with_a_source_and_split(dataset, compose_train):
    cfg = compose_train(f"dataset={dataset}", tiny=False)
    assert cfg.dataset.family == "topn"
    for key in ("source", "split", "datamodule"):
        assert "_target_" in cfg.dataset[key], key


def test_unknown_model_lists_the_choices(capsys):
    code, err = run_cli(["train", "model=nosuchmodel"], capsys)
    assert code == 2
    assert "unknown model 'nosuchmodel'" in err and "lightgcn" in err and "Traceback" not in err


def test_unknown_key_is_a_clean_config_error(capsys):
    code, err = run_cli(["train", "model.no_such_key=1"], capsys)
    assert code == 2 and "no_such_key" in err and "Traceback" not in err


def test_incompatible_family_names_the_datasets_that_fit(compose_train):
    cfg = compose_train("model=bpr")
    cfg.dataset.family = "ltr"  # a learning-to-rank dataset (those arrive with the LTR issue)
    cfg.dataset.name = "mslr10k"
    with pytest.raises(ConfigError) as err:
        cli.check_compatibility(cfg)
    text = err.value.render()
    assert "cannot train on dataset 'mslr10k'" in text and "ml100k" in text and "synthetic_mm" in text


def test_gpu_requested_without_gpu_exits_2(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, err = run_cli(["train", "hardware=gpu", f"hydra.run.dir={tmp_path}/run", "logger=none"], capsys)
    assert code == 2 and "hardware=cpu" in err


def test_help_lists_groups_and_choices(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "lightgcn" in out and "synthetic_mm" in out and "hardware" in out


def test_sweep_first_job_overrides():
    assert cli.first_of_sweep(["model.lr=1e-3,1e-2", "model=bpr"]) == ["model.lr=0.001", "model=bpr"]


@pytest.mark.parametrize("experiment", cli.group_choices("experiment"))
def test_every_experiment_composes(experiment):
    cfg = cli.compose("train", [f"experiment={experiment}"])
    cli.check_compatibility(cfg)
    assert cfg.run_name


def test_dataset_model_specialisation_applies_only_to_its_pair():
    assert cli.compose("train", ["dataset=amazon_baby", "model=bm3"]).model.reg_weight == 0.1
    assert cli.compose("train", ["dataset=amazon_sports", "model=bm3"]).model.reg_weight == 0.01
    assert cli.compose("train", ["dataset=ml100k", "model=lightgcn"]).model.n_layers == 3  # no specialisation file
