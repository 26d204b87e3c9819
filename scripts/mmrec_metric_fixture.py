"""Record MMRec's metric values on its own top-K lists for a fixed, seeded score matrix (parity data for recx).

Runs under MMRec's interpreter; recx's test (tests/parity/test_mmrec_metrics.py) reads the JSON it writes:

    <mmrec venv>/bin/python scripts/mmrec_metric_fixture.py --mmrec <checkout> --out tests/parity/mmrec_metrics.json

The scores (``numpy`` seed 7, 40 users × 61 items, integers in 0..9 so that ties occur), each user's training items
(masked as MMRec's ``Trainer.evaluate`` does: score -1e10) and held-out items (1..30 per user, some beyond K) are
generated here; MMRec's own code then masks, takes ``torch.topk`` and computes Recall/NDCG/Precision/MAP at
K ∈ {1, 5, 10, 20, 50} with its metric functions. The JSON holds the inputs, MMRec's top-K lists and its values at
full precision (and rounded, as its evaluator reports them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mmrec", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sys.path.insert(0, str((args.mmrec / "src").resolve()))
    import numpy as np
    import torch
    from utils.metrics import metrics_dict

    rng = np.random.default_rng(7)
    n_users, n_items, ks = 40, 61, [1, 5, 10, 20, 50]
    scores = rng.integers(0, 10, size=(n_users, n_items)).astype(np.float32)
    train, truth = [], []
    for u in range(n_users):
        items = rng.permutation(n_items)
        n_train = int(rng.integers(0, 6))
        n_truth = int(rng.integers(1, 31)) if u % 7 else int(rng.integers(21, 31))  # some users with |T| > 20
        train.append(sorted(int(i) for i in items[:n_train]))
        truth.append(sorted(int(i) for i in items[n_train:n_train + n_truth]))
    masked = torch.from_numpy(scores.copy())
    rows = [u for u in range(n_users) for _ in train[u]]
    cols = [i for u in range(n_users) for i in train[u]]
    masked[rows, cols] = -1e10  # MMRec's Trainer.evaluate
    _, topk = torch.topk(masked, max(ks), dim=-1)
    topk = topk.numpy()
    hits = np.asarray([[int(i) in set(truth[u]) for i in topk[u]] for u in range(n_users)])
    pos_len = np.asarray([len(t) for t in truth])
    values = {}
    for name in ("recall", "ndcg", "precision", "map"):
        curve = metrics_dict[name](hits, pos_len)
        for k in ks:
            values[f"{name}@{k}"] = float(curve[k - 1])
    commit = os.environ.get("MMREC_COMMIT")
    payload = {"mmrec_commit": commit, "source": "MMRec src/utils/metrics.py via scripts/mmrec_metric_fixture.py",
               "seed": 7, "n_items": n_items, "ks": ks, "scores": scores.astype(int).tolist(), "train": train,
               "truth": truth, "topk": topk.tolist(), "values": values,
               "values_rounded": {k: round(v, 4) for k, v in values.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload))
    print(json.dumps(payload["values_rounded"]))


if __name__ == "__main__":
    main()
