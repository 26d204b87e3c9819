"""Knowledge-tracing dataset sources: ASSIST2009 (three-line CSVs or the official skill-builder CSV) and generated
students. Files are fetched with the shared downloader (sha256, ``RECX_DATA_MIRROR``, ``--from``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recx.data.download import RemoteFile
from recx.errors import ConfigError
from recx.pathrec.data import KTData, from_lists, read_skill_builder_csv, read_three_line_csv, split_students
from recx.pathrec.synthetic import generate_students

ASSIST_TRAIN = ("assist2009_updated_train.csv",
                "sha256:5b851c65f665474a0993d86e87901adb1e0916c0d80fe7fce4096e6641924c74")
ASSIST_TEST = ("assist2009_updated_test.csv",
               "sha256:2e8f1d7600543aededa31323343f7d762b8f51c53c0caca852e813b67fe4e823")
ASSIST_SKILLS = 110  # the "updated" (DKVMN) release: skill ids 1..110


#: ASSIST2009 ``layout`` values: three_line (DKVMN's CSVs) or skill_builder (the official CSV)
LAYOUTS = ("three_line", "skill_builder")


class ASSIST2009:
    """ASSISTments 2009 skill-builder. ``layout=three_line`` (default): the DKVMN train/test CSVs (2,921 / 1,230
    students, skills 1-110, sha256-checked; mirror ``assist2009/``). ``layout=skill_builder``: the official
    ``skill_builder_data.csv`` (no checksum; given with ``--from``), split into train/test students by
    ``test_fraction``. Validation: ``valid_fraction`` of the training students (whole students)."""

    name = "assist2009"

    def __init__(self, layout: str = "three_line", max_len: int = 200, valid_fraction: float = 0.2,
                 test_fraction: float = 0.3, seed: int = 0) -> None:
        if layout not in LAYOUTS:
            raise ConfigError(f"unknown ASSIST2009 layout '{layout}'", field="dataset.source.layout",
                              fix="three_line or skill_builder")
        self.layout, self.max_len = layout, max_len
        self.valid_fraction, self.test_fraction, self.seed = valid_fraction, test_fraction, seed
        self.instructions = ("set RECX_DATA_MIRROR to a folder holding assist2009/assist2009_updated_{train,test}.csv "
                             "(DKVMN's release), or `recx data download assist2009 --from <folder>`; for the official "
                             "skill_builder_data.csv use dataset.source.layout=skill_builder")

    def cache_key(self) -> dict:
        return {"layout": self.layout, "max_len": self.max_len, "valid_fraction": self.valid_fraction,
                "test_fraction": self.test_fraction, "seed": self.seed}

    def file_sets(self) -> list[list[RemoteFile]]:
        if self.layout == "skill_builder":
            return [[RemoteFile("skill_builder_data.csv", None, mirror="assist2009/skill_builder_data.csv")]]
        return [[RemoteFile(name, checksum, mirror=f"assist2009/{name}") for name, checksum in (ASSIST_TRAIN,
                                                                                              ASSIST_TEST)]]

    def read(self, raw_dir: Path) -> KTData:
        raw_dir = Path(raw_dir)
        meta: dict[str, Any] = {"layout": self.layout}
        if self.layout == "three_line":
            train_s, train_a = read_three_line_csv(raw_dir / ASSIST_TRAIN[0])
            test_s, test_a = read_three_line_csv(raw_dir / ASSIST_TEST[0])
            n_skills = ASSIST_SKILLS
            top = max(int(s.max()) for s in train_s + test_s if len(s))
            if top > n_skills:
                n_skills = top
        else:
            skills, answers, info = read_skill_builder_csv(raw_dir / "skill_builder_data.csv")
            (train_s, train_a), (test_s, test_a) = split_students(skills, answers, self.test_fraction, self.seed)
            n_skills = len(info["skill_ids"])
            meta["skill_ids"] = info["skill_ids"]
        (train_s, train_a), (valid_s, valid_a) = split_students(train_s, train_a, self.valid_fraction, self.seed)
        meta["students"] = {"train": len(train_s), "valid": len(valid_s), "test": len(test_s)}
        return KTData(self.name, from_lists(train_s, train_a, n_skills, self.max_len),
                      from_lists(valid_s, valid_a, n_skills, self.max_len),
                      from_lists(test_s, test_a, n_skills, self.max_len), n_skills, meta)


class SyntheticKT:
    """Generated students (:mod:`recx.pathrec.synthetic`), split 60/20/20 by student."""

    name = "synthetic_kt"
    instructions = "generated data: nothing to download"

    def __init__(self, n_students: int = 400, n_skills: int = 20, min_length: int = 30, max_length: int = 80,
                 gain: float = 0.35, transfer: float = 0.15, max_len: int = 200, seed: int = 0) -> None:
        self.kwargs = dict(n_students=n_students, n_skills=n_skills, length=(min_length, max_length), gain=gain,
                           transfer=transfer, seed=seed)
        self.max_len, self.seed, self.n_skills = max_len, seed, n_skills

    def cache_key(self) -> dict:
        return {**self.kwargs, "max_len": self.max_len}

    def file_sets(self) -> list:
        return []

    def read(self, raw_dir: Path | None = None) -> KTData:
        skills, answers = generate_students(**self.kwargs)
        (rest_s, rest_a), (test_s, test_a) = split_students(skills, answers, 0.2, self.seed)
        (train_s, train_a), (valid_s, valid_a) = split_students(rest_s, rest_a, 0.25, self.seed + 1)
        return KTData(self.name, from_lists(train_s, train_a, self.n_skills, self.max_len),
                      from_lists(valid_s, valid_a, self.n_skills, self.max_len),
                      from_lists(test_s, test_a, self.n_skills, self.max_len), self.n_skills,
                      {"generator": self.kwargs})


def load_kt(source: Any, data_dir=None) -> KTData:
    """Fetch (checksummed) and read a knowledge-tracing dataset; reading takes about a second, so nothing is cached."""
    from recx.data.prepare import default_data_dir, download

    raw_dir = download(source, Path(data_dir) if data_dir is not None else default_data_dir())
    return source.read(raw_dir)
