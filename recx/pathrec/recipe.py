"""``recx train model=dkt|src|src_random|src_rule|src_gru dataset=assist2009|synthetic_kt``: what the learning-path
family's runs share (the Lightning modules and the datamodule are in :mod:`recx.pathrec.family`).

* ``dkt``: trains the simulator (early stopping on validation AUC), reports test AUC / accuracy, saves
  ``checkpoints/best.ckpt`` (a recx checkpoint: weights + the run config).
* the path methods load the simulator — ``simulator.ckpt=<dkt best.ckpt>``, or ``simulator=auto`` (default): a DKT
  trained with ``conf/model/dkt.yaml`` and cached under ``<data_dir>/<dataset>/dkt/<key>/`` for reuse — then train
  (SRC, GRU) and evaluate on the same fixed test episodes: mean learning effect ``E_p`` (± std over episodes), start
  and end exam scores. SRC's checkpoint is selected on separate validation episodes.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf

from recx.errors import ConfigError
from recx.pathrec.dkt import DKT
from recx.pathrec.env import KTEnvironment
from recx.pathrec.episodes import candidate_sets, official_episodes, student_episodes
from recx.pathrec.policy import GRUNextConcept, GRUPath, RandomPath, RulePath, SRCPolicy, train_gru

DKT_KEYS = ("embed", "hidden", "mlp", "dropout")
DKT_TRAIN_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "patience")


def dkt_settings(node) -> tuple[dict, dict]:
    node = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    return {k: node[k] for k in DKT_KEYS if k in node}, {k: node[k] for k in DKT_TRAIN_KEYS if k in node}


def load_dkt(path: str | Path) -> tuple[DKT, dict]:
    """The frozen simulator of a ``recx train model=dkt`` checkpoint, and what its run reported (test AUC)."""
    from recx.runtools import load_checkpoint_of, net_state

    ckpt, model_cfg = load_checkpoint_of(path, "dkt", label="DKT")
    arch, _ = dkt_settings(model_cfg)
    n_skills = ckpt["recx"]["n_skills"]
    model = DKT(n_skills, **arch)
    model.load_state_dict(net_state(ckpt) or ckpt["state_dict"])  # a Lightning checkpoint, or the old format
    test = ckpt["recx"].get("test")
    metrics = Path(path).parent.parent / "metrics.json"
    if test is None and metrics.is_file():
        test = json.loads(metrics.read_text()).get("test")
    return model.eval(), {"checkpoint": str(path), "n_skills": n_skills, "test": test}


# --------------------------------------------------------------------------------------------------------------- dkt
def auto_simulator(cfg: DictConfig, data, life) -> tuple[DKT, dict]:
    """The cached DKT for this dataset and ``conf/model/dkt.yaml`` settings, trained on first use (a nested
    ``recx train model=dkt`` run, seed 0, through the run life, in the cache folder)."""
    from recx.config_paths import CONF_DIR
    from recx.data.prepare import default_data_dir, describe

    dkt_cfg = OmegaConf.load(CONF_DIR / "model" / "dkt.yaml")
    key = hashlib.sha256(json.dumps({"data": describe(cfg_source(cfg)), "dkt": OmegaConf.to_container(dkt_cfg),
                                     "seed": 0}, sort_keys=True, default=str).encode()).hexdigest()[:12]
    data_dir = Path(cfg.paths.data_dir) if cfg.paths.get("data_dir") else default_data_dir()
    folder = data_dir / data.name / "dkt" / key
    path = folder / "checkpoints" / "best.ckpt"
    if not path.is_file():
        life.log(f"simulator=auto: training DKT once for {data.name} (cached in {folder})")
        sim_cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        sim_cfg.model = dkt_cfg
        sim_cfg.seed = 0
        sim_cfg.resume = False
        sim_cfg.metric = OmegaConf.load(CONF_DIR / "metric" / "path_reward.yaml")
        sim_cfg.paths.run_dir = str(folder)
        sim_cfg.run_name = f"{data.name}-dkt-simulator"
        life.train(sim_cfg)
    return load_dkt(path)


def cfg_source(cfg: DictConfig):
    from recx.runtools import construct

    return construct(cfg.dataset.source)


# ------------------------------------------------------------------------------------------------------------ paths
class EpisodeSampler:
    """Fixed or fresh batches of (targets, initial logs, candidates) under the model's episode settings."""

    def __init__(self, m: DictConfig, data) -> None:
        self.kind, self.n_skills = m.episodes, data.n_skills
        if self.kind not in ("official", "students"):
            raise ConfigError(f"unknown episodes '{self.kind}'", field="model.episodes", fix="official or students")
        self.n_targets, self.n_initial = int(m.n_targets), int(m.n_initial)
        self.path_type, self.length = int(m.path_type), int(m.path_length)
        self.data = data

    def __call__(self, batch: int, generator: torch.Generator, split: str = "train"):
        if self.kind == "official":
            targets, initial = official_episodes(batch, self.n_skills, self.n_targets, self.n_initial, generator)
        else:
            targets, initial = student_episodes(getattr(self.data, split), batch, self.n_targets, self.n_initial,
                                                generator)
        return targets, initial, candidate_sets(batch, self.n_skills, self.path_type, self.length, generator)

    def fixed(self, batches: int, batch: int, seed: int, split: str):
        g = torch.Generator().manual_seed(seed)
        return [self(batch, g, split) for _ in range(batches)]


def evaluate_method(method: Callable, env: KTEnvironment, episodes, length: int) -> dict[str, float]:
    rewards, starts, ends = [], [], []
    g = torch.Generator().manual_seed(12345)
    for targets, initial, candidates in episodes:
        env.begin(targets, initial)
        path = method(candidates=candidates, length=length, env=env, initial=initial, targets=targets, generator=g)
        env.step(path)
        rewards.append(env.reward())
        starts.append(env.e_start)
        ends.append(env.e_end)
    r = torch.cat(rewards)
    return {"ep": float(r.mean()), "ep_std": float(r.std()), "e_start": float(torch.cat(starts).mean()),
            "e_end": float(torch.cat(ends).mean()), "episodes": int(r.numel())}


def src_method(policy: SRCPolicy):
    @torch.no_grad()
    def method(candidates, length, env, initial, targets, **_):
        policy.eval()
        actions, _, _ = policy(targets, initial, env.initial_probs, candidates, length, "greedy")
        return candidates.gather(1, actions)

    return method


def path_setting(cfg: DictConfig, data, life):
    """``(dkt, simulator info, environment, episode sampler, validation episodes, test episodes)`` of a path method:
    the simulator (``simulator.ckpt``, or the cached ``simulator=auto``) and the fixed episodes every method shares."""
    m = cfg.model
    sim = cfg.get("simulator") or {}
    if sim.get("ckpt"):
        dkt, sim_info = load_dkt(sim.ckpt)
    else:
        dkt, sim_info = auto_simulator(cfg, data, life)
    if sim_info["n_skills"] != data.n_skills:
        raise ConfigError(f"the simulator knows {sim_info['n_skills']} concepts, dataset '{data.name}' has "
                          f"{data.n_skills}", field="simulator.ckpt", fix="use a DKT trained on the same dataset")
    env = KTEnvironment(dkt)
    sampler = EpisodeSampler(m, data)
    batches, batch = int(m.eval_batches), int(m.eval_batch_size)
    test_episodes = sampler.fixed(batches, batch, seed=2024, split="test")  # the same for every method and seed
    valid_episodes = sampler.fixed(max(1, batches // 2), batch, seed=2025, split="valid")
    return dkt, sim_info, env, sampler, valid_episodes, test_episodes


def baseline_method(cfg: DictConfig, data, sampler: EpisodeSampler) -> tuple[Callable, dict[str, Any]]:
    """A baseline path method (``src_gru`` trains its next-concept GRU first) and what it reports."""
    m = cfg.model
    if m.name == "src_gru":
        torch.manual_seed(int(cfg.seed))
        gru = GRUNextConcept(data.n_skills, **OmegaConf.to_container(m.gru, resolve=True))
        loss = train_gru(gru, data.train, epochs=int(m.epochs), lr=float(m.lr), seed=int(cfg.seed))
        return GRUPath(gru), {"gru_loss": loss}
    if m.name == "src_rule":
        return RulePath(data.n_skills, sampler.n_targets, sampler.n_initial), {}
    if m.name == "src_random":
        return RandomPath(), {}
    raise ConfigError(f"unknown learning-path model '{m.name}'", field="model",
                      fix="dkt, src, src_random, src_rule or src_gru")
