"""Errors reach the user as one clear line: messages printed verbatim, no raw traceback, nothing lost on disk."""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

import pytest
import torch

from recx import cli
from recx.console import print_error, tee_output
from recx.errors import CheckpointError, ConfigError, TrainingError


def test_error_messages_are_printed_verbatim(capsys):
    """Square brackets in every part of a message (what, file, field, fix) survive: no rich markup is applied."""
    exc = ConfigError("bad dataset.modalities=[text] or [bold]x[/bold]", path="/tmp/[run]/a.yaml",
                      field="model.[name]", fix="pip install -c constraints.txt -e '.[text]'")
    print_error(exc)
    err = capsys.readouterr().err
    for part in ("dataset.modalities=[text]", "[bold]x[/bold]", "/tmp/[run]/a.yaml", "model.[name]",
                 "-e '.[text]'"):
        assert part in err, err


def test_internal_error_prints_one_line_and_saves_the_traceback(monkeypatch, capsys):
    def boom(*_):
        raise RuntimeError("kaput [x]")

    monkeypatch.setattr(cli, "run_hydra", boom)
    monkeypatch.delenv("RECX_DEBUG", raising=False)
    assert cli.main(["train"]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: kaput [x], traceback saved to" in err and "please report it" in err
    assert "Traceback" not in err
    saved = Path(err.split("traceback saved to ")[1].split(";")[0])
    assert "Traceback" in saved.read_text() and "kaput" in saved.read_text()
    saved.unlink()
    monkeypatch.setenv("RECX_DEBUG", "1")  # the developer still gets the traceback
    with pytest.raises(RuntimeError):
        cli.main(["train"])


def test_internal_error_inside_a_run_goes_to_its_folder_without_hydra_hints(monkeypatch, capsys, tmp_path):
    """A bug during a run: one line, the traceback in <run folder>/error.txt, no HYDRA_FULL_ERROR hint."""
    import recx.run

    def broken_train(cfg):
        raise ValueError("a bug in recx")

    monkeypatch.setattr(recx.run, "train", broken_train)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setenv("RECX_OUTPUT_DIR", str(tmp_path / "outputs"))
    monkeypatch.delenv("RECX_DEBUG", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    assert cli.main(["train", "model=pop", "logger=none", "progress=false"]) == 1
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "internal error: ValueError: a bug in recx" in text
    assert "HYDRA_FULL_ERROR" not in text and "Traceback" not in text
    (error_file,) = (tmp_path / "outputs").rglob("error.txt")
    assert "a bug in recx" in error_file.read_text()


def test_runs_started_in_the_same_second_get_distinct_folders(monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "run_timestamp", lambda: "2026-01-01_00-00-00")
    first, second, third = (cli.claim_run_dir(tmp_path / "bpr-ml100k") for _ in range(3))
    assert len({first, second, third}) == 3 and all(p.is_dir() for p in (first, second, third))
    assert first.name == "2026-01-01_00-00-00" and second.name == "2026-01-01_00-00-00_1"


def test_cli_train_claims_a_fresh_folder_per_run(monkeypatch, tmp_path):
    """Two `recx train` commands in the same second each get their own hydra.run.dir."""
    monkeypatch.setattr(cli, "run_timestamp", lambda: "2026-01-01_00-00-00")
    monkeypatch.setenv("RECX_OUTPUT_DIR", str(tmp_path))
    seen = []
    monkeypatch.setattr(cli, "_hydra_app", lambda name: (lambda: seen.append(
        next(a for a in sys.argv if a.startswith("hydra.run.dir=")))))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    for _ in range(2):
        assert cli.main(["train", "model=bpr"]) == 0
    assert len(seen) == 2 and seen[0] != seen[1]


def test_disk_full_while_writing_a_checkpoint_keeps_the_previous_one(monkeypatch, tmp_path):
    from recx.callbacks.checkpoint_io import SafeCheckpointIO

    io = SafeCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "state_dict": {"w": torch.ones(3)}}, path)
    before = path.read_bytes()

    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(TrainingError) as info:
        io.save_checkpoint({"epoch": 2, "state_dict": {"w": torch.zeros(3)}}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert "No space left on device" in info.value.render() and "previous last.ckpt is intact" in info.value.render()
    assert path.read_bytes() == before
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_resume_falls_back_from_a_truncated_last_checkpoint(tmp_path):
    from omegaconf import OmegaConf

    from recx.run import resume_checkpoint

    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    torch.save({"epoch": 3}, ckpt / "best.ckpt")
    torch.save({"epoch": 5, "w": torch.ones(1000)}, ckpt / "last.ckpt")
    data = (ckpt / "last.ckpt").read_bytes()
    (ckpt / "last.ckpt").write_bytes(data[: len(data) // 2])  # cut off mid-write
    cfg = OmegaConf.create({"resume": True})
    assert resume_checkpoint(cfg, tmp_path) == ckpt / "best.ckpt"
    (ckpt / "best.ckpt").unlink()
    with pytest.raises(CheckpointError, match="no readable checkpoint before it"):
        resume_checkpoint(cfg, tmp_path)


def test_run_files_get_the_users_umask(tmp_path):
    from recx.data.interactions import atomic_write
    from recx.run import write_json

    old = os.umask(0o027)
    try:
        write_json(tmp_path / "metrics.json", {"a": 1})
        atomic_write(tmp_path / "conventions.json", lambda f: f.write(b"{}"))
    finally:
        os.umask(old)
    for name in ("metrics.json", "conventions.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640


def test_train_log_holds_what_the_run_prints(tmp_path, capsys):
    from recx.console import console

    with tee_output(tmp_path / "train.log"):
        console().print("[bold]epoch 1[/]: recall@20 0.1234")
        print("plain line", file=sys.stderr)
    text = (tmp_path / "train.log").read_text()
    assert "epoch 1: recall@20 0.1234" in text and "plain line" in text
    assert "\x1b[" not in text


def test_disk_full_while_writing_run_files_is_a_clear_error(monkeypatch, tmp_path):
    from recx.run import write_json

    (tmp_path / "metrics.json").write_text('{"old": 1}')

    def full(fd, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(TrainingError, match="No space left on device"):
        write_json(tmp_path / "metrics.json", {"new": 2})
    assert (tmp_path / "metrics.json").read_text() == '{"old": 1}'
