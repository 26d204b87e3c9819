"""Train and evaluate one RecBole model on a split that recx wrote out, and print its numbers as JSON.

Runs under RecBole's own interpreter (RecBole 1.2.1 in its own venv; recx never imports RecBole):

    <recbole venv>/bin/python scripts/recbole_driver.py --data <folder>/<name> --model BPR --epochs 50 --seed 1 \\
        [--set n_layers=3 --set reg_weight=1e-4] [--eval-passes 5] [--eval-batch-size N] --out out.json

``--data`` is a folder ``<name>/`` holding RecBole atomic files ``<name>.train.inter``, ``<name>.valid.inter`` and
``<name>.test.inter`` (``scripts/bench_vs_recbole.py`` writes them from recx's own split). RecBole reads them with
its ``benchmark_filename`` mechanism, so it sees exactly recx's train/valid/test interactions and no split of its own.

The run goes through RecBole's public pieces as its ``run_recbole`` does (Config, create_dataset, data_preparation,
get_model, get_trainer), without ``recbole.quick_start`` (it imports ray at module level). Settings: full-sort
evaluation, Recall/NDCG@{10,20} to 6 decimals, uniform negatives (one per positive, from all items the user has not
trained on), Adam, batch 2048, a fixed number of epochs with no validation during training (``eval_step=0``), then
validation and test of the last epoch's weights (no best-model reload), then ``--eval-passes`` timed full passes
over the test users (each from an empty propagation cache, see below). RecBole's full-sort loader packs
``eval_batch_size // n_items`` users per batch; the default ``--eval-batch-size`` gives it recx's scorer budget
(256 MiB of float32 scores per chunk), so both score every user in one chunk on ml100k (RecBole's own default, 4096,
would mean 2 users per batch).

Printed JSON: metrics (valid/test), train seconds per epoch (median epoch and fit time / epochs), seconds per eval
pass (median and all), the same two as CPU seconds of the process (``time.process_time``: less sensitive to other
load on a shared machine), import / data-loading / wall seconds (wall = after imports to the end of the first
validation + test, before the timed passes), versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from driver_args import parse_sets  # scripts/ (stdlib only; this runs under RecBole's interpreter)

STARTED, STARTED_CPU = time.perf_counter(), time.process_time()

#: recx's default scorer memory budget (metric.memory_budget_mb=256) as a count of float32 scores
RECX_BUDGET_SCORES = 256 * 2**20 // 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder <name>/ with <name>.{train,valid,test}.inter")
    parser.add_argument("--model", required=True, choices=["BPR", "LightGCN"])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a RecBole config value")
    parser.add_argument("--eval-passes", type=int, default=5)
    parser.add_argument("--eval-batch-size", type=int, default=RECX_BUDGET_SCORES)
    parser.add_argument("--work", type=Path, default=None, help="RecBole's log/ and saved/ go here (default: tmp)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    data = args.data.resolve()
    for part in ("train", "valid", "test"):
        if not (data / f"{data.name}.{part}.inter").is_file():
            raise SystemExit(f"{data}/{data.name}.{part}.inter is missing (bench_vs_recbole.py writes it)")
    if args.work is None:
        import tempfile
        args.work = Path(tempfile.mkdtemp(prefix="recbole-driver-"))
    args.work.mkdir(parents=True, exist_ok=True)
    os.chdir(args.work)  # RecBole writes log/ and log_tensorboard/ into the working directory

    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.trainer import trainer as trainer_module
    from recbole.utils import get_model, get_trainer, init_logger, init_seed
    import recbole
    imported, imported_cpu = time.perf_counter(), time.process_time()

    config_dict = {
        "data_path": str(data.parent), "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]}, "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id",
        "use_gpu": False, "device": "cpu", "seed": args.seed, "reproducibility": True, "state": "WARNING",
        "show_progress": False, "checkpoint_dir": str(args.work / "saved"), "worker": 0,
        "epochs": args.epochs, "eval_step": 0, "train_batch_size": 2048, "learner": "adam", "learning_rate": 1e-3,
        "weight_decay": 0.0, "embedding_size": 64,
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": False,
                                  "candidate_num": 0},
        "eval_args": {"group_by": "user", "order": "RO", "mode": "full"},
        "metrics": ["Recall", "NDCG"], "topk": [10, 20], "valid_metric": "Recall@20", "metric_decimal_place": 6,
        "eval_batch_size": args.eval_batch_size,
        **parse_sets(args.set),
    }
    config = Config(model=args.model, dataset=data.name, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    loaded = time.perf_counter()

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    # epoch timing: the end time of every training epoch (no change to what the epoch computes)
    ends: list[float] = []
    train_epoch = trainer_module.Trainer._train_epoch

    def timed_train(self, *a, **k):
        out = train_epoch(self, *a, **k)
        ends.append(time.perf_counter())
        return out

    trainer_module.Trainer._train_epoch = timed_train
    fit_started, fit_cpu = time.perf_counter(), time.process_time()
    trainer.fit(train_data, valid_data=None, verbose=False, saved=False, show_progress=False)
    fit_s, fit_cpu = time.perf_counter() - fit_started, time.process_time() - fit_cpu
    epochs = [b - a for a, b in zip([fit_started, *ends[:-1]], ends)]

    valid = trainer.evaluate(valid_data, load_best_model=False, show_progress=False)
    test = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    evaluated = time.perf_counter()
    # A timed pass starts from what a pass after a training epoch sees: RecBole's graph models cache their propagated
    # embeddings on the first full-sort call (LightGCN: restore_user_e / restore_item_e) and drop them on the next
    # training batch, so the cache is dropped before each pass. The passes that reuse the cache are timed apart.
    caches = [name for name in ("restore_user_e", "restore_item_e") if hasattr(model, name)]
    passes, passes_cpu, cached = [], [], []
    for _ in range(args.eval_passes):
        for name in caches:
            setattr(model, name, None)
        t, c = time.perf_counter(), time.process_time()
        trainer.evaluate(test_data, load_best_model=False, show_progress=False)
        passes.append(time.perf_counter() - t)
        passes_cpu.append(time.process_time() - c)
        if caches:
            t = time.perf_counter()
            trainer.evaluate(test_data, load_best_model=False, show_progress=False)
            cached.append(time.perf_counter() - t)

    def metrics(result) -> dict:
        return {k.lower(): float(v) for k, v in result.items()}

    payload = {
        "framework": "recbole", "model": args.model, "seed": args.seed, "epochs": len(ends),
        "settings": {k: config[k] for k in ("embedding_size", "train_batch_size", "learning_rate", "epochs",
                                            "eval_batch_size", "n_layers", "reg_weight", "require_pow")
                     if config[k] is not None},
        "data": {"users": int(dataset.user_num - 1), "items": int(dataset.item_num - 1),
                 "interactions": {name: len(part.dataset.inter_feat) for name, part in
                                  (("train", train_data), ("valid", valid_data), ("test", test_data))},
                 "eval_users": {"valid": len(valid_data.uid_list), "test": len(test_data.uid_list)}},
        "valid": metrics(valid), "test": metrics(test),
        "train_s_per_epoch": round(statistics.median(epochs), 4),
        "fit_s_per_epoch": round(fit_s / max(len(ends), 1), 4),
        "fit_cpu_s_per_epoch": round(fit_cpu / max(len(ends), 1), 4),
        "eval_s_per_pass": round(statistics.median(passes), 4) if passes else None,
        "eval_passes_s": [round(p, 4) for p in passes],
        "eval_cpu_s_per_pass": round(statistics.median(passes_cpu), 4) if passes else None,
        "eval_cached_s_per_pass": round(statistics.median(cached), 4) if cached else None,
        "import_s": round(imported - STARTED, 2),
        "import_cpu_s": round(imported_cpu - STARTED_CPU, 2), "data_s": round(loaded - imported, 2),
        "wall_s": round(evaluated - imported, 2),
        "threads": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__,
        "recbole": recbole.__version__,
    }
    text = json.dumps(payload, indent=2)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
