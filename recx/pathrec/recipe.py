"""``recx train model=dkt|src|src_random|src_rule|src_gru dataset=assist2009|synthetic_kt``.

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
from recx.pathrec.dkt import DKT, evaluate_dkt, train_dkt
from recx.pathrec.env import KTEnvironment
from recx.pathrec.episodes import candidate_sets, official_episodes, student_episodes
from recx.pathrec.policy import GRUNextConcept, GRUPath, RandomPath, RulePath, SRCPolicy, train_gru
from recx.run import save_checkpoint
from recx.training import device_for

DKT_KEYS = ("embed", "hidden", "mlp", "dropout")
DKT_TRAIN_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "patience")


def dkt_settings(node) -> tuple[dict, dict]:
    node = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    return {k: node[k] for k in DKT_KEYS if k in node}, {k: node[k] for k in DKT_TRAIN_KEYS if k in node}


def load_dkt(path: str | Path) -> tuple[DKT, dict]:
    from recx.run import load_checkpoint_of

    ckpt, model_cfg = load_checkpoint_of(path, "dkt", label="DKT")
    arch, _ = dkt_settings(model_cfg)
    n_skills = ckpt["recx"]["n_skills"]
    model = DKT(n_skills, **arch)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), {"checkpoint": str(path), "n_skills": n_skills, "test": ckpt["recx"].get("test")}


# --------------------------------------------------------------------------------------------------------------- dkt
def run_dkt(cfg: DictConfig, data, run_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    arch, training = dkt_settings(cfg.model)
    model = DKT(data.n_skills, **arch).to(device_for(cfg.hardware))
    tic = time.perf_counter()
    history = train_dkt(model, data.train, data.valid, seed=int(cfg.seed), log=log, **training)
    seconds = time.perf_counter() - tic
    valid, test = evaluate_dkt(model, data.valid), evaluate_dkt(model, data.test)
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    save_checkpoint(ckpt, model.cpu(), cfg, {"n_skills": data.n_skills, "test": test})
    return {"valid": valid, "test": test, "best_epoch": history["best_epoch"], "history": history["history"],
            "train_time_s": round(seconds, 2), "best_checkpoint": str(ckpt),
            "n_parameters": sum(p.numel() for p in model.parameters())}


def auto_simulator(cfg: DictConfig, data, log: Callable[[str], None]) -> tuple[DKT, dict]:
    """The cached DKT for this dataset and ``conf/model/dkt.yaml`` settings, trained on first use."""
    from recx.cli import CONF_DIR
    from recx.data.prepare import default_data_dir, describe

    dkt_cfg = OmegaConf.load(CONF_DIR / "model" / "dkt.yaml")
    key = hashlib.sha256(json.dumps({"data": describe(cfg_source(cfg)), "dkt": OmegaConf.to_container(dkt_cfg),
                                     "seed": 0}, sort_keys=True, default=str).encode()).hexdigest()[:12]
    data_dir = Path(cfg.paths.data_dir) if cfg.paths.get("data_dir") else default_data_dir()
    path = data_dir / data.name / "dkt" / key / "best.ckpt"
    if not path.is_file():
        log(f"simulator=auto: training DKT once for {data.name} (cached in {path.parent})")
        sim_cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        sim_cfg.model = dkt_cfg
        sim_cfg.seed = 0
        arch, training = dkt_settings(dkt_cfg)
        model = DKT(data.n_skills, **arch).to(device_for(cfg.hardware))
        train_dkt(model, data.train, data.valid, seed=0, log=log, **training)
        test = evaluate_dkt(model, data.test)
        save_checkpoint(path, model.cpu(), sim_cfg, {"n_skills": data.n_skills, "test": test})
    return load_dkt(path)


def cfg_source(cfg: DictConfig):
    from recx.run import construct

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


def train_src(policy: SRCPolicy, env: KTEnvironment, sampler: EpisodeSampler, m: DictConfig, seed: int,
              valid_episodes, log: Callable[[str], None]) -> dict:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(policy.parameters(), lr=float(m.lr))
    g = torch.Generator().manual_seed(seed)
    baseline_kind = m.baseline
    if baseline_kind not in ("none", "moving_average", "greedy"):
        raise ConfigError(f"unknown baseline '{baseline_kind}'", field="model.baseline",
                          fix="none (the public code), moving_average or greedy")
    moving = None
    best, best_state, history = float("-inf"), None, []
    for epoch in range(int(m.epochs)):
        tic = time.perf_counter()
        policy.train()
        rewards = []
        for _ in range(int(m.iterations)):
            targets, initial, candidates = sampler(int(m.batch_size), g)
            env.begin(targets, initial)
            actions, log_probs, kt_logits = policy(targets, initial, env.initial_probs, candidates,
                                                   sampler.length, "sample", generator=g)
            step_probs = env.step(candidates.gather(1, actions))
            reward = env.reward()
            if baseline_kind == "greedy":
                with torch.no_grad():
                    policy.eval()
                    greedy, _, _ = policy(targets, initial, env.initial_probs, candidates, sampler.length, "greedy")
                    policy.train()
                    env.step(candidates.gather(1, greedy))
                    base = env.reward()
            elif baseline_kind == "moving_average":
                batch_mean = float(reward.mean())
                moving = batch_mean if moving is None else 0.9 * moving + 0.1 * batch_mean
                base = torch.full_like(reward, moving)
            else:
                base = torch.zeros_like(reward)
            loss = -((reward - base).unsqueeze(1) * log_probs).mean()
            if m.with_kt:
                loss = loss + float(m.kt_weight) * torch.nn.functional.binary_cross_entropy_with_logits(
                    kt_logits, step_probs)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 20.0)
            opt.step()
            rewards.append(float(reward.mean()))
        valid = evaluate_method(src_method(policy), env, valid_episodes, sampler.length)
        history.append({"epoch": epoch, "train_ep": sum(rewards) / len(rewards), "valid_ep": valid["ep"],
                        "seconds": round(time.perf_counter() - tic, 2)})
        log(f"epoch {epoch:3d} | train E_p {sum(rewards) / len(rewards):.4f} | val/ep {valid['ep']:.4f} | "
            f"{time.perf_counter() - tic:.1f}s")
        if valid["ep"] > best:
            best = valid["ep"]
            best_state = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    policy.load_state_dict(best_state)
    return {"history": history, "best_epoch": max(history, key=lambda h: h["valid_ep"])["epoch"]}


def run_path_method(cfg: DictConfig, data, run_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    m = cfg.model
    sim = cfg.get("simulator") or {}
    if sim.get("ckpt"):
        dkt, sim_info = load_dkt(sim.ckpt)
    else:
        dkt, sim_info = auto_simulator(cfg, data, log)
    if sim_info["n_skills"] != data.n_skills:
        raise ConfigError(f"the simulator knows {sim_info['n_skills']} concepts, dataset '{data.name}' has "
                          f"{data.n_skills}", field="simulator.ckpt", fix="use a DKT trained on the same dataset")
    env = KTEnvironment(dkt)
    sampler = EpisodeSampler(m, data)
    batches, batch = int(m.eval_batches), int(m.eval_batch_size)
    test_episodes = sampler.fixed(batches, batch, seed=2024, split="test")  # the same for every method and seed
    valid_episodes = sampler.fixed(max(1, batches // 2), batch, seed=2025, split="valid")
    tic = time.perf_counter()
    out: dict[str, Any] = {}
    if m.name == "src":
        policy = SRCPolicy(data.n_skills, **OmegaConf.to_container(m.policy, resolve=True))
        out.update(train_src(policy, env, sampler, m, int(cfg.seed), valid_episodes, log))
        method = src_method(policy)
        save_checkpoint(run_dir / "checkpoints" / "best.ckpt", policy, cfg, {"n_skills": data.n_skills})
        out["n_parameters"] = sum(p.numel() for p in policy.parameters())
    elif m.name == "src_gru":
        torch.manual_seed(int(cfg.seed))
        gru = GRUNextConcept(data.n_skills, **OmegaConf.to_container(m.gru, resolve=True))
        out["gru_loss"] = train_gru(gru, data.train, epochs=int(m.epochs), lr=float(m.lr), seed=int(cfg.seed))
        method = GRUPath(gru)
    elif m.name == "src_rule":
        method = RulePath(data.n_skills, sampler.n_targets, sampler.n_initial)
    elif m.name == "src_random":
        method = RandomPath()
    else:
        raise ConfigError(f"unknown learning-path model '{m.name}'", field="model",
                          fix="dkt, src, src_random, src_rule or src_gru")
    train_time = time.perf_counter() - tic
    valid = evaluate_method(method, env, valid_episodes, sampler.length)
    test = evaluate_method(method, env, test_episodes, sampler.length)
    return {"valid": valid, "test": test, "simulator": sim_info, "train_time_s": round(train_time, 2), **out}


def run(cfg: DictConfig) -> dict[str, Any]:
    from recx.console import console
    from recx.pathrec.sources import load_kt
    from recx.run import check_hardware, construct, write_json

    out = console()
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    torch.manual_seed(int(cfg.seed))
    check_hardware(cfg.hardware)
    data = load_kt(construct(cfg.dataset.source), cfg.paths.get("data_dir"))

    def log(message: str) -> None:
        out.print(message, markup=False)

    started = time.perf_counter()
    body = run_dkt(cfg, data, run_dir, log) if cfg.model.name == "dkt" else run_path_method(cfg, data, run_dir, log)
    results = {"status": "completed", "run_name": cfg.run_name, "model": cfg.model.name, "dataset": cfg.dataset.name,
               "seed": cfg.seed, "monitor": cfg.metric.monitor, **body, "data": data.stats(),
               # DKT trains on hardware's device; episodes, SRC and the baselines run on the CPU (generator-driven)
               "device": str(device_for(cfg.hardware)) if cfg.model.name == "dkt" else "cpu",
               "wall_time_s": round(time.perf_counter() - started, 2)}
    write_json(run_dir / "metrics.json", results)
    write_json(run_dir / "conventions.json", {
        "dkt": "AUC / accuracy over every interaction of the split's students (next-answer prediction)",
        "ep": "E_p = (E_e - E_s) / (1 - E_s + 1e-9), exam = mean P(correct) of one DKT step per target from the "
              "state (no carry-over between targets), self-fed rollouts; mean (std) over the fixed test episodes",
        "selection": "DKT: best validation AUC; SRC: best validation-episode E_p; test never selects",
        "rollout": "every DKT rollout (initial logs, path) starts with label 0 and feeds back its own probabilities "
                   "(official PredictModel.learn)",
        "rule": "src_rule (testRule.py): each candidate scored by the E_p of a one-concept path on a fresh random "
                "episode, sorted ascending, the last path_length kept (best last)",
        "kt_loss": "SRC's KT head reads the decoder state after it consumed the chosen concept (official "
                   "SRC.construct); BCE against the simulator's per-step probability, weight kt_weight if with_kt",
    })
    from recx.console import print_metrics

    print_metrics(results, title=f"{cfg.run_name} ({results['train_time_s']} s training)", run_dir=run_dir)
    return results
