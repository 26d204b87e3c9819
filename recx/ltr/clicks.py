"""Click simulators for unbiased learning to rank, sampled per impression and vectorised over batches.

A click model turns the true relevance labels of a *displayed* slate into 0/1 clicks. All models here follow the
examination hypothesis: ``click = observed AND attracted``, with ``P(attracted) = gamma(label)`` from a per-grade table
(:func:`click_probabilities`) and ``P(observed)`` given by the model:

* :class:`PositionBasedModel` -- a fixed examination probability per position (ULTRA's PBM);
* :class:`UserBrowsingModel` -- examination depends on the position and the distance to the last click (ULTRA's UBM);
* :class:`CascadeModel` -- the user reads top-down and leaves after the first click.

Conventions shared by all of them (research notes §1.4, §5.1, §5.5):

* labels come in *display order*: column j is position j (0-based); ``mask`` marks real documents;
* users only see the top ``cutoff`` positions (ULTRA's ``selection_bias_cutoff`` = 10): nothing below is ever clicked;
* ``eta`` raises the examination probabilities to a power (eta > 1 = stronger position bias);
* ``popularity_beta`` multiplies the observation probability of each document by ``popularity ** beta`` (popularity in
  (0, 1] per document; beta = 0 switches it off) -- the second, item-level bias of InfoRank-style experiments (§2).
  It is a constructor option on every model, and :func:`with_popularity_bias` adds it to an existing one;
* every draw comes from the ``torch.Generator`` passed in (never the global RNG), one uniform per slate cell, so a
  seeded generator reproduces the clicks exactly.

Unlike STARank's code, which samples one click vector per relevance pattern once and reuses it as a lookup table (and
reverses the bit order, §1.4), clicks are re-sampled for every impression.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from recx.errors import ConfigError, DataError, require_file
from recx.metrics.ltr import extend_table, grade_index, simulate_ubm, ubm_examination, ubm_table_tensor


def click_probabilities(neg: float = 0.1, pos: float = 1.0, max_label: int = 4) -> Tensor:
    """``gamma(r) = neg + b * (2^r - 1)`` with ``b = (pos - neg) / (2^max_label - 1)``, for ``r = 0..max_label``.

    ULTRA's ``setClickProb``: an irrelevant document is clicked with probability ``neg`` once examined, a perfect one
    with ``pos``, and the exponential gain spaces the grades in between -> [0.10, 0.16, 0.28, 0.52, 1.00] for 0..4.
    """
    return torch.tensor(_gamma(neg, pos, max_label), dtype=torch.float32)


def _gamma(neg: float, pos: float, max_label: int) -> list[float]:
    """:func:`click_probabilities` as Python floats (rounded to 12 digits), for constants that end up in configs."""
    b = (pos - neg) / (2.0 ** max_label - 1.0)
    return [round(neg + b * (2.0 ** r - 1.0), 12) for r in range(max_label + 1)]


def starank_click_probabilities() -> Tensor:
    """STARank's ``0.1 + 0.9 (2^r - 1) / (2^(R-1) - 1)`` with R = 2 relevance levels -> [0.1, 1.0] for binary labels.

    It is :func:`click_probabilities` with ``max_label = R - 1 = 1``; STARank binarises labels (> query median) first.
    """
    return click_probabilities(neg=0.1, pos=1.0, max_label=1)


# ---------------------------------------------------------------------------------------------- constants
#: ULTRA PBM examination (``ULTRA_pytorch/example/ClickModel/pbm_0.1_1.0_4_1.0.json``, notes §5.1), before eta.
ULTRA_PBM_EXAMINATION = [0.68, 0.61, 0.48, 0.34, 0.28, 0.20, 0.11, 0.10, 0.08, 0.06]

#: ULTRA UBM table (``ubm_0.1_1_4_1.0.json``), identical to STARank's ``algo/Click.py`` (notes §1.4):
#: row k = position k (0-based), column d = distance to the last click minus 1 (k - last_click - 1).
UBM_TABLE = [
    [1.0],
    [0.98, 1.0],
    [1.0, 0.62, 0.95],
    [1.0, 0.77, 0.42, 0.82],
    [1.0, 0.92, 0.55, 0.31, 0.69],
    [1.0, 0.96, 0.63, 0.40, 0.22, 0.54],
    [1.0, 0.99, 0.73, 0.46, 0.29, 0.17, 0.47],
    [1.0, 1.0, 0.89, 0.52, 0.35, 0.24, 0.14, 0.43],
    [1.0, 1.0, 0.95, 0.68, 0.40, 0.29, 0.19, 0.12, 0.41],
    [1.0, 1.0, 1.0, 0.96, 0.52, 0.36, 0.27, 0.18, 0.12, 0.43],
]

#: STARank's PBM examination (``algo/Click.py``): the diagonal of the UBM table, NOT ULTRA's PBM vector (notes §0.6).
STARANK_PBM_EXAMINATION = [row[-1] for row in UBM_TABLE]  # [1, 1, .95, .82, .69, .54, .47, .43, .41, .43]

#: ULTRA's gamma for labels 0..4 (setClickProb(0.1, 1.0, 4)) and STARank's for binary labels.
ULTRA_CLICK_PROB = _gamma(0.1, 1.0, 4)  # [0.10, 0.16, 0.28, 0.52, 1.00]
STARANK_CLICK_PROB = _gamma(0.1, 1.0, 1)  # [0.1, 1.0]


def simulation_metric_constants(max_label: int) -> dict:
    """The click model behind the ``clicks_pbm@10`` / ``clicks_ubm@10`` metrics: STARank's, for every label scale.

    STARank's ``algo/Click.py`` defines ``gamma(r) = 0.1 + 0.9 (2^r - 1) / (2^(R-1) - 1)`` for ``R`` relevance levels,
    the PBM examination as the UBM table's diagonal and the UBM table shared with ULTRA. Here ``R = max_label + 1``:
    binary labels give STARank's {0.1, 1.0}; MSLR's 0..4 give [.10 .16 .28 .52 1.0] (the same formula, which is also
    ULTRA's ``setClickProb``). One definition, so a number under this name always means the same simulated user --
    earlier versions paired STARank's gamma with ULTRA's PBM examination on binary labels.
    """
    top = max(int(max_label), 1)
    return {"examination": STARANK_PBM_EXAMINATION, "ubm_table": UBM_TABLE, "click_prob": _gamma(0.1, 1.0, top)}


def pytorchltr_examination(length: int) -> Tensor:
    """pytorchltr's ``simulate_pbm``: ``1 / (1 + k)`` with k starting at 1, so the top position is seen w.p. 1/2."""
    return 1.0 / (torch.arange(1, length + 1, dtype=torch.float32) + 1.0)


# ------------------------------------------------------------------------------------------------- models
class ClickModel:
    """Shared protocol: ``sample``, ``propensity``, ``click_rates``; subclasses say how examination works.

    Subclasses implement :meth:`_draw` (clicks from the attraction ``P(click | examined) [B, L]`` and one uniform per
    cell) and :meth:`_examined` (the exact marginal probability that each position is examined). Popularity and the
    cut-off are folded into the attraction before either is called: both only ever multiply the click probability of
    one document, whatever the examination process is, so each model needs to handle just its own examination.
    """

    def __init__(self, click_prob: Sequence[float], cutoff: int | None = 10, popularity_beta: float = 0.0) -> None:
        self.click_prob = torch.as_tensor(click_prob, dtype=torch.float32)
        if self.click_prob.ndim != 1 or bool(((self.click_prob < 0) | (self.click_prob > 1)).any()):
            raise ConfigError(f"click_prob must be a list of probabilities, one per label grade, got {click_prob}",
                              field="click_model.click_prob", fix="e.g. [0.1, 0.16, 0.28, 0.52, 1.0]")
        if cutoff is not None and int(cutoff) < 1:
            raise ConfigError(f"cutoff={cutoff} must be a positive integer or null", field="click_model.cutoff",
                              fix="ULTRA uses 10 (users see the top 10)")
        self.cutoff = None if cutoff is None else int(cutoff)
        self.popularity_beta = float(popularity_beta)

    @property
    def max_label(self) -> int:
        return self.click_prob.numel() - 1

    # -- the two things a model defines
    def _draw(self, attraction: Tensor, uniform: Tensor) -> Tensor:
        raise NotImplementedError

    def _examined(self, attraction: Tensor) -> Tensor:
        raise NotImplementedError

    # -- shared machinery
    def _observation_scale(self, mask: Tensor, popularity: Tensor | None) -> Tensor:
        """``popularity ** beta`` at real, visible positions, 0 elsewhere (padding and below the cut-off)."""
        visible = mask.clone()
        if self.cutoff is not None:
            visible[:, self.cutoff:] = False
        scale = visible.to(torch.float32)
        if self.popularity_beta == 0.0:
            return scale
        if popularity is None:
            raise ConfigError(f"popularity_beta={self.popularity_beta} needs per-document popularity, none was given",
                              field="click_model.popularity_beta", fix="pass popularity or set popularity_beta=0")
        pop = popularity.to(device=mask.device, dtype=torch.float32)
        if bool((visible & ((pop <= 0) | (pop > 1))).any()):
            raise ValueError("popularity must lie in (0, 1] for every displayed document")
        return scale * torch.where(visible, pop, torch.ones_like(pop)).pow(self.popularity_beta)

    def _attraction(self, labels: Tensor, mask: Tensor, popularity: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(gamma(label) * scale, scale)`` as float32 ``[B, L]``, scale = :meth:`_observation_scale`."""
        mask = mask.to(torch.bool)
        gamma = self.click_prob.to(labels.device)
        idx = grade_index(labels.to(torch.float32), mask, gamma.numel())
        scale = self._observation_scale(mask, popularity)
        return gamma[idx] * scale, scale

    def sample(
        self, labels: Tensor, mask: Tensor, generator: torch.Generator, popularity: Tensor | None = None
    ) -> Tensor:
        """0/1 clicks ``[B, L]`` (float32) for one impression of every slate; labels in display order.

        Exactly ``B * L`` uniforms are drawn whatever the labels, so the generator's stream (and hence later draws)
        does not depend on the data. The generator must live on the labels' device (torch draws on its device).
        """
        attraction, _ = self._attraction(labels, mask, popularity)
        uniform = torch.rand(attraction.shape, generator=generator, device=attraction.device)
        return self._draw(attraction, uniform)

    def propensity(self, labels: Tensor, mask: Tensor, popularity: Tensor | None = None) -> Tensor:
        """Exact marginal probability ``[B, L]`` that each displayed document is observed (examined and, with
        ``popularity_beta``, not skipped for its popularity) -- the IPW propensity. 0 at padding and below the cut-off.

        For PBM it depends on the position (and popularity) only. For UBM and cascade it also depends on the labels
        above the position, i.e. it is an *oracle* propensity available in simulation, not from real logs.
        """
        attraction, scale = self._attraction(labels, mask, popularity)
        return self._examined(attraction) * scale

    def click_rates(self, labels: Tensor, mask: Tensor, popularity: Tensor | None = None) -> Tensor:
        """Exact marginal click probability ``[B, L]``: propensity x gamma(label) (examination and attraction are
        independent given the position, in all three models)."""
        attraction, _ = self._attraction(labels, mask, popularity)
        return self._examined(attraction) * attraction


class PositionBasedModel(ClickModel):
    """PBM: ``P(click@k) = e_k^eta * gamma(r)`` (x ``popularity^beta``) for k < cutoff, 0 below it.

    ``examination`` is a list (positions past its end use its last value, as ULTRA does for rank >= 10) or a function
    of the list length for formula-defined curves such as pytorchltr's ``1/(1+k)``.
    """

    def __init__(
        self,
        examination: Sequence[float] | Callable[[int], Tensor],
        click_prob: Sequence[float],
        eta: float = 1.0,
        cutoff: int | None = 10,
        popularity_beta: float = 0.0,
    ) -> None:
        super().__init__(click_prob, cutoff, popularity_beta)
        self._exam = examination if callable(examination) else torch.as_tensor(examination, dtype=torch.float32)
        self.eta = float(eta)

    def examination(self, length: int) -> Tensor:
        """``e_k^eta`` for positions ``0..length-1``, 0 at and below the cut-off."""
        if callable(self._exam):
            base = torch.as_tensor(self._exam(length), dtype=torch.float32)
        else:
            base = extend_table(self._exam, length)
        exam = base.pow(self.eta)
        if self.cutoff is not None:
            exam[self.cutoff:] = 0.0
        return exam

    def _examined(self, attraction: Tensor) -> Tensor:
        return self.examination(attraction.shape[1]).to(attraction.device).expand_as(attraction)

    def _draw(self, attraction: Tensor, uniform: Tensor) -> Tensor:
        return (uniform < self._examined(attraction) * attraction).to(torch.float32)


class UserBrowsingModel(ClickModel):
    """UBM: ``P(examine@k) = table[k][k - last_click - 1]^eta``, ``last_click = -1`` before any click.

    Sequential by nature (examination depends on earlier clicks), so positions up to the cut-off are walked in order
    and the batch is handled in parallel (:func:`recx.metrics.ltr.simulate_ubm`, shared with the UBM metric).
    """

    def __init__(
        self,
        table: Sequence[Sequence[float]],
        click_prob: Sequence[float],
        eta: float = 1.0,
        cutoff: int | None = 10,
        popularity_beta: float = 0.0,
    ) -> None:
        super().__init__(click_prob, cutoff, popularity_beta)
        self.eta = float(eta)
        self.table = ubm_table_tensor(table, self.eta)

    def _visible(self, length: int) -> int:
        return length if self.cutoff is None else min(length, self.cutoff)

    def _draw(self, attraction: Tensor, uniform: Tensor) -> Tensor:
        n = self._visible(attraction.shape[1])
        clicks = torch.zeros_like(attraction)
        clicks[:, :n] = simulate_ubm(attraction[:, :n], self.table.to(attraction.device), uniform[:, :n])
        return clicks

    def _examined(self, attraction: Tensor) -> Tensor:
        """Exact marginals by forward recursion over the last-click position (a Markov chain with k+1 states).

        ``state[:, j + 1]`` = P(last click at j), ``state[:, 0]`` = P(no click yet); at position k each state examines
        with its table entry, and the mass that clicks moves to state k. O(L^2) per slate, no enumeration.
        """
        batch, length = attraction.shape
        n = self._visible(length)
        table = self.table.to(attraction.device)
        state = torch.zeros(batch, n + 1, device=attraction.device)
        state[:, 0] = 1.0
        examined = torch.zeros_like(attraction)
        for pos in range(n):
            last = torch.arange(-1, pos, device=attraction.device)  # states that can exist before position pos
            exam = ubm_examination(table, pos, last)  # [pos + 1]
            examined[:, pos] = (state[:, : pos + 1] * exam).sum(1)
            moved = state[:, : pos + 1] * exam * attraction[:, pos : pos + 1]
            state[:, : pos + 1] -= moved
            state[:, pos + 1] = moved.sum(1)
        return examined


class CascadeModel(ClickModel):
    """Cascade: examine top-down, click with ``gamma(r)``, leave after the first click (at most one click).

    Vectorised without a loop: the user would click every position whose uniform falls below its attraction, and
    keeps only the first such position -- the same event as stopping there.
    """

    def _draw(self, attraction: Tensor, uniform: Tensor) -> Tensor:
        would = uniform < attraction
        return (would & (would.cumsum(1) == 1)).to(torch.float32)

    def _examined(self, attraction: Tensor) -> Tensor:
        """``prod_{j<k} (1 - attraction_j)``: position k is examined iff nothing above was clicked."""
        no_click = torch.cat([torch.ones_like(attraction[:, :1]), 1.0 - attraction[:, :-1]], dim=1)
        return torch.cumprod(no_click, dim=1)


def with_popularity_bias(model: ClickModel, beta: float) -> ClickModel:
    """A copy of ``model`` whose observation probability is also multiplied by ``popularity ** beta``."""
    biased = copy.copy(model)
    biased.popularity_beta = float(beta)
    return biased


# ------------------------------------------------------------------------------------------------ presets
#: name -> model kind and constructor arguments (before eta/cutoff/popularity_beta/overrides).
PRESETS: dict[str, dict] = {
    "pbm": {"model": "pbm", "examination": ULTRA_PBM_EXAMINATION, "click_prob": ULTRA_CLICK_PROB},
    "ubm": {"model": "ubm", "table": UBM_TABLE, "click_prob": ULTRA_CLICK_PROB},
    "cascade": {"model": "cascade", "click_prob": ULTRA_CLICK_PROB},
    "starank_pbm": {"model": "pbm", "examination": STARANK_PBM_EXAMINATION, "click_prob": STARANK_CLICK_PROB},
    "starank_ubm": {"model": "ubm", "table": UBM_TABLE, "click_prob": STARANK_CLICK_PROB},
    # pytorchltr's click_simulation/pbm.py: obs = 1/(1+k)^eta, k from 1; "perfect" relevance preset (notes §5.3)
    "pytorchltr_pbm": {"model": "pbm", "examination": pytorchltr_examination,
                       "click_prob": [0.0, 0.2, 0.4, 0.8, 1.0]},
}

_KINDS: dict[str, type[ClickModel]] = {"pbm": PositionBasedModel, "ubm": UserBrowsingModel, "cascade": CascadeModel}


def make_click_model(
    name: str, eta: float = 1.0, cutoff: int | None = 10, popularity_beta: float = 0.0, **overrides
) -> ClickModel:
    """The click model of preset ``name``, with ``overrides`` replacing its constants (e.g. ``click_prob=[...]``).

    ``eta`` is ignored by the cascade model (it has no examination table).
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown click model {name!r}", field="click_model", fix=f"choose from {', '.join(PRESETS)}")
    spec = dict(PRESETS[name])
    kind = spec.pop("model")
    unknown = set(overrides) - set(spec)
    if unknown:
        raise ConfigError(f"click model {name!r} has no parameter(s) {sorted(unknown)}", field="click_model",
                          fix=f"override only {', '.join(spec)}")
    spec.update(overrides)
    if kind != "cascade":
        spec["eta"] = eta
    return _KINDS[kind](cutoff=cutoff, popularity_beta=popularity_beta, **spec)


# ------------------------------------------------------------------------------------------- logged clicks
@dataclass(frozen=True)
class LoggedClicks:
    """Real (logged) clicks, one row per query: ``clicks [Q, L]`` float32 0/1 in display order, ``mask [Q, L]``.

    Accepted files (:meth:`from_file`):

    * ``.npz`` with ``qids [Q]`` (integers), ``clicks [Q, L]`` (0/1) and optionally ``mask [Q, L]`` (default: all
      True);
    * text/CSV (any other suffix): one line per displayed document ``qid, doc_position, click`` (commas or whitespace;
      a header line is allowed; ``#`` starts a comment). Positions are 0-based; positions a query does not list are
      padding. Queries keep the order of their first line.
    """

    qids: np.ndarray
    clicks: Tensor
    mask: Tensor

    def __len__(self) -> int:
        return len(self.qids)

    def rows(self, qids: Sequence[int]) -> tuple[Tensor, Tensor]:
        """``(clicks, mask)`` of the given queries, in that order; DataError for a query without logged clicks."""
        index = {int(q): i for i, q in enumerate(self.qids)}
        missing = [int(q) for q in qids if int(q) not in index]
        if missing:
            raise DataError(f"no logged clicks for qid(s) {missing[:5]}", field="click_model",
                            fix="log every query that is trained on, or drop the others")
        pick = torch.tensor([index[int(q)] for q in qids], dtype=torch.int64)
        return self.clicks[pick], self.mask[pick]

    @classmethod
    def from_file(cls, path: str | Path) -> "LoggedClicks":
        p = require_file(path, what="logged click file", fix="point click_model.path at a .npz or qid,pos,click file")
        return cls._from_npz(p) if p.suffix == ".npz" else cls._from_text(p)

    @staticmethod
    def _check_binary(clicks: np.ndarray, mask: np.ndarray, p: Path) -> None:
        bad = mask & (clicks != 0) & (clicks != 1)
        if bad.any():
            raise DataError(f"clicks must be 0 or 1, found {np.unique(clicks[bad])[:5].tolist()}", path=p,
                            fix="write 1 for a click and 0 for a displayed, unclicked document")

    @classmethod
    def _from_npz(cls, p: Path) -> "LoggedClicks":
        try:
            with np.load(p) as data:
                arrays = {key: data[key] for key in data.files}
        except Exception as exc:  # noqa: BLE001 - any unreadable archive is the user's file, not a recx bug
            raise DataError(f"cannot read the click archive: {exc}", path=p, fix="save it with numpy.savez") from exc
        if "qids" not in arrays or "clicks" not in arrays:
            raise DataError(f"the archive needs arrays 'qids' and 'clicks', has {sorted(arrays)}", path=p,
                            fix="numpy.savez(path, qids=..., clicks=...)")
        qids, clicks = arrays["qids"], arrays["clicks"]
        mask = arrays.get("mask", np.ones(clicks.shape, dtype=bool)).astype(bool)
        if qids.ndim != 1 or clicks.ndim != 2 or clicks.shape[0] != qids.shape[0] or mask.shape != clicks.shape:
            raise DataError(f"shapes do not fit: qids {qids.shape}, clicks {clicks.shape}, mask {mask.shape}", path=p,
                            fix="qids [Q], clicks [Q, L], mask [Q, L]")
        if not np.issubdtype(qids.dtype, np.integer):
            raise DataError(f"qids must be integers, got dtype {qids.dtype}", path=p, fix="map query ids to integers")
        if len(np.unique(qids)) != len(qids):
            raise DataError("qids are not unique", path=p, fix="one row per query")
        cls._check_binary(clicks, mask, p)
        return cls(qids.astype(np.int64), torch.as_tensor(clicks * mask, dtype=torch.float32), torch.as_tensor(mask))

    @classmethod
    def _from_text(cls, p: Path) -> "LoggedClicks":
        rows: list[tuple[int, int, float]] = []
        for n, line in enumerate(p.read_text().splitlines(), start=1):
            fields = line.split("#", 1)[0].replace(",", " ").split()
            if not fields:
                continue
            try:
                if len(fields) != 3:
                    raise ValueError(f"{len(fields)} fields")
                qid, pos, click = int(fields[0]), int(fields[1]), float(fields[2])
            except ValueError as exc:
                if not rows and n == 1 and not any(c.isdigit() for c in fields[0]):
                    continue  # header line
                raise DataError(f"line {n}: expected 'qid, doc_position, click' integers, got {line.strip()!r} "
                                f"({exc})", path=p, fix="one displayed document per line") from None
            if pos < 0 or not math.isfinite(click):
                raise DataError(f"line {n}: bad position {pos} or click {click}", path=p,
                                fix="positions are 0-based; clicks 0 or 1")
            rows.append((qid, pos, click))
        if not rows:
            raise DataError("no click lines found", path=p, fix="one 'qid, doc_position, click' line per document")
        order = list(dict.fromkeys(q for q, _, _ in rows))
        index = {q: i for i, q in enumerate(order)}
        length = max(pos for _, pos, _ in rows) + 1
        clicks = np.zeros((len(order), length), dtype=np.float32)
        mask = np.zeros((len(order), length), dtype=bool)
        for qid, pos, click in rows:
            if mask[index[qid], pos]:
                raise DataError(f"qid {qid} position {pos} is listed twice", path=p, fix="one line per document")
            clicks[index[qid], pos], mask[index[qid], pos] = click, True
        cls._check_binary(clicks, mask, p)
        return cls(np.asarray(order, dtype=np.int64), torch.from_numpy(clicks), torch.from_numpy(mask))


def logged_clicks(path: str | Path, name: str = "logged") -> LoggedClicks:
    """``click_model=logged click_model.path=<file>``: train on logged clicks instead of simulated ones (``name`` is
    the config group's label, unused)."""
    return LoggedClicks.from_file(path)
