"""``score_with``: ``last_batch`` scores with the tables the last training batch computed (MMRec's ``self.result`` /
``all_items``), ``current`` recomputes them; the kept tables travel in the checkpoint."""

from __future__ import annotations

import pytest
import torch

from recx.data.interactions import InteractionData
from recx.errors import ConfigError
from recx.topn.models.dragon import DRAGON
from recx.topn.models.dualgnn import DualGNN
from recx.topn.models.grcn import GRCN
from recx.topn.models.mmgcn import MMGCN
from recx.topn.models.slmrec import SLMRec

N_USERS, N_ITEMS = 6, 7
BUILDERS = {
    "mmgcn": lambda data, **kw: MMGCN(data, embedding_dim=4, latent_dim=3, **kw),
    "grcn": lambda data, **kw: GRCN(data, embedding_dim=4, latent_dim=3, **kw),
    "dualgnn": lambda data, **kw: DualGNN(data, embedding_dim=4, user_knn_k=2, **kw),
    "dragon": lambda data, **kw: DRAGON(data, embedding_dim=4, knn_k=2, user_knn_k=2, **kw),
    "slmrec": lambda data, **kw: SLMRec(data, embedding_dim=4, **kw),
}


def data() -> InteractionData:
    g = torch.Generator().manual_seed(0)
    pairs = torch.tensor([[u, (u * 3 + k) % N_ITEMS] for u in range(N_USERS) for k in range(3)])
    feats = {"image": torch.randn(N_ITEMS, 5, generator=g), "text": torch.randn(N_ITEMS, 3, generator=g)}
    empty = torch.empty(0, 2, dtype=torch.long)
    return InteractionData("score_with", N_USERS, N_ITEMS, pairs, empty, empty, [str(u) for u in range(N_USERS)],
                           [str(i) for i in range(N_ITEMS)], feats)


def fresh_scores(model) -> torch.Tensor:
    """What ``current`` would score now (the model's own tables, recomputed)."""
    with torch.no_grad():
        users, items = model._fused() if isinstance(model, SLMRec) else model.propagate()
    return users @ items.T


def scores(model) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model.score(torch.arange(N_USERS))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_last_batch_scores_with_the_tables_before_the_last_step(name, tmp_path, monkeypatch):
    monkeypatch.setenv("RECX_DATA_DIR", str(tmp_path))  # kNN graph caches
    torch.manual_seed(0)
    model = BUILDERS[name](data(), score_with="last_batch")
    assert torch.allclose(scores(model), fresh_scores(model))  # before any batch: the current tables
    batch = {"users": torch.tensor([0, 1, 2, 3]), "pos": torch.tensor([0, 3, 6, 2]), "neg": torch.tensor([5, 5, 1, 4])}
    optimiser = torch.optim.Adam(model.parameters(), lr=0.1)
    model.eval()
    before = fresh_scores(model)
    model.train()
    model.loss(batch).backward()
    optimiser.step()
    kept = scores(model)
    assert torch.allclose(kept, before, atol=1e-6)  # the batch's tables, computed before the step...
    assert not torch.allclose(kept, fresh_scores(model), atol=1e-4)  # ...not the stepped weights'
    # the checkpoint carries them: a fresh model with the state dict scores the same
    again = BUILDERS[name](data(), score_with="last_batch")
    again.load_state_dict(model.state_dict())
    assert torch.equal(scores(again), kept)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_current_recomputes_and_adds_nothing_to_the_checkpoint(name, tmp_path, monkeypatch):
    monkeypatch.setenv("RECX_DATA_DIR", str(tmp_path))
    torch.manual_seed(0)
    model = BUILDERS[name](data())
    assert not any(key.startswith("last_batch") for key in model.state_dict())
    batch = {"users": torch.tensor([0, 1]), "pos": torch.tensor([0, 3]), "neg": torch.tensor([5, 5])}
    optimiser = torch.optim.Adam(model.parameters(), lr=0.1)
    model.train()
    model.loss(batch).backward()
    optimiser.step()
    assert torch.allclose(scores(model), fresh_scores(model), atol=1e-6)


def test_unknown_score_with_is_refused():
    with pytest.raises(ConfigError, match="score_with"):
        BUILDERS["mmgcn"](data(), score_with="stale")


def test_recx_eval_rescores_a_last_batch_checkpoint_exactly(compose_train, tmp_path):
    """The kept tables are in best.ckpt: ``recx eval`` gives the test metrics training reported."""
    from recx.run import evaluate, train
    from tests.cli.test_runs import eval_cfg

    results = train(compose_train("model=dualgnn", "model.score_with=last_batch", "trainer.max_epochs=3"))
    assert results["test"]["recall@20"] > 0
    again = evaluate(eval_cfg(results["best_checkpoint"], tmp_path / "eval"))
    assert again["test"] == results["test"]
