"""Learning-to-rank dataset sources and :func:`prepare_ltr`, the LTR counterpart of :func:`recx.data.prepare.prepare`.

A source follows the duck-typed protocol of :mod:`recx.data.sources` as far as fetching goes (``name``,
``instructions``, ``file_sets()``, ``cache_key()``), so :func:`recx.data.prepare.download` fetches its files with the
same checksums, ``RECX_DATA_MIRROR`` and ``--from`` rules. Instead of interactions, ``read(raw_dir) -> LTRData``
returns raw (unnormalised) splits; :func:`prepare_ltr` normalises them per query (``source.normalization``) and
caches the result under ``<data_dir>/<name>/prepared/<key>/`` (``ltr.pt`` + ``meta.json``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from recx.data.download import RemoteFile, is_present
from recx.data.prepare import default_data_dir, describe, download, unverified_fingerprint
from recx.errors import ConfigError, DataError
from recx.ltr.data import NORMALIZATIONS, PREPARED_FILE, LTRData, LTRSplit, normalize_per_query
from recx.data.svmlight import read_svmlight
from recx.ltr.synthetic import SyntheticLTR

LTR_PREPARE_VERSION = 1  # bump when the prepared layout or the reading rules change
MSLR_URL = "https://www.microsoft.com/en-us/research/project/mslr/"
MSLR_FEATURES = 136
MSLR_SAMPLE = {  # first 5,000 lines of Fold1 (rankeval's test data); the last query of each is cut off
    "train": ("msn1.fold1.train.5k.txt", "sha256:6d1721de961a35fbaef7085dc5b41e2940f0ddb04bab5f7a8566cf7db4158fa6"),
    "test": ("msn1.fold1.test.5k.txt", "sha256:13d3c638edd23e482c38f4316c2680c938c2eaedbe096970ab30a48e364463d3"),
}
LAYOUTS = ("auto", "sample", "official")


def _check_normalization(normalization: str) -> str:
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"unknown normalization '{normalization}'", field="dataset.source.normalization",
                          fix=f"choose one of {', '.join(NORMALIZATIONS)}")
    return normalization


def present_file_set(source: Any, raw_dir: Path) -> list[RemoteFile] | None:
    """The first of the source's file sets that is complete (and verified) in ``raw_dir``: the one that gets read."""
    return next((files for files in source.file_sets() if all(is_present(f, raw_dir) for f in files)), None)


def carve_validation(split: LTRSplit, fraction: float, seed: int) -> tuple[LTRSplit, LTRSplit]:
    """``(train, valid)``: a seeded ``fraction`` of the queries (at least one, whole queries) becomes validation;
    both keep the file order of their queries."""
    order = np.random.default_rng(seed).permutation(split.n_queries)
    n_valid = max(1, round(fraction * split.n_queries))
    return split.subset(np.sort(order[n_valid:])), split.subset(np.sort(order[:n_valid]))


class MSLR10K:
    """MSLR-WEB10K (Microsoft Learning to Rank): 10,000 queries, 1.2M judged URLs, 136 features, labels 0-4.

    Two raw layouts. ``official``: ``Fold{k}/train.txt``, ``vali.txt``, ``test.txt`` from the manual download at
    :data:`MSLR_URL` (no published checksum, so unverified; the cache key follows their size and mtime instead),
    read as they are. ``sample``: the first 5,000 lines of Fold1 train and test (``RECX_DATA_MIRROR/
    mslr-web10k-sample/``, sha256-checked), whose last query is cut off and dropped with a warning; the validation
    split is a seeded ``valid_fraction`` of the train queries. ``auto`` reads the official files when they are there,
    else the sample. ``normalization`` is applied per query by :func:`prepare_ltr`.

    ``meta["popularity_column"]`` = 134 (0-based), i.e. feature 135 "url click count" of the MSLR feature list; it is
    normalised like the other features.
    """

    name = "mslr10k"
    raw_columns: tuple[int, ...] = ()
    popularity_column = 134

    def __init__(self, fold: int = 1, layout: str = "auto", normalization: str = "zscore",
                 valid_fraction: float = 0.2, seed: int = 0) -> None:
        if layout not in LAYOUTS:
            raise ConfigError(f"unknown MSLR layout '{layout}'", field="dataset.source.layout",
                              fix=f"choose one of {', '.join(LAYOUTS)}")
        if int(fold) not in range(1, 6):
            raise ConfigError(f"MSLR-WEB10K has folds 1-5, got {fold}", field="dataset.source.fold")
        if layout == "sample" and int(fold) != 1:
            raise ConfigError("the MSLR sample holds Fold1 only", field="dataset.source.fold",
                              fix="use fold=1, or layout=official with the downloaded files")
        if not 0.0 < valid_fraction < 1.0:
            raise ConfigError(f"valid_fraction must be in (0, 1), got {valid_fraction}",
                              field="dataset.source.valid_fraction")
        self.fold = int(fold)
        self.layout = layout
        self.normalization = _check_normalization(normalization)
        self.valid_fraction = float(valid_fraction)
        self.seed = int(seed)
        self.instructions = (
            f"MSLR-WEB10K is a manual download: get MSLR-WEB10K.zip from {MSLR_URL}, unzip it and run "
            f"`recx data download mslr10k --from <unzipped folder>/Fold{self.fold}`. For development, the 5,000-line "
            "sample of Fold1 is read from RECX_DATA_MIRROR/mslr-web10k-sample/ (layout=sample or auto)."
        )

    def cache_key(self) -> dict:
        return {"fold": self.fold, "layout": self.layout, "normalization": self.normalization,
                "valid_fraction": self.valid_fraction, "seed": self.seed}

    def _official(self) -> list[RemoteFile]:
        # the fold is in the raw name: all folds share one raw folder and these files have no checksum to tell them
        # apart; `--from <Fold k folder>` finds them by their plain name, a mirror under MSLR-WEB10K/Fold<k>/
        return [RemoteFile(f"fold{self.fold}.{part}.txt", None, mirror=f"MSLR-WEB10K/Fold{self.fold}/{part}.txt")
                for part in ("train", "vali", "test")]

    def _sample(self) -> list[RemoteFile]:
        return [RemoteFile(name, checksum, mirror=f"mslr-web10k-sample/{name}")
                for name, checksum in MSLR_SAMPLE.values()]

    def file_sets(self) -> list[list[RemoteFile]]:
        if self.layout == "official" or (self.layout == "auto" and self.fold != 1):
            return [self._official()]
        if self.layout == "sample":
            return [self._sample()]
        return [self._official(), self._sample()]

    def read(self, raw_dir: Path) -> LTRData:
        raw_dir = Path(raw_dir)
        files = present_file_set(self, raw_dir)
        if files is None:
            raise DataError(f"no complete set of MSLR-WEB10K files in {raw_dir}", path=raw_dir,
                            fix=self.instructions)
        layout = "sample" if files[0].name == MSLR_SAMPLE["train"][0] else "official"
        infos: dict[str, dict] = {}

        def read(split: str, name: str, drop_last: bool):
            infos[split] = {}
            table = read_svmlight(raw_dir / name, MSLR_FEATURES, drop_last_query=drop_last, info=infos[split])
            return LTRSplit(table.features, table.labels, table.offsets, table.qids)

        if layout == "official":
            train, valid, test = (read(s, f.name, False) for s, f in zip(("train", "valid", "test"), files))
        else:
            full = read("train", files[0].name, True)
            test = read("test", files[1].name, True)
            train, valid = carve_validation(full, self.valid_fraction, self.seed)
        meta = {"layout": layout, "fold": self.fold, "files": [f.name for f in files], "reader": infos,
                "dropped_queries": {s: i["dropped"] for s, i in infos.items() if "dropped" in i},
                "popularity_column": self.popularity_column}
        return LTRData(name=self.name, train=train, valid=valid, test=test, meta=meta)


class LETORFolder:
    """Any LETOR/SVMlight dataset laid out as train / validation / test files (Yahoo! LTR Set 1, Istella-S, Istella
    full, MSLR-WEB30K, ...): ``conf/dataset/<name>.yaml`` names the files and the feature count.

    The files have no published checksum (the user supplies them with ``--from <folder>``), so they are unverified
    and the cache follows their size and mtime. Without a ``valid`` file the validation split is a seeded
    ``valid_fraction`` of the train queries (whole queries).
    """

    raw_columns: tuple[int, ...] = ()

    def __init__(self, name: str, train: str, test: str, n_features: int, valid: str | None = None,
                 normalization: str = "zscore", valid_fraction: float = 0.2, seed: int = 0,
                 url: str | None = None) -> None:
        self.name, self.n_features = name, int(n_features)
        self.files = {"train": train, "valid": valid, "test": test}
        self.normalization = _check_normalization(normalization)
        self.valid_fraction, self.seed = float(valid_fraction), int(seed)
        self.instructions = (f"download {name} from its owner{f' ({url})' if url else ''}, then run `recx data download "
                             f"{name} --from <folder holding {', '.join(f for f in self.files.values() if f)}>`")

    def cache_key(self) -> dict:
        return {"files": self.files, "n_features": self.n_features, "normalization": self.normalization,
                "valid_fraction": self.valid_fraction, "seed": self.seed}

    def file_sets(self) -> list[list[RemoteFile]]:
        return [[RemoteFile(Path(f).name, None, mirror=f"{self.name}/{f}") for f in self.files.values() if f]]

    def read(self, raw_dir: Path) -> LTRData:
        raw_dir = Path(raw_dir)
        infos: dict[str, dict] = {}

        def read(split: str) -> LTRSplit:
            infos[split] = {}
            table = read_svmlight(raw_dir / Path(self.files[split]).name, self.n_features, info=infos[split])
            return LTRSplit(table.features, table.labels, table.offsets, table.qids)

        train, test = read("train"), read("test")
        if self.files["valid"]:
            valid = read("valid")
        else:
            train, valid = carve_validation(train, self.valid_fraction, self.seed)
        return LTRData(name=self.name, train=train, valid=valid, test=test,
                       meta={"files": self.files, "reader": infos})


class SyntheticLTRSource:
    """:class:`~recx.ltr.synthetic.SyntheticLTR` as a dataset source (nothing to download).

    The popularity column (the last one) is kept raw by the normalisation so it stays in ``[0, 1]``.
    """

    name = "synthetic_ltr"
    instructions = "generated data: nothing to download"

    def __init__(self, n_queries: int = 200, docs_per_query: Sequence[int] = (20, 60), n_features: int = 32,
                 n_relevant_features: int = 8, max_label: int = 4, noise: float = 0.5, seed: int = 0,
                 normalization: str = "zscore") -> None:
        self.generator = SyntheticLTR(n_queries, docs_per_query, n_features, n_relevant_features, max_label, noise,
                                      seed)
        self.normalization = _check_normalization(normalization)
        self.raw_columns = (self.generator.popularity_column,)

    def cache_key(self) -> dict:
        return {**self.generator.cache_key(), "normalization": self.normalization}

    def file_sets(self) -> list[list[RemoteFile]]:
        return []

    def read(self, raw_dir: Path) -> LTRData:
        return self.generator.generate()


# ---------------------------------------------------------------------------------------------------------- prepare
def ltr_cache_key(source: Any, raw_dir: Path) -> str:
    """Hash of everything that changes the prepared result: the source's options and which raw files it reads."""
    files = present_file_set(source, raw_dir) if source.file_sets() else []
    payload = {"v": LTR_PREPARE_VERSION, "source": describe(source),
               "files": [f.name for f in files or []],
               "unverified_raw_files": unverified_fingerprint(source, raw_dir)}
    blob = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def prepare_ltr(source: Any, data_dir: str | Path | None = None, *, from_dir: str | Path | None = None,
                mirror: str | Path | None = None, force: bool = False,
                log: Callable[[str], None] = lambda m: None) -> LTRData:
    """Fetch, read, normalise per query and cache an LTR dataset; later calls load the cache.

    The raw files are fetched (or found present) first, because which file set is present decides what is read
    and so belongs in the cache key; for checksummed files that costs one hash per call.
    """
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    raw_dir = download(source, data_dir, from_dir=from_dir, mirror=mirror, log=log)
    out_dir = Path(data_dir) / source.name / "prepared" / ltr_cache_key(source, raw_dir)
    if force or not (out_dir / PREPARED_FILE).is_file():
        log(f"reading {source.name} from {raw_dir}")
        data = source.read(raw_dir)
        method = getattr(source, "normalization", "none")
        keep = tuple(getattr(source, "raw_columns", ()))
        for split in ("train", "valid", "test"):
            setattr(data, split, normalize_per_query(data.split(split), method, exclude=keep))
        data.meta.update(source=describe(source), normalization={"method": method, "per": "query",
                                                                  "raw_columns": list(keep)},
                         raw_dir=str(raw_dir), prepare_version=LTR_PREPARE_VERSION)
        for split, dropped in data.meta.get("dropped_queries", {}).items():
            log(f"{split}: dropped the cut-off last query {dropped['qid']} ({dropped['docs']} docs)")
        data.validate().save(out_dir)
        log(f"prepared {source.name}: {data.stats()} -> {out_dir}")
    return LTRData.load(out_dir)
