"""recx.data.download: checksums are enforced, local copies come first, failures name the files and the fix."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from recx.data.download import RemoteFile, fetch, file_digest
from recx.errors import DataError


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_copies_from_mirror_and_verifies(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "ds").mkdir(parents=True)
    (mirror / "ds" / "a.txt").write_bytes(b"hello")
    raw = tmp_path / "raw"
    [path] = fetch([RemoteFile("a.txt", sha(b"hello"), mirror="ds/a.txt")], raw, mirror=mirror)
    assert path.read_bytes() == b"hello"
    assert file_digest(path) == hashlib.sha256(b"hello").hexdigest()


def test_checksum_mismatch_is_refused_and_leaves_nothing(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "a.txt").write_bytes(b"tampered")
    raw = tmp_path / "raw"
    with pytest.raises(DataError, match="sha256 mismatch"):
        fetch([RemoteFile("a.txt", sha(b"hello"), mirror="a.txt")], raw, mirror=mirror)
    assert not raw.exists() or list(raw.iterdir()) == []  # no half-installed or wrong file left behind


def test_from_dir_wins_over_mirror(tmp_path):
    mirror, user = tmp_path / "mirror", tmp_path / "user"
    mirror.mkdir()
    user.mkdir()
    (mirror / "a.txt").write_bytes(b"mirror")
    (user / "a.txt").write_bytes(b"user")
    [path] = fetch([RemoteFile("a.txt", None, mirror="a.txt")], tmp_path / "raw", from_dir=user, mirror=mirror)
    assert path.read_bytes() == b"user"


def test_missing_files_are_listed_with_instructions(tmp_path):
    with pytest.raises(DataError) as err:
        fetch([RemoteFile("x.inter"), RemoteFile("y.npy")], tmp_path / "raw", mirror=tmp_path,
              allow_network=False, instructions="get them from the authors")
    text = err.value.render()
    assert "x.inter" in text and "y.npy" in text and "get them from the authors" in text


def test_zip_member_from_url(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("pack/u.data", "1\t2\t3\t4\n")
    archive = tmp_path / "pack.zip"
    archive.write_bytes(buf.getvalue())
    md5 = "md5:" + hashlib.md5(buf.getvalue()).hexdigest()
    spec = RemoteFile("u.data", None, url=archive.as_uri(), member="pack/u.data", archive_checksum=md5)
    [path] = fetch([spec], tmp_path / "raw", mirror=tmp_path / "none")
    assert path.read_text() == "1\t2\t3\t4\n"
    bad = RemoteFile("u.data", None, url=archive.as_uri(), member="pack/u.data", archive_checksum="md5:" + "0" * 32)
    with pytest.raises(DataError, match="md5 mismatch"):
        fetch([bad], tmp_path / "raw2", mirror=tmp_path / "none")


def test_a_mirror_file_changed_in_place_is_copied_again(tmp_path):
    """Files no checksum pins (user MMRec folders) are compared with their mirror copy by size and time."""
    import os

    mirror = tmp_path / "mirror"
    (mirror / "ds").mkdir(parents=True)
    (mirror / "ds" / "a.inter").write_text("v1\n")
    raw = tmp_path / "raw"
    spec = RemoteFile("a.inter", None, mirror="ds/a.inter")
    fetch([spec], raw, mirror=mirror)
    assert (raw / "a.inter").read_text() == "v1\n"
    (mirror / "ds" / "a.inter").write_text("v2 regenerated\n")
    os.utime(mirror / "ds" / "a.inter", ns=(1, 2_000_000_000_000_000_000))
    lines = []
    fetch([spec], raw, mirror=mirror, log=lines.append)
    assert (raw / "a.inter").read_text() == "v2 regenerated\n" and any("copying it again" in ln for ln in lines)


def test_a_failed_download_leaves_no_half_filled_raw_folder(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "a.txt").write_bytes(b"hello")
    raw = tmp_path / "raw"
    files = [RemoteFile("a.txt", sha(b"hello"), mirror="a.txt"), RemoteFile("b.txt", None, mirror="b.txt")]
    with pytest.raises(DataError, match="missing raw file"):
        fetch(files, raw, mirror=mirror)
    assert not raw.exists()  # a.txt was copied, then taken back with the folder this call created
    raw.mkdir()
    (raw / "keep.txt").write_text("earlier")
    with pytest.raises(DataError):
        fetch(files, raw, mirror=mirror)
    assert sorted(p.name for p in raw.iterdir()) == ["keep.txt"]  # what was there before stays
