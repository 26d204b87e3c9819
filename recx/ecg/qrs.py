"""The QRS tokenizer: ECG records → sentences of heartbeat "words" (HeartLang's ``QRSTokenizer.py``, research notes
§1.2–1.3), written for recx.

* :func:`preprocess`: resample to 100 Hz, then (optionally) a 5th-order Butterworth band-pass, 0.67–40 Hz by default
  (``filtfilt``; the official MIMIC-IV-ECG and CSN preparation), vectorised over records and leads. ``band=None``
  only resamples: the official PTB-XL preparation (``records100`` + one global standard scaling) has no filter.
* :func:`find_r_peaks`: the beat detector behind the tokenizer, by name. ``"xqrs"`` (default) is what the official
  ``QRSTokenizer.py`` calls, ``wfdb.processing.xqrs_detect(sig, fs=100)`` (the ``wfdb`` package, extra ``ecg``).
  ``"pan_tompkins"`` is recx's own :func:`detect_r_peaks` (no dependency, ~4× faster) — kept as an option because it
  does **not** mark the same sample: on MIT-BIH record 208 (30 windows of 10 s, 100 Hz) both find ~492 beats, but only
  27 % of recx's marks lie within 50 ms of an XQRS mark (XQRS marks sit ~60–70 ms before recx's, which refine to the
  largest deflection), so tokens would be cut around different centres (``scripts/bench_ecg.py --detectors``).
* :func:`detect_r_peaks`: recx's Pan–Tompkins-style detector: 5–15 Hz band-pass, derivative, squaring, 150 ms
  moving-window integration, peaks at least 250 ms apart above an adaptive threshold, each refined to the largest
  deflection within ±100 ms. Validated on the real MIT-BIH record and on generated ECGs with known beats.
* :func:`tokenize_record`: exactly the official cutting rule — one 96-sample token per beat, cut at the midpoints to
  the neighbouring beats (±48 samples at the ends, recentred when longer than 96), the R peak at index 48 when the
  left half fits; lead-major sentences (all beats of lead 1, then lead 2, ...), lead ids ``used_channels[i] + 1``
  (the lead's index among the 12 standard leads plus one, so lead V2 is 8 whichever subset is used), time ids
  ``R // fs + 1`` (1-s blocks), padded (ids 0, mask False) or truncated to ``max_len`` = 256. Beats are detected on the
  first lead only, as in the official code. Vectorised over beats and leads (one gather per record).
* :func:`tokenize_records`: many records, a progress bar when there are many.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FS = 100
TOKEN_LEN = 96
MAX_LEN = 256


BAND = (0.67, 40.0)
DETECTORS = ("xqrs", "pan_tompkins")


def preprocess(signal: np.ndarray, fs: float, target_fs: int = FS, band: tuple[float, float] | None = BAND,
               order: int = 5) -> np.ndarray:
    """``[..., L]`` at ``fs`` → ``[..., L · target_fs / fs]`` float32, band-passed unless ``band`` is None."""
    from scipy.signal import butter, filtfilt, resample_poly

    x = np.asarray(signal, dtype=np.float64)
    if fs != target_fs:
        from fractions import Fraction

        ratio = Fraction(target_fs / fs).limit_denominator(1000)
        x = resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)
    if band is None:
        return x.astype(np.float32)
    b, a = butter(order, [band[0] / (target_fs / 2), min(band[1], 0.99 * target_fs / 2) / (target_fs / 2)], "band")
    return filtfilt(b, a, x, axis=-1).astype(np.float32)


def xqrs_peaks(x: np.ndarray, fs: float = FS) -> np.ndarray:
    """The official detector: ``wfdb.processing.xqrs_detect`` on one lead (its learning phase and thresholds)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < int(0.5 * fs) or not np.any(x != x[0]):
        return np.zeros(0, dtype=np.int64)  # xqrs needs a non-constant signal
    try:
        import warnings

        with warnings.catch_warnings():  # wfdb 4.3 uses a pandas keyword that pandas 3 deprecates, at import
            warnings.simplefilter("ignore")
            from wfdb import processing
    except ImportError:
        from recx.errors import ConfigError

        raise ConfigError("the official beat detector (XQRS) needs the `wfdb` package", field="dataset.source.detector",
                          fix="pip install -c constraints.txt 'recx[ecg]' (make install does), or set "
                              "dataset.source.detector=pan_tompkins (recx's own detector)") from None
    return np.unique(np.asarray(processing.xqrs_detect(sig=x, fs=fs, verbose=False), dtype=np.int64))


def find_r_peaks(x: np.ndarray, fs: float = FS, detector: str = "xqrs") -> np.ndarray:
    """R-peak sample indices of one lead with the named detector (see the module docstring)."""
    if detector == "xqrs":
        return xqrs_peaks(x, fs)
    if detector == "pan_tompkins":
        return detect_r_peaks(x, fs)
    from recx.errors import ConfigError

    raise ConfigError(f"unknown beat detector '{detector}'", field="dataset.source.detector",
                      fix=f"one of {', '.join(DETECTORS)}")


def detect_r_peaks(x: np.ndarray, fs: float = FS, min_rr: float = 0.25, threshold: float = 0.2) -> np.ndarray:
    """Sample indices of the R peaks of one lead ``[L]`` (sorted)."""
    from scipy.signal import butter, filtfilt, find_peaks

    x = np.asarray(x, dtype=np.float64)
    if x.size < int(0.5 * fs):
        return np.zeros(0, dtype=np.int64)
    b, a = butter(2, [5.0 / (fs / 2), min(15.0, 0.45 * fs) / (fs / 2)], "band")
    qrs = filtfilt(b, a, x)
    energy = np.gradient(qrs) ** 2
    width = max(1, int(round(0.15 * fs)))
    integrated = np.convolve(energy, np.ones(width) / width, mode="same")
    # adaptive threshold: a share of the local peak level over a 2-s window (robust to a few huge ectopic beats)
    from scipy.ndimage import maximum_filter1d

    local = maximum_filter1d(integrated, size=int(2 * fs), mode="nearest")
    level = np.maximum(local, np.percentile(integrated, 90))
    candidates, _ = find_peaks(integrated, distance=max(1, int(min_rr * fs)))
    keep = candidates[integrated[candidates] >= threshold * level[candidates]]
    centred = x - np.median(x)
    half = int(round(0.1 * fs))
    refined = np.array([max(0, p - half) + int(np.argmax(np.abs(centred[max(0, p - half): p + half + 1])))
                        for p in keep], dtype=np.int64)
    refined = np.unique(refined)
    if refined.size > 1:  # two refinements may land within a refractory period: keep the larger deflection
        close = np.diff(refined) < int(min_rr * fs)
        drop = np.zeros(refined.size, dtype=bool)
        for i in np.flatnonzero(close):
            weaker = i if abs(centred[refined[i]]) < abs(centred[refined[i + 1]]) else i + 1
            drop[weaker] = True
        refined = refined[~drop]
    return refined


@dataclass
class Sentence:
    """One record as tokens: ``tokens [max_len, 96]``, ``leads``/``times [max_len]`` int64 (0 = padding),
    ``mask [max_len]`` bool, and the R peaks used."""

    tokens: np.ndarray
    leads: np.ndarray
    times: np.ndarray
    mask: np.ndarray
    r_peaks: np.ndarray


def beat_windows(r: np.ndarray, length: int, token_len: int = TOKEN_LEN) -> tuple[np.ndarray, np.ndarray]:
    """``(index [n_beats, token_len], valid [n_beats, token_len])``: which sample fills each token position."""
    half = token_len // 2
    n = r.size
    prev = np.r_[r[:1], r[:-1]]
    nxt = np.r_[r[1:], r[-1:]]
    first, last = np.arange(n) == 0, np.arange(n) == n - 1
    start = np.where(first, np.maximum(r - half, 0), (prev + r) // 2)
    end = np.where(last, np.minimum(r + half, length), (r + nxt) // 2)
    too_long = end - start > token_len
    start = np.where(too_long, np.maximum(r - half, 0), start)
    end = np.where(too_long, np.minimum(start + token_len, length), end)
    offset = np.maximum(half - (r - start), 0)
    j = np.arange(token_len)[None, :]
    rel = j - offset[:, None]
    valid = (rel >= 0) & (rel < (end - start)[:, None])
    index = np.clip(start[:, None] + rel, 0, length - 1)
    return index, valid


def tokenize_record(signal: np.ndarray, fs: float = FS, r_peaks: np.ndarray | None = None,
                    token_len: int = TOKEN_LEN, max_len: int = MAX_LEN, lead_ids: np.ndarray | None = None,
                    detector: str = "xqrs") -> Sentence:
    """One preprocessed record ``[C, L]`` at ``fs`` (100 Hz) → a :class:`Sentence` (see the module docstring).
    ``lead_ids [C]``: the id of each row (the official ``used_channels[i] + 1``); default ``1..C``."""
    signal = np.asarray(signal, dtype=np.float32)
    if signal.ndim == 1:
        signal = signal[None]
    c, length = signal.shape
    ids = np.arange(1, c + 1) if lead_ids is None else np.asarray(lead_ids, dtype=np.int64)
    if ids.shape != (c,) or (ids < 1).any():
        raise ValueError(f"lead_ids must be {c} ids >= 1, got {ids.tolist()}")
    r = find_r_peaks(signal[0], fs, detector) if r_peaks is None else np.asarray(r_peaks, dtype=np.int64)
    tokens = np.zeros((max_len, token_len), dtype=np.float32)
    leads = np.zeros(max_len, dtype=np.int64)
    times = np.zeros(max_len, dtype=np.int64)
    if r.size:
        index, valid = beat_windows(r, length, token_len)
        beats = np.where(valid[None], signal[:, index], 0.0).reshape(c * r.size, token_len)  # lead-major
        n = min(beats.shape[0], max_len)
        tokens[:n] = beats[:n]
        leads[:n] = np.repeat(ids, r.size)[:n]
        times[:n] = np.tile(r // int(fs) + 1, c)[:n]
    return Sentence(tokens, leads, times, leads > 0, r)


def windows_of(signal: np.ndarray, fs: float = FS, seconds: float = 10.0) -> np.ndarray:
    """Consecutive non-overlapping ``seconds``-long windows of a long record ``[C, L]`` → ``[W, C, seconds·fs]``."""
    size = int(seconds * fs)
    n = signal.shape[-1] // size
    return signal[..., : n * size].reshape(signal.shape[0], n, size).transpose(1, 0, 2)


def tokenize_records(signals: np.ndarray, fs: float = FS, token_len: int = TOKEN_LEN, max_len: int = MAX_LEN,
                     progress: bool | None = None, lead_ids: np.ndarray | None = None,
                     detector: str = "xqrs") -> dict[str, np.ndarray]:
    """``[N, C, L]`` preprocessed records → stacked ``tokens [N, max_len, 96]``, ``leads``, ``times``, ``mask``, and
    ``beats [N]`` (R peaks detected per record, on the first row, with ``detector``)."""
    from recx.console import console

    n = signals.shape[0]
    out = {"tokens": np.zeros((n, max_len, token_len), np.float32), "leads": np.zeros((n, max_len), np.int64),
           "times": np.zeros((n, max_len), np.int64), "mask": np.zeros((n, max_len), bool),
           "beats": np.zeros(n, np.int64)}
    show = progress if progress is not None else n >= 500

    def one(i: int) -> None:
        s = tokenize_record(signals[i], fs, token_len=token_len, max_len=max_len, lead_ids=lead_ids,
                            detector=detector)
        out["tokens"][i], out["leads"][i], out["times"][i], out["mask"][i] = s.tokens, s.leads, s.times, s.mask
        out["beats"][i] = s.r_peaks.size

    if show:
        from rich.progress import Progress

        with Progress(console=console(stderr=True), transient=True) as bar:
            task = bar.add_task("tokenizing ECG records", total=n)
            for i in range(n):
                one(i)
                bar.advance(task)
    else:
        for i in range(n):
            one(i)
    return out
