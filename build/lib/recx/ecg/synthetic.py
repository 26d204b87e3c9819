"""Generated multi-lead ECGs with known beats and rhythm labels (fast tests; a planted structure for the probe).

Each beat is a sum of Gaussians (P, Q, R, S, T waves; McSharry et al.'s dynamical model, in its closed form) placed at
the beat's R time; leads scale and sign-flip the waves differently. Rhythm classes (multi-hot labels, one active):
``normal`` (60–90 bpm, regular), ``tachy`` (100–150 bpm), ``brady`` (40–55 bpm), ``irregular`` (70–120 bpm, RR jitter
±25 %, no P wave — AF-like). Optional baseline wander and noise.
"""

from __future__ import annotations

import numpy as np

CLASSES = ("normal", "tachy", "brady", "irregular")
WAVES = {  # (offset from R in s, amplitude in mV, width in s)
    "P": (-0.20, 0.15, 0.025), "Q": (-0.03, -0.12, 0.010), "R": (0.0, 1.0, 0.012), "S": (0.03, -0.25, 0.010),
    "T": (0.25, 0.30, 0.050),
}


def beat_times(rhythm: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    ranges = {"normal": (60, 90), "tachy": (100, 150), "brady": (40, 55), "irregular": (70, 120)}
    hr = rng.uniform(*ranges[rhythm])
    jitter = 0.25 if rhythm == "irregular" else 0.03
    times, t = [], rng.uniform(0.2, 60.0 / hr)
    while t < seconds - 0.3:
        times.append(t)
        t += (60.0 / hr) * (1.0 + rng.uniform(-jitter, jitter))
    return np.asarray(times)


def ecg_from_beats(times: np.ndarray, seconds: float, fs: float, lead_gains: np.ndarray, p_wave: bool = True,
                   noise: float = 0.02, rng: np.random.Generator | None = None) -> np.ndarray:
    """``[C, seconds·fs]`` from beat times (s) and per-lead ``(C, 5)`` wave gains."""
    rng = rng or np.random.default_rng(0)
    t = np.arange(int(seconds * fs)) / fs
    waves = [w for w in WAVES if p_wave or w != "P"]
    out = np.zeros((lead_gains.shape[0], t.size))
    for k, name in enumerate(WAVES):
        if name not in waves:
            continue
        offset, amp, width = WAVES[name]
        shape = np.exp(-((t[None, :] - (times[:, None] + offset)) ** 2) / (2 * width ** 2)).sum(0) * amp
        out += lead_gains[:, k:k + 1] * shape[None, :]
    out += 0.05 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 6.3))[None]
    out += noise * rng.standard_normal(out.shape)
    return out.astype(np.float32)


def generate_ecgs(n: int = 200, leads: int = 12, seconds: float = 10.0, fs: float = 100.0, seed: int = 0,
                  noise: float = 0.02):
    """``(signals [n, leads, seconds·fs], labels [n, 4] multi-hot, beat times list (s), rhythm names)``."""
    rng = np.random.default_rng(seed)
    gains = rng.uniform(0.5, 1.5, (leads, len(WAVES))) * np.where(rng.random((leads, 1)) < 0.2, -1.0, 1.0)
    gains[0] = np.abs(gains[0])  # lead I upright: beats are detected on the first lead
    signals = np.zeros((n, leads, int(seconds * fs)), np.float32)
    labels = np.zeros((n, len(CLASSES)), np.float32)
    all_times, rhythms = [], []
    for i in range(n):
        rhythm = CLASSES[int(rng.integers(len(CLASSES)))]
        times = beat_times(rhythm, seconds, rng)
        per_record = gains * rng.uniform(0.85, 1.15, gains.shape)
        signals[i] = ecg_from_beats(times, seconds, fs, per_record, p_wave=rhythm != "irregular", noise=noise,
                                    rng=rng)
        labels[i, CLASSES.index(rhythm)] = 1.0
        all_times.append(times)
        rhythms.append(rhythm)
    return signals, labels, all_times, rhythms
