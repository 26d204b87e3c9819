"""Write a small, seeded MMRec-layout folder for parity runs (recx ``protocol=mmrec`` vs MMRec itself).

    python scripts/make_mmrec_data.py --out /tmp/mmsynth [--seed 0 --users 600 --items 401]

The folder is ``<out>/<name>.inter`` (``<name>`` = the folder's name; tab-separated ``userID itemID rating timestamp
x_label``) plus ``image_feat.npy`` [items, 32] and ``text_feat.npy`` [items, 48], so both MMRec
(``data_path/<name>``) and ``recx train dataset=mmrec dataset.path=<out>`` read it.

Interactions come from a latent-factor model (a user's items are drawn without replacement from a softmax over
user·item affinities plus item popularity), so every model has something to learn; both feature files are noisy
linear images of the item factors, so content helps too. Built in to exercise the protocol's edge cases:

* an odd number of items (default 401);
* users with exactly 3 interactions (one train, one valid, one test) — every user has at least one train row, so
  MMRec's cold-start user filter drops nothing;
* items that occur only in valid/test rows (never trained on: MMRec never samples them as negatives);
* items with no interaction at all, inside the id range (they own feature rows; the largest item id does occur in
  training, so MMRec's ``max(itemID) + 1`` and recx agree on the catalogue size).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def generate(out: Path, seed: int = 0, n_users: int = 600, n_items: int = 401, dim: int = 8,
             n_valid_only: int = 8, n_silent: int = 6) -> dict:
    rng = np.random.default_rng(seed)
    user_f = rng.normal(size=(n_users, dim))
    item_f = rng.normal(size=(n_items, dim))
    popularity = rng.normal(scale=0.8, size=n_items)
    # item ids kept out of training (held-out only) and items nobody touches; never the largest id
    special = rng.permutation(n_items - 1)
    heldout_only = np.sort(special[:n_valid_only])
    silent = np.sort(special[n_valid_only:n_valid_only + n_silent])
    logits = 1.5 * user_f @ item_f.T / np.sqrt(dim) + popularity
    logits[:, silent] = -np.inf
    lengths = rng.integers(3, 31, size=n_users)
    lengths[rng.permutation(n_users)[: max(1, n_users // 10)]] = 3  # 10 % of users with exactly 3 interactions
    rows = []
    for u in range(n_users):
        n = int(lengths[u])
        n_test = max(1, round(0.1 * n))
        n_valid = max(1, round(0.1 * n))
        n_train = n - n_test - n_valid
        p = np.exp(logits[u] - logits[u].max())
        p_train = p.copy()
        p_train[heldout_only] = 0.0
        train = rng.choice(n_items, size=n_train, replace=False, p=p_train / p_train.sum())
        p_held = p.copy()
        p_held[train] = 0.0
        held = rng.choice(n_items, size=n_valid + n_test, replace=False, p=p_held / p_held.sum())
        rows += [(u, int(i), 0) for i in train]
        rows += [(u, int(i), 1) for i in held[:n_valid]]
        rows += [(u, int(i), 2) for i in held[n_valid:]]
    if not any(i == n_items - 1 and label == 0 for _, i, label in rows):
        rows.append((0, n_items - 1, 0))  # the largest id must be trained on (see the module docstring)
    out.mkdir(parents=True, exist_ok=True)
    name = out.name
    with open(out / f"{name}.inter", "w") as f:
        f.write("userID\titemID\trating\ttimestamp\tx_label\n")
        for t, (u, i, label) in enumerate(rows):
            f.write(f"{u}\t{i}\t5.0\t{t}\t{label}\n")
    image = item_f @ rng.normal(size=(dim, 32)) + 0.5 * rng.normal(size=(n_items, 32))
    text = item_f @ rng.normal(size=(dim, 48)) + 0.5 * rng.normal(size=(n_items, 48))
    np.save(out / "image_feat.npy", image.astype(np.float32))
    np.save(out / "text_feat.npy", text.astype(np.float32))
    labels = np.array([r[2] for r in rows])
    return {"folder": str(out), "seed": seed, "users": n_users, "items": n_items, "interactions": len(rows),
            "train": int((labels == 0).sum()), "valid": int((labels == 1).sum()), "test": int((labels == 2).sum()),
            "heldout_only_items": heldout_only.tolist(), "items_without_interactions": silent.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write (its name names the .inter file)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--items", type=int, default=401)
    args = parser.parse_args()
    print(generate(args.out, seed=args.seed, n_users=args.users, n_items=args.items))


if __name__ == "__main__":
    main()
