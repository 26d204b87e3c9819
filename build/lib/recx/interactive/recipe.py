"""``recx train model=magus model/base=<any top-N model> dataset=<top-N dataset>``: the whole MAGUS experiment.

1. **Base recommender**: trained with the ordinary top-N run (``<run>/base/``, its own config, metrics and
   checkpoints), or loaded from ``model.base_ckpt``.
2. **Words and graph** from the dataset's item metadata and training interactions.
3. **Propagation weights** (β, α) chosen on *validation* targets (each user's first validation item, training items
   excluded) by the mean number of rounds to success; test targets are never used for fitting.
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
from recx.interactive.rounds import PropagationWeights, RoundSettings, run_rounds, success_at


def base_config(cfg: DictConfig, run_dir: Path) -> DictConfig:
    """The top-N run config of the base model: the MAGUS run's config with model = model.base, top-N metrics."""
    from recx.cli import CONF_DIR

    base = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    base.model = base.model.base
    base.metric = OmegaConf.load(CONF_DIR / "metric" / "topk.yaml")
    base.paths.run_dir = str(run_dir / "base")
    base.run_name = f"{cfg.run_name}/base"
    if base.callbacks.get("lis") is not None:
        base.callbacks.lis.enabled = False  # the base run is a means here, not the result
    return base


def base_model(cfg: DictConfig, run_dir: Path):
    """``(net, data, base run summary)``: train the base model, or rebuild it from ``model.base_ckpt``."""
    from recx.run import build_datamodule, build_net, load_checkpoint, train

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


def fit_weights(scores, seen, targets, graph, settings, grid: dict) -> tuple[PropagationWeights, list[dict]]:
    """Grid search of (β, α) by mean rounds on validation targets."""
    trials = []
    for beta, alpha in product(grid.get("beta", [1.0]), grid.get("alpha", [0.5])):
        w = PropagationWeights(beta=float(beta), alpha=float(alpha))
        found = run_rounds("magus", scores, seen, targets, graph, settings, w)
        trials.append({"beta": w.beta, "alpha": w.alpha, **success_at(found, settings.rounds)})
    best = min(trials, key=lambda t: (t["mean_rounds"], -t[f"success@{min(5, settings.rounds)}"]))
    return PropagationWeights(best["beta"], best["alpha"]), trials


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


def run(cfg: DictConfig) -> dict[str, Any]:
    from recx.console import console
    from recx.data.prepare import raw_dir_of
    from recx.interactive.words import dataset_words
    from recx.run import write_json

    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    m = cfg.model
    settings = RoundSettings(rounds=int(m.rounds), items_per_round=int(m.items_per_round),
                             queries_per_round=int(m.queries_per_round), temperature=float(m.temperature))
    started = time.perf_counter()
    net, dm, base_summary = base_model(cfg, run_dir)
    data = dm.data
    words = dataset_words(dm.source, raw_dir_of(dm.source, dm.data_dir), data.item_ids,
                          title_tokens=int(m.title_tokens), latent_words=int(m.latent_words),
                          words_file=m.get("words_file"))
    graph = build_word_graph(words, data.train, data.n_users, **OmegaConf.to_container(m.graph, resolve=True))
    scores = all_scores(net, data.n_users)

    v_users, v_targets = first_targets(data.valid, data.n_users)
    v_seen = seen_matrix(data.n_users, data.n_items, data.train)[v_users]
    weights, trials = fit_weights(scores[v_users], v_seen, v_targets, graph, settings,
                                  OmegaConf.to_container(m.fit, resolve=True))
    t_users, t_targets = first_targets(data.test, data.n_users)
    t_seen = seen_matrix(data.n_users, data.n_items, data.train, data.valid)[t_users]
    t_seen[torch.arange(len(t_users)), t_targets] = False  # a re-consumed item can still be the target

    curves, timings = {}, {}
    for strategy in m.strategies:
        tic = time.perf_counter()
        found = run_rounds(strategy, scores[t_users], t_seen, t_targets, graph, settings, weights,
                           torch.Generator().manual_seed(int(cfg.seed)))
        timings[strategy] = (time.perf_counter() - tic) / settings.rounds
        curves[strategy] = success_at(found, settings.rounds)
    valid_found = run_rounds("magus", scores[v_users], v_seen, v_targets, graph, settings, weights)
    plot_success(curves, settings.rounds, run_dir / "success_curve.png",
                 f"{cfg.dataset.name}: MAGUS over {base_summary['model']}, {len(t_users)} users")
    test = {**curves.get("magus", {}),
            **{f"{s}/{k}": v for s, c in curves.items() if s != "magus" for k, v in c.items()}}
    results = {
        "status": "completed", "run_name": cfg.run_name, "model": m.name, "dataset": cfg.dataset.name,
        "seed": cfg.seed, "monitor": cfg.metric.monitor,
        "valid": success_at(valid_found, settings.rounds), "test": test,
        "strategies": curves, "seconds_per_round": {k: round(v, 4) for k, v in timings.items()},
        "users": {"valid": len(v_users), "test": len(t_users)},
        "weights": {"beta": weights.beta, "alpha": weights.alpha, "selected_on": "validation targets, mean rounds"},
        "fit_trials": trials, "graph": graph.stats(), "words": words.n_words, "base": base_summary,
        "settings": vars(settings), "wall_time_s": round(time.perf_counter() - started, 2),
        "plot": str(run_dir / "success_curve.png"),
    }
    write_json(run_dir / "metrics.json", results)
    write_json(run_dir / "conventions.json", {
        "target": "each user's first held-out item of the split (validation: fitting; test: reporting)",
        "excluded": "training items (test: training + validation items) are never shown",
        "success@T": "share of users whose target is among the items shown in rounds 1..T",
        "mean_rounds": f"mean round of success, failures counted as {settings.rounds + 1}",
        "user": "accepts a query iff all its words are words of the target; clicks only the target",
    })
    print_report(curves, timings, settings, weights, run_dir, console())
    return results


def print_report(curves, timings, settings, weights, run_dir: Path, out) -> None:
    from rich.table import Table

    shown = [t for t in (1, 3, 5, 10) if t <= settings.rounds]
    table = Table(title=f"multi-round test (k={settings.items_per_round} items, m={settings.queries_per_round} "
                        f"queries per round; β={weights.beta}, α={weights.alpha} from validation)",
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
