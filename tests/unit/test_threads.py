"""recx.threads: a run's torch threads are its share of the cores that other processes leave free."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recx import threads
from recx.threads import CpuSample, busy_elsewhere, choose_threads, sample_cpu, threads_for


@pytest.mark.parametrize("cores, jobs, busy, expected", [
    (2, 1, 0.0, 2),     # idle machine: every core
    (2, 1, 1.0, 1),     # another job holds one of two cores
    (2, 1, 0.2, 2),     # a shell or a logger is not a job
    (2, 2, 0.0, 1),     # a joblib sweep with n_jobs=2 on 2 cores
    (8, 2, 0.0, 4),
    (8, 1, 7.9, 1),     # never 0
    (16, 3, 2.0, 5),    # share (16 // 3) below the free cores
    (4, 1, 2.5, 1),
])
def test_choose_threads(cores, jobs, busy, expected):
    assert choose_threads(cores, jobs, busy) == expected


def test_busy_elsewhere_subtracts_own_cpu_time():
    before = CpuSample(busy=0, total=0, own_cpu_s=0.0, wall_s=0.0)
    # 2 cores over 1 s = 200 jiffies; 150 busy = 1.5 cores busy, of which this process used 0.5 core
    after = CpuSample(busy=150, total=200, own_cpu_s=0.5, wall_s=1.0)
    assert busy_elsewhere(before, after, 2) == pytest.approx(1.0)
    assert busy_elsewhere(after, after, 2) == 0.0  # no time passed


def test_sample_cpu_reads_only_the_usable_cores(tmp_path: Path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  30 0 10 100 0 0 0 0 0 0\n"
                    "cpu0 10 0 5 50 5 0 0 0 0 0\n"
                    "cpu1 20 0 5 50 0 0 0 0 0 0\n"
                    "intr 12345\n")
    one = sample_cpu([0], stat)
    assert (one.busy, one.total) == (15, 70)  # idle and iowait are not busy
    both = sample_cpu([0, 1], stat)
    assert (both.busy, both.total) == (40, 145)
    assert sample_cpu([0], tmp_path / "missing") is None


def test_explicit_settings_win(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads_for(3) == (3, "hardware.num_threads")
    assert threads_for(None) == (torch.get_num_threads(), "torch default")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads_for("auto") == (1, "OMP_NUM_THREADS")
    assert threads_for(2)[0] == 2  # an explicit integer beats the environment


def test_auto_sees_a_busy_machine(monkeypatch):
    """auto: with one of two cores held by another process, one thread; the same machine idle, two."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_WATCH", None)  # no CLI start in this process: auto samples its own window
    monkeypatch.setattr(threads, "usable_cores", lambda: [0, 1])
    samples = iter([CpuSample(0, 0, 0.0, 0.0), CpuSample(100, 200, 0.0, 1.0),
                    CpuSample(0, 0, 0.0, 0.0), CpuSample(0, 200, 0.0, 1.0)])
    monkeypatch.setattr(threads, "sample_cpu", lambda cores: next(samples))
    assert threads_for("auto", window_s=0.001)[0] == 1
    assert threads_for("auto", window_s=0.001)[0] == 2
    monkeypatch.setattr(threads, "sample_cpu", lambda cores: None)  # not Linux: the share alone
    assert threads_for("auto", processes=2, window_s=0.001)[0] == 1


def test_governor_follows_the_load(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: [0, 1])
    samples = iter([CpuSample(0, 0, 0.0, 0.0),        # at construction
                    CpuSample(100, 200, 0.0, 1.0),    # epoch 0: another job held a core
                    CpuSample(100, 400, 0.0, 2.0)])   # epoch 1: it ended
    monkeypatch.setattr(threads, "sample_cpu", lambda cores: next(samples))
    assert threads.governor(2) is None and threads.governor(None) is None  # only auto is governed
    gov = threads.governor("auto")
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        class T:
            current_epoch = 0
        gov.on_train_epoch_start(T(), None)
        assert torch.get_num_threads() == 1
        T.current_epoch = 1
        gov.on_train_epoch_start(T(), None)
        assert torch.get_num_threads() == 2
        assert [(c["epoch"], c["threads"]) for c in gov.changes] == [(0, 1), (1, 2)]
    finally:
        torch.set_num_threads(old)


def test_num_threads_values_are_checked():
    from omegaconf import OmegaConf

    from recx.errors import ConfigError
    from recx.validate import check_config

    for bad in ("many", 0):
        cfg = OmegaConf.create({"hardware": {"num_threads": bad}})
        with pytest.raises(ConfigError, match="num_threads"):
            check_config(cfg, OmegaConf.create({"hardware": {"num_threads": "auto"}}), choices={},
                         config_name="train")


def test_start_watch_replaces_the_sleep(monkeypatch):
    """After start_watch (the CLI's start), auto measures over the time since then and does not sleep."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: [0, 1])
    monkeypatch.setattr(threads, "_WATCH", CpuSample(0, 0, 0.0, -100.0))
    monkeypatch.setattr(threads, "sample_cpu", lambda cores: CpuSample(100, 200, 0.0, 0.0))
    monkeypatch.setattr(threads.time, "sleep", lambda s: pytest.fail("slept although start_watch had run"))
    assert threads_for("auto")[0] == 1


def test_a_run_with_auto_threads_says_what_it_chose(compose_train, monkeypatch):
    """compose_train pins one thread (tests/conftest.py); ``auto`` itself must still work end to end."""
    from recx.run import train

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    old = torch.get_num_threads()
    try:
        results = train(compose_train("model=bpr", "trainer.max_epochs=2", "hardware.num_threads=auto"))
    finally:
        torch.set_num_threads(old)
    start = results["threads"]["start"]
    assert "auto:" in start and int(start.split()[0]) >= 1, start
    assert isinstance(results["threads"]["changes"], list)
