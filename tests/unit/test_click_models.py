"""Click simulators: empirical click rates over many sampled impressions against analytic rates written out here.

PBM against e_k^eta * gamma(r); cascade against gamma_k * prod_{j<k} (1 - gamma_j); UBM against an exact enumeration
of all click vectors of a short list (the model's own closed-form marginals are checked against the same enumeration).
Tolerances are 5 binomial standard errors with a fixed seed, so the tests are deterministic and still fail for any
wrong rate by more than ~0.01.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from recx.errors import ConfigError, DataError
from recx.ltr.clicks import (
    PRESETS,
    STARANK_PBM_EXAMINATION,
    UBM_TABLE,
    ULTRA_CLICK_PROB,
    ULTRA_PBM_EXAMINATION,
    CascadeModel,
    LoggedClicks,
    PositionBasedModel,
    UserBrowsingModel,
    click_probabilities,
    make_click_model,
    starank_click_probabilities,
    with_popularity_bias,
)

GAMMA = [0.10, 0.16, 0.28, 0.52, 1.00]  # ULTRA setClickProb(0.1, 1.0, 4), written out
N = 20_000  # impressions per check


def repeat(labels: list[int], n: int = N) -> tuple[torch.Tensor, torch.Tensor]:
    lab = torch.tensor(labels).expand(n, -1).clone()
    return lab, torch.ones_like(lab, dtype=torch.bool)


def empirical(model, labels: list[int], seed: int = 0, popularity: list[float] | None = None) -> torch.Tensor:
    lab, mask = repeat(labels)
    pop = None if popularity is None else torch.tensor(popularity).expand(N, -1)
    clicks = model.sample(lab, mask, torch.Generator().manual_seed(seed), popularity=pop)
    assert clicks.dtype == torch.float32 and set(clicks.unique().tolist()) <= {0.0, 1.0}
    return clicks.mean(0)


def assert_rates(emp: torch.Tensor, expected: list[float]) -> None:
    p = torch.tensor(expected, dtype=torch.float32)
    tol = 5 * torch.sqrt(p * (1 - p) / N) + 1e-3
    assert ((emp - p).abs() <= tol).all(), (emp.tolist(), expected)


def ubm_exact(labels: list[int], table, gamma, eta: float = 1.0) -> tuple[list[float], list[float]]:
    """(click rates, examination rates) per position by enumerating every click vector."""
    n = len(labels)
    clicks, exams = [0.0] * n, [0.0] * n
    for vector in itertools.product([0, 1], repeat=n):
        prob, last, exam_here = 1.0, -1, []
        for pos, c in enumerate(vector):
            e = table[pos][pos - last - 1] ** eta
            exam_here.append(e)
            p = e * gamma[labels[pos]]
            prob *= p if c else 1 - p
            last = pos if c else last
        for pos in range(n):
            clicks[pos] += prob * vector[pos]
            exams[pos] += prob * exam_here[pos]  # P(examined at pos) = E[e(pos, last click before pos)]
    return clicks, exams


# ----------------------------------------------------------------------------------------------- constants
def test_click_probability_tables() -> None:
    torch.testing.assert_close(click_probabilities(), torch.tensor(GAMMA))
    torch.testing.assert_close(click_probabilities(0.0, 1.0, 2), torch.tensor([0.0, 1 / 3, 1.0]))
    torch.testing.assert_close(starank_click_probabilities(), torch.tensor([0.1, 1.0]))
    assert ULTRA_CLICK_PROB == GAMMA


def test_preset_constants() -> None:
    assert ULTRA_PBM_EXAMINATION == [0.68, 0.61, 0.48, 0.34, 0.28, 0.20, 0.11, 0.10, 0.08, 0.06]
    assert STARANK_PBM_EXAMINATION == [1.0, 1.0, 0.95, 0.82, 0.69, 0.54, 0.47, 0.43, 0.41, 0.43]
    assert [len(row) for row in UBM_TABLE] == list(range(1, 11))
    assert UBM_TABLE[3] == [1.0, 0.77, 0.42, 0.82]
    assert PRESETS["starank_pbm"]["click_prob"] == [0.1, 1.0] and PRESETS["ubm"]["click_prob"] == GAMMA
    assert set(PRESETS) == {"pbm", "ubm", "cascade", "starank_pbm", "starank_ubm", "pytorchltr_pbm"}
    pbm = make_click_model("pbm", eta=2.0)
    torch.testing.assert_close(pbm.examination(3), torch.tensor([0.68 ** 2, 0.61 ** 2, 0.48 ** 2]))
    pyltr = make_click_model("pytorchltr_pbm", eta=2.0, cutoff=None)
    torch.testing.assert_close(pyltr.examination(12), 1 / (torch.arange(1, 13).float() + 1) ** 2)
    assert isinstance(make_click_model("starank_ubm"), UserBrowsingModel)
    assert isinstance(make_click_model("cascade"), CascadeModel)


def test_unknown_preset_and_override_and_out_of_range_labels() -> None:
    with pytest.raises(ConfigError) as err:
        make_click_model("dbn")
    assert err.value.field == "click_model" and "starank_ubm" in str(err.value) and "pbm" in str(err.value)
    with pytest.raises(ConfigError, match="table"):
        make_click_model("pbm", table=UBM_TABLE)
    custom = make_click_model("pbm", click_prob=[0.0, 1.0])
    assert custom.click_prob.tolist() == [0.0, 1.0]
    lab, mask = repeat([0, 4, 1], n=2)
    with pytest.raises(ConfigError, match="binarise"):  # graded labels through STARank's binary table
        make_click_model("starank_pbm").sample(lab, mask, torch.Generator().manual_seed(0))


# -------------------------------------------------------------------------------------------- empirical rates
PBM_LABELS = [4, 0, 2, 3, 1, 4, 0, 4, 2, 3, 4, 4]  # 12 positions: the last two lie below the default cutoff


@pytest.mark.parametrize("eta", [1.0, 2.0])
def test_pbm_rates_match_examination_times_gamma(eta: float) -> None:
    model = make_click_model("pbm", eta=eta)
    e = ULTRA_PBM_EXAMINATION
    expected = [e[k] ** eta * GAMMA[r] if k < 10 else 0.0 for k, r in enumerate(PBM_LABELS)]
    assert_rates(empirical(model, PBM_LABELS), expected)
    lab, mask = repeat(PBM_LABELS, n=1)
    torch.testing.assert_close(model.click_rates(lab, mask)[0], torch.tensor(expected))
    torch.testing.assert_close(model.propensity(lab, mask)[0], model.examination(12))


def test_eta_increases_position_bias() -> None:
    labels = [4] * 10  # gamma = 1: click rate = examination
    mild, severe = empirical(make_click_model("pbm", eta=1.0), labels), empirical(make_click_model("pbm", eta=2.0),
                                                                                   labels, seed=1)
    assert (severe < mild - 0.03).all()  # every e_k < 1, so e^2 < e at every position
    assert (severe[1:] / mild[1:] < severe[0] / mild[0] + 0.05).all()  # and relatively more so further down
    ubm1, ubm2 = make_click_model("ubm", eta=1.0), make_click_model("ubm", eta=2.0)
    lab, mask = repeat([1, 0, 0, 3, 0, 0, 0, 2], n=1)
    assert (ubm2.click_rates(lab, mask)[0, 3:] < ubm1.click_rates(lab, mask)[0, 3:] - 1e-3).all()


def test_cascade_rates_match_product_formula() -> None:
    labels = [1, 0, 3, 2, 4, 0, 1, 3]
    expected, reach = [], 1.0
    for r in labels:
        expected.append(reach * GAMMA[r])
        reach *= 1 - GAMMA[r]
    model = make_click_model("cascade")
    assert_rates(empirical(model, labels), expected)
    lab, mask = repeat(labels)
    clicks = model.sample(lab, mask, torch.Generator().manual_seed(5))
    assert clicks.sum(1).max() == 1.0  # the user leaves after the first click
    lab1, mask1 = repeat(labels, n=1)
    torch.testing.assert_close(model.click_rates(lab1, mask1)[0], torch.tensor(expected))


@pytest.mark.parametrize("eta", [1.0, 2.0])
def test_ubm_rates_match_exact_enumeration(eta: float) -> None:
    labels = [0, 3, 1, 4, 2, 0]  # positions 3.. have examination < 1 after distance > 1
    exact_clicks, exact_exam = ubm_exact(labels, UBM_TABLE, GAMMA, eta)
    model = make_click_model("ubm", eta=eta)
    assert_rates(empirical(model, labels), exact_clicks)
    lab, mask = repeat(labels, n=1)
    torch.testing.assert_close(model.click_rates(lab, mask)[0], torch.tensor(exact_clicks))
    torch.testing.assert_close(model.propensity(lab, mask)[0], torch.tensor(exact_exam))
    # a PBM on the table's diagonal (examination "as if the last click were just above") is a different model
    diagonal = [UBM_TABLE[k][k] ** eta * GAMMA[r] for k, r in enumerate(labels)]
    assert max(abs(a - b) for a, b in zip(exact_clicks, diagonal)) > 0.05


# ------------------------------------------------------------------------------------- cutoff, padding, bias
@pytest.mark.parametrize("name", ["pbm", "ubm", "cascade", "pytorchltr_pbm"])
def test_cutoff_zeroes_clicks_below_and_padding_is_never_clicked(name: str) -> None:
    labels = [4, 4, 0, 4, 4, 4, 4, 4]
    model = make_click_model(name, cutoff=3) if name != "cascade" else CascadeModel([0.5] * 5, cutoff=3)
    lab, mask = repeat(labels)
    mask[:, 1] = False  # a padded column inside the visible window
    clicks = model.sample(lab, mask, torch.Generator().manual_seed(2))
    assert clicks[:, 3:].sum() == 0 and clicks[:, 1].sum() == 0
    assert clicks[:, 0].sum() > 100  # the visible, real documents do get clicks
    wide = make_click_model(name, cutoff=None) if name != "cascade" else CascadeModel([0.5] * 5, cutoff=None)
    assert wide.sample(lab, mask, torch.Generator().manual_seed(2))[:, 3:].sum() > 100


def test_popularity_beta_scales_pbm_rates() -> None:
    labels, pop = [4, 3, 4, 2], [1.0, 0.25, 0.5, 0.04]
    base = [ULTRA_PBM_EXAMINATION[k] * GAMMA[r] for k, r in enumerate(labels)]
    biased = make_click_model("pbm", popularity_beta=0.5)
    assert_rates(empirical(biased, labels, popularity=pop), [b * p ** 0.5 for b, p in zip(base, pop)])
    lab, mask = repeat(labels, n=1)
    pop_t = torch.tensor([pop])
    torch.testing.assert_close(biased.propensity(lab, mask, pop_t)[0],
                               torch.tensor([ULTRA_PBM_EXAMINATION[k] * p ** 0.5 for k, p in enumerate(pop)]))
    # beta = 0: popularity has no effect, draw for draw
    plain, gen_a, gen_b = make_click_model("pbm"), torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    lab, mask = repeat(labels, n=50)
    assert torch.equal(plain.sample(lab, mask, gen_a, popularity=torch.full((50, 4), 0.01)),
                       plain.sample(lab, mask, gen_b))
    with pytest.raises(ConfigError, match="popularity"):
        biased.sample(lab, mask, gen_a)


def test_popularity_wrapper_on_cascade() -> None:
    labels, pop = [2, 4, 1, 3], [0.5, 0.2, 1.0, 0.8]
    model = with_popularity_bias(make_click_model("cascade"), 1.0)
    assert make_click_model("cascade").popularity_beta == 0.0  # the wrapper copies, the preset is untouched
    expected, reach = [], 1.0
    for r, p in zip(labels, pop):
        expected.append(reach * GAMMA[r] * p)  # observation scaled by popularity, the cascade continues past skips
        reach *= 1 - GAMMA[r] * p
    assert_rates(empirical(model, labels, popularity=pop), expected)


# ----------------------------------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("name", ["pbm", "ubm", "cascade"])
def test_seeded_generator_reproduces_clicks_without_global_rng(name: str) -> None:
    model = make_click_model(name)
    lab = torch.randint(0, 5, (64, 10), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(lab, dtype=torch.bool)
    state = torch.get_rng_state()
    a = model.sample(lab, mask, torch.Generator().manual_seed(123))
    torch.manual_seed(999)  # the global RNG must play no part
    b = model.sample(lab, mask, torch.Generator().manual_seed(123))
    c = model.sample(lab, mask, torch.Generator().manual_seed(124))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.set_rng_state(state)


def test_ubm_table_row_length_is_checked() -> None:
    with pytest.raises(ConfigError, match="row 1"):
        UserBrowsingModel([[1.0], [0.5]], GAMMA)
    with pytest.raises(ConfigError, match="click_prob"):
        PositionBasedModel([0.5], [0.1, 1.5])


# -------------------------------------------------------------------------------------------- logged clicks
def test_logged_clicks_from_csv(tmp_path) -> None:
    path = tmp_path / "clicks.csv"
    path.write_text("qid,doc_position,click\n7,0,1\n7,1,0\n7,2,1\n# comment\n3 0 0\n3 1 1\n")
    logged = LoggedClicks.from_file(path)
    assert logged.qids.tolist() == [7, 3] and len(logged) == 2
    assert logged.clicks.tolist() == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    assert logged.mask.tolist() == [[True, True, True], [True, True, False]]
    clicks, mask = logged.rows([3])
    assert clicks.tolist() == [[0.0, 1.0, 0.0]] and mask.tolist() == [[True, True, False]]
    with pytest.raises(DataError, match="qid"):
        logged.rows([5])


def test_logged_clicks_from_npz(tmp_path) -> None:
    path = tmp_path / "clicks.npz"
    np.savez(path, qids=np.array([1, 2]), clicks=np.array([[1, 0, 0], [0, 0, 1]]),
             mask=np.array([[1, 1, 0], [1, 1, 1]], dtype=bool))
    logged = LoggedClicks.from_file(path)
    assert logged.clicks.tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]] and logged.mask[0].tolist() == [1, 1, 0]


@pytest.mark.parametrize("content", ["1,0,1\n1,0,0\n", "1,0,2\n", "1,x,1\n1,0,1\n", "1,0\n", "qid,pos,click\n"])
def test_bad_logged_click_files_name_the_file(tmp_path, content: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError) as err:
        LoggedClicks.from_file(path)
    assert str(path) in str(err.value)


def test_bad_npz_names_the_file(tmp_path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, qids=np.array([1, 2]), clicks=np.array([[1, 0]]))
    with pytest.raises(DataError, match="shapes") as err:
        LoggedClicks.from_file(path)
    assert str(path) in str(err.value)
    with pytest.raises(DataError, match="not found"):
        LoggedClicks.from_file(tmp_path / "missing.npz")
