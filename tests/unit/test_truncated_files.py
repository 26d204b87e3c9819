"""Every text format recx reads refuses a file cut off mid-line or a ragged line, naming the line and what it
expected (issue 20), instead of dropping or mis-parsing the partial line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recx.errors import DataError

INTER = "userID\titemID\trating\ttimestamp\tx_label\n" + "".join(
    f"{u}\t{i}\t5\t{1000 + u * 10 + i}\t{0 if i < 3 else (1 if i == 3 else 2)}\n" for u in range(3) for i in range(5))


def cut(text: str, drop: int = 3) -> str:
    """The text minus its last ``drop`` characters (a copy that stopped mid-line)."""
    return text[: len(text) - 1 - drop]


def expect(exc_info, *words: str) -> None:
    text = exc_info.value.render()
    for word in words:
        assert word in text, text


def test_mmrec_inter_cut_mid_line(tmp_path):
    from recx.data.mmrec import read_mmrec

    (tmp_path / "baby.inter").write_text(cut(INTER, 2))  # the last x_label and the timestamp's end are gone
    with pytest.raises(DataError) as info:
        read_mmrec(tmp_path, "baby")
    expect(info, "line 16", "expected 5")


def test_mmrec_inter_cut_inside_the_last_field(tmp_path):
    from recx.data.mmrec import read_mmrec

    (tmp_path / "baby.inter").write_text(INTER[:-1] + "\n" + "2\t4\t5\t10")  # 4 of 5 fields, no newline
    with pytest.raises(DataError) as info:
        read_mmrec(tmp_path, "baby")
    expect(info, "line 17", "has 4 fields, expected 5")
    (tmp_path / "baby.inter").write_text(INTER[:-2])  # every field there, but no newline: the value may be partial
    with pytest.raises(DataError) as info:
        read_mmrec(tmp_path, "baby")
    expect(info, "line 16", "looks truncated")


def test_mmrec_inter_ragged_middle_line(tmp_path):
    from recx.data.mmrec import read_mmrec

    lines = INTER.splitlines(keepends=True)
    lines[4] = "1\t1\t5\n"
    (tmp_path / "baby.inter").write_text("".join(lines))
    with pytest.raises(DataError) as info:
        read_mmrec(tmp_path, "baby")
    expect(info, "line 5 has 3 fields, expected 5")


def test_recbole_atomic_cut_mid_line(tmp_path):
    from recx.data.recbole import read_atomic

    text = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t5\t100\n1\t3\t4\t101\n"
    path = tmp_path / "ml.inter"
    path.write_text(cut(text, 4))
    with pytest.raises(DataError) as info:
        read_atomic(path)
    expect(info, "line 3 has 3 fields, expected 4")


def test_grouplens_cut_mid_line(tmp_path):
    from recx.data.grouplens import read_grouplens_100k

    path = tmp_path / "u.data"
    path.write_text("1\t2\t5\t881250949\n1\t3\t4\t88125")
    with pytest.raises(DataError) as info:
        read_grouplens_100k(path)
    expect(info, "line 2", "looks truncated")


def test_lattice_json_cut_off(tmp_path):
    from recx.data.lattice import read_lattice_json

    for name in ("train.json", "val.json", "test.json"):
        (tmp_path / name).write_text(json.dumps({"0": [1, 2], "1": [0, 3]}))
    (tmp_path / "train.json").write_text(json.dumps({"0": [1, 2], "1": [0, 3]})[:-6])
    with pytest.raises(DataError) as info:
        read_lattice_json(tmp_path)
    expect(info, "train.json is not valid JSON", "line 1")


def test_svmlight_cut_mid_line(tmp_path):
    from recx.data.svmlight import read_svmlight

    path = tmp_path / "train.txt"
    path.write_text("2 qid:1 1:0.5 2:0.25\n0 qid:1 1:0.1 2:0.7")
    with pytest.raises(DataError) as info:
        read_svmlight(path)
    expect(info, "line 2", "looks truncated")
    path.write_text("2 qid:1 1:0.5 2:0.25\n0 qid:1 1:0.1 2:\n")  # a token cut at its value
    with pytest.raises(DataError) as info:
        read_svmlight(path)
    expect(info, "line 2")


def test_assist_three_line_file_cut(tmp_path):
    from recx.pathrec.data import read_three_line_csv

    path = tmp_path / "train.csv"
    path.write_text("3\n1,2,3\n1,0,1\n2\n4,5\n1,")
    with pytest.raises(DataError) as info:
        read_three_line_csv(path)
    expect(info, "line 6", "looks truncated")
    path.write_text("3\n1,2,3\n1,0,1\n2\n4,5\n")
    with pytest.raises(DataError) as info:
        read_three_line_csv(path)
    expect(info, "not a multiple of 3")


def test_wfdb_header_cut(tmp_path):
    from recx.ecg.wfdb import read_header

    path = tmp_path / "r.hea"
    path.write_text("r 2 500 5000\nr.dat 16 200/mV 16 0 0 0 0 I\nr.dat 16 2")
    with pytest.raises(DataError) as info:
        read_header(path)
    expect(info, "line 3", "looks truncated")


def test_labelled_text_file_cut_and_ragged(tmp_path):
    from recx.icl.data import read_labelled_file

    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\na fine film\t1\na dull one\t")
    with pytest.raises(DataError) as info:
        read_labelled_file(path, "sst2")
    expect(info, "line 3", "looks truncated")
    path.write_text("sentence\tlabel\na fine film\t1\nbroken line without label\n")
    with pytest.raises(DataError) as info:
        read_labelled_file(path, "sst2")
    expect(info, "line 3 has 1", "expected 2")


def test_rotten_tomatoes_ragged_record(tmp_path):
    from recx.icl.data import read_rotten_tomatoes

    path = tmp_path / "rt.csv"
    path.write_text("category,text,movie,is_review\nfresh,good,m,True\nrotten,bad\n")
    with pytest.raises(DataError) as info:
        read_rotten_tomatoes(path)
    expect(info, "line 3", "4 fields of the header")


def test_truncated_bz2_corpus(tmp_path):
    import bz2

    from recx.icl.data import read_rotten_tomatoes

    data = bz2.compress(b"category,text,movie,is_review\n" + b"fresh,good,m,True\n" * 200)
    path = tmp_path / "rt.csv.bz2"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as info:
        read_rotten_tomatoes(path)
    expect(info, "cannot be read", "truncated or corrupt")


def test_complete_files_still_read(tmp_path):
    """The checks refuse only damaged files: the same files, complete, read as before."""
    from recx.data.mmrec import read_mmrec
    from recx.data.svmlight import read_svmlight

    (tmp_path / "baby.inter").write_text(INTER)
    assert read_mmrec(tmp_path, "baby").interactions.height == 15
    crlf = tmp_path / "crlf" / "baby.inter"
    crlf.parent.mkdir()
    crlf.write_bytes(INTER.replace("\n", "\r\n").encode() + b"\r\n")
    assert read_mmrec(crlf.parent, "baby").interactions.height == 15
    path = tmp_path / "train.txt"
    path.write_text("2 qid:1 1:0.5 2:0.25\n0 qid:1 1:0.1 2:0.7 # a comment\n")
    assert read_svmlight(path).n_docs == 2
