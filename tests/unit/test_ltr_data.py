"""recx.ltr data layer: SVMlight reader, ragged splits, per-query normalisation, padding, generated data, sources."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from recx.errors import DataError
from recx.data import svmlight
from recx.ltr.data import LTRData, LTRSplit, drop_queries_without_relevant, normalize_per_query, pad_batch
from recx.ltr.sources import MSLR10K, SyntheticLTRSource, prepare_ltr
from recx.data.svmlight import read_svmlight
from recx.ltr.synthetic import SyntheticLTR
from tests.conftest import needs_mirror

SAMPLE = ("mslr-web10k-sample/msn1.fold1.train.5k.txt", "mslr-web10k-sample/msn1.fold1.test.5k.txt")


def write(tmp_path, text: str, name: str = "f.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def ragged(lengths: list[int], n_features: int = 3, seed: int = 0) -> LTRSplit:
    g = torch.Generator().manual_seed(seed)
    n = sum(lengths)
    offsets = torch.tensor([0, *np.cumsum(lengths).tolist()], dtype=torch.long)
    return LTRSplit(torch.randn(n, n_features, generator=g) * 5 + 2, torch.randint(0, 3, (n,), generator=g),
                    offsets, torch.arange(10, 10 + len(lengths)))


# ------------------------------------------------------------------------------------------------------------ reader
def test_reader_sparse_comments_blank_lines(tmp_path):
    path = write(tmp_path, (
        "# header comment\n"
        "2 qid:7 1:0.5 3:-2 # doc a\n"
        "\n"
        "0 qid:7 2:1e-3\t4:4\r\n"
        "   \n"
        "1 qid:9 #only a comment, no features\n"
        "3 qid:9 4:1.25 1:8\n"
    ))
    split = read_svmlight(path)
    assert split.n_features == 4 and split.n_docs == 4 and split.n_queries == 2
    expected = torch.tensor([[0.5, 0, -2, 0], [0, 1e-3, 0, 4], [0, 0, 0, 0], [8, 0, 0, 1.25]])
    assert torch.equal(split.features, expected)
    assert split.features.dtype == torch.float32
    assert split.labels.tolist() == [2, 0, 1, 3] and split.labels.dtype == torch.long
    assert split.offsets.tolist() == [0, 2, 4] and split.qids.tolist() == [7, 9]
    assert split.lengths.tolist() == [2, 2]
    wide = read_svmlight(path, n_features=6)
    assert wide.n_features == 6 and torch.equal(wide.features[:, :4], expected)


def test_reader_blocks_keep_line_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(svmlight, "BLOCK_LINES", 2)  # several numpy blocks on a tiny file
    lines = [f"{k % 3} qid:{k // 2} 1:{k} 2:{-k}" for k in range(7)]
    split = read_svmlight(write(tmp_path, "\n".join(lines) + "\n"))
    assert split.features[:, 0].tolist() == list(range(7)) and split.lengths.tolist() == [2, 2, 2, 1]
    lines[5] = "1 qid:2 1:5 2:oops"
    with pytest.raises(DataError, match=r"line 6: bad token '2:oops'"):
        read_svmlight(write(tmp_path, "\n".join(lines) + "\n", "bad.txt"))


@pytest.mark.parametrize("bad_line, token", [
    ("abc qid:1 1:2", "abc"),  # non-numeric label
    ("1.5 qid:1 1:2", "1.5"),  # label is not an integer grade
    ("-1 qid:1 1:2", "-1"),
    ("nan qid:1 1:2", "nan"),
    ("1 1:2 2:3", "1:2"),  # missing qid
    ("1", "1"),
    ("1 qid:x 1:2", "qid:x"),
    ("1 qid:1 1:2 3:x", "3:x"),  # value does not parse
    ("1 qid:1 1:2 3:", "3:"),
    ("1 qid:1 :4 1:2", ":4"),
    ("1 qid:1 a:4", "a:4"),
    ("1 qid:1 1.5:2", "1.5:2"),  # index not an integer
    ("1 qid:1 3:4:5 6:1", "3:4:5"),  # two colons (a count check alone would pair 3,4 and 5,6)
    ("1 qid:1 1:2 5 3:1", "5"),  # token without colon
    ("1 qid:1 0:1", "0:1"),  # index < 1
    ("1 qid:1 -2:1", "-2:1"),
    ("1 qid:1 1:nan", "1:nan"),  # non-finite values
    ("1 qid:1 2:inf", "2:inf"),
    ("1 qid:1 2:1e40", "2:1e40"),  # overflows float32
    ("1 qid:1 2:1 2:3", "2:3"),  # index repeated
    ("1 qid:1 9:1", "9:1"),  # above the given n_features
])
def test_malformed_line_names_file_line_and_token(tmp_path, bad_line, token):
    path = write(tmp_path, f"# comment\n0 qid:1 1:1 2:2\n{bad_line}\n0 qid:1 1:3\n")
    with pytest.raises(DataError) as info:
        read_svmlight(path, n_features=8)
    err = info.value
    assert f"line 3: bad token {token!r}" in err.message
    assert err.path == str(path) and str(path) in str(err) and err.fix


def test_qid_coming_back_is_an_error(tmp_path):
    path = write(tmp_path, "1 qid:1 1:1\n0 qid:2 1:1\n0 qid:2 1:2\n2 qid:1 1:1\n")
    with pytest.raises(DataError, match="line 4: qid 1 appears again") as info:
        read_svmlight(path)
    assert "consecutive" in info.value.fix


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no documents"):
        read_svmlight(write(tmp_path, "# nothing\n\n"))


def test_drop_last_query_warns(tmp_path):
    path = write(tmp_path, "1 qid:3 1:1\n0 qid:3 1:2\n2 qid:5 1:3\n0 qid:5 1:4\n1 qid:5 1:5\n")
    info: dict = {}
    with pytest.warns(UserWarning, match=r"qid 5, 3 docs"):
        split = read_svmlight(path, drop_last_query=True, info=info)
    assert split.qids.tolist() == [3] and split.n_docs == 2 and split.features[:, 0].tolist() == [1, 2]
    assert info["dropped"] == {"qid": 5, "docs": 3} and info["queries"] == 2


@needs_mirror(*SAMPLE)
def test_mslr_sample(tmp_path):
    from tests.conftest import mirror

    path = mirror() / SAMPLE[0]
    with pytest.warns(UserWarning, match="qid 631, 45 docs"):
        split = read_svmlight(path, 136, drop_last_query=True)
    assert split.n_queries == 42 and split.n_features == 136 and split.n_docs == 4955
    # independent oracle: plain Python over the raw lines
    rows = [line.split() for line in path.read_text().splitlines()]
    labels = np.array([int(r[0]) for r in rows])
    assert np.bincount(labels, minlength=5).tolist() == [2792, 1458, 665, 55, 30]  # the whole 5,000-line file
    assert torch.bincount(split.labels).tolist() == np.bincount(labels[:4955], minlength=5).tolist()
    for k in (0, 1234, 4954):
        dense = np.zeros(136, dtype=np.float32)
        for tok in rows[k][2:]:
            i, v = tok.split(":")
            dense[int(i) - 1] = float(v)
        assert np.array_equal(split.features[k].numpy(), dense)
        assert int(split.qids[torch.searchsorted(split.offsets, k, right=True) - 1]) == int(rows[k][1][4:])


# ------------------------------------------------------------------------------------------------ split functions
def test_subset_and_drop_queries_without_relevant():
    split = ragged([3, 1, 4])
    split.labels = torch.tensor([0, 0, 0, 2, 0, 1, 0, 0])
    sub = split.subset(torch.tensor([2, 0]))
    assert sub.qids.tolist() == [12, 10] and sub.offsets.tolist() == [0, 4, 7]
    assert torch.equal(sub.features, torch.cat([split.features[4:8], split.features[0:3]]))
    kept = drop_queries_without_relevant(split)
    assert kept.qids.tolist() == [11, 12] and kept.labels.tolist() == [2, 0, 1, 0, 0]


@pytest.mark.parametrize("method", ["zscore", "minmax"])
def test_normalize_per_query_matches_numpy_loop(method):
    split = ragged([5, 1, 7, 2])
    split.features[6:13, 1] = 3.3  # constant within query 2
    out = normalize_per_query(split, method, exclude=[2])
    x = split.features.numpy().astype(np.float64)
    expected = np.empty_like(x)
    for a, b in zip(split.offsets[:-1].tolist(), split.offsets[1:].tolist()):
        block = x[a:b]
        if method == "zscore":
            center, scale = block.mean(0), block.std(0)
        else:
            center, scale = block.min(0), block.max(0) - block.min(0)
        constant = block.max(0) == block.min(0)
        expected[a:b] = np.where(constant, 0.0, (block - center) / np.where(constant, 1.0, scale))
    expected[:, 2] = x[:, 2]
    assert np.allclose(out.features.numpy(), expected, atol=1e-5)
    assert (out.features[5] == torch.tensor([0.0, 0.0, split.features[5, 2]])).all()  # one-doc query
    assert (out.features[6:13, 1] == 0).all()
    assert normalize_per_query(split, "none") is split
    with pytest.raises(DataError, match="unknown normalisation"):
        normalize_per_query(split, "l2")


def test_pad_batch_pads_to_longest():
    split = ragged([3, 1, 4])
    feats, labels, mask = pad_batch(split, torch.tensor([1, 0]))
    assert feats.shape == (2, 3, 3) and labels.shape == (2, 3) and mask.dtype == torch.bool
    assert mask.tolist() == [[True, False, False], [True, True, True]]
    assert torch.equal(feats[0, 0], split.features[3]) and (feats[0, 1:] == 0).all() and (labels[0, 1:] == 0).all()
    assert torch.equal(feats[1], split.features[0:3]) and torch.equal(labels[1], split.labels[0:3])
    capped = pad_batch(split, torch.tensor([1, 0]), max_length=10)
    assert capped[0].shape == (2, 3, 3)


def test_pad_batch_max_length_keeps_random_real_documents():
    split = ragged([50, 3, 20, 8], n_features=2)
    split.features[:, 0] = torch.arange(split.n_docs, dtype=torch.float32)  # column 0 = global row id
    qi = torch.tensor([0, 1, 2, 3])
    feats, labels, mask = pad_batch(split, qi, max_length=8, generator=torch.Generator().manual_seed(1))
    assert feats.shape == (4, 8, 2)
    assert mask.sum(1).tolist() == [8, 3, 8, 8]
    for b, q in enumerate(qi.tolist()):
        a, e = int(split.offsets[q]), int(split.offsets[q + 1])
        rows = feats[b, mask[b], 0].long()
        assert ((rows >= a) & (rows < e)).all() and rows.unique().numel() == rows.numel()
        assert torch.equal(labels[b, mask[b]], split.labels[rows])
        assert torch.equal(feats[b, mask[b]], split.features[rows])
    assert feats[1, :3, 0].tolist() == [50, 51, 52] and feats[3, :, 0].tolist() == list(range(73, 81))
    again = pad_batch(split, qi, max_length=8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again[0], feats)
    other = pad_batch(split, qi, max_length=8, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(other[0][0], feats[0])


# ------------------------------------------------------------------------------------------------- generated data
def test_synthetic_is_deterministic_and_has_planted_signal():
    gen = SyntheticLTR(n_queries=150, seed=3)
    data, again = gen.generate(), gen.generate()
    for s in ("train", "valid", "test"):
        assert torch.equal(data.split(s).features, again.split(s).features)
        assert torch.equal(data.split(s).labels, again.split(s).labels)
    assert (data.train.n_queries, data.valid.n_queries, data.test.n_queries) == (90, 30, 30)
    qids = torch.cat([data.train.qids, data.valid.qids, data.test.qids])
    assert sorted(qids.tolist()) == list(range(1, 151))
    labels = torch.cat([data.train.labels, data.valid.labels, data.test.labels])
    hist = torch.bincount(labels, minlength=5).float() / labels.numel()
    assert hist[0] > 0.45 and (hist[:-1] > hist[1:]).all()
    pop = data.train.features[:, -1]
    assert 0 <= float(pop.min()) and float(pop.max()) <= 1
    corr = np.corrcoef(pop.numpy(), data.train.labels.numpy())[0, 1]
    assert 0.05 < corr < 0.5  # weak, positive
    # planted signal: least squares on train ranks test documents well
    x = torch.cat([data.train.features, torch.ones(data.train.n_docs, 1)], 1).double()
    w = torch.linalg.lstsq(x, data.train.labels.double()[:, None]).solution
    score = torch.cat([data.test.features, torch.ones(data.test.n_docs, 1)], 1).double() @ w
    top = [float(data.test.labels[a + score[a:b, 0].topk(5).indices].float().mean())
           for a, b in zip(data.test.offsets[:-1].tolist(), data.test.offsets[1:].tolist())]
    assert np.mean(top) > float(data.test.labels.float().mean()) + 1.0
    assert not torch.equal(SyntheticLTR(n_queries=150, seed=4).generate().train.labels[:50], data.train.labels[:50])


# -------------------------------------------------------------------------------------------- sources and caching
def test_ltrdata_save_load_roundtrip(tmp_path):
    data = SyntheticLTR(n_queries=20).generate()
    data.save(tmp_path / "p")
    back = LTRData.load(tmp_path / "p")
    assert back.cache_dir == str(tmp_path / "p") and back.meta == data.meta
    for s in ("train", "valid", "test"):
        for key in ("features", "labels", "offsets", "qids"):
            assert torch.equal(getattr(back.split(s), key), getattr(data.split(s), key))
    assert back.stats()["train"]["queries"] == 12 and back.max_label == 4


def test_prepare_ltr_caches_and_reports_corruption(tmp_path, monkeypatch):
    source = SyntheticLTRSource(n_queries=30, normalization="zscore")
    logs: list[str] = []
    data = prepare_ltr(source, tmp_path, log=logs.append)
    assert any("prepared synthetic_ltr" in m for m in logs)
    x = data.train.features
    assert abs(float(x[:, 0].mean())) < 1e-5 and 0 <= float(x[:, -1].min()) and float(x[:, -1].max()) <= 1
    assert data.meta["normalization"]["raw_columns"] == [31] and data.meta["popularity_column"] == 31

    def boom(self):
        raise AssertionError("the cached result should have been loaded")

    monkeypatch.setattr(SyntheticLTR, "generate", boom)
    cached = prepare_ltr(source, tmp_path)
    assert torch.equal(cached.train.features, data.train.features)
    (tmp_path / "synthetic_ltr" / "prepared").joinpath(
        next(p.name for p in (tmp_path / "synthetic_ltr" / "prepared").iterdir()), "ltr.pt").write_bytes(b"junk")
    with pytest.raises(DataError, match="unreadable") as info:
        prepare_ltr(source, tmp_path)
    assert "--force" in info.value.fix
    monkeypatch.undo()
    assert torch.equal(prepare_ltr(source, tmp_path, force=True).train.features, data.train.features)
    other = prepare_ltr(SyntheticLTRSource(n_queries=30, normalization="minmax"), tmp_path)
    assert float(other.train.features[:, 0].min()) == 0.0  # a different option never reads the old cache


@needs_mirror(*SAMPLE)
def test_prepare_mslr_sample_from_mirror(tmp_path, monkeypatch):
    source = MSLR10K(layout="auto", valid_fraction=0.2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        data = prepare_ltr(source, tmp_path)
    assert data.meta["layout"] == "sample" and data.n_features == 136
    assert (data.train.n_queries, data.valid.n_queries, data.test.n_queries) == (34, 8, 42)
    assert set(data.train.qids.tolist()).isdisjoint(data.valid.qids.tolist())
    assert data.meta["dropped_queries"] == {"train": {"qid": 631, "docs": 45}, "test": {"qid": 643, "docs": 26}}
    monkeypatch.setattr("recx.ltr.sources.read_svmlight", lambda *a, **k: pytest.fail("re-read despite the cache"))
    again = prepare_ltr(source, tmp_path)
    assert torch.equal(again.test.features, data.test.features)


def test_prepare_mslr_official_layout_from_folder(tmp_path):
    fold = tmp_path / "MSLR-WEB10K" / "Fold2"
    fold.mkdir(parents=True)
    for part, qid in (("train", 1), ("vali", 2), ("test", 3)):
        (fold / f"{part}.txt").write_text(f"2 qid:{qid} 1:1 136:5\n0 qid:{qid} 1:3 7:1\n1 qid:{qid + 10} 2:1\n")
    data = prepare_ltr(MSLR10K(fold=2, normalization="none"), tmp_path / "data", from_dir=fold)
    assert data.meta["layout"] == "official" and data.meta["files"][0] == "fold2.train.txt"
    assert data.n_features == 136 and data.valid.qids.tolist() == [2, 12] and data.test.lengths.tolist() == [2, 1]
    assert data.train.features[0, 135] == 5 and data.meta["dropped_queries"] == {}


def test_letor_folder_reads_a_user_supplied_layout_and_splits_validation(tmp_path):
    """The generic LETOR source (Yahoo/Istella configs): files from --from, validation carved out when absent."""
    from recx.ltr.sources import LETORFolder, prepare_ltr

    src = tmp_path / "download"
    src.mkdir()
    lines = [f"{q % 3} qid:{q} 1:{q}.5 3:-1" for q in range(1, 11) for _ in range(4)]
    (src / "train.txt").write_text("\n".join(lines) + "\n")
    (src / "test.txt").write_text("2 qid:50 1:1 2:2\n0 qid:50 3:1\n")
    source = LETORFolder("toy_letor", train="train.txt", test="test.txt", n_features=3, normalization="none",
                         valid_fraction=0.3)
    data = prepare_ltr(source, tmp_path / "data", from_dir=src)
    assert (data.train.n_queries, data.valid.n_queries, data.test.n_queries) == (7, 3, 1)
    assert set(data.train.qids.tolist()).isdisjoint(data.valid.qids.tolist())
    assert data.test.features.tolist() == [[1.0, 2.0, 0.0], [0.0, 0.0, 1.0]]


# ------------------------------------------------------------------------------- STARank's query windows (setup)
def test_query_windows_follow_starank_dealmq2007():
    """Queries with > min_docs documents, labels > query median (numpy's median), shuffled windows inside each query,
    history = the previous window, last window test, the one before valid (algo/PreprocessData.py::dealMQ2007)."""
    from recx.ltr.windows import query_windows

    split = ragged([45, 12, 52, 41], n_features=3, seed=1)  # query 11 (12 docs) is dropped: not > 40
    split.labels = torch.randint(0, 5, (split.n_docs,), generator=torch.Generator().manual_seed(2))
    split.features[:, 0] = torch.arange(split.n_docs, dtype=torch.float32)  # row id, to trace documents back
    data = query_windows(split, window=10, min_docs=40, seed=3)
    # windows per kept query: 4, 5, 4 -> queries 3, 4, 3 -> train 1 + 2 + 1, valid 3, test 3
    assert (data.train.n_queries, data.valid.n_queries, data.test.n_queries) == (4, 3, 3)
    assert data.meta["kept_queries"] == 3
    starts = split.offsets[:-1].tolist()
    for part in (data.train, data.valid, data.test):
        assert part.history.shape == (part.n_queries, 10, 3) and bool(part.history_mask.all())
        rows = part.features[:, 0].long().view(-1, 10)
        hist = part.history[:, :, 0].long()
        for q in range(part.n_queries):
            qid = int(part.qids[q]) // 1000
            pos = qid - 10
            lo, hi = starts[pos], starts[pos] + int(split.lengths[pos])
            assert ((rows[q] >= lo) & (rows[q] < hi)).all() and ((hist[q] >= lo) & (hist[q] < hi)).all()
            assert not set(rows[q].tolist()) & set(hist[q].tolist())
            raw = split.labels[lo:hi].numpy()
            want = (split.labels[rows[q]].numpy() > np.median(raw)).astype(np.int64)
            assert part.labels[q * 10:(q + 1) * 10].tolist() == want.tolist()
    # the last window of each query is its test query, the one before its validation query
    assert sorted(int(q) % 1000 for q in data.test.qids) == [3, 3, 4]
    assert sorted(int(q) % 1000 for q in data.valid.qids) == [2, 2, 3]
    # seeded: the same windows again, another seed another shuffle
    again = query_windows(split, window=10, min_docs=40, seed=3)
    assert torch.equal(again.test.features, data.test.features)
    assert not torch.equal(query_windows(split, window=10, min_docs=40, seed=4).test.features, data.test.features)


def test_query_windows_reject_too_few_windows():
    from recx.errors import ConfigError
    from recx.ltr.windows import QueryWindows

    with pytest.raises(ConfigError) as err:
        QueryWindows(source={"_target_": "recx.ltr.sources.SyntheticLTRSource"}, window=10, min_docs=15)
    assert err.value.field == "dataset.source"
    with pytest.raises(ConfigError):
        QueryWindows(source={"_target_": "recx.ltr.sources.SyntheticLTRSource"}, binarize="mean")
