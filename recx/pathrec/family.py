"""The learning-path family (SRC, AAAI 2023): student sequences as a LightningDataModule, the DKT simulator and the
SRC policy as LightningModules over it, the rule / random / GRU baselines as evaluations.

The paper math stays in :mod:`recx.pathrec.dkt`, :mod:`recx.pathrec.policy` and :mod:`recx.pathrec.env`; here is
what Lightning needs.

* DKT: BCE on next-answer correctness over batches of training students (Adam, ``weight_decay``, gradient norm
  clipped at 20), AUC / accuracy over every real interaction of the validation / test students (gathered over DDP
  processes, so two processes report what one does); early stopping on validation AUC after ``model.patience``
  epochs, at most ``model.epochs``.
* SRC: REINFORCE on ``E_p`` over ``model.iterations`` freshly sampled episode batches per epoch (Adam, clipping at
  20, the configured baseline, the KT auxiliary loss), selected on fixed validation episodes, tested on the fixed
  test episodes that every path method shares. It runs in one process (the simulator rollouts are generator-driven).

Random draws are keyed by ``(seed, epoch)`` (training order, dropout, sampled episodes), and SRC's moving-average
baseline is a buffer, so that ``resume=true`` replays the uninterrupted run.
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig, OmegaConf

from recx.errors import ConfigError
from recx.families import Evaluation, Family, Trainable
from recx.runtools import RecxCheckpoint, construct, count_parameters, gather_cat
from recx.training import epoch_seed, index_eval_loader, index_train_loader

STAGE_SPLIT = {"val": "valid", "test": "test"}


def student_batch(sequences):
    """The batch function of one split: the padded sequences of the students at ``index``."""
    def batch(index: torch.Tensor) -> dict[str, torch.Tensor]:
        part = sequences.subset(index)
        return {"skills": part.skills, "answers": part.answers, "mask": part.mask}

    return batch


class Steps(torch.utils.data.Dataset):
    """``n`` placeholder items: SRC samples its episodes itself, one batch per item."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class KTDataModule(pl.LightningDataModule):
    """The student sequences of ``dataset.source``; DKT reads them in batches, SRC one placeholder per step."""

    def __init__(self, cfg: DictConfig) -> None:
        super().__init__()
        self.cfg, self.data = cfg, None
        self.seed = int(cfg.seed)
        self.model = str(cfg.model.name)
        self.batch_size = int(cfg.model.get("batch_size", 128))

    def _load(self):
        from recx.pathrec.sources import load_kt

        if self.data is None:
            self.data = load_kt(construct(self.cfg.dataset.source), self.cfg.paths.get("data_dir"))
        return self.data

    def prepare_data(self) -> None:
        self._load()

    def setup(self, stage: str | None = None) -> None:
        self._load()

    def train_dataloader(self):
        if self.model != "dkt":
            return torch.utils.data.DataLoader(Steps(int(self.cfg.model.iterations)), batch_size=None)
        return index_train_loader(len(self.data.train), student_batch(self.data.train), self.batch_size, self.seed,
                                  self)

    def _eval_loader(self, split: str):
        if self.model != "dkt":
            return torch.utils.data.DataLoader(Steps(1), batch_size=None)
        part = getattr(self.data, split)
        return index_eval_loader(len(part), student_batch(part), 256, self.trainer)

    def val_dataloader(self):
        return self._eval_loader("valid")

    def test_dataloader(self):
        return self._eval_loader("test")


class PathModule(RecxCheckpoint, pl.LightningModule):
    clip = 20.0

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        self.clip_gradients(optimizer, gradient_clip_val=self.clip, gradient_clip_algorithm="norm")


class DKTModule(PathModule):
    """The DKT simulator: BCE on next-answer correctness; validation / test AUC and accuracy."""

    def __init__(self, net, lr: float, weight_decay: float, seed: int) -> None:
        super().__init__()
        self.net, self.lr, self.weight_decay, self.seed = net, float(lr), float(weight_decay), int(seed)
        self.results: dict[str, dict[str, float]] = {}
        self._probs: list = []
        self._labels: list = []

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # dropout: keyed by (seed, epoch, batch), whatever else drew from the global generator (loader set-up)
        torch.manual_seed(epoch_seed(self.seed, self.current_epoch) + 1 + 7 * (batch_idx + 1))

    def on_train_epoch_start(self) -> None:
        torch.manual_seed(epoch_seed(self.seed, self.current_epoch) + 1)

    def _logits(self, batch):
        from recx.pathrec.dkt import shifted_answers

        logits, _ = self.net(batch["skills"], shifted_answers(batch["answers"]))
        return logits

    def training_step(self, batch, batch_idx):
        from recx.errors import check_finite_loss

        mask = batch["mask"]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(self._logits(batch)[mask],
                                                                    batch["answers"][mask])
        check_finite_loss(loss, self.current_epoch, self.global_step, fix="lower model.lr")
        self.log("train/loss", loss.detach(), on_step=False, on_epoch=True, batch_size=int(mask.sum()),
                 sync_dist=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._probs, self._labels = [], []

    on_test_epoch_start = on_validation_epoch_start

    @torch.no_grad()
    def validation_step(self, batch, batch_idx):
        mask = batch["mask"]
        self._probs.append(torch.sigmoid(self._logits(batch).float())[mask].cpu())
        self._labels.append(batch["answers"][mask].cpu())

    test_step = validation_step

    def _finish(self, stage: str) -> None:
        from recx.metrics.classification import binary_accuracy, binary_auc

        p = gather_cat(self, torch.cat(self._probs) if self._probs else torch.zeros(0))
        y = gather_cat(self, torch.cat(self._labels) if self._labels else torch.zeros(0))
        values = {"auc": binary_auc(p, y), "accuracy": binary_accuracy(p, y), "interactions": int(y.numel())}
        self.results[STAGE_SPLIT[stage]] = values
        self.log(f"{stage}/auc", values["auc"], prog_bar=True)
        self.log(f"{stage}/accuracy", values["accuracy"])

    def on_validation_epoch_end(self) -> None:
        self._finish("val")

    def on_test_epoch_end(self) -> None:
        self._finish("test")


class SRCModule(PathModule):
    """SRC's policy trained with REINFORCE against the frozen DKT environment (kept out of optimiser and checkpoint).

    Loss: ``−mean((R − b) · log π(path))`` (+ ``kt_weight`` · BCE of the KT head against the simulator's per-step
    probabilities when ``with_kt``); ``b``: none (the public code), a moving average of batch rewards (0.9 / 0.1),
    or the greedy path's reward (self-critical)."""

    def __init__(self, policy, env, sampler, m: DictConfig, seed: int, valid_episodes, test_episodes) -> None:
        super().__init__()
        self.net = policy
        self._env = [env]  # a list: not a submodule
        self.sampler, self.seed = sampler, int(seed)
        self.lr, self.batch_size = float(m.lr), int(m.batch_size)
        self.baseline, self.with_kt, self.kt_weight = str(m.baseline), bool(m.with_kt), float(m.kt_weight)
        if self.baseline not in ("none", "moving_average", "greedy"):
            raise ConfigError(f"unknown baseline '{self.baseline}'", field="model.baseline",
                              fix="none (the public code), moving_average or greedy")
        self.register_buffer("moving", torch.tensor(float("nan"), dtype=torch.float64))
        self.episodes = {"valid": valid_episodes, "test": test_episodes}
        self.results: dict[str, dict[str, float]] = {}
        self._generator = torch.Generator()

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.lr)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # dropout: keyed by (seed, epoch, batch), whatever else drew from the global generator (loader set-up)
        torch.manual_seed(epoch_seed(self.seed, self.current_epoch) + 1 + 7 * (batch_idx + 1))

    def on_train_epoch_start(self) -> None:
        torch.manual_seed(epoch_seed(self.seed, self.current_epoch) + 1)
        self._generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.current_epoch) + 2)

    def training_step(self, batch, batch_idx):
        env, policy, g, length = self._env[0], self.net, self._generator, self.sampler.length
        targets, initial, candidates = self.sampler(self.batch_size, g)
        env.begin(targets, initial)
        actions, log_probs, kt_logits = policy(targets, initial, env.initial_probs, candidates, length, "sample",
                                               generator=g)
        step_probs = env.step(candidates.gather(1, actions))
        reward = env.reward()
        if self.baseline == "greedy":
            with torch.no_grad():
                policy.eval()
                greedy, _, _ = policy(targets, initial, env.initial_probs, candidates, length, "greedy")
                policy.train()
                env.step(candidates.gather(1, greedy))
                base = env.reward()
        elif self.baseline == "moving_average":
            batch_mean = float(reward.mean())
            moving = float(self.moving)
            self.moving.fill_(batch_mean if moving != moving else 0.9 * moving + 0.1 * batch_mean)
            base = torch.full_like(reward, float(self.moving))
        else:
            base = torch.zeros_like(reward)
        loss = -((reward - base).unsqueeze(1) * log_probs).mean()
        if self.with_kt:
            loss = loss + self.kt_weight * torch.nn.functional.binary_cross_entropy_with_logits(kt_logits, step_probs)
        self.log("train/ep", float(reward.mean()), on_step=False, on_epoch=True, batch_size=self.batch_size)
        return loss

    def validation_step(self, batch, batch_idx):
        pass

    test_step = validation_step

    def _finish(self, stage: str) -> None:
        from recx.pathrec.recipe import evaluate_method, src_method

        split = STAGE_SPLIT[stage]
        values = evaluate_method(src_method(self.net), self._env[0], self.episodes[split], self.sampler.length)
        self.results[split] = values
        self.log(f"{stage}/ep", values["ep"], prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self._finish("val")

    def on_test_epoch_end(self) -> None:
        self._finish("test")


def conventions() -> dict[str, Any]:
    return {
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
        "random_draws": "training order, dropout and SRC's sampled episodes are seeded per (seed, epoch)",
    }


def task(cfg: DictConfig, dm: KTDataModule, life) -> Trainable | Evaluation:
    from recx.pathrec import recipe
    from recx.pathrec.dkt import DKT

    m, data = cfg.model, dm.data
    if m.name == "dkt":
        arch, training = recipe.dkt_settings(m)
        torch.manual_seed(int(cfg.seed))
        net = DKT(data.n_skills, **arch)
        module = DKTModule(net, training.get("lr", 1e-3), training.get("weight_decay", 1e-4), int(cfg.seed))
        module.recx_extra = {"n_skills": data.n_skills}
        return Trainable(module=module, monitor="val/auc", mode="max", max_epochs=int(training.get("epochs", 30)),
                         patience=int(training.get("patience", 5)), net=net,
                         report=lambda module, dm: {"n_parameters": count_parameters(net)},
                         conventions=conventions())
    dkt, sim_info, env, sampler, valid_episodes, test_episodes = recipe.path_setting(cfg, data, life)
    if m.name == "src":
        from recx.pathrec.policy import SRCPolicy

        torch.manual_seed(int(cfg.seed))
        policy = SRCPolicy(data.n_skills, **OmegaConf.to_container(m.policy, resolve=True))
        module = SRCModule(policy, env, sampler, m, int(cfg.seed), valid_episodes, test_episodes)
        module.recx_extra = {"n_skills": data.n_skills}
        return Trainable(module=module, monitor="val/ep", mode="max", max_epochs=int(m.epochs), patience=None,
                         net=policy, cpu_only=True, conventions=conventions(),
                         report=lambda module, dm: {"n_parameters": count_parameters(policy), "simulator": sim_info,
                                                    "device": "cpu"})

    def run() -> dict:
        tic = time.perf_counter()
        method, out = recipe.baseline_method(cfg, data, sampler)
        train_time = time.perf_counter() - tic
        valid = recipe.evaluate_method(method, env, valid_episodes, sampler.length)
        test = recipe.evaluate_method(method, env, test_episodes, sampler.length)
        return {"monitor": cfg.metric.monitor, "valid": valid, "test": test, "simulator": sim_info,
                "train_time_s": round(train_time, 2), **out, "data": data.stats(), "device": "cpu"}

    return Evaluation(run=run, conventions=conventions())


FAMILY = Family(name="pathrec", metric="path_reward", task=task, datamodule=KTDataModule,
                data_stats=lambda dm: dm.data.stats(), ddp=lambda cfg: cfg.model.name == "dkt")
