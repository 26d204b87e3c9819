"""Run one MMRec model on any MMRec-layout folder and write its numbers as JSON (parity data for recx).

Runs under MMRec's own interpreter, from outside recx (recx never imports MMRec):

    <mmrec venv>/bin/python scripts/mmrec_driver.py --mmrec <checkout> --data <folder> --model BPR \\
        --seeds 1 2 3 --set reg_weight=1e-4 --out mmrec_bpr.json

MMRec forks with the same layout run the same way (AlignRec's ``sjtulyf123/AlignRec_CIKM24``: its ``main.py`` flags
are passed with ``--set``, e.g. ``--set ui_cosine_loss=true --set multimodal_data_dir=<dir>/ --set side_emb_div=0``).

It goes through MMRec's public entry points exactly as its ``main.py`` does (its Config, RecDataset, data loaders,
model and Trainer), with the dataset keys passed as MMRec's ``config_dict`` (no dataset yaml written into the
checkout) and every hyperparameter grid collapsed to the single value given with ``--set`` (MMRec's own yaml value
otherwise, the first of a grid), so one run = one setting × the given seeds. Per seed it records MMRec's best
validation result, the test result at that epoch, the epochs run, train seconds per epoch and evaluation seconds.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from driver_args import parse_sets  # scripts/ (stdlib only; this runs under MMRec's interpreter)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mmrec", type=Path, required=True, help="MMRec checkout (holds src/)")
    parser.add_argument("--data", type=Path, required=True, help="MMRec-layout folder (<name>/<name>.inter ...)")
    parser.add_argument("--model", required=True, help="MMRec model name, e.g. BPR, LightGCN, VBPR, FREEDOM")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an MMRec config value (collapses that key's grid)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    src = (args.mmrec / "src").resolve()
    data = args.data.resolve()
    os.chdir(src)
    sys.path.insert(0, str(src))
    import torch  # noqa: F401 - MMRec's own

    from common import trainer as trainer_module
    from utils.configurator import Config
    from utils.dataloader import EvalDataLoader, TrainDataLoader
    from utils.dataset import RecDataset
    from utils.logger import init_logger
    from utils.utils import get_model, get_trainer, init_seed

    overrides = parse_sets(args.set)
    config_dict = {
        "gpu_id": 0, "use_gpu": False, "data_path": str(data.parent) + "/", "USER_ID_FIELD": "userID",
        "ITEM_ID_FIELD": "itemID", "TIME_FIELD": "timestamp", "inter_file_name": f"{data.name}.inter",
        "vision_feature_file": "image_feat.npy", "text_feature_file": "text_feat.npy",
        "user_graph_dict_file": "user_graph_dict.npy", "field_separator": "\t", "filter_out_cod_start_users": True,
        "save_recommended_topk": False, "seed": list(args.seeds),
        **overrides,
    }
    config = Config(args.model, data.name, config_dict)
    # one setting: every grid other than the seeds collapses to its first value (or the --set value above)
    for key in config["hyper_parameters"]:
        if key != "seed" and isinstance(config[key], list):
            config[key] = config[key][0]
    init_logger(config)
    dataset = RecDataset(config)
    train_ds, valid_ds, test_ds = dataset.split()
    for part in (dataset, train_ds, valid_ds, test_ds):
        str(part)  # as MMRec's quick_start logs them: printing is what sets their inter_num, which the loaders read
    train_data = TrainDataLoader(config, train_ds, batch_size=config["train_batch_size"], shuffle=True)
    valid_data = EvalDataLoader(config, valid_ds, additional_dataset=train_ds, batch_size=config["eval_batch_size"])
    test_data = EvalDataLoader(config, test_ds, additional_dataset=train_ds, batch_size=config["eval_batch_size"])

    # timing: wrap the trainer's epoch and evaluation methods (no change to what they compute)
    times = {"train": [], "eval": []}
    train_epoch, evaluate = trainer_module.Trainer._train_epoch, trainer_module.Trainer.evaluate

    def timed_train(self, *a, **k):
        t = time.perf_counter()
        out = train_epoch(self, *a, **k)
        times["train"].append(time.perf_counter() - t)
        return out

    def timed_eval(self, *a, **k):
        t = time.perf_counter()
        out = evaluate(self, *a, **k)
        times["eval"].append(time.perf_counter() - t)
        return out

    trainer_module.Trainer._train_epoch, trainer_module.Trainer.evaluate = timed_train, timed_eval
    settings = {k: config[k] for k in ("learning_rate", "embedding_size", "train_batch_size", "stopping_step",
                                       "epochs", "valid_metric", "reg_weight", "n_layers", "dropout", "knn_k",
                                       "mm_image_weight", "weight_decay") if config[k] is not None}
    settings.update({k: config[k] for k in overrides})
    runs = []
    for seed in args.seeds:
        config["seed"] = seed
        init_seed(seed)
        times["train"].clear(), times["eval"].clear()
        started = time.perf_counter()
        train_data.pretrain_setup()
        model = get_model(config["model"])(config, train_data).to(config["device"])
        # MMRec's Trainer takes (config, model, mg); forks that predate Mirror Gradient (AlignRec's) take two
        trainer_class = get_trainer()
        takes_mg = "mg" in inspect.signature(trainer_class.__init__).parameters
        trainer = trainer_class(config, model, False) if takes_mg else trainer_class(config, model)
        _, valid, test = trainer.fit(train_data, valid_data=valid_data, test_data=test_data, saved=False)
        epochs = len(times["train"])
        runs.append({
            "seed": seed, "epochs": epochs, "best_epoch": epochs - 1 - trainer.cur_step,
            "valid": {k: float(v) for k, v in valid.items()}, "test": {k: float(v) for k, v in test.items()},
            "train_s_per_epoch": round(sum(times["train"]) / max(epochs, 1), 4),
            # one evaluation pass (MMRec evaluates valid and test after every epoch: two passes per epoch)
            "eval_s_per_pass": round(sum(times["eval"]) / max(len(times["eval"]), 1), 4),
            "wall_s": round(time.perf_counter() - started, 2),
        })
        print(json.dumps(runs[-1]["test"]), flush=True)
    try:
        commit = subprocess.run(["git", "-C", str(args.mmrec), "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or None
    except OSError:
        commit = None
    mean = {k: round(sum(r["test"][k] for r in runs) / len(runs), 6) for k in ("recall@20", "ndcg@20")}
    payload = {"model": args.model, "mmrec_commit": os.environ.get("MMREC_COMMIT", commit), "data": str(data),
               "settings": settings, "seeds": list(args.seeds), "runs": runs, "test_mean": mean,
               "python": platform.python_version(), "torch": sys.modules["torch"].__version__}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(json.dumps({"model": args.model, "test_mean": mean}))


if __name__ == "__main__":
    main()
