"""``recx train model=magus model/base=<any top-N model> dataset=<top-N dataset>``: the whole MAGUS experiment.

1. **Base recommender**: trained with the ordinary top-N run (``<run>/base/``, its own config, metrics and
   checkpoints), or loaded from ``model.base_ckpt``.
2. **Words and graph** from the dataset's item metadata and training interactions.
3. **Propagation weights** learned on *validation* targets (each user's first validation item, training items
   excluded): a (β, α) grid, then gradient descent on the session loss from the grid's best (:func:`fit_weights`),
   kept by the mean number of rounds to success; test targets are never used for fitting. The simulated user is the
   noisy one by default (``model.user``), with its own noise stream for validation and for test.
4. **Test**: every strategy on each user's first test item (training and validation items excluded); Success@T for
   T = 1..rounds, mean rounds (capped), wall time per round; a PNG of the success curves; ``metrics.json``.
"""

from __future__ import annotations

import time
from itertools import product
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from recx.interactive.graph import build_word_graph
from recx.interactive.rounds import PropagationWeights, RoundSettings, UserModel, rollout, run_rounds, success_at


def base_config(cfg: DictConfig, run_dir: Path) -> DictConfig:
    """The top-N run config of the base model: the MAGUS run's config with model = model.base, top-N metrics."""
    from recx.config_paths import CONF_DIR

    base = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    base.model = base.model.base
    base.metric = OmegaConf.load(CONF_DIR / "metric" / "topk.yaml")
    base.paths.run_dir = str(run_dir / "base")
    base.run_name = f"{cfg.run_name}/base"
    if base.callbacks.get("lis") is not None:
        base.callbacks.lis.enabled = False  # the base run is a means here, not the result
    return base


def base_model(cfg: DictConfig, run_dir: Path, train):
    """``(net, data, base run summary)``: train the base model (with the run life's ``train``: a nested top-N run),
    or rebuild it from ``model.base_ckpt``."""
    from recx.runtools import load_checkpoint
    from recx.topn.family import build_datamodule, build_net

    ckpt_path = cfg.model.get("base_ckpt")
    if ckpt_path:
        ckpt = load_checkpoint(ckpt_path)
        base_cfg = OmegaConf.create(ckpt["recx"]["config"])
        base_cfg.paths.data_dir = cfg.paths.data_dir
        summary = {"checkpoint": str(ckpt_path), "model": base_cfg.model.name, "trained": False}
    else:
        base_cfg = base_config(cfg, run_dir)
        results = train(base_cfg)
        ckpt = load_checkpoint(results["best_checkpoint"])
        summary = {"checkpoint": results["best_checkpoint"], "model": base_cfg.model.name, "trained": True,
                   "test": {k: v for k, v in results["test"].items() if k in ("recall@20", "ndcg@20")}}
    dm = build_datamodule(base_cfg)
    dm.setup("test")
    net = build_net(base_cfg.model, dm.data, base_cfg.get("plugin"))
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    net.load_state_dict(state)
    net.eval()
    return net, dm, summary


@torch.no_grad()
def all_scores(net, n_users: int, chunk: int = 4096) -> torch.Tensor:
    return torch.cat([net.score(torch.arange(s, min(s + chunk, n_users))).float().cpu()
                      for s in range(0, n_users, chunk)])


def first_targets(pairs: torch.Tensor, n_users: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(users, items)``: the first held-out item of every user who has one."""
    first = torch.full((n_users,), -1, dtype=torch.long)
    order = torch.arange(pairs.shape[0] - 1, -1, -1)  # reversed: the earliest row is written last
    first[pairs[order, 0]] = pairs[order, 1]
    users = (first >= 0).nonzero().flatten()
    return users, first[users]


def seen_matrix(n_users: int, n_items: int, *parts: torch.Tensor) -> torch.Tensor:
    seen = torch.zeros(n_users, n_items, dtype=torch.bool)
    for p in parts:
        seen[p[:, 0], p[:, 1]] = True
    return seen


FIT_METHODS = ("gradient", "grid")


def _rank_key(metrics: dict, rounds: int) -> tuple[float, float]:
    return metrics["mean_rounds"], -metrics[f"success@{min(5, rounds)}"]


def fit_weights(scores, seen, targets, graph, settings, fit: dict, user: UserModel = UserModel(),
                user_ids: torch.Tensor | None = None, strategy: str = "magus") -> tuple[PropagationWeights, dict]:
    """The propagation weights of ``strategy`` fitted on validation targets; ``(weights, fit report)``.

    1. A grid over (β, α) (``fit.beta`` × ``fit.alpha``; α = 0 only for ``no_graph``), ranked by mean rounds.
    2. ``fit.method=gradient`` (default): from the grid's best, ``fit.steps`` Adam steps (``fit.lr``) on the four
       coefficients θ = (w_base, β, α₊, α₋) minimising :func:`~recx.interactive.rounds.rollout`'s loss (the
       cross-entropy of each validation target under every round's item distribution, the session's choices held
       fixed per step). Every step's θ is also scored by its true validation mean rounds; the best θ along the path
       (the grid's best included) is kept, so the learned weights are never worse on validation than the grid.
    """
    from recx.errors import ConfigError

    method = fit.get("method", "gradient")
    if method not in FIT_METHODS:
        raise ConfigError(f"unknown fit method '{method}'", field="model.fit.method", fix=f"use one of {FIT_METHODS}")
    alphas = [0.0] if strategy == "no_graph" else fit.get("alpha", [0.5])
    trials = []
    for beta, alpha in product(fit.get("beta", [1.0]), alphas):
        w = PropagationWeights(beta=float(beta), alpha=float(alpha))
        found = run_rounds(strategy, scores, seen, targets, graph, settings, w, user=user, user_ids=user_ids)
        trials.append({**w.as_dict(), **success_at(found, settings.rounds)})
    best = min(trials, key=lambda t: _rank_key(t, settings.rounds))
    weights = PropagationWeights(best["beta"], best["alpha"], best["alpha_neg"], best["base"])
    report = {"method": method, "strategy": strategy, "grid": trials, "grid_best": weights.as_dict(),
              "grid_valid": {k: best[k] for k in ("success@5", "mean_rounds")}}
    if method == "grid":
        report["valid"] = report["grid_valid"]
        return weights, report
    free = torch.tensor([1.0, 1.0, 0.0, 0.0] if strategy == "no_graph" else [1.0, 1.0, 1.0, 1.0])
    theta = weights.theta().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([theta], lr=float(fit.get("lr", 0.05)))
    best_key, best_theta, path = _rank_key(best, settings.rounds), theta.detach().clone(), []
    steps = int(fit.get("steps", 30))
    for step in range(steps + 1):
        found, loss = rollout(strategy, scores, seen, targets, graph, settings, theta, user=user, user_ids=user_ids)
        m = success_at(found, settings.rounds)
        path.append({"step": step, "loss": round(float(loss.detach()), 5),
                     "success@5": m[f"success@{min(5, settings.rounds)}"], "mean_rounds": m["mean_rounds"],
                     **PropagationWeights.from_theta(theta).as_dict()})
        if _rank_key(m, settings.rounds) < best_key:
            best_key, best_theta = _rank_key(m, settings.rounds), theta.detach().clone()
        if step == steps or not loss.requires_grad:
            break
        optimiser.zero_grad()
        loss.backward()
        theta.grad *= free
        optimiser.step()
    weights = PropagationWeights.from_theta(best_theta)
    report.update(path=path, valid={"mean_rounds": best_key[0], "success@5": -best_key[1]})
    return weights, report


def plot_success(curves: dict[str, dict[str, float]], rounds: int, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = list(range(1, rounds + 1))
    for name, m in curves.items():
        ax.plot(xs, [m[f"success@{t}"] for t in xs], marker="o", label=name)
    ax.set_xlabel("rounds T")
    ax.set_ylabel("Success@T (target shown within T rounds)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(cfg: DictConfig, train=None) -> dict[str, Any]:
    from recx.console import console
    from recx.data.prepare import raw_dir_of
    from recx.interactive.words import dataset_words
    from recx.runtools import write_json

    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    m = cfg.model
    settings = RoundSettings(rounds=int(m.rounds), items_per_round=int(m.items_per_round),
                             queries_per_round=int(m.queries_per_round), temperature=float(m.temperature))
    started = time.perf_counter()
    net, dm, base_summary = base_model(cfg, run_dir, train)
    data = dm.data
    words = dataset_words(dm.source, raw_dir_of(dm.source, dm.data_dir), data.item_ids,
                          title_tokens=int(m.title_tokens), latent_words=int(m.latent_words),
                          words_file=m.get("words_file"))
    graph = build_word_graph(words, data.train, data.n_users, **OmegaConf.to_container(m.graph, resolve=True))
    scores = all_scores(net, data.n_users)

    user_cfg = OmegaConf.to_container(m.get("user") or {"kind": "exact"}, resolve=True)
    fit_cfg = OmegaConf.to_container(m.fit, resolve=True)
    v_user = UserModel.from_config(user_cfg, seed=int(cfg.seed), stream=0)
    t_user = UserModel.from_config(user_cfg, seed=int(cfg.seed), stream=1)
    v_users, v_targets = first_targets(data.valid, data.n_users)
    v_seen = seen_matrix(data.n_users, data.n_items, data.train)[v_users]
    fitted, fits = {}, {}
    for strategy in ("magus", "no_graph"):
        if strategy == "magus" or strategy in m.strategies:
            fitted[strategy], fits[strategy] = fit_weights(scores[v_users], v_seen, v_targets, graph, settings,
                                                           fit_cfg, v_user, v_users, strategy)
    weights = fitted["magus"]
    t_users, t_targets = first_targets(data.test, data.n_users)
    t_seen = seen_matrix(data.n_users, data.n_items, data.train, data.valid)[t_users]
    t_seen[torch.arange(len(t_users)), t_targets] = False  # a re-consumed item can still be the target

    curves, timings = {}, {}
    for strategy in m.strategies:
        tic = time.perf_counter()
        found = run_rounds(strategy, scores[t_users], t_seen, t_targets, graph, settings,
                           fitted.get(strategy, weights), torch.Generator().manual_seed(int(cfg.seed)), t_user,
                           t_users)
        timings[strategy] = (time.perf_counter() - tic) / settings.rounds
        curves[strategy] = success_at(found, settings.rounds)
    valid_found = run_rounds("magus", scores[v_users], v_seen, v_targets, graph, settings, weights, user=v_user,
                             user_ids=v_users)
    user_name = ("exact user" if t_user.exact else
                 f"noisy user ε={t_user.error_rate:g}, δ={t_user.unknown_rate:g}")
    plot_success(curves, settings.rounds, run_dir / "success_curve.png",
                 f"{cfg.dataset.name}: MAGUS over {base_summary['model']}, {len(t_users)} users, {user_name}")
    test = {**curves.get("magus", {}),
            **{f"{s}/{k}": v for s, c in curves.items() if s != "magus" for k, v in c.items()}}
    results = {
        "status": "completed", "run_name": cfg.run_name, "model": m.name, "dataset": cfg.dataset.name,
        "seed": cfg.seed, "monitor": cfg.metric.monitor,
        "valid": success_at(valid_found, settings.rounds), "test": test,
        "strategies": curves, "seconds_per_round": {k: round(v, 4) for k, v in timings.items()},
        "users": {"valid": len(v_users), "test": len(t_users)},
        "user_model": t_user.describe(),
        "weights": {**weights.as_dict(), "method": fits["magus"]["method"],
                    "selected_on": "validation targets, mean rounds"},
        "weights_no_graph": fitted["no_graph"].as_dict() if "no_graph" in fitted else None,
        "fit": fits, "fit_trials": fits["magus"]["grid"], "graph": graph.stats(), "words": words.n_words,
        "base": base_summary, "settings": vars(settings), "wall_time_s": round(time.perf_counter() - started, 2),
        "plot": str(run_dir / "success_curve.png"),
    }
    write_json(run_dir / "metrics.json", results)
    write_json(run_dir / "conventions.json", {
        "target": "each user's first held-out item of the split (validation: fitting; test: reporting)",
        "excluded": "training items (test: training + validation items) are never shown",
        "success@T": "share of users whose target is among the items shown in rounds 1..T",
        "mean_rounds": f"mean round of success, failures counted as {settings.rounds + 1}",
        "user": ("clicks only the target; a query's true answer is yes iff all its words are words of the target; "
                 + ("the exact user always answers truly" if t_user.exact else
                    f"the noisy user says don't know with probability {t_user.unknown_rate:g} (no evidence) and "
                    f"otherwise flips the true answer with probability {t_user.error_rate:g}")),
        "user_model": {k: v for k, v in t_user.describe().items() if k != "stream"},
        "user_noise": "hash of (seed, stream, round, user id, node); stream 0 = validation, 1 = test",
        "answer_evidence": ("exact elimination of contradicting items" if t_user.exact and v_user.exact else
                            "soft: log(ε/(1-ε)) added to the score of each item an answer contradicts "
                            "(exact elimination when ε = 0); don't know adds nothing"),
        "weights": f"fit.method={fits['magus']['method']} on validation targets (grid, then Adam on the session "
                   "cross-entropy when gradient), kept by validation mean rounds",
    })
    print_report(curves, timings, settings, weights, run_dir, console(), user_name)
    return results


def print_report(curves, timings, settings, weights, run_dir: Path, out, user_name: str = "") -> None:
    from rich.table import Table

    shown = [t for t in (1, 3, 5, 10) if t <= settings.rounds]
    table = Table(title=f"multi-round test (k={settings.items_per_round} items, m={settings.queries_per_round} "
                        f"queries per round; {user_name}; weights from validation: "
                        + ", ".join(f"{k}={v:g}" for k, v in weights.as_dict().items()) + ")",
                  title_justify="left")
    table.add_column("strategy")
    for t in shown:
        table.add_column(f"Success@{t}", justify="right")
    table.add_column("mean rounds", justify="right")
    table.add_column("ms/round", justify="right")
    for name, c in curves.items():
        table.add_row(name, *(f"{c[f'success@{t}']:.4f}" for t in shown), f"{c['mean_rounds']:.2f}",
                      f"{timings[name] * 1e3:.1f}")
    out.print(table)
    out.print(f"run folder: {run_dir} (success_curve.png)", markup=False)
