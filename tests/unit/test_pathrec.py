"""Learning paths: readers (malformed input), DKT learning, the environment's reward on a hand case, episodes,
and SRC beating random paths against a planted simulator."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from recx.errors import DataError
from recx.pathrec.data import from_lists, read_skill_builder_csv, read_three_line_csv
from recx.pathrec.dkt import DKT, evaluate_dkt
from recx.pathrec.env import KTEnvironment
from recx.pathrec.episodes import candidate_sets, official_episodes, student_episodes
from recx.pathrec.sources import SyntheticKT


def write(tmp_path, text, name="kt.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_three_line_reader_and_chunking(tmp_path):
    path = write(tmp_path, "3\n1,2,2\n1,0,1\n2\n5,1\n0,0\n")
    skills, answers = read_three_line_csv(path)
    assert [s.tolist() for s in skills] == [[1, 2, 2], [5, 1]]
    assert [a.tolist() for a in answers] == [[1, 0, 1], [0, 0]]
    seqs = from_lists(skills, answers, n_skills=5, max_len=2)  # [1,2] [2] [5,1]: the singleton chunk is dropped
    assert seqs.skills.tolist() == [[1, 2], [5, 1]] and seqs.lengths.tolist() == [2, 2]


@pytest.mark.parametrize("text, where", [
    ("3\n1,2\n1,0\n", "line 1: length 3"),
    ("2\n1,x\n1,0\n", "lines 2-3"),
    ("2\n1,2\n1,2\n", "line 3: answers"),
    ("2\n0,2\n1,0\n", "line 2: skill ids"),
    ("2\n1,2\n", "not a multiple of 3"),
    ("two\n1,2\n1,0\n", "line 1: expected a sequence length"),
])
def test_three_line_reader_names_the_bad_line(tmp_path, text, where):
    with pytest.raises(DataError, match=where) as err:
        read_three_line_csv(write(tmp_path, text))
    assert "kt.csv" in str(err.value)


def test_skill_builder_reader_orders_by_order_id_and_reindexes(tmp_path):
    path = write(tmp_path, "order_id,user_id,skill_id,correct\n30,7,12,1\n10,7,40,0\n20,9,12,1\n25,9,,1\n")
    skills, answers, info = read_skill_builder_csv(path)
    assert [s.tolist() for s in skills] == [[1, 2], [2]]  # user 7: order 10 (skill 40), 30 (skill 12)
    assert info["skill_ids"] == ["40", "12"] and [a.tolist() for a in answers] == [[0, 1], [1]]
    with pytest.raises(DataError, match="missing column"):
        read_skill_builder_csv(write(tmp_path, "user_id,correct\n1,1\n", "bad.csv"))


def fit_lightning(module, data, model: str, epochs: int, **model_keys):
    """Fit a pathrec LightningModule with a bare trainer over the family datamodule (no run folder)."""
    import lightning.pytorch as pl
    from omegaconf import OmegaConf

    from recx.pathrec.family import KTDataModule

    cfg = OmegaConf.create({"seed": 0, "model": {"name": model, **model_keys}, "dataset": {}, "paths": {}})
    dm = KTDataModule(cfg)
    dm.data = data
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, reload_dataloaders_every_n_epochs=1)
    trainer.fit(module, datamodule=dm)
    return module


def train_dkt(model, data, epochs: int, lr: float):
    from recx.pathrec.family import DKTModule

    fit_lightning(DKTModule(model, lr=lr, weight_decay=1e-4, seed=0), data, "dkt", epochs, batch_size=128)
    return model.eval()


def test_dkt_learns_on_planted_students():
    data = SyntheticKT(n_students=300, seed=1).read()
    model = DKT(data.n_skills, embed=32, hidden=32, mlp=(16,), dropout=0.0)
    before = evaluate_dkt(model, data.test)["auc"]
    train_dkt(model, data, epochs=15, lr=1e-2)
    after = evaluate_dkt(model, data.test)["auc"]
    assert after > 0.62 and after > before + 0.05


class CountingStudent(nn.Module):
    """A hand-checkable 'DKT': P(correct on q) = min(0.9, 0.2 + 0.1 × times q was practised before); the state holds
    the practice counts (h) and the previous-answer input is ignored."""

    def __init__(self, n_skills: int) -> None:
        super().__init__()
        self.lstm = SimpleNamespace(hidden_size=n_skills + 1)

    def forward(self, skills, previous, state=None):
        h, c = state
        counts = h[0].clone()
        logits = []
        for t in range(skills.shape[1]):
            q = skills[:, t]
            p = (0.2 + 0.1 * counts.gather(1, q.unsqueeze(1)).squeeze(1)).clamp_max(0.9)
            logits.append(torch.log(p / (1 - p)))
            counts = counts.scatter_add(1, q.unsqueeze(1), torch.ones(q.shape[0], 1))
        return torch.stack(logits, 1), (counts.unsqueeze(0), c)

    def parameters(self, recurse=True):
        return iter(())


def test_environment_reward_on_a_hand_checked_case():
    env = KTEnvironment(CountingStudent(3))
    e_s = env.begin(torch.tensor([[1, 2]]), torch.tensor([[1, 1]]))
    assert e_s.item() == pytest.approx((0.4 + 0.2) / 2)  # skill 1 practised twice, skill 2 never
    probs = env.step(torch.tensor([[1, 2, 2]]))
    assert probs[0].tolist() == pytest.approx([0.4, 0.2, 0.3])
    assert env.e_end.item() == pytest.approx((0.5 + 0.4) / 2)  # no carry-over between the two exam steps
    assert env.reward().item() == pytest.approx((0.45 - 0.3) / (1 - 0.3), rel=1e-6)
    env.step(torch.tensor([[3, 3, 3]]))  # another path from the same start
    assert env.reward().item() == pytest.approx(0.0, abs=1e-6)


def test_candidate_sets_and_episodes():
    g = torch.Generator().manual_seed(0)
    p0 = candidate_sets(4, 110, 0, 20, g)
    assert (p0.sort(1).values == torch.arange(1, 21)).all()
    p1 = candidate_sets(4, 110, 1, 20, g)
    assert ((p1.max(1).values - p1.min(1).values) == 19).all() and ((p1.min(1).values - 1) % 20 == 0).all()
    p2 = candidate_sets(4, 110, 2, 20, g)
    assert all(len(set(r.tolist())) == 20 for r in p2) and p2.min() >= 1 and p2.max() <= 110
    assert candidate_sets(4, 110, 3, 20, g).shape == (4, 110)
    targets, initial = official_episodes(8, 30, 3, 10, g)
    assert all(len(set(t.tolist())) == 3 for t in targets) and initial.shape == (8, 10) and initial.min() >= 1
    students = from_lists([np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 4, 4, 9, 9, 9, 9, 9])] * 2,
                          [np.ones(17, dtype=np.float32)] * 2, n_skills=10, max_len=50)
    targets, initial = student_episodes(students, 5, n_targets=2, n_initial=10, generator=g)
    assert initial[0].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]  # the first 60 % (10 of 17)
    assert all(set(t.tolist()) == {4, 9} for t in targets)  # the later concepts, de-duplicated


def test_src_beats_random_paths_on_a_planted_simulator():
    from omegaconf import OmegaConf

    from recx.pathrec.policy import RandomPath, SRCPolicy
    from recx.pathrec.family import SRCModule
    from recx.pathrec.recipe import EpisodeSampler, evaluate_method, src_method

    data = SyntheticKT(n_students=300, seed=2).read()
    dkt = DKT(data.n_skills, embed=32, hidden=32, mlp=(16,), dropout=0.0)
    train_dkt(dkt, data, epochs=10, lr=1e-2)
    env = KTEnvironment(dkt)
    m = OmegaConf.create({"episodes": "official", "n_targets": 3, "n_initial": 10, "path_type": 3,
                          "path_length": 5, "lr": 3e-3, "epochs": 3, "iterations": 30, "batch_size": 64,
                          "baseline": "moving_average", "with_kt": True, "kt_weight": 0.5})
    sampler = EpisodeSampler(m, data)
    episodes = sampler.fixed(4, 64, seed=7, split="test")
    policy = SRCPolicy(data.n_skills, embed=32, hidden=32, dropout=0.0)
    module = SRCModule(policy, env, sampler, m, seed=0, valid_episodes=sampler.fixed(2, 64, seed=8, split="valid"),
                       test_episodes=episodes)
    fit_lightning(module, data, "src", 3, iterations=30)
    src = evaluate_method(src_method(policy), env, episodes, 5)["ep"]
    random = evaluate_method(RandomPath(), env, episodes, 5)["ep"]
    assert src > random + 0.05, (src, random)  # measured: 0.21 vs -0.00
    assert math.isfinite(src)


class RecordingStudent(CountingStudent):
    """:class:`CountingStudent` that records the previous-answer input of every call."""

    def __init__(self, n_skills: int) -> None:
        super().__init__(n_skills)
        self.previous: list[torch.Tensor] = []

    def forward(self, skills, previous, state=None):
        self.previous.append(previous.clone())
        return super().forward(skills, previous, state)


def test_the_path_rollout_starts_with_label_zero_like_official_learn():
    """Official ``PredictModel.learn`` starts every call with ``o = 0``: the first path step's label slot is 0, not the
    last initial log's predicted probability."""
    student = RecordingStudent(3)
    env = KTEnvironment(student)
    env.begin(torch.tensor([[1, 2]]), torch.tensor([[1, 1]]))
    student.previous.clear()
    env.step(torch.tensor([[3, 2]]))
    first, second = student.previous[0], student.previous[1]
    assert first.tolist() == [[0.0]]  # the last initial log's probability (0.3) was fed here before
    assert second.tolist() == [[pytest.approx(0.2)]]  # then the path's own predictions are fed back


def test_episode_rewards_score_other_episodes_without_touching_the_current_one():
    env = KTEnvironment(CountingStudent(3))
    env.begin(torch.tensor([[1, 2]]), torch.tensor([[1, 1]]))
    state = [s.clone() for s in env.state]
    r = env.episode_rewards(torch.tensor([[3, 3], [1, 2]]), torch.tensor([[1, 2], [1, 1]]), torch.tensor([[3], [3]]))
    assert r.tolist() == pytest.approx([(0.3 - 0.2) / 0.8, 0.0], abs=1e-6)  # one practice of 3; 3 is no target
    assert all(torch.equal(a, b) for a, b in zip(state, env.state)) and env.e_start.item() == pytest.approx(0.3)


class ScoreIsConceptId:
    """A stand-in environment for the rule baseline: a candidate's one-step reward is its concept id."""

    def __init__(self) -> None:
        self.calls = []

    def episode_rewards(self, targets, initial, path):
        self.calls.append((targets, initial, path))
        return path[:, 0].float()


def test_rule_path_sorts_ascending_on_fresh_episodes_and_keeps_the_tail():
    """``testRule.py``: ``rank`` scores each candidate on ``get_data(...)`` episodes of its own, sorts ascending and
    the caller keeps ``[-n:]`` — the best-scored concept last."""
    from recx.pathrec.policy import RulePath

    g = torch.Generator().manual_seed(0)
    candidates = candidate_sets(2, 30, 0, 20, g)
    env = ScoreIsConceptId()
    path = RulePath(30, n_targets=3, n_initial=10)(candidates=candidates, length=20, env=env, generator=g)
    assert path.tolist() == [list(range(1, 21))] * 2  # worst first, best last (today's code put the best first)
    targets, initial, scored = env.calls[0]
    assert targets.shape == (40, 3) and initial.shape == (40, 10)  # a fresh random episode per candidate
    assert len({tuple(t.tolist()) for t in targets}) > 30 and torch.equal(scored.flatten(), candidates.flatten())
    wider = candidate_sets(2, 30, 3, 5, g)  # p3: all 30 concepts, keep the 5 best-scored, best last
    assert RulePath(30)(candidates=wider, length=5, env=ScoreIsConceptId(), generator=g).tolist() == \
        [[26, 27, 28, 29, 30]] * 2


def test_kt_head_reads_the_state_after_the_chosen_concept():
    """Official ``SRC.construct`` keeps the decoder's hidden state from step ``i > 0`` (input = the concept chosen at
    ``i − 1``) plus one extra step for the last: the KT prediction for ``a_t`` must depend on ``a_t``."""
    from recx.pathrec.policy import SRCPolicy

    torch.manual_seed(0)
    policy = SRCPolicy(12, embed=8, hidden=8, dropout=0.0).eval()
    targets, initial = torch.tensor([[1, 2, 3]]), torch.tensor([[4, 5, 6]])
    answers, candidates = torch.full((1, 3), 0.5), torch.arange(1, 7).unsqueeze(0)
    with torch.no_grad():
        _, _, kt_a = policy(targets, initial, answers, candidates, 4, actions=torch.tensor([[0, 1, 2, 3]]))
        _, _, kt_b = policy(targets, initial, answers, candidates, 4, actions=torch.tensor([[0, 1, 5, 3]]))
    assert kt_a.shape == (1, 4)
    assert torch.equal(kt_a[:, :2], kt_b[:, :2])  # same concepts so far
    assert not torch.allclose(kt_a[:, 2], kt_b[:, 2])  # step 2 chose another concept: its prediction sees it
