"""ECG datasets as tokenized sentences: PTB-XL (official download), any WFDB folder, and generated ECGs.

Every source yields records ``[N, C, L]`` at its own rate plus labels and split codes; :func:`prepare_ecg` keeps the
source's ``used_channels`` (any subset of the 12 standard leads, by name or index, as the official
``--used_channels``; the tokens' lead ids are ``index + 1``), preprocesses (100 Hz; the source's ``bandpass`` when it
has one), cuts long records into 10-s windows, tokenizes (:mod:`recx.ecg.qrs`; beats found by the source's
``detector``, default the official XQRS) with a progress bar, and caches ``tokens/leads/times/mask/labels/split``
under ``<data_dir>/<name>/prepared/<key>/ecg.npz`` (the key follows the source's options, not the files: after
changing the raw files, prepare again with ``--force``).

* **PTB-XL** (``ptbxl_database.csv`` + ``scp_statements.csv`` + ``records100/``): labels of one ``task`` —
  ``superclass`` (5: diagnostic_class), ``subclass`` (23: diagnostic_subclass), ``form`` (19), ``rhythm`` (12) — from
  each record's ``scp_codes`` (all listed statements, as the PTB-XL benchmark's ``aggregate_diagnostic``); records
  without a label for the task are dropped; ``strat_fold`` 1–8 train, 9 valid, 10 test; one global mean/std from the
  training records (the benchmark's ``StandardScaler``), applied before tokenizing. **No band-pass** by default: the
  official preparation is the PTB-XL benchmark's (``records100`` + standard scaling, nothing else);
  ``bandpass=[0.67, 40]`` adds the MIMIC-style filter.
* **WFDB folder**: every ``*.hea`` below a folder, no labels (pretraining), 10-s windows, a seeded 80/10/10 split;
  band-passed 0.67–40 Hz by default (the official MIMIC-IV-ECG preparation), ``bandpass=null`` to skip.
* **Generated** (:mod:`recx.ecg.synthetic`): rhythm labels, 60/20/20; band-passed by default (as before).

Leads: PTB-XL and generated records hold the 12 standard leads in the order :data:`LEADS`; a WFDB folder's rows are
taken in file order and ``used_channels`` indexes them.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from recx.data.download import RemoteFile
from recx.errors import ConfigError, DataError, require_file

TASKS = ("superclass", "subclass", "form", "rhythm")
SPLITS = ("train", "valid", "test")
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")  # the official used_channels order


@dataclass
class ECGSplit:
    tokens: torch.Tensor  # [N, L, 96] float32
    leads: torch.Tensor  # [N, L] int64
    times: torch.Tensor  # [N, L] int64
    mask: torch.Tensor  # [N, L] bool
    labels: torch.Tensor  # [N, C] float32 (C may be 0)

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"tokens": self.tokens[index], "leads": self.leads[index], "times": self.times[index],
                "mask": self.mask[index], "labels": self.labels[index]}


@dataclass
class ECGData:
    name: str
    train: ECGSplit
    valid: ECGSplit
    test: ECGSplit
    label_names: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def stats(self) -> dict:
        out: dict[str, Any] = {"labels": self.label_names}
        for s in SPLITS:
            part = getattr(self, s)
            out[s] = {"sentences": len(part), "tokens_per_sentence": round(float(part.mask.sum(1).float().mean()), 1)
                      if len(part) else 0}
        return out


# ---------------------------------------------------------------------------------------------------------- sources
def split_codes(n: int, train_end: float, valid_end: float, seed: int) -> np.ndarray:
    """Split code per record (0 train, 1 valid, 2 test) from a seeded permutation: the first ``train_end`` share of it
    trains, up to ``valid_end`` validates, the rest tests."""
    split = np.zeros(n, np.int64)
    order = np.random.default_rng(seed).permutation(n)
    split[order[int(train_end * n):int(valid_end * n)]] = 1
    split[order[int(valid_end * n):]] = 2
    return split



class Tokenizing:
    """What every ECG source shares: which leads become words, the band-pass, and the beat detector.

    ``used_channels``: ``None`` (all rows) or a list of lead names (:data:`LEADS`) or 0-based indices — the official
    ``--used_channels`` (its reduced-lead runs use ``[I]``, ``[I, II, V2]``, ``[I, II, III, aVR, aVL, aVF]``).
    ``bandpass``: ``[low, high]`` Hz or ``None``. ``detector``: ``xqrs`` (official, wfdb) or ``pan_tompkins``."""

    default_bandpass: tuple[float, float] | None = (0.67, 40.0)

    def _tokenizing(self, channels: list | None, bandpass: list | tuple | None | str, detector: str) -> None:
        from recx.ecg.qrs import DETECTORS

        if detector not in DETECTORS:
            raise ConfigError(f"unknown beat detector '{detector}'", field="dataset.source.detector",
                              fix=f"one of {', '.join(DETECTORS)}")
        if bandpass == "default":
            bandpass = self.default_bandpass
        if bandpass is not None:
            band = [float(b) for b in bandpass]
            if len(band) != 2 or not 0 < band[0] < band[1]:
                raise ConfigError(f"bandpass must be [low, high] Hz with 0 < low < high, got {list(bandpass)}",
                                  field="dataset.source.bandpass", fix="e.g. [0.67, 40], or null for no filter")
            bandpass = tuple(band)
        self.used_channels = None if channels is None else [self._lead_index(v) for v in channels]
        if self.used_channels is not None and (not self.used_channels
                                               or len(set(self.used_channels)) != len(self.used_channels)):
            raise ConfigError(f"used_channels must be distinct and not empty, got {list(channels)}",
                              field="dataset.source.used_channels", fix="e.g. [I], [I, II, V2] or null for all")
        self.bandpass, self.detector = bandpass, detector

    @staticmethod
    def _lead_index(value) -> int:
        if isinstance(value, str) and not value.lstrip("-").isdigit():
            names = {n.lower(): i for i, n in enumerate(LEADS)}
            if value.lower() not in names:
                raise ConfigError(f"unknown lead '{value}'", field="dataset.source.used_channels",
                                  fix=f"lead names: {', '.join(LEADS)} (or 0-based indices)")
            return names[value.lower()]
        index = int(value)
        if index < 0:
            raise ConfigError(f"lead index {index} is negative", field="dataset.source.used_channels",
                              fix="0-based indices: 0 = I ... 11 = V6")
        return index

    def tokenizing_key(self) -> dict:
        return {"used_channels": self.used_channels, "bandpass": self.bandpass, "detector": self.detector}

    def channel_rows(self, n_rows: int) -> np.ndarray:
        """The rows to keep (0-based); their lead ids are these + 1."""
        if self.used_channels is None:
            return np.arange(n_rows)
        if max(self.used_channels) >= n_rows:
            raise ConfigError(f"lead index {max(self.used_channels)} but the records have {n_rows} leads",
                              field="dataset.source.used_channels", fix=f"indices 0..{n_rows - 1}")
        return np.asarray(self.used_channels, dtype=np.int64)


class SyntheticECG(Tokenizing):
    name = "synthetic_ecg"
    instructions = "generated data: nothing to download"

    def __init__(self, n_records: int = 300, leads: int = 12, seconds: float = 10.0, noise: float = 0.02,
                 seed: int = 0, used_channels: list | None = None, bandpass: list | None | str = "default",
                 detector: str = "xqrs") -> None:
        self.kwargs = dict(n=n_records, leads=leads, seconds=seconds, noise=noise, seed=seed)
        self._tokenizing(used_channels, bandpass, detector)

    def cache_key(self) -> dict:
        return {**self.kwargs, **self.tokenizing_key()}

    def file_sets(self) -> list:
        return []

    def records(self, raw_dir: Path):
        from recx.ecg.synthetic import CLASSES, generate_ecgs

        signals, labels, _, _ = generate_ecgs(fs=100.0, **self.kwargs)
        return signals, 100.0, labels, split_codes(len(signals), 0.6, 0.8, self.kwargs["seed"]), list(CLASSES), {}


class PTBXL(Tokenizing):
    name = "ptbxl"
    default_bandpass = None  # the official PTB-XL preparation: records100 + standard scaling, no filter

    def __init__(self, task: str = "superclass", sampling: int = 100, normalize: bool = True,
                 used_channels: list | None = None, bandpass: list | None | str = "default",
                 detector: str = "xqrs") -> None:
        self._tokenizing(used_channels, bandpass, detector)
        if task not in TASKS:
            raise ConfigError(f"unknown PTB-XL task '{task}'", field="dataset.source.task", fix=f"one of {TASKS}")
        if sampling not in (100, 500):
            raise ConfigError("PTB-XL has records100 and records500", field="dataset.source.sampling")
        self.task, self.sampling, self.normalize = task, sampling, normalize
        self.instructions = ("download PTB-XL 1.0.3 from https://physionet.org/content/ptb-xl/ and run `recx data "
                             "prepare ptbxl --from <folder with ptbxl_database.csv, scp_statements.csv, records100/>`")

    def cache_key(self) -> dict:
        return {"task": self.task, "sampling": self.sampling, "normalize": self.normalize, **self.tokenizing_key()}

    def file_sets(self) -> list[list[RemoteFile]]:
        return [[RemoteFile("ptbxl_database.csv", None, mirror="ptb-xl/ptbxl_database.csv"),
                 RemoteFile("scp_statements.csv", None, mirror="ptb-xl/scp_statements.csv")]]

    def labels_of(self, raw_dir: Path):
        import polars as pl

        db_path = require_file(raw_dir / "ptbxl_database.csv", what="PTB-XL database", fix=self.instructions)
        statements = pl.read_csv(require_file(raw_dir / "scp_statements.csv", what="PTB-XL statements",
                                              fix=self.instructions), infer_schema_length=0)
        statements = statements.rename({statements.columns[0]: "code"})
        column, flag = {"superclass": ("diagnostic_class", "diagnostic"),
                        "subclass": ("diagnostic_subclass", "diagnostic"), "form": ("code", "form"),
                        "rhythm": ("code", "rhythm")}[self.task]
        if flag not in statements.columns or column not in statements.columns:
            raise DataError(f"scp_statements.csv lacks '{flag}' / '{column}'", path=raw_dir / "scp_statements.csv",
                            fix="use the official PTB-XL file")
        chosen = statements.filter(pl.col(flag).cast(pl.Float64, strict=False) == 1.0)
        mapping = {c: v for c, v in zip(chosen["code"].to_list(), chosen[column].to_list()) if v}
        names = sorted(set(mapping.values()))
        db = pl.read_csv(db_path, infer_schema_length=0)
        needed = {"scp_codes", "strat_fold", f"filename_{'lr' if self.sampling == 100 else 'hr'}"}
        if needed - set(db.columns):
            raise DataError(f"ptbxl_database.csv lacks {sorted(needed - set(db.columns))}", path=db_path,
                            fix="use the official PTB-XL file")
        labels, keep = [], []
        for row, codes in enumerate(db["scp_codes"].to_list()):
            try:
                parsed = ast.literal_eval(codes)
            except (ValueError, SyntaxError):
                raise DataError(f"row {row + 2}: unreadable scp_codes {codes!r}", path=db_path,
                                fix="use the official PTB-XL file") from None
            classes = {mapping[c] for c in parsed if c in mapping}
            if classes:
                vec = np.zeros(len(names), np.float32)
                vec[[names.index(c) for c in classes]] = 1.0
                labels.append(vec)
                keep.append(row)
        folds = db["strat_fold"].cast(pl.Int64).to_numpy()[keep]
        split = np.where(folds == 10, 2, np.where(folds == 9, 1, 0))
        files = db[f"filename_{'lr' if self.sampling == 100 else 'hr'}"].to_list()
        return [files[i] for i in keep], np.stack(labels) if labels else np.zeros((0, len(names))), split, names

    def records(self, raw_dir: Path):
        from recx.console import console
        from recx.ecg.wfdb import read_record

        files, labels, split, names = self.labels_of(raw_dir)
        signals = []
        from rich.progress import Progress

        with Progress(console=console(stderr=True), transient=True) as bar:
            task = bar.add_task("reading PTB-XL records", total=len(files))
            for f in files:
                signals.append(read_record(raw_dir / f)[0])
                bar.advance(task)
        signals = np.stack(signals) if signals else np.zeros((0, 12, self.sampling * 10), np.float32)
        meta = {"task": self.task, "records": len(files)}
        if self.normalize and len(signals):
            train = signals[split == 0]
            mean, std = float(train.mean()), float(train.std())
            signals = (signals - mean) / max(std, 1e-8)
            meta["standardize"] = {"mean": mean, "std": std, "fit_on": "train folds 1-8"}
        return signals, float(self.sampling), labels, split, names, meta


class WFDBFolder(Tokenizing):
    """Every WFDB record below ``raw_dir`` (unlabelled; for pretraining), 10-s windows, seeded 80/10/10 split."""

    name = "wfdb_folder"
    instructions = "pass --from <folder of WFDB records (.hea + .dat)>"

    def __init__(self, seed: int = 0, max_records: int | None = None, used_channels: list | None = None,
                 bandpass: list | None | str = "default", detector: str = "xqrs") -> None:
        self.seed, self.max_records = seed, max_records
        self._tokenizing(used_channels, bandpass, detector)

    def cache_key(self) -> dict:
        return {"seed": self.seed, "max_records": self.max_records, **self.tokenizing_key()}

    def file_sets(self) -> list:
        return []

    def records(self, raw_dir: Path):
        from recx.ecg.qrs import FS, preprocess, windows_of
        from recx.ecg.wfdb import read_record

        headers = sorted(Path(raw_dir).rglob("*.hea"))[: self.max_records]
        if not headers:
            raise DataError("no WFDB header (*.hea) in the folder", path=raw_dir, fix=self.instructions)
        windows = []
        for h in headers:
            signal, header = read_record(h.with_suffix(""))
            windows.append(windows_of(preprocess(signal, header.fs, band=self.bandpass), FS))
        leads = min(w.shape[1] for w in windows)
        signals = np.concatenate([w[:, :leads] for w in windows])
        n = len(signals)
        return signals, float(FS), np.zeros((n, 0), np.float32), split_codes(n, 0.8, 0.9, self.seed), [], {
            "records": len(headers), "preprocessed": True}


# ---------------------------------------------------------------------------------------------------------- prepare
def prepare_ecg(source: Any, data_dir: str | Path | None = None, *, from_dir: str | Path | None = None,
                force: bool = False, log: Callable[[str], None] = lambda m: None) -> ECGData:
    from recx.data.interactions import atomic_write
    from recx.data.prepare import default_data_dir, describe, download, raw_dir_of
    from recx.ecg.qrs import FS, preprocess, tokenize_records

    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if from_dir is not None:
        if source.file_sets():
            download(source, data_dir, from_dir=from_dir, log=log)  # the index files, checked and kept
        raw_dir = Path(from_dir)  # records are read where the user keeps them (PTB-XL: 21,799 record files)
    else:
        raw_dir = raw_dir_of(source, data_dir)
    key = hashlib.sha256(json.dumps({"v": 2, "source": describe(source)}, sort_keys=True, default=str)
                         .encode()).hexdigest()[:12]
    out_dir = data_dir / source.name / "prepared" / key
    path = out_dir / "ecg.npz"
    if force or not path.is_file():
        signals, fs, labels, split, names, meta = source.records(raw_dir)
        used = source.channel_rows(signals.shape[1])
        signals = signals[:, used]
        if not meta.get("preprocessed"):
            signals = preprocess(signals, fs, band=source.bandpass)
        log(f"tokenizing {len(signals)} records of {source.name} (leads {[int(u) for u in used]}, beats by "
            f"{source.detector})")
        tokens = tokenize_records(signals, FS, lead_ids=used + 1, detector=source.detector)
        meta = {**meta, "used_channels": [int(u) for u in used], "bandpass": source.bandpass,
                "detector": source.detector}
        out_dir.mkdir(parents=True, exist_ok=True)
        payload = {**tokens, "labels": labels.astype(np.float32), "split": split}

        def write(f):
            np.savez(f, **payload)

        atomic_write(path, write)
        (out_dir / "meta.json").write_text(json.dumps({"label_names": names, **meta,
                                                        "beats_per_record": float(tokens["beats"].mean())}))
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads((out_dir / "meta.json").read_text())
    except Exception as exc:  # noqa: BLE001 - a corrupt cache
        raise DataError(f"prepared ECG data is unreadable ({exc.__class__.__name__})", path=path,
                        fix="rerun `recx data prepare <dataset> --force`") from exc
    parts = {}
    for code, name in enumerate(SPLITS):
        sel = arrays["split"] == code
        parts[name] = ECGSplit(*(torch.from_numpy(arrays[k][sel]) for k in ("tokens", "leads", "times", "mask",
                                                                           "labels")))
    return ECGData(source.name, label_names=meta.pop("label_names"), meta=meta, **parts)
