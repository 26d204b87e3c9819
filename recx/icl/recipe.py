"""``recx eval model=icl lm=<lm> dataset=<d> selector=<s> shots=<n> pool=full|feeder``: in-context accuracy.

1. The dataset is split once (``model.data_seed``) into a demonstration pool (``model.pool_size``, D_TRAIN) and test
   queries (``model.test_size``).
2. ``pool=feeder`` first pre-selects D_FEEDER ⊆ D_TRAIN with the frozen LM (:mod:`recx.icl.feeder`;
   ``model.feeder.sufficiency``: ``def1`` = the paper's Def. 1, default, or ``any``); the judgements
   are cached on disk per (LM, dataset, pool, template), so repeated runs and sweeps re-use them; the report gives the
   subset size, the LM judgements computed and the wall time.
3. For every test query the selector picks ``shots`` demonstrations from the pool in use; accuracy of the LM's
   label-word prediction.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from recx.errors import ConfigError


def judgement_cache(path: Path, judge) -> None:
    """Load earlier judgements into a CachedJudge from ``path`` (JSON list of [context, query, correct])."""
    if path.is_file():
        try:
            for context, query, ok in json.loads(path.read_text()):
                judge.memory[(tuple(context), int(query))] = bool(ok)
        except (ValueError, TypeError):
            path.unlink()  # a corrupt cache is only lost time: recompute


def save_judgements(path: Path, judge) -> None:
    from recx.data.interactions import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [[list(c), q, ok] for (c, q), ok in judge.memory.items()]
    atomic_write(path, lambda f: f.write(json.dumps(rows).encode()))


#: frozen LMs loaded in this process, by (path, data folder): a sweep (Hydra multirun, one process) loads each once.
#: Only ``model=icl`` uses it; ``model=feeder_ft`` fine-tunes its LM in place and loads a fresh one.
LOADED: dict[tuple[str, str], tuple[Any, Any]] = {}
#: the wrappers of the loaded LMs (their prompt-score memos), by LOADED key
WRAPPERS: dict[tuple[str, str], dict] = {}


def frozen_lm(path: str, data_dir: Path):
    from recx.icl.lm import load_lm, tiny_lm

    key = (path, str(data_dir))
    if key not in LOADED:
        LOADED.clear()  # one LM at a time: they are hundreds of MB
        WRAPPERS.clear()
        LOADED[key] = tiny_lm() if path == "tiny" else load_lm(path, cache_dir=data_dir)
    return LOADED[key]


def classification_lm(model, tokenizer, label_words, template: str, batch_size: int, frozen: bool):
    """The LM wrapper; a frozen LM's wrapper (and its memo of prompt scores) is kept with the loaded LM."""
    from recx.icl.lm import ClassificationLM

    if not frozen:
        return ClassificationLM(model, tokenizer, label_words, template=template, batch_size=batch_size)
    key = ("wrapper", tuple(label_words), template, batch_size)
    owner = next(k for k, v in LOADED.items() if v[0] is model)
    wrappers = WRAPPERS.setdefault(owner, {})
    if key not in wrappers:
        wrappers[key] = ClassificationLM(model, tokenizer, label_words, template=template, batch_size=batch_size,
                                         memo=True)
    return wrappers[key]


def icl_accuracy(lm, pool, in_use: list[int], queries, selector: str, shots: int, encoder: str, seed: int):
    """Accuracy on ``queries`` with ``shots`` demonstrations per query chosen by ``selector`` from ``pool[in_use]``."""
    from recx.icl.selectors import embed, select

    texts = [pool.texts[i] for i in in_use]
    p_vec, q_vec, used = embed(texts, queries.texts, encoder)
    picks = select(selector, p_vec, q_vec, shots, np.random.default_rng(seed)) if shots else \
        np.zeros((len(queries), 0), int)
    prompts = [lm.prompt([(texts[j], pool.labels[in_use[j]]) for j in row], q) for row, q in zip(picks, queries.texts)]
    predictions = lm.predict(prompts)
    return float(np.mean([p == y for p, y in zip(predictions, queries.labels)])), used


def run(cfg: DictConfig) -> dict[str, Any]:
    from recx.console import console, print_metrics
    from recx.data.prepare import default_data_dir, download
    from recx.icl.feeder import POOLS, CachedJudge, check_sufficiency, feeder_preselect
    from recx.icl.lm import LMJudge, load_lm, tiny_lm
    from recx.icl.sources import pool_and_queries
    from recx.runtools import check_hardware, construct, write_json
    from recx.training import device_for

    out = console()
    m = cfg.model
    if m.pool not in POOLS:  # before the run folder is touched
        raise ConfigError(f"unknown pool '{m.pool}'", field="model.pool", fix="full (D_TRAIN) or feeder (D_FEEDER)")
    sufficiency = check_sufficiency(str(m.feeder.get("sufficiency", "def1")))
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    source = construct(cfg.dataset.source)
    data_dir = Path(cfg.paths.data_dir) if cfg.paths.get("data_dir") else default_data_dir()
    examples = source.read(download(source, data_dir))
    pool, queries = pool_and_queries(examples, int(m.pool_size), int(m.test_size), int(m.data_seed))
    label_words = list(cfg.dataset.get("label_words") or examples.label_names)
    started = time.perf_counter()
    check_hardware(cfg.hardware)
    device = device_for(cfg.hardware)
    if m.name == "feeder_ft":  # fine-tuned in place: never shared
        model, tokenizer = tiny_lm() if cfg.lm.path == "tiny" else load_lm(cfg.lm.path, cache_dir=data_dir)
    else:
        model, tokenizer = frozen_lm(str(cfg.lm.path), data_dir)
    model.to(device)
    load_seconds = time.perf_counter() - started
    lm = classification_lm(model, tokenizer, label_words, cfg.dataset.get("template", "Text: {text}\nLabel:"),
                           int(cfg.lm.get("batch_size", 16)), frozen=m.name != "feeder_ft")
    report: dict[str, Any] = {"lm": str(cfg.lm.path), "lm_load_s": round(load_seconds, 1), "device": str(device),
                              "pool_size": len(pool),
                              "test_size": len(queries)}
    in_use = list(range(len(pool)))
    if m.name == "feeder_ft":
        return run_bilevel(cfg, lm, pool, queries, source, data_dir, report, run_dir, started, out, sufficiency)
    if m.pool == "feeder":
        judge = CachedJudge(LMJudge(lm, pool.texts, pool.labels))
        key = hashlib.sha256(json.dumps([str(cfg.lm.path), source.cache_key(), source.name, int(m.pool_size),
                                         int(m.data_seed), lm.template], default=str).encode()).hexdigest()[:12]
        cache = data_dir / "icl-judgements" / f"{source.name}-{key}.json"
        judgement_cache(cache, judge)
        result = feeder_preselect(judge, in_use, shots=int(m.feeder.shots), runs=int(m.feeder.runs),
                                  seed=int(cfg.seed), sufficiency=sufficiency)
        save_judgements(cache, judge)
        in_use = result.selected
        report["feeder"] = {"size": len(in_use), "share": round(len(in_use) / max(len(pool), 1), 4),
                            "layers": result.layers, "lm_judgements": result.judge_calls,
                            "cached_judgements": result.cache_hits, "seconds": round(result.seconds, 1),
                            "shots": int(m.feeder.shots), "runs": int(m.feeder.runs), "sufficiency": sufficiency,
                            "cache": str(cache)}
        out.print(f"FEEDER: {len(in_use)} of {len(pool)} demonstrations kept ({result.judge_calls} LM judgements, "
                  f"{result.seconds:.1f} s)", markup=False)
    if not in_use:
        raise ConfigError("the demonstration pool is empty", field="model.pool_size", fix="a larger pool")
    tic = time.perf_counter()
    accuracy, encoder = icl_accuracy(lm, pool, in_use, queries, str(m.selector), int(m.shots), str(m.encoder),
                                     int(cfg.seed))
    report.update({"encoder": encoder, "eval_seconds": round(time.perf_counter() - tic, 1)})
    results = {"status": "completed", "run_name": cfg.run_name, "model": "icl", "dataset": cfg.dataset.name,
               "seed": cfg.seed, "selector": m.selector, "shots": int(m.shots), "pool": m.pool,
               "valid": {}, "test": {"accuracy": accuracy}, **report,
               "wall_time_s": round(time.perf_counter() - started, 1)}
    write_json(run_dir / "metrics.json", results)
    write_json(run_dir / "conventions.json", {
        "accuracy": "share of test queries whose highest next-token logit among the label words' first tokens is "
                    "the true label's",
        "split": f"seeded (data_seed={m.data_seed}) disjoint samples: pool of {m.pool_size}, {m.test_size} queries",
        "feeder": "bottom-up tree, adjacent pairs of a seeded shuffle, K-shot groups (recx/icl/feeder.py)",
        "feeder_sufficiency": SUFFICIENCY_CONVENTION[sufficiency],
        "selection": "no hyperparameter is chosen on the test queries",
    })
    print_metrics(results, title=f"{cfg.run_name}: {m.selector}, {m.shots} shots, pool={m.pool}", run_dir=run_dir)
    return results


SUFFICIENCY_CONVENTION = {
    "def1": "Def. 1 (default): a target is covered iff the LM is wrong on it zero-shot and right with some K-group "
            "of the other node; zero-shot-right targets are never covered, so they stay",
    "any": "a target is covered iff the LM is right on it with some K-group of the other node (no zero-shot "
           "condition; recx before issue 18)"}


def run_bilevel(cfg, lm, pool, queries, source, data_dir: Path, report: dict, run_dir: Path, started: float, out,
                sufficiency: str = "def1"):
    """``model=feeder_ft``: ``rounds`` × (pre-select with the frozen LM if ``pool=feeder``; fine-tune on the subset);
    zero-shot and ``shots``-shot ICL accuracy after every round."""
    from recx.console import print_metrics
    from recx.icl.feeder import CachedJudge, feeder_preselect
    from recx.icl.finetune import finetune
    from recx.icl.lm import LMJudge
    from recx.runtools import write_json

    m = cfg.model
    rounds = []
    zero, _ = icl_accuracy(lm, pool, list(range(len(pool))), queries, "random", 0, str(m.encoder), int(cfg.seed))
    icl, encoder = icl_accuracy(lm, pool, list(range(len(pool))), queries, str(m.selector), int(m.shots),
                                str(m.encoder), int(cfg.seed))
    rounds.append({"round": 0, "train_size": 0, "zero_shot": zero, "icl": icl})
    for r in range(1, int(m.rounds) + 1):
        tic = time.perf_counter()
        subset = list(range(len(pool)))
        feeder = None
        if m.pool == "feeder":  # the outer step: pre-select with the current (frozen) LM
            result = feeder_preselect(CachedJudge(LMJudge(lm, pool.texts, pool.labels)), subset,
                                      shots=int(m.feeder.shots), runs=int(m.feeder.runs), seed=int(cfg.seed) + r,
                                      sufficiency=sufficiency)
            subset, feeder = result.selected, {"size": len(result.selected), "lm_judgements": result.judge_calls}
        finetune(lm, [pool.texts[i] for i in subset], [pool.labels[i] for i in subset], epochs=int(m.epochs),
                 batch_size=int(m.batch_size), lr=float(m.lr), weight_decay=float(m.weight_decay),
                 seed=int(cfg.seed) + r, precision=str(cfg.hardware.get("precision", "32-true")))
        zero, _ = icl_accuracy(lm, pool, list(range(len(pool))), queries, "random", 0, str(m.encoder), int(cfg.seed))
        icl, _ = icl_accuracy(lm, pool, subset, queries, str(m.selector), int(m.shots), str(m.encoder),
                              int(cfg.seed))
        rounds.append({"round": r, "train_size": len(subset), "zero_shot": zero, "icl": icl, "feeder": feeder,
                       "seconds": round(time.perf_counter() - tic, 1)})
        out.print(f"round {r}: fine-tuned on {len(subset)} examples; zero-shot {zero:.4f}, {m.shots}-shot ICL "
                  f"{icl:.4f} ({time.perf_counter() - tic:.0f} s)", markup=False)
    last = rounds[-1]
    results = {"status": "completed", "run_name": cfg.run_name, "model": "feeder_ft", "dataset": cfg.dataset.name,
               "seed": cfg.seed, "pool": m.pool, "valid": {}, "test": {"accuracy": last["icl"],
                                                                       "zero_shot_accuracy": last["zero_shot"]},
               "rounds": rounds, "encoder": encoder, **report, "wall_time_s": round(time.perf_counter() - started, 1)}
    write_json(run_dir / "metrics.json", results)
    write_json(run_dir / "conventions.json", {
        "bilevel": "each round: FEEDER with the frozen current LM (pool=feeder) or the full pool, then fine-tuning "
                   "on it (label-word cross-entropy, AdamW); accuracy after every round on the same test queries",
        "feeder_sufficiency": SUFFICIENCY_CONVENTION[sufficiency],
        "selection": "no hyperparameter is chosen on the test queries"})
    print_metrics(results, title=f"{cfg.run_name}: bi-level fine-tuning, pool={m.pool}", run_dir=run_dir)
    return results
