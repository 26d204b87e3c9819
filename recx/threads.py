"""How many torch threads a run uses: its share of the cores it may run on, less what other processes are using.

torch starts one intra-op thread per core. When another CPU job (a second run, a parallel sweep job) holds some of
those cores, every parallel region waits for the thread that is not scheduled: on 2 cores with one other busy job, a
BPR epoch on ml100k took 16 s with 2 threads and 0.4 s with 1 (0.3 s idle). ``hardware.num_threads=auto`` (the
default) therefore takes

    threads = min(cores // parallel jobs, cores not busy with other processes)   (at least 1)

where *cores* are the ones this process may run on (its CPU affinity: SLURM/cgroup limits included), *parallel jobs*
the launcher's (Hydra's joblib ``n_jobs``, or the CPU DDP processes of this run), and *busy* comes from ``/proc/stat``
over a short window (other processes only: this process's own CPU time is subtracted). :class:`ThreadGovernor`
re-checks at every training epoch, over the epoch just run, so a job that starts later is seen too.

An explicit ``OMP_NUM_THREADS`` in the environment or an integer ``hardware.num_threads`` is used as it is.

The price of following the load: torch splits float reductions by thread, so two runs of one seed that ran with
different counts differ in the last bits (~1e-7 relative). Runs that must agree bit for bit (a resume against the
uninterrupted run, a ``recx eval`` re-score) need an integer ``hardware.num_threads``.
"""

from __future__ import annotations

import math
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

AUTO = "auto"
#: a core counts as busy when other processes use more than this share of it (a shell, a logger: not a job)
BUSY_SLACK = 0.3


def usable_cores() -> list[int]:
    """The CPU ids this process may run on (affinity; every CPU where the platform has no affinity call)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def choose_threads(cores: int, parallel_jobs: int = 1, busy_elsewhere: float = 0.0) -> int:
    """Threads for one job: its share of ``cores`` among ``parallel_jobs``, capped by the cores that other processes
    leave free (``busy_elsewhere`` in cores, e.g. 1.0 = one core fully used). At least 1.

    >>> choose_threads(2), choose_threads(2, busy_elsewhere=1.0), choose_threads(8, parallel_jobs=2)
    (2, 1, 4)
    """
    cores, parallel_jobs = max(1, int(cores)), max(1, int(parallel_jobs))
    share = max(1, cores // parallel_jobs)
    free = cores - max(0.0, float(busy_elsewhere))
    return max(1, min(share, math.floor(free + BUSY_SLACK)))


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU counters at one instant: busy and total jiffies of the watched cores, this process's CPU
    seconds, and the wall clock."""

    busy: int
    total: int
    own_cpu_s: float
    wall_s: float


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sample_cpu(cores: list[int], stat: Path = Path("/proc/stat")) -> CpuSample | None:
    """Read ``/proc/stat`` for ``cores`` (None where it cannot be read: not Linux)."""
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return None
    wanted = {f"cpu{c}" for c in cores}
    busy = total = 0
    for line in lines:
        fields = line.split()
        if fields and fields[0] in wanted:
            values = [int(v) for v in fields[1:8]]  # user nice system idle iowait irq softirq
            total += sum(values)
            busy += sum(values) - values[3] - values[4]
    if total == 0:
        return None
    return CpuSample(busy=busy, total=total, own_cpu_s=_own_cpu_seconds(), wall_s=time.monotonic())


def busy_elsewhere(before: CpuSample, after: CpuSample, n_cores: int) -> float:
    """Cores used by other processes between two samples (this process's CPU time taken out)."""
    d_total = after.total - before.total
    d_wall = after.wall_s - before.wall_s
    if d_total <= 0 or d_wall <= 0:
        return 0.0
    busy_cores = (after.busy - before.busy) / d_total * n_cores
    own_cores = (after.own_cpu_s - before.own_cpu_s) / d_wall
    return max(0.0, busy_cores - own_cores)


def launcher_jobs() -> int:
    """How many jobs the Hydra launcher runs at once on this machine (joblib's ``n_jobs``; 1 otherwise)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        launcher = HydraConfig.get().launcher
    except Exception:  # noqa: BLE001 - no Hydra app running (library use)
        return 1
    target = str(launcher.get("_target_", "")) if launcher is not None else ""
    if "joblib" not in target.lower():
        return 1
    n_jobs = launcher.get("n_jobs")
    if n_jobs is None or int(n_jobs) < 0:  # joblib: -1 = one job per core
        return len(usable_cores())
    return max(1, int(n_jobs))


_WATCH: CpuSample | None = None


def start_watch() -> None:
    """Take the first ``/proc/stat`` sample now (the CLI does it before its imports), so that :func:`threads_for`
    measures other processes' load over the seconds of start-up instead of sleeping for a window of its own."""
    global _WATCH
    _WATCH = sample_cpu(usable_cores())


def omp_threads() -> int | None:
    """``OMP_NUM_THREADS`` when the environment sets it to a number (it then wins over ``auto``), else None."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return max(1, int(value)) if value.isdigit() else None


def threads_for(setting, *, processes: int = 1, window_s: float = 0.1) -> tuple[int, str]:
    """The thread count for ``hardware.num_threads`` = ``setting`` and a line saying why.

    ``processes``: the CPU processes this run starts itself (DDP on CPU). ``window_s``: how long to watch
    ``/proc/stat`` for other processes' load (the process sleeps meanwhile) when :func:`start_watch` did not run at
    least that long ago."""
    if setting not in (None, AUTO):
        return int(setting), "hardware.num_threads"
    if (from_env := omp_threads()) is not None:
        return from_env, "OMP_NUM_THREADS"
    if setting is None:  # torch's own default
        import torch

        return torch.get_num_threads(), "torch default"
    cores = usable_cores()
    jobs = launcher_jobs() * max(1, processes)
    before = _WATCH if _WATCH is not None and time.monotonic() - _WATCH.wall_s >= window_s else sample_cpu(cores)
    busy = 0.0
    if before is not None and window_s > 0:
        if before is not _WATCH:
            time.sleep(window_s)
        after = sample_cpu(cores)
        busy = busy_elsewhere(before, after, len(cores)) if after is not None else 0.0
    threads = choose_threads(len(cores), jobs, busy)
    return threads, f"auto: {len(cores)} cores, {jobs} parallel job(s), {busy:.1f} busy elsewhere"


def apply_threads(setting, *, processes: int = 1) -> str:
    """Set torch's intra-op threads from ``hardware.num_threads``; return the reason (for the run's log)."""
    import torch

    threads, why = threads_for(setting, processes=processes)
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return f"{threads} torch thread(s) ({why})"


def governor(setting, processes: int = 1):
    """A Lightning callback re-choosing the thread count before each training epoch from the load other processes
    put on the cores during the previous epoch (``hardware.num_threads=auto`` only; None otherwise)."""
    if setting != AUTO or omp_threads() is not None:
        return None
    import lightning.pytorch as pl
    import torch

    class ThreadGovernor(pl.Callback):
        def __init__(self) -> None:
            self.cores = usable_cores()
            self.jobs = launcher_jobs() * max(1, processes)
            self.last = sample_cpu(self.cores)
            self.changes: list[dict] = []

        def on_train_epoch_start(self, trainer, module) -> None:
            now = sample_cpu(self.cores)
            if self.last is None or now is None:
                return
            # the load other processes put on the cores while we ran with torch.get_num_threads() threads
            busy = busy_elsewhere(self.last, now, len(self.cores))
            self.last = now
            threads = choose_threads(len(self.cores), self.jobs, busy)
            if threads != torch.get_num_threads():
                self.changes.append({"epoch": trainer.current_epoch, "threads": threads,
                                     "busy_elsewhere": round(busy, 2)})
                torch.set_num_threads(threads)

    return ThreadGovernor()
