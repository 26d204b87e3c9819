"""Terminal output: the end-of-run metrics table and user-facing error messages (rich, no heavy imports)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from recx.errors import RecxError


def console(stderr: bool = False) -> Console:
    """A rich console; when the output is a file or pipe (CI logs, nohup, sweeps), tables get 160 columns instead of
    rich's default 80, so wide comparison tables stay readable in logs."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


METRIC_ORDER = ("recall", "ndcg", "precision", "hit_rate", "mrr", "map", "coverage", "avg_popularity", "gini")


def metric_sort_key(name: str) -> tuple:
    """Accuracy metrics first (in the order of the metric config), then beyond-accuracy ones, then the cold-start
    view (``cold/...``); by cut-off within."""
    view, _, rest = name.rpartition("/")
    base, _, k = rest.partition("@")
    rank = METRIC_ORDER.index(base) if base in METRIC_ORDER else len(METRIC_ORDER)
    return (view, rank, base, int(k) if k.isdigit() else 0)


#: metrics reported without a cut-off (learning to rank: over the whole list; knowledge tracing; learning paths)
UNCUT_METRICS = ("map", "mrr", "auc", "accuracy", "ep", "ep_std", "e_start", "e_end", "reconstruction_mse",
                 "codebook_usage", "masked_loss", "masked_accuracy", "zero_shot_accuracy")


def print_metrics(results: dict[str, Any], *, title: str, run_dir: Path | None = None) -> None:
    """One table, one row per metric, one column per evaluated split (valid, test)."""
    splits = [s for s in ("valid", "test") if results.get(s)]
    names = sorted({k for s in splits for k in results[s] if "@" in k or k in UNCUT_METRICS}, key=metric_sort_key)
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for s in splits:
        table.add_column(s, justify="right")
    for name in names:
        table.add_row(name, *(f"{results[s][name]:.4f}" if name in results[s] else "" for s in splits))
    for count in ("n_users", "n_skipped_users", "cold/n_items", "cold/n_users", "n_queries"):
        if any(count in results[s] for s in splits):
            table.add_row(count.replace("n_", "").replace("_", " "),
                          *(f"{int(results[s].get(count, 0))}" for s in splits))
    out = console()
    out.print(table)
    if results.get("n_item_parameters") is not None:
        line = f"item-side parameters: {results['n_item_parameters']:,}"
        tokens = results.get("tokenizer") or {}
        if tokens:
            distortion = ", ".join(f"{m} {d:.2f}" for m, d in tokens.get("distortion", {}).items())
            line += (f" (MOTOR: {tokens.get('tokens_per_item')} tokens per item from a vocabulary of "
                     f"{tokens.get('vocabulary')}; quantisation distortion {distortion})")
        out.print(line, markup=False)
    new = results.get("new_items")
    if new:
        line = f"new items: {new['n_new_items']} ranked for every user -> {new['saved']}"
        if new.get("metrics"):
            m = new["metrics"]
            line += "; " + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if "@" in k and not k.startswith("cold"))
        out.print(line, markup=False)
    if results.get("lis"):
        print_lis(results["lis"], title="LIS / AIS (post-training, reconstructed definition: see docs/topn.md)")
    if run_dir is not None:
        out.print(f"run folder: {run_dir}", markup=False)


def print_lis(lis: dict[str, Any], *, title: str) -> None:
    """The LIS callback's report: base AUC, AIS per representation, LIS per preference dataset, AIS/LIS ratios."""
    out = console()
    if lis.get("error"):
        out.print(f"LIS: not computed ({lis['error']})", markup=False)
        return
    base = lis["base"]
    k = max((int(name.split("@")[1]) for name in base if name.startswith("recall@")), default=None)
    table = Table(title=title, title_justify="left")
    for col, justify in (("added signal", "left"), ("", "left"), ("AUC", "right"), ("gain", "right"),
                         (f"R@{k}", "right"), (f"ΔR@{k}", "right"), (f"N@{k}", "right")):
        table.add_column(col, justify=justify)
    table.add_row("(recommender)", "", f"{base['auc']:.4f}", "", f"{base.get(f'recall@{k}', 0):.4f}", "",
                  f"{base.get(f'ndcg@{k}', 0):.4f}")
    for kind, gain in (("representations", "ais"), ("preferences", "lis")):
        for name, row in lis.get(kind, {}).items():
            table.add_row(name, gain.upper(), f"{row['auc']:.4f}", f"{row[gain]:+.4f}",
                          f"{row.get(f'recall@{k}', 0):.4f}", f"{row.get(f'gain/recall@{k}', 0):+.4f}",
                          f"{row.get(f'ndcg@{k}', 0):.4f}")
    out.print(table)
    preferences = {name: row["lis"] for name, row in lis.get("preferences", {}).items()}
    ceiling = "test" if "test" in preferences else max(preferences, key=preferences.get, default=None)
    ratios = [f"{r} {row[ceiling]:.2f}" for r, row in lis.get("ratios", {}).items()
              if ceiling is not None and row.get(ceiling) is not None]
    if ratios:
        out.print(f"AIS / LIS({ceiling}): " + ", ".join(ratios), markup=False)
    protocol = lis.get("protocol", {})
    out.print(f"AUC over {protocol.get('negatives_per_positive')} sampled negatives per held-out positive; light ranker "
              f"fitted on {protocol.get('fit_split')}, measured on {protocol.get('eval_split')}; "
              f"{lis.get('wall_time_s', lis.get('time_s'))} s", markup=False)
    for name, why in lis.get("skipped", {}).items():
        out.print(f"skipped {name}: {why}", markup=False)


def print_feature_quality(reports: dict[str, Any], *, title: str) -> None:
    """One row per feature set: zero-shot and item-CF Recall/NDCG at the largest K, masked-modality zero-shot."""
    out = console()
    first = next(iter(reports.values()), None)
    if first is None:
        return
    k = max(int(name.split("@")[1]) for name in first["zero_shot"] if name.startswith("recall@"))
    table = Table(title=title, title_justify="left")
    for col in ("features", f"zero-shot R@{k}", f"zero-shot N@{k}", f"item-CF R@{k}", f"item-CF N@{k}",
                f"masked zero-shot R@{k}"):
        table.add_column(col, justify="left" if col == "features" else "right")
    for name, r in reports.items():
        masked = ", ".join(f"-{m} {v[f'recall@{k}']:.4f}" for m, v in r.get("masked", {}).items()) or "–"
        table.add_row(name, f"{r['zero_shot'][f'recall@{k}']:.4f}", f"{r['zero_shot'][f'ndcg@{k}']:.4f}",
                      f"{r['item_cf'][f'recall@{k}']:.4f}", f"{r['item_cf'][f'ndcg@{k}']:.4f}", masked)
    out.print(table)


def print_error(exc: RecxError) -> None:
    """``error: <message> (file ..., field ...)`` + ``fix: ...``, the message printed verbatim: user values such as
    ``dataset.modalities=[text]`` or ``pip install -e '.[text]'`` are escaped, never read as rich markup."""
    console(stderr=True).print(f"[bold red]error:[/] {escape(exc.render())}", markup=True, highlight=False)


def is_debug() -> bool:
    import os

    return os.environ.get("RECX_DEBUG", "") not in ("", "0", "false")


def fail(exc: RecxError) -> None:
    """Print a user error and exit 2 (or re-raise with its traceback when RECX_DEBUG=1)."""
    if is_debug():
        raise exc
    print_error(exc)
    sys.exit(2)


class _Tee:
    """A text stream that writes to the terminal stream and, without colour codes, to a log file."""

    _ANSI = None

    def __init__(self, stream, log) -> None:
        import re

        self._stream, self._log = stream, log
        if _Tee._ANSI is None:
            _Tee._ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")

    _REDRAW = None

    def write(self, text: str) -> int:
        import re

        n = self._stream.write(text)
        if _Tee._REDRAW is None:
            _Tee._REDRAW = re.compile(r"\x1b\[\d*[AK]")  # cursor-up / erase-line: a live progress redraw
        plain = "" if _Tee._REDRAW.search(text) else _Tee._ANSI.sub("", text)
        if plain.strip("\r"):
            try:
                self._log.write(plain)
                self._log.flush()
            except (OSError, ValueError):  # a full disk or a closed log must not stop the run
                pass
        return n if n is not None else len(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str):  # isatty, fileno, encoding, ... of the terminal stream
        return getattr(self._stream, name)


class tee_output:
    """``with tee_output(run_dir / "train.log"):`` -- what the run prints also goes to its log file (appended)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._saved = None
        self._log = None

    def __enter__(self) -> "tee_output":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in __exit__
        except OSError:
            return self
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = _Tee(sys.stdout, self._log), _Tee(sys.stderr, self._log)
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved
        if self._log is not None:
            self._log.close()
