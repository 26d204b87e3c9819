"""`recx data list|download|prepare`: mirror copies with checksums, MMRec files, clear errors for missing files."""

from __future__ import annotations

import numpy as np
import pytest

from recx import cli
from recx.data.interactions import InteractionData
from tests.conftest import needs_mirror


def write_mmrec(folder, name="baby", n_users=40, n_items=30, seed=0, image_dim=16, text_dim=8, nan=False):
    """A tiny but well-formed MMRec folder: <name>.inter (x_label split) + image/text features."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["userID\titemID\trating\ttimestamp\tx_label"]
    for u in range(n_users):
        items = rng.choice(n_items, size=8, replace=False)
        for k, i in enumerate(items):
            label = 0 if k < 6 else (1 if k == 6 else 2)
            lines.append(f"{u}\t{i}\t5\t{1000 + k}\t{label}")
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    image = rng.normal(size=(n_items, image_dim)).astype(np.float32)
    if nan:
        image[3, 2] = np.nan
    np.save(folder / "image_feat.npy", image)
    np.save(folder / "text_feat.npy", rng.normal(size=(n_items, text_dim)).astype(np.float32))
    return folder


def test_data_list(capsys):
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "ml100k" in out and "amazon_baby" in out


@needs_mirror("ml-100k/ml-100k.inter", "ml-100k/ml-100k.item")
def test_prepare_ml100k_from_mirror(tmp_path, capsys):
    assert cli.main(["data", "prepare", "ml100k", "--data-dir", str(tmp_path), "--modalities", "genre"]) == 0
    [prepared] = list((tmp_path / "ml100k" / "prepared").iterdir())
    data = InteractionData.load(prepared, modalities=("genre",))
    assert (data.n_users, data.n_items) == (943, 1682)
    assert data.train.shape[0] + data.valid.shape[0] + data.test.shape[0] == 100_000
    assert data.item_features["genre"].shape == (1682, 19)
    # second call is served from the cache (no re-download, same folder)
    assert cli.main(["data", "prepare", "ml100k", "--data-dir", str(tmp_path), "--modalities", "genre"]) == 0
    assert len(list((tmp_path / "ml100k" / "prepared").iterdir())) == 1


def test_download_amazon_without_files_exits_2_naming_them(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RECX_DATA_MIRROR", str(tmp_path / "empty-mirror"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["data", "download", "amazon_baby", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    for name in ("baby.inter", "image_feat.npy", "text_feat.npy", "MMRec"):
        assert name in err


def test_download_amazon_from_folder(tmp_path, capsys):
    src = write_mmrec(tmp_path / "mmrec-baby")
    assert cli.main(["data", "download", "amazon_baby", "--from", str(src), "--data-dir", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "amazon_baby" / "raw" / "baby.inter").is_file()


def test_any_mmrec_folder_runs_in_place_and_a_regenerated_folder_is_prepared_again(tmp_path, capsys):
    """dataset=mmrec dataset.path=<folder>: the name comes from the folder, nothing is copied, overrides may follow
    --data-dir, and regenerating the folder in place gives a new prepared cache (never the stale one)."""
    import os

    folder = write_mmrec(tmp_path / "sports", name="sports", n_users=40)
    data_dir = tmp_path / "data"
    assert cli.main(["data", "prepare", "mmrec", "--data-dir", str(data_dir), f"dataset.path={folder}"]) == 0
    [prepared] = list((data_dir / "mmrec-sports" / "prepared").iterdir())
    assert InteractionData.load(prepared).n_users == 40
    write_mmrec(folder, name="sports", n_users=50, seed=1)  # regenerated in place
    os.utime(folder / "sports.inter", ns=(1, 2_000_000_000_000_000_000))
    assert cli.main(["data", "prepare", "mmrec", "--data-dir", str(data_dir), f"dataset.path={folder}"]) == 0
    fresh = [p for p in (data_dir / "mmrec-sports" / "prepared").iterdir() if p != prepared]
    assert len(fresh) == 1 and InteractionData.load(fresh[0]).n_users == 50
    assert not (data_dir / "mmrec-sports" / "raw").exists()  # read in place


def test_mmrec_without_a_path_names_the_key(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["data", "prepare", "mmrec", "--data-dir", str(tmp_path)])
    assert exit_info.value.code == 2 and "dataset.path" in capsys.readouterr().err


def test_a_dataset_without_a_config_gets_a_fix_that_works(tmp_path, capsys):
    """`recx data download <name> --from <MMRec folder>` for a name with no config: the fix is the dataset=mmrec
    command, which then succeeds; a name and no MMRec folder lists the choices and the two ways out."""
    folder = write_mmrec(tmp_path / "mine", name="mine", n_users=30)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["data", "download", "mine", "--from", str(folder), "--data-dir", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"recx data prepare mmrec dataset.path={folder}" in err
    assert cli.main(["data", "prepare", "mmrec", "--data-dir", str(tmp_path / "d"), f"dataset.path={folder}"]) == 0
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["data", "prepare", "nosuch", "--data-dir", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "ml100k" in err and "dataset=mmrec" not in err.split("fix")[0]
    assert "mmrec dataset.path=<folder>" in err and "--config-dir" in err


@pytest.mark.slow
def test_train_a_feature_model_on_any_mmrec_folder(tmp_path):
    from tests.cli.test_subprocess import recx

    folder = write_mmrec(tmp_path / "my_shop", name="my_shop", n_users=60, n_items=41)
    out = recx("train", "model=vbpr", "dataset=mmrec", f"dataset.path={folder}", "trainer.max_epochs=2",
               "callbacks.lis.enabled=false", cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert list((tmp_path / "outputs" / "vbpr-mmrec").glob("*/metrics.json"))
