"""Dataset sources: which raw files a dataset needs, how to read them, and how to build its item modalities.

A source binds a file format reader (``recbole``, ``grouplens``, ``mmrec``, ``lattice``) to the concrete files of one
dataset, with checksums and official locations. Sources are plain classes configured from ``conf/dataset/*.yaml``
(``source: {_target_: recx.data.sources.MovieLens100K, ...}``); :mod:`recx.data.prepare` drives them.

The protocol (duck-typed; :class:`~recx.data.synthetic.SyntheticMM` follows it too):

* ``name``, ``modalities`` (what :meth:`feature` can build), ``instructions`` (how a person gets the files);
* ``file_sets() -> list[list[RemoteFile]]``: alternative complete sets of raw files, preferred first;
* ``read(raw_dir) -> RawDataset``;
* ``feature(modality, raw_dir, item_ids) -> np.ndarray [len(item_ids), d]`` rows in the given (internal) item order;
* ``cache_key() -> dict``: everything that changes the prepared result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from recx.data.download import RemoteFile
from recx.data.grouplens import ML100K_GENRES
from recx.errors import DataError

GROUPLENS_100K_ZIP = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
GROUPLENS_100K_MD5 = "md5:0e33842e24a9c977be4e0107933c0723"  # published by GroupLens next to the archive


class MovieLens100K:
    """MovieLens-100K: 943 users, 1,682 movies, 100,000 ratings (all kept as implicit interactions by default).

    Two raw layouts are accepted: RecBole atomic files (``ml-100k.inter`` + ``ml-100k.item``, sha256-checked, what
    ``RECX_DATA_MIRROR`` holds) or the official GroupLens archive (``u.data`` + ``u.item`` extracted from
    ``ml-100k.zip``, whose published MD5 is checked). Modalities: ``genre`` (19-d multi-hot) and ``text`` (MiniLM
    embedding of "title. Genres: ..."; needs the ``text`` extra).
    """

    name = "ml100k"
    modalities = ("genre", "text")
    instructions = (
        f"set RECX_DATA_MIRROR to a folder holding ml-100k/ml-100k.inter and ml-100k/ml-100k.item (RecBole atomic "
        f"files), pass --from <folder>, or allow the download of {GROUPLENS_100K_ZIP}"
    )

    def __init__(self, min_rating: float | None = None, text_encoder: str = "all-MiniLM-L6-v2") -> None:
        self.min_rating = min_rating
        self.text_encoder = text_encoder

    def cache_key(self) -> dict:
        return {"min_rating": self.min_rating}

    def file_sets(self) -> list[list[RemoteFile]]:
        atomic = [
            RemoteFile("ml-100k.inter",
                       "sha256:4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
                       mirror="ml-100k/ml-100k.inter"),
            RemoteFile("ml-100k.item",
                       "sha256:51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
                       mirror="ml-100k/ml-100k.item"),
        ]
        official = [
            RemoteFile("u.data", None, url=GROUPLENS_100K_ZIP, member="ml-100k/u.data",
                       archive_checksum=GROUPLENS_100K_MD5),
            RemoteFile("u.item", None, url=GROUPLENS_100K_ZIP, member="ml-100k/u.item",
                       archive_checksum=GROUPLENS_100K_MD5),
        ]
        return [atomic, official]

    def read(self, raw_dir: Path):
        raw_dir = Path(raw_dir)
        if (raw_dir / "ml-100k.inter").is_file():
            from recx.data.recbole import read_recbole_interactions

            raw = read_recbole_interactions(raw_dir / "ml-100k.inter", raw_dir / "ml-100k.item")
        else:
            from recx.data.grouplens import read_grouplens_100k

            raw = read_grouplens_100k(raw_dir / "u.data", raw_dir / "u.item")
        if self.min_rating is not None:
            raw.interactions = raw.interactions.filter(pl.col("rating") >= self.min_rating)
        return raw

    def feature(self, modality: str, raw_dir: Path, item_ids: list[str]) -> np.ndarray:
        items = self.read(raw_dir).items
        ordered = pl.DataFrame({"item": item_ids}).join(
            items.with_columns(pl.col("item").cast(pl.Utf8)), on="item", how="left", maintain_order="left"
        )
        genres = ordered["genres"].to_list()
        if modality == "genre":
            index = {g: k for k, g in enumerate(ML100K_GENRES)}
            out = np.zeros((len(item_ids), len(ML100K_GENRES)), dtype=np.float32)
            for row, gs in enumerate(genres):
                for g in gs or ():
                    if g in index:
                        out[row, index[g]] = 1.0
            return out
        if modality == "text":
            from recx.data.text import encode_texts

            titles = ordered["title"].to_list()
            texts = [f"{t or ''}. Genres: {', '.join(gs or [])}" for t, gs in zip(titles, genres)]
            return encode_texts(texts, model=self.text_encoder)
        raise DataError(f"ml100k has no modality '{modality}'", field="dataset.modalities",
                        fix=f"choose from {list(self.modalities)}")


class MMRecDataset:
    """An MMRec-format dataset (``<name>.inter`` with ``x_label`` + ``image_feat.npy`` + ``text_feat.npy``).

    The split is MMRec's own (``x_label`` 0/1/2), used as is (``split: PresetSplit``) so results compare with the
    published tables. The files are not redistributable by recx: they come from the MMRec authors' Google Drive.
    """

    modalities = ("image", "text")

    def __init__(self, name: str, inter_name: str, checksums: dict[str, str] | None = None,
                 mirror_dir: str | None = None) -> None:
        self.name = name
        self.inter_name = inter_name
        self.checksums = dict(checksums or {})
        self.mirror_dir = mirror_dir or name
        self.instructions = (
            f"download the MMRec '{inter_name}' folder (links in the README of github.com/enoche/MMRec, data/README.md) "
            f"and pass it with `recx data download {name} --from <folder>`, or put it under "
            f"RECX_DATA_MIRROR/{self.mirror_dir}/; any MMRec folder also runs in place with "
            f"`dataset=mmrec dataset.path=<folder>`"
        )

    def cache_key(self) -> dict:
        return {"inter_name": self.inter_name, "checksums": self.checksums}

    def file_sets(self) -> list[list[RemoteFile]]:
        names = [f"{self.inter_name}.inter", "image_feat.npy", "text_feat.npy"]
        return [[RemoteFile(n, self.checksums.get(n), mirror=f"{self.mirror_dir}/{n}") for n in names]]

    def read(self, raw_dir: Path):
        from recx.data.mmrec import read_mmrec

        return read_mmrec(Path(raw_dir), self.inter_name)

    def feature(self, modality: str, raw_dir: Path, item_ids: list[str]) -> np.ndarray:
        from recx.data.mmrec import load_mmrec_feature

        if modality not in self.modalities:
            raise DataError(f"{self.name} has no modality '{modality}'", field="dataset.modalities",
                            fix=f"choose from {list(self.modalities)}")
        # MMRec keeps its item ids as the index (items 0..n_items-1), so feature row i is item i.
        feat = load_mmrec_feature(Path(raw_dir), modality, n_items=len(item_ids))
        return feat[np.asarray([int(i) for i in item_ids])]


class MMRecFolder:
    """Any folder in MMRec's layout, read in place: ``recx train model=<m> dataset=mmrec dataset.path=<folder>``.

    The folder holds ``<name>.inter`` (``userID itemID ... x_label``) and optionally ``image_feat.npy`` /
    ``text_feat.npy`` (MMRec's ``user_graph_dict.npy`` is not needed); ``<name>`` is the folder's name, or the only
    ``*.inter`` in it (``inter_name`` picks one when there are several). Nothing is copied: the prepared cache is keyed
    on the folder's path and every file's size and modification time, so a folder regenerated in place is prepared
    afresh instead of silently reusing the old tensors.
    """

    modalities = ("image", "text")

    def __init__(self, path: str | None = None, inter_name: str | None = None) -> None:
        from recx.errors import ConfigError

        if not path:
            raise ConfigError("dataset=mmrec reads an MMRec-layout folder, and none was given", field="dataset.path",
                              fix="add dataset.path=<folder holding <name>.inter and the *_feat.npy files>")
        self.path = Path(str(path)).expanduser().resolve()
        if not self.path.is_dir():
            raise DataError("MMRec folder not found", path=self.path, field="dataset.path",
                            fix="pass the folder that holds <name>.inter (and image_feat.npy / text_feat.npy)")
        self.inter_name = inter_name or self._find_inter_name()
        self.name = f"mmrec-{self.path.name}"
        self.instructions = f"put {self.inter_name}.inter (and image_feat.npy / text_feat.npy) in {self.path}"

    def _find_inter_name(self) -> str:
        if (self.path / f"{self.path.name}.inter").is_file():
            return self.path.name
        found = sorted(p.stem for p in self.path.glob("*.inter"))
        if len(found) == 1:
            return found[0]
        raise DataError(f"{'no' if not found else 'several'} .inter file(s) in the MMRec folder"
                        + (f": {found}" if found else ""), path=self.path, field="dataset.path",
                        fix="an MMRec folder holds exactly one <name>.inter; with several, choose one with "
                            "dataset.source.inter_name=<name>")

    def cache_key(self) -> dict:
        files = []
        for name in (f"{self.inter_name}.inter", "image_feat.npy", "text_feat.npy"):
            path = self.path / name
            if path.is_file():
                st = path.stat()
                files.append([name, st.st_size, st.st_mtime_ns])
        return {"path": str(self.path), "inter_name": self.inter_name, "files": files}

    def file_sets(self) -> list[list[RemoteFile]]:
        return []  # read in place: nothing to download or copy

    def read(self, raw_dir: Path):
        from recx.data.mmrec import read_mmrec

        return read_mmrec(self.path, self.inter_name)

    def feature(self, modality: str, raw_dir: Path, item_ids: list[str]) -> np.ndarray:
        from recx.data.mmrec import load_mmrec_feature

        if modality not in self.modalities:
            raise DataError(f"MMRec folders have no modality '{modality}'", field="dataset.modalities",
                            fix=f"choose from {list(self.modalities)}")
        feat = load_mmrec_feature(self.path, modality, n_items=len(item_ids))
        return feat[np.asarray([int(i) for i in item_ids])]


class LatticeJSONDataset:
    """Interactions in the LATTICE JSON layout (``train.json``/``val.json``/``test.json``); no features."""

    modalities: tuple[str, ...] = ()

    def __init__(self, name: str, checksums: dict[str, str], mirror_dir: str) -> None:
        self.name = name
        self.checksums = dict(checksums)
        self.mirror_dir = mirror_dir
        self.instructions = (
            f"set RECX_DATA_MIRROR to a folder holding {mirror_dir}/{{train,val,test}}.json or pass --from <folder>"
        )

    def cache_key(self) -> dict:
        return {"checksums": self.checksums}

    def file_sets(self) -> list[list[RemoteFile]]:
        return [[RemoteFile(n, self.checksums.get(n), mirror=f"{self.mirror_dir}/{n}")
                 for n in ("train.json", "val.json", "test.json")]]

    def read(self, raw_dir: Path):
        from recx.data.lattice import read_lattice_json

        return read_lattice_json(Path(raw_dir))

    def feature(self, modality: str, raw_dir: Path, item_ids: list[str]) -> np.ndarray:
        raise DataError(f"{self.name} ships no item features", field="dataset.modalities",
                        fix="use an ID-based model (bpr, lightgcn) or the MMRec-format amazon_* dataset")
