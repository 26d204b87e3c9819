"""A small WFDB reader: the ``.hea`` header and signal files in formats 16, 212 and 80 (PhysioNet's MIT-BIH and
PTB-XL ``records100``/``records500`` use 212 and 16). Physical units: ``(digital − baseline) / gain``.

Written for recx (no ``wfdb`` dependency): a corrupt or unsupported header is a :class:`~recx.errors.DataError` that
names the file, the line and what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recx.errors import DataError, require_file

FORMATS = ("16", "212", "80")
_GAIN = re.compile(r"^(?P<gain>[-+0-9.eE]+)(\((?P<baseline>-?\d+)\))?(/(?P<units>\S+))?$")


@dataclass(frozen=True)
class SignalSpec:
    file: str
    fmt: str
    gain: float
    baseline: int
    units: str
    description: str


@dataclass(frozen=True)
class WFDBHeader:
    record: str
    fs: float
    n_samples: int
    signals: list[SignalSpec]

    @property
    def n_signals(self) -> int:
        return len(self.signals)


def read_header(path: str | Path) -> WFDBHeader:
    p = require_file(path, what="WFDB header", fix="give the record path without extension; <record>.hea must exist")
    fix = "the header must follow the WFDB format (record line, then one line per signal)"
    text = p.read_text(errors="replace")
    if text.strip() and not text.endswith("\n"):  # cut off mid-line: the last signal line may be partial
        from recx.data.tables import raise_truncated

        raise_truncated(p, "WFDB header", len(text.splitlines()), fix)
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise DataError("empty header", path=p, fix=fix)
    n, record_line = lines[0]
    fields = record_line.split()
    if len(fields) < 4:
        raise DataError(f"line {n}: record line needs 'name n_signals fs n_samples', got {record_line!r}", path=p,
                        fix=fix)
    try:
        n_signals = int(fields[1])
        fs = float(fields[2].split("/")[0])
        n_samples = int(fields[3])
    except ValueError:
        raise DataError(f"line {n}: bad number in the record line {record_line!r}", path=p, fix=fix) from None
    if n_signals < 1 or fs <= 0 or n_samples < 1:
        raise DataError(f"line {n}: impossible record line (signals {n_signals}, fs {fs}, samples {n_samples})",
                        path=p, fix=fix)
    if len(lines) - 1 < n_signals:
        raise DataError(f"the record line announces {n_signals} signals but {len(lines) - 1} signal lines follow",
                        path=p, fix=fix)
    signals = []
    for n, line in lines[1:n_signals + 1]:
        parts = line.split()
        if len(parts) < 3:
            raise DataError(f"line {n}: signal line needs 'file format gain ...', got {line!r}", path=p, fix=fix)
        fmt = parts[1].split("x")[0].split(":")[0]
        if fmt not in FORMATS:
            raise DataError(f"line {n}: signal format {parts[1]!r} is not supported (only {', '.join(FORMATS)})",
                            path=p, fix="convert the record to format 16 or 212 (e.g. with wfdb's wrsamp)")
        m = _GAIN.match(parts[2])
        if not m:
            raise DataError(f"line {n}: bad gain field {parts[2]!r}", path=p, fix=fix)
        gain = float(m.group("gain")) or 200.0  # WFDB: gain 0 means the default 200 adu per unit
        baseline = int(m.group("baseline")) if m.group("baseline") else (int(parts[4]) if len(parts) > 4 else 0)
        signals.append(SignalSpec(parts[0], fmt, gain, baseline, m.group("units") or "mV",
                                  " ".join(parts[8:]) if len(parts) > 8 else f"signal{len(signals)}"))
    if len({(s.file, s.fmt) for s in signals}) != len({s.file for s in signals}):
        raise DataError("signals sharing one file must share its format", path=p, fix=fix)
    return WFDBHeader(fields[0], fs, n_samples, signals)


def _decode(raw: np.ndarray, fmt: str, n_values: int) -> np.ndarray:
    if fmt == "16":
        return raw.view("<i2")[:n_values].astype(np.int32)
    if fmt == "80":
        return raw[:n_values].astype(np.int32) - 128
    # 212: two 12-bit two's-complement samples in three bytes
    triples = raw[: (len(raw) // 3) * 3].reshape(-1, 3).astype(np.int32)
    first = triples[:, 0] | ((triples[:, 1] & 0x0F) << 8)
    second = triples[:, 2] | ((triples[:, 1] & 0xF0) << 4)
    out = np.empty(triples.shape[0] * 2, dtype=np.int32)
    out[0::2], out[1::2] = first, second
    out[out >= 2048] -= 4096
    return out[:n_values]


def read_record(record: str | Path) -> tuple[np.ndarray, WFDBHeader]:
    """``(signal [n_signals, n_samples] float32 in physical units, header)`` of ``<record>.hea`` + its data files."""
    base = Path(str(record).removesuffix(".hea"))
    header = read_header(base.with_suffix(".hea"))
    out = np.empty((header.n_signals, header.n_samples), dtype=np.float32)
    by_file: dict[str, list[int]] = {}
    for i, s in enumerate(header.signals):
        by_file.setdefault(s.file, []).append(i)
    for name, idx in by_file.items():
        path = require_file(base.parent / name, what="WFDB signal file", fix="keep the .dat next to its .hea")
        raw = np.fromfile(path, dtype=np.uint8)
        need = header.n_samples * len(idx)
        values = _decode(raw, header.signals[idx[0]].fmt, need)
        if values.size < need:
            raise DataError(f"signal file holds {values.size} samples, the header needs {need}", path=path,
                            fix="the file is truncated; download it again")
        frame = values.reshape(header.n_samples, len(idx)).T  # interleaved samples
        for row, i in enumerate(idx):
            s = header.signals[i]
            out[i] = (frame[row] - s.baseline) / s.gain
    return out, header


def write_record(base: str | Path, signal: np.ndarray, fs: float, gain: float = 200.0, fmt: str = "16",
                 names: list[str] | None = None) -> None:
    """Write a record (``<base>.hea`` + ``<base>.dat``, one file, format 16 or 212) — for tests and exports."""
    base = Path(base)
    digital = np.round(signal * gain).astype(np.int64)
    n_sig, n = digital.shape
    inter = digital.T.reshape(-1)
    if fmt == "16":
        payload = inter.astype("<i2").tobytes()
    elif fmt == "212":
        if inter.size % 2:
            inter = np.append(inter, 0)
        v = inter & 0xFFF
        a, b = v[0::2], v[1::2]
        payload = np.stack([a & 0xFF, ((a >> 8) & 0x0F) | ((b >> 8) & 0x0F) << 4, b & 0xFF], 1).astype(
            np.uint8).tobytes()
    else:
        raise ValueError(f"write_record supports formats 16 and 212, not {fmt}")
    (base.parent / f"{base.name}.dat").write_bytes(payload)
    names = names or [f"lead{i}" for i in range(n_sig)]
    lines = [f"{base.name} {n_sig} {fs:g} {n}"]
    lines += [f"{base.name}.dat {fmt} {gain:g}(0)/mV 16 0 {int(digital[i, 0])} 0 0 {names[i]}" for i in range(n_sig)]
    (base.parent / f"{base.name}.hea").write_text("\n".join(lines) + "\n")
