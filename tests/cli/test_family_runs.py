"""One run life for every family (issue 22): the registry, no import circle, and for the ECG and learning-path
models the same Lightning services as top-N — resume after a crash, ``recx eval`` of a checkpoint, two-process DDP."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from recx import families
from recx.run import evaluate, load_checkpoint, train
from tests.cli.test_ddp import ddp_then_one_process
from tests.cli.test_runs import eval_cfg, with_callbacks
from tests.cli.test_subprocess import recx

REPO = Path(__file__).resolve().parents[2]
ECG = ["dataset=synthetic_ecg", "metric=ecg", "dataset.source.n_records=60", "model.batch_size=8"]
KT = ["dataset=synthetic_kt", "metric=path_reward", "dataset.source.n_students=150"]
SMALL_DKT = ["model.embed=16", "model.hidden=16", "model.mlp=[8]"]
SMALL_SRC = ["model.iterations=3", "model.batch_size=16", "model.path_length=5", "model.eval_batches=2",
             "model.eval_batch_size=16", "model.policy.embed=16", "model.policy.hidden=16"]


def test_run_py_names_no_family_and_families_import_neither_run_nor_cli():
    tree = ast.parse((REPO / "recx" / "run.py").read_text())
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not strings & set(families.names()), "run.py dispatches on a family name"
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m and m.split(".")[1:2] and m.split(".")[1] in families.names() for m in imported)
    # importing every family (and what it imports) must not load recx.run or recx.cli: no circle through them
    code = ("import sys; from recx import families\n"
            "for n in families.names(): families.get(n)\n"
            "import recx.ecg.recipe, recx.pathrec.recipe, recx.icl.recipe, recx.interactive.recipe\n"
            "print(sorted(m for m in ('recx.run', 'recx.cli') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
    for path in (REPO / "recx").rglob("*.py"):
        if path.name in ("run.py", "cli.py", "sweep.py", "reproduce.py", "__main__.py"):
            continue
        text = path.read_text()
        assert "from recx.run import" not in text and "from recx.cli import" not in text, path


def test_every_family_is_registered_with_its_metric_group():
    assert families.default_metrics() == {"topn": "topk", "ltr": "ltr", "interactive": "interactive",
                                          "ecg": "ecg", "pathrec": "path_reward", "icl": "icl_accuracy"}


def crash(step: int) -> dict:
    return {"_target_": "tests.cli.test_runs.CrashAtStep", "step": step}


def test_heartlang_resume_after_crash_reaches_the_uninterrupted_metrics(compose_train, tmp_path):
    vq = train(compose_train("model=vqhbr", *ECG, "model.epochs=1", tiny=False, run_dir=tmp_path / "vq"))
    args = ("model=heartlang", *ECG, "model.epochs=4", "model.patience=null",
            f"tokenizer.ckpt={vq['best_checkpoint']}")
    reference = train(compose_train(*args, tiny=False, run_dir=tmp_path / "reference"))
    steps = -(-reference["data"]["train"]["sentences"] // 8)
    run_dir = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(with_callbacks(compose_train(*args, tiny=False, run_dir=run_dir), crash(2 * steps + 1)))
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["epoch"] == 1
    resumed = train(compose_train(*args, "resume=true", tiny=False, run_dir=run_dir))
    assert resumed["resumed_from"].endswith("last.ckpt")
    assert resumed["test"] == reference["test"] and resumed["valid"] == reference["valid"]
    assert [h["val/masked_loss"] for h in resumed["history"]] == [h["val/masked_loss"] for h in reference["history"]]
    # the checkpoint is a Lightning one with the run config, and `recx eval` re-scores it exactly
    again = evaluate(eval_cfg(reference["best_checkpoint"], tmp_path / "eval"))
    assert again["test"] == reference["test"]


def test_src_resume_after_crash_reaches_the_uninterrupted_metrics(compose_train, tmp_path):
    dkt = train(compose_train("model=dkt", *KT, *SMALL_DKT, "model.epochs=2", tiny=False, run_dir=tmp_path / "dkt"))
    args = ("model=src", *KT, *SMALL_SRC, "model.epochs=3", f"simulator.ckpt={dkt['best_checkpoint']}")
    reference = train(compose_train(*args, tiny=False, run_dir=tmp_path / "reference"))
    run_dir = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(with_callbacks(compose_train(*args, tiny=False, run_dir=run_dir), crash(3 + 3 + 1)))  # mid-epoch 2
    resumed = train(compose_train(*args, "resume=true", tiny=False, run_dir=run_dir))
    assert resumed["resumed_from"].endswith("last.ckpt")
    assert resumed["test"] == reference["test"] and resumed["valid"] == reference["valid"]
    assert resumed["best_epoch"] == reference["best_epoch"]


def test_dkt_checkpoint_eval_reproduces_training_test_metrics(compose_train, tmp_path):
    dkt = train(compose_train("model=dkt", *KT, *SMALL_DKT, "model.epochs=2", tiny=False, run_dir=tmp_path / "dkt"))
    again = evaluate(eval_cfg(dkt["best_checkpoint"], tmp_path / "eval"))
    assert again["test"] == dkt["test"] and dkt["test"]["interactions"] > 0


def test_src_and_baselines_refuse_ddp_before_reading_data(compose_train):
    from recx.errors import ConfigError

    for model in ("src", "src_rule"):
        cfg = compose_train(f"model={model}", *KT, "hardware=ddp", "hardware.accelerator=cpu", tiny=False)
        with pytest.raises(ConfigError, match="hardware=ddp"):
            train(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["heartlang", "dkt"])
def test_two_process_ddp_metrics_match_one_process(tmp_path, family):
    if family == "heartlang":
        vq = tmp_path / "vq"
        out = recx("train", "model=vqhbr", *ECG, "model.epochs=1", f"hydra.run.dir={vq}", cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
        # 13 test sentences (odd): the unpadded evaluation sampler counts each once
        args = ["model=heartlang", *ECG, "model.epochs=2", f"tokenizer.ckpt={vq / 'checkpoints' / 'best.ckpt'}"]
        key = "masked_loss"
    else:
        args = ["model=dkt", *KT, *SMALL_DKT, "model.epochs=2"]
        key = "auc"
    ddp, single = ddp_then_one_process(tmp_path, args)
    assert key in single
    assert ddp["test"] == pytest.approx(single, abs=1e-6)
