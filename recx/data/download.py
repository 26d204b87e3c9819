"""Fetching raw dataset files with checksums.

Each dataset source lists the files it needs as :class:`RemoteFile` records. :func:`fetch` puts them in the dataset's
raw folder from, in order: a ``--from`` folder given by the user, the ``RECX_DATA_MIRROR`` folder (a local copy of the
official files, as CI uses), or the official URL (a file, or a member of a zip archive). Every file is verified against
its recorded checksum before it is moved into place, so a truncated or substituted file never reaches a loader, and an
interrupted download leaves nothing half-written behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from recx.errors import DataError
from recx.files import use_umask

MIRROR_ENV = "RECX_DATA_MIRROR"


@dataclass(frozen=True)
class RemoteFile:
    """One raw file a dataset needs.

    ``name``: file name inside the dataset's raw folder. ``checksum``: ``"sha256:<hex>"`` or ``"md5:<hex>"`` of the
    file itself (``None``: unverifiable, e.g. user-supplied data without a published checksum). ``mirror``: path
    relative to a mirror root. ``url``: official location; if ``member`` is set, ``url`` is a zip archive
    (verified by ``archive_checksum``) and ``member`` the path inside it.
    """

    name: str
    checksum: str | None = None
    mirror: str | None = None
    url: str | None = None
    member: str | None = None
    archive_checksum: str | None = None


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, checksum: str | None, *, origin: str) -> None:
    """Raise a DataError unless ``path`` matches ``checksum`` (``algo:hex``); ``None`` accepts any file."""
    if checksum is None:
        return
    algorithm, _, expected = checksum.partition(":")
    actual = file_digest(path, algorithm)
    if actual != expected.lower():
        raise DataError(
            f"{algorithm} mismatch for {origin}: expected {expected}, got {actual}",
            path=path,
            fix="the file is truncated, corrupted or a different version; fetch it again from the official source",
        )


def mirror_root() -> Path | None:
    value = os.environ.get(MIRROR_ENV)
    return Path(value).expanduser() if value else None


def is_present(spec: RemoteFile, raw_dir: Path) -> bool:
    """True when the file is already in ``raw_dir`` with the right checksum."""
    path = raw_dir / spec.name
    if not path.is_file():
        return False
    try:
        verify(path, spec.checksum, origin=str(path))
    except DataError:
        return False
    return True


def is_current(spec: RemoteFile, raw_dir: Path, mirror: Path | None) -> bool:
    """Present, and — for a file no checksum pins — still the same as its mirror copy (size and modification time;
    copies keep the origin's time), so a mirror folder regenerated in place is noticed instead of silently ignored."""
    if not is_present(spec, raw_dir):
        return False
    if spec.checksum is not None:
        return True
    local = _first_local_copy(spec, None, mirror)
    return local is None or same_stamp(local, raw_dir / spec.name)


def fetch(
    files: list[RemoteFile],
    raw_dir: str | Path,
    *,
    from_dir: str | Path | None = None,
    mirror: str | Path | None = None,
    allow_network: bool = True,
    instructions: str = "",
    log: Callable[[str], None] = lambda msg: None,
) -> list[Path]:
    """Make every file of ``files`` present and verified in ``raw_dir``; return their paths.

    Raises one DataError listing every file that could not be obtained and how to obtain it.
    """
    raw_dir = Path(raw_dir)
    created = not raw_dir.exists()
    raw_dir.mkdir(parents=True, exist_ok=True)
    mirror = Path(mirror) if mirror is not None else mirror_root()
    installed: list[Path] = []  # files this call put in place: taken back if the set turns out incomplete
    try:
        _fetch_each(files, raw_dir, from_dir, mirror, allow_network, instructions, log, installed)
    except BaseException:
        for path in installed:  # never leave a half-filled raw folder behind
            path.unlink(missing_ok=True)
        if created and raw_dir.is_dir() and not any(raw_dir.iterdir()):
            raw_dir.rmdir()
        raise
    return [raw_dir / spec.name for spec in files]


def _fetch_each(files: list[RemoteFile], raw_dir: Path, from_dir, mirror: Path | None, allow_network: bool,
                instructions: str, log: Callable[[str], None], installed: list[Path]) -> None:
    """:func:`fetch`'s work; every file it newly puts in ``raw_dir`` is appended to ``installed``."""
    archives: dict[str, Path] = {}
    missing: list[str] = []
    for spec in files:
        target = raw_dir / spec.name
        origin = _first_local_copy(spec, from_dir, None) if from_dir is not None else None
        if origin is None and is_present(spec, raw_dir):  # an explicit --from copy always refreshes the file
            if is_current(spec, raw_dir, mirror):
                log(f"ok      {target}")
                continue
            # no checksum pins this file: a mirror copy that changed since it was copied is copied again
            origin = _first_local_copy(spec, None, mirror)
            log(f"changed {origin} since it was copied: copying it again")
        origin = origin or _first_local_copy(spec, from_dir, mirror)
        if origin is not None:
            if not target.exists():
                installed.append(target)
            _install(origin, target, spec.checksum, origin=str(origin))
            log(f"copied  {origin} -> {target}")
            continue
        if spec.url and allow_network:
            try:
                if not target.exists():
                    installed.append(target)
                _download_into(spec, target, archives, raw_dir)
                log(f"fetched {spec.url} -> {target}")
                continue
            except DataError:
                raise
            except OSError as exc:  # no network, DNS failure, HTTP error
                missing.append(f"{spec.name} (download from {spec.url} failed: {exc})")
                continue
        missing.append(spec.name)
    for path in archives.values():
        path.unlink(missing_ok=True)
    if missing:
        where = []
        if from_dir:
            where.append(f"--from {from_dir}")
        where.append(f"{MIRROR_ENV}={mirror}" if mirror else f"{MIRROR_ENV} (unset)")
        raise DataError(
            f"missing raw file(s) {', '.join(missing)} for {raw_dir}; looked in {', '.join(where)}",
            path=raw_dir,
            fix=instructions or "copy the files into that folder, or pass --from <folder holding them>",
        )


def _first_local_copy(spec: RemoteFile, from_dir, mirror: Path | None) -> Path | None:
    candidates = []
    if from_dir is not None:
        base = Path(from_dir).expanduser()
        candidates.append(base / spec.name)
        if spec.mirror:
            candidates += [base / Path(spec.mirror).name, base / spec.mirror]
    if mirror is not None and spec.mirror:
        candidates.append(mirror / spec.mirror)
    return next((c for c in candidates if c.is_file()), None)


def same_stamp(origin: Path, copy: Path) -> bool:
    """Whether ``copy`` still matches ``origin`` by size and modification time (copies keep the origin's time)."""
    a, b = origin.stat(), copy.stat()
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns


def _install(source: Path, target: Path, checksum: str | None, *, origin: str) -> None:
    """Copy ``source`` next to ``target`` (keeping its modification time), verify it, then rename into place."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        shutil.copystat(source, tmp)
        verify(Path(tmp), checksum, origin=origin)
        use_umask(tmp)  # raw copies get the user's umask, not mkstemp's 0600
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _download_into(spec: RemoteFile, target: Path, archives: dict[str, Path], raw_dir: Path) -> None:
    if spec.member is None:
        tmp = _download(spec.url, raw_dir)
        try:
            _install(tmp, target, spec.checksum, origin=spec.url)
        finally:
            tmp.unlink(missing_ok=True)
        return
    archive = archives.get(spec.url)
    if archive is None:
        archive = _download(spec.url, raw_dir)
        archives[spec.url] = archive
        verify(archive, spec.archive_checksum, origin=spec.url)
    with zipfile.ZipFile(archive) as zf, tempfile.TemporaryDirectory(dir=raw_dir) as tmpdir:
        try:
            extracted = Path(zf.extract(spec.member, tmpdir))
        except KeyError as exc:
            raise DataError(f"archive {spec.url} has no member {spec.member}", path=archive) from exc
        _install(extracted, target, spec.checksum, origin=f"{spec.url}!{spec.member}")


def _download(url: str, raw_dir: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=raw_dir, prefix=".download.", suffix=".part")
    os.close(fd)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)
