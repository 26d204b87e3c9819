"""Format readers (RecBole, GroupLens, MMRec, LATTICE JSON) and raw-id indexing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recx.data.grouplens import ML100K_GENRES, read_grouplens_100k
from recx.data.indexing import index_raw
from recx.data.interactions import RawDataset
from recx.data.lattice import read_lattice_json
from recx.data.mmrec import load_mmrec_feature, mmrec_files, read_mmrec
from recx.data.recbole import movielens_items, read_atomic, read_recbole_interactions
from recx.errors import DataError

SHARED = Path("/work/shared/data")
ML100K = SHARED / "ml-100k"
BABY = SHARED / "amazon-baby-5core"


def write(path: Path, text: str, encoding: str = "utf8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


# ----------------------------------------------------------------------------------------------------- RecBole
def test_read_atomic_types(tmp_path):
    path = write(tmp_path / "x.item", "item_id:token\tscore:float\ttags:token_seq\tvec:float_seq\n"
                                      "007\t1.5\ta  b\t1 2.5\n"
                                      "8\t\t\t\n")
    frame = read_atomic(path)
    assert frame.columns == ["item_id", "score", "tags", "vec"]
    assert frame.schema["item_id"] == pl.Utf8
    assert frame.schema["score"] == pl.Float64
    assert frame.schema["tags"] == pl.List(pl.Utf8)
    assert frame.schema["vec"] == pl.List(pl.Float64)
    assert frame["item_id"].to_list() == ["007", "8"]  # tokens keep their text
    assert frame["score"].to_list() == [1.5, None]
    assert frame["tags"].to_list() == [["a", "b"], []]
    assert frame["vec"].to_list() == [[1.0, 2.5], []]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user_id\titem_id:token\n1\t2\n", "no ':type' suffix"),
        ("user_id:token\titem_id:int\n1\t2\n", "unknown type 'int'"),
        ("user_id:token\titem_id:token\tr:float\n1\t2\t3\n4\t5\tabc\n", "line 3: 'abc' in column 'r'"),
        ("user_id:token\tv:float_seq\n1\t1 x\n", "line 2"),
        ("a:token\tb:token\n1\t2\n3\t4\t5\n", "line 3 has 3 fields"),
    ],
)
def test_read_atomic_errors(tmp_path, text, expected):
    path = write(tmp_path / "bad.inter", text)
    with pytest.raises(DataError) as info:
        read_atomic(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.fix


def test_recbole_interactions_errors(tmp_path):
    with pytest.raises(DataError, match="not found") as info:
        read_recbole_interactions(tmp_path / "none.inter")
    assert "none.inter" in str(info.value)
    with pytest.raises(DataError, match="empty"):
        read_recbole_interactions(write(tmp_path / "empty.inter", ""))
    with pytest.raises(DataError, match="no interactions"):
        read_recbole_interactions(write(tmp_path / "header.inter", "user_id:token\titem_id:token\n"))
    with pytest.raises(DataError, match=r"lacks column\(s\) \['item_id'\]") as info:
        read_recbole_interactions(write(tmp_path / "cols.inter", "user_id:token\trating:float\n1\t2\n"))
    assert info.value.field == "item_id"
    with pytest.raises(DataError, match="line 3 has no 'item_id'"):
        read_recbole_interactions(write(tmp_path / "hole.inter", "user_id:token\titem_id:token\n1\t2\n3\t\n"))


def test_header_quirks(tmp_path):
    bom = tmp_path / "bom.inter"
    bom.write_bytes(b"\xef\xbb\xbfuser_id:token\titem_id:token \r\n1\t2\r\n")
    assert read_recbole_interactions(bom).interactions.rows() == [("1", "2")]
    with pytest.raises(DataError, match="repeats column"):
        read_atomic(write(tmp_path / "dup.inter", "a:token\ta:token\n1\t2\n"))
    with pytest.raises(DataError, match="not valid UTF-8 at line 3"):
        (tmp_path / "bin.inter").write_bytes(b"a:token\n1\n\xff\n")
        read_atomic(tmp_path / "bin.inter")


def test_recbole_small(tmp_path):
    inter = write(tmp_path / "d.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\tx:token\n"
                                        "u1\ti2\t4\t10\tq\nu2\ti1\t5\t11\tq\n")
    item = write(tmp_path / "d.item", "item_id:token\tmovie_title:token_seq\tclass:token_seq\n"
                                      "i1\tThe Movie\tDrama Comedy\ni2\tOther\t\n")
    raw = read_recbole_interactions(inter, item)
    assert raw.interactions.columns == ["user", "item", "timestamp", "rating"]
    assert raw.interactions.schema["timestamp"] == pl.Float64
    assert raw.items["title"].to_list() == ["The Movie", "Other"]
    assert raw.items["genres"].to_list() == [["Drama", "Comedy"], []]
    dup = write(tmp_path / "dup.item", "item_id:token\nA\nA\n")
    with pytest.raises(DataError, match="more than once"):
        read_recbole_interactions(inter, dup)


def test_movielens_items_is_idempotent():
    frame = pl.DataFrame({"item": ["1"], "movie_title": [["Toy", "Story"]], "class": [["Comedy"]]})
    once = movielens_items(frame)
    assert movielens_items(once).equals(once)
    plain = pl.DataFrame({"item": ["1"], "cold": [True]})
    assert movielens_items(plain).equals(plain)


@pytest.mark.skipif(not (ML100K / "ml-100k.inter").is_file(), reason="shared ml-100k data absent")
def test_recbole_ml100k_real():
    raw = read_recbole_interactions(ML100K / "ml-100k.inter", ML100K / "ml-100k.item")
    inter = raw.interactions
    assert inter.height == 100_000
    assert inter["user"].n_unique() == 943
    assert inter["item"].n_unique() == 1682
    assert inter.schema["user"] == pl.Utf8 and inter.schema["rating"] == pl.Float64
    items = raw.items
    assert items.height == 1682
    assert {"item", "movie_title", "class", "release_year", "title", "genres"} <= set(items.columns)
    first = items.row(0, named=True)
    assert first["item"] == "1" and first["movie_title"] == ["Toy", "Story"] and first["title"] == "Toy Story"
    assert first["class"] == ["Animation", "Children's", "Comedy"] == first["genres"]
    assert set(items["genres"].explode().drop_nulls().unique()) <= set(ML100K_GENRES)
    frame, users, item_ids = index_raw(raw)
    assert (len(users), len(item_ids), frame.height) == (943, 1682, 100_000)
    assert users[:3] == ["1", "2", "3"] and item_ids[:3] == ["1", "2", "3"]  # numeric order of integer tokens
    assert raw.meta["duplicates_dropped"] == 0


# ----------------------------------------------------------------------------------------------------- GroupLens
U_DATA = "1\t2\t5\t881250949\n2\t1\t3\t891717742\n1\t1\t4\t878887116\n"
FLAGS_TOY = ["0"] * 19
FLAGS_TOY[3] = FLAGS_TOY[4] = FLAGS_TOY[5] = "1"  # Animation, Children's, Comedy
FLAGS_FR = ["0"] * 19
FLAGS_FR[8] = "1"  # Drama
U_ITEM = (
    "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|" + "|".join(FLAGS_TOY)
    + "\n2|Misérables, Les (1995)|01-Jan-1995||http://x|" + "|".join(FLAGS_FR) + "\n"
)


def test_grouplens_small(tmp_path):
    data = write(tmp_path / "u.data", U_DATA)
    item = write(tmp_path / "u.item", U_ITEM, encoding="latin-1")
    raw = read_grouplens_100k(data, item)
    assert raw.interactions.columns == ["user", "item", "rating", "timestamp"]
    assert raw.interactions.schema["timestamp"] == pl.Float64
    assert raw.interactions["user"].to_list() == [1, 2, 1]
    items = raw.items
    assert items["title"].to_list() == ["Toy Story", "Misérables, Les"]
    assert items["release_year"].to_list() == ["1995", "1995"]
    assert items["genres"].to_list() == [["Animation", "Children's", "Comedy"], ["Drama"]]
    assert items.schema["genres"] == pl.List(pl.Utf8) and items.schema["title"] == pl.Utf8


def test_grouplens_and_recbole_index_identically(tmp_path):
    """The two copies of ML-100K give the same indexed frame and the same item schema for title/genres."""
    gl = read_grouplens_100k(write(tmp_path / "u.data", U_DATA),
                             write(tmp_path / "u.item", U_ITEM, encoding="latin-1"))
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
        f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in (line.split("\t") for line in U_DATA.strip().split("\n")))
    rb = read_recbole_interactions(
        write(tmp_path / "m.inter", inter),
        write(tmp_path / "m.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                                   "1\tToy Story\t1995\tAnimation Children's Comedy\n"
                                   "2\tMisérables, Les\t1995\tDrama\n"))
    for column in ("title", "genres", "release_year"):
        assert gl.items[column].to_list() == rb.items[column].to_list()
        assert gl.items.schema[column] == rb.items.schema[column]
    a, b = index_raw(gl), index_raw(rb)
    assert a[1:] == b[1:]
    assert a[0].select("u", "i", "timestamp").equals(b[0].select("u", "i", "timestamp"))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("1\t2\t5\t10\n1\t3\tfive\t11\n", "line 2: 'five' in column 'rating'"),
        ("1\t2\t5\t10\n-4\t3\t5\t11\n", "line 2: negative id -4 in column 'user'"),
        ("1\t2\t5\n", "expected 4"),
        ("1\t2\t5\t10\n1\t2\t5\n", "line 2 has 3 fields, expected 4"),
        ("", "empty"),
    ],
)
def test_grouplens_data_errors(tmp_path, data, expected):
    with pytest.raises(DataError) as info:
        read_grouplens_100k(write(tmp_path / "u.data", data))
    assert expected in str(info.value)
    assert "u.data" in str(info.value)


def test_grouplens_item_errors(tmp_path):
    data = write(tmp_path / "u.data", U_DATA)
    bad_flag = U_ITEM.replace("|0|0|0|1|1|1|", "|0|0|0|1|x|1|", 1)
    with pytest.raises(DataError, match="line 1: genre flag 'Children's' is 'x'"):
        read_grouplens_100k(data, write(tmp_path / "u.item", bad_flag, encoding="latin-1"))
    with pytest.raises(DataError, match="not found"):
        read_grouplens_100k(data, tmp_path / "missing.item")


# ----------------------------------------------------------------------------------------------------- MMRec
def write_mmrec(directory: Path, rows: list[tuple], *, image_rows: int | None = None, text_rows: int | None = None,
                header: str = "userID\titemID\trating\ttimestamp\tx_label") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = [header] + ["\t".join(str(v) for v in row) for row in rows]
    write(directory / "toy.inter", "\n".join(lines) + "\n")
    rng = np.random.default_rng(0)
    if image_rows is not None:
        np.save(directory / "image_feat.npy", rng.random((image_rows, 8)).astype(np.float32))
    if text_rows is not None:
        np.save(directory / "text_feat.npy", rng.random((text_rows, 4)))
    return directory


MMREC_ROWS = [  # user, item, rating, timestamp, x_label
    (0, 0, 5.0, 100, 0), (0, 1, 4.0, 101, 0), (0, 2, 3.0, 102, 1), (0, 3, 5.0, 103, 2),
    (1, 1, 5.0, 100, 0), (1, 4, 5.0, 100, 2),
    (2, 2, 1.0, 100, 1), (2, 3, 1.0, 100, 2),  # user 2 has no train row: MMRec drops these
]


def test_mmrec_read(tmp_path):
    d = write_mmrec(tmp_path / "toy", MMREC_ROWS, image_rows=7, text_rows=7)
    assert mmrec_files("toy") == ["toy.inter", "image_feat.npy", "text_feat.npy"]
    raw = read_mmrec(d, "toy")
    inter = raw.interactions
    assert inter["user"].to_list() == [0, 0, 0, 0, 1, 1]
    assert inter["split"].to_list() == [0, 0, 1, 2, 0, 2]
    assert inter.schema["split"] == pl.Int8
    assert raw.meta["cold_start_rows_dropped"] == 2 and raw.meta["cold_start_users_dropped"] == 1
    assert raw.items["item"].to_list() == list(range(7))  # feature rows (7) > max(itemID)+1 (5)
    assert raw.meta["n_items_in_inter"] == 5
    image = load_mmrec_feature(d, "image", n_items=7)
    text = load_mmrec_feature(d, "text")
    assert image.shape == (7, 8) and image.dtype == np.float32
    assert text.dtype == np.float32  # float64 on disk
    frame, users, items = index_raw(raw)
    assert items == [str(i) for i in range(7)] and frame["i"].to_list() == inter["item"].to_list()


def test_mmrec_without_features_and_minimal_columns(tmp_path):
    d = write_mmrec(tmp_path / "toy", [(r[0], r[1], r[4]) for r in MMREC_ROWS[:6]], header="userID\titemID\tx_label")
    raw = read_mmrec(d, "toy")
    assert raw.items.height == 5
    assert raw.interactions.columns == ["user", "item", "split"]


def test_mmrec_bad_x_label(tmp_path):
    rows = [*MMREC_ROWS[:3], (0, 3, 5.0, 103, 3)]
    with pytest.raises(DataError, match="line 5: x_label 3 is not 0, 1 or 2") as info:
        read_mmrec(write_mmrec(tmp_path / "toy", rows), "toy")
    assert info.value.field == "x_label"
    rows = [*MMREC_ROWS[:3], (0, 3, 5.0, 103, "test")]
    with pytest.raises(DataError, match="line 5: 'test' in column 'x_label'"):
        read_mmrec(write_mmrec(tmp_path / "toy2", rows), "toy")


def test_mmrec_bad_columns_and_ids(tmp_path):
    with pytest.raises(DataError, match=r"lacks column\(s\) \['x_label'\]"):
        read_mmrec(write_mmrec(tmp_path / "a", [(0, 1)], header="userID\titemID"), "toy")
    with pytest.raises(DataError, match="line 3: negative id -2 in column 'itemID'"):
        read_mmrec(write_mmrec(tmp_path / "b", [(0, 1, 5, 1, 0), (0, -2, 5, 1, 0)]), "toy")
    with pytest.raises(DataError, match="no interactions"):
        read_mmrec(write_mmrec(tmp_path / "c", []), "toy")


def test_mmrec_missing_inter_lists_files(tmp_path):
    (tmp_path / "toy").mkdir()
    np.save(tmp_path / "toy" / "image_feat.npy", np.zeros((2, 3), np.float32))
    with pytest.raises(DataError) as info:
        read_mmrec(tmp_path / "toy", "toy")
    message = str(info.value)
    assert "toy.inter" in message and "text_feat.npy" in message and "image_feat.npy" in message
    with pytest.raises(DataError, match="does not exist"):
        read_mmrec(tmp_path / "nowhere", "toy")


def test_mmrec_feature_checks(tmp_path):
    d = write_mmrec(tmp_path / "toy", MMREC_ROWS, image_rows=7)
    with pytest.raises(DataError, match="7 rows but the dataset has 5 items") as info:
        load_mmrec_feature(d, "image", n_items=5)
    assert "image_feat.npy" in str(info.value)
    bad = np.ones((6, 3), np.float32)
    bad[4, 1] = np.nan
    bad[5, 0] = np.inf
    np.save(d / "image_feat.npy", bad)
    with pytest.raises(DataError, match="2 row\\(s\\), first at item 4"):
        load_mmrec_feature(d, "image")
    np.save(d / "image_feat.npy", np.ones(6, np.float32))
    with pytest.raises(DataError, match="2-D"):
        load_mmrec_feature(d, "image")
    with pytest.raises(DataError, match="not found"):
        load_mmrec_feature(d, "text")
    with pytest.raises(DataError, match="no modality"):
        load_mmrec_feature(d, "audio")
    (d / "text_feat.npy").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable"):
        load_mmrec_feature(d, "text")


# ----------------------------------------------------------------------------------------------------- LATTICE
def write_lattice(directory: Path, train: dict, val: dict, test: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in (("train", train), ("val", val), ("test", test)):
        (directory / f"{name}.json").write_text(json.dumps(data))
    return directory


def test_lattice_small(tmp_path):
    d = write_lattice(tmp_path / "l", {"0": [3, 1], "1": [0], "2": []}, {"0": [2], "3": [1]}, {"1": [4]})
    (d / "item2id.json").write_text(json.dumps({"A": 0, "B": 1, "C": 2, "D": 3, "E": 4, "F": 5}))
    raw = read_lattice_json(d)
    inter = raw.interactions
    assert inter.rows() == [(0, 3, 0), (0, 1, 0), (1, 0, 0), (0, 2, 1), (1, 4, 2)]
    assert raw.meta["cold_start_rows_dropped"] == 1  # user 3 has no training pair
    assert raw.items["item"].to_list() == list(range(6))
    assert raw.items["asin"].to_list() == list("ABCDEF")


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        ('{"0": [1, "x"]}', "user '0' lists 'x'"),
        ('{"0": [1], "1": [-3]}', "user '1' lists -3"),
        ('{"a": [1]}', "user key 'a' is not an integer"),
        ('{"0": 5}', "user '0' maps to a JSON int"),
        ('[1, 2]', "JSON list, not an object"),
        ('{"0": [1,', "not valid JSON"),
        ("", "empty"),
    ],
)
def test_lattice_errors(tmp_path, train, expected):
    d = write_lattice(tmp_path / "l", {}, {"0": [1]}, {"0": [2]})
    (d / "train.json").write_text(train)
    with pytest.raises(DataError) as info:
        read_lattice_json(d)
    assert expected in str(info.value)
    assert "train.json" in str(info.value)


def test_lattice_missing_files(tmp_path):
    d = tmp_path / "l"
    d.mkdir()
    (d / "train.json").write_text("{}")
    with pytest.raises(DataError, match=r"missing: \['val.json', 'test.json'\]"):
        read_lattice_json(d)


@pytest.mark.skipif(not (BABY / "train.json").is_file(), reason="shared amazon-baby-5core data absent")
def test_lattice_baby_real():
    raw = read_lattice_json(BABY)
    inter = raw.interactions
    assert inter["user"].n_unique() == 19_445
    assert raw.items.height == 7_050 and raw.items["asin"].null_count() == 0
    counts = dict(inter.group_by("split").len().iter_rows())
    assert counts == {0: 119_674, 1: 20_559, 2: 20_559}
    frame, users, items = index_raw(raw)
    assert (len(users), len(items), frame.height) == (19_445, 7_050, 160_792)


# ----------------------------------------------------------------------------------------------------- indexing
def test_index_orders_users_numerically_and_items_by_catalogue():
    inter = pl.DataFrame({"user": ["10", "9", "10", "100"], "item": ["b", "a", "c", "a"]})
    items = pl.DataFrame({"item": ["c", "b", "a", "z"]})
    frame, users, item_ids = index_raw(RawDataset(inter, items))
    assert users == ["9", "10", "100"]
    assert item_ids == ["c", "b", "a", "z"]  # catalogue order, unused items kept
    assert frame["u"].to_list() == [1, 0, 1, 2]
    assert frame["i"].to_list() == [1, 2, 0, 2]
    assert frame.schema["u"] == pl.Int64 and frame.schema["i"] == pl.Int64


def test_index_lexicographic_and_integer_ids():
    frame, users, items = index_raw(RawDataset(pl.DataFrame({"user": ["b", "10", "a"], "item": [30, 4, 100]})))
    assert users == ["10", "a", "b"]
    assert items == ["4", "30", "100"]
    assert frame["i"].to_list() == [1, 0, 2]


def test_index_catalogue_dtype_mismatch_and_missing_items():
    inter = pl.DataFrame({"user": [1, 2], "item": ["1", "2"]})
    _, _, items = index_raw(RawDataset(inter, pl.DataFrame({"item": [2, 1]})))
    assert items == ["2", "1"]
    inter = pl.DataFrame({"user": [1, 2, 3], "item": [1, 7, 7]})
    with pytest.raises(DataError, match=r"2 interaction\(s\).*e.g. item '7'"):
        index_raw(RawDataset(inter, pl.DataFrame({"item": [1, 2]})))
    with pytest.raises(DataError, match="more than once"):
        index_raw(RawDataset(inter, pl.DataFrame({"item": [1, 7, 7]})))


def test_index_drops_duplicates_keeping_earliest():
    inter = pl.DataFrame({
        "user": [1, 1, 2, 1, 2],
        "item": [5, 6, 5, 5, 5],
        "timestamp": [30.0, 10.0, 5.0, 20.0, 1.0],
        "split": [0, 0, 0, 2, 1],
    })
    raw = RawDataset(inter)
    frame, _, _ = index_raw(raw)
    assert raw.meta["duplicates_dropped"] == 2
    # (1, 5) keeps its t=20 row, (2, 5) its t=1 row; source order is preserved
    assert frame.select("u", "i", "timestamp", "split").rows() == [(0, 1, 10.0, 0), (0, 0, 20.0, 2), (1, 0, 1.0, 1)]
    raw = RawDataset(inter.drop("timestamp"))
    frame, _, _ = index_raw(raw)
    assert frame.rows() == [(0, 0, 0), (0, 1, 0), (1, 0, 0)]  # first in file order
    assert frame.columns == ["u", "i", "split"]


def test_index_rejects_null_ids_and_empty():
    with pytest.raises(DataError, match="no user id"):
        index_raw(RawDataset(pl.DataFrame({"user": [1, None], "item": [1, 2]})))
    with pytest.raises(DataError, match="no interactions"):
        index_raw(RawDataset(pl.DataFrame({"user": [], "item": []}, schema={"user": pl.Int64, "item": pl.Int64})))
