"""ECG: the WFDB reader, the QRS tokenizer (exact token boundaries, the real MIT-BIH record), the quantizer, masked
pretraining, the probe, and the PTB-XL label reader."""

import numpy as np
import pytest
import torch

from recx.ecg.qrs import beat_windows, detect_r_peaks, preprocess, tokenize_record, tokenize_records, windows_of
from recx.ecg.synthetic import generate_ecgs
from recx.ecg.wfdb import read_header, read_record, write_record
from recx.errors import DataError
from recx.metrics.classification import macro_auroc
from tests.conftest import mirror, needs_mirror


def test_token_boundaries_follow_the_official_rule_exactly():
    x = np.arange(1000, dtype=np.float32)[None]  # values = sample indices: a token shows where it was cut
    s = tokenize_record(x, 100, r_peaks=np.array([150, 250, 330, 600]))
    # beat 0: [102, 200) is 98 > 96 long -> recentred [102, 198), R at 48
    assert s.tokens[0].tolist() == list(range(102, 198))
    # beat 1: midpoints [200, 290), 90 samples, R (250) at index 50, zero tail
    assert s.tokens[1, :90].tolist() == list(range(200, 290)) and not s.tokens[1, 90:].any()
    # beat 2: [290, 465) too long -> [282, 378); beat 3 (last): [465, 648) too long -> [552, 648)
    assert s.tokens[2].tolist() == list(range(282, 378)) and s.tokens[3].tolist() == list(range(552, 648))
    assert s.times[:4].tolist() == [2, 3, 4, 7] and s.leads[:4].tolist() == [1, 1, 1, 1]
    assert s.mask.sum() == 4 and not s.tokens[4:].any() and s.leads[4:].sum() == 0


def test_first_beat_near_the_start_is_right_aligned_and_sentences_are_lead_major():
    x = np.stack([np.arange(400, dtype=np.float32), -np.arange(400, dtype=np.float32)])
    s = tokenize_record(x, 100, r_peaks=np.array([20, 120, 220]), max_len=5)
    # beat 0: start 0, end 70; R - start = 20 < 48 -> offset 28: x[0:68] lands at 28..95
    assert s.tokens[0, :28].tolist() == [0] * 28 and s.tokens[0, 28:].tolist() == list(range(0, 68))
    assert s.leads.tolist() == [1, 1, 1, 2, 2] and s.times.tolist() == [1, 2, 3, 1, 2]  # truncated to max_len
    assert s.tokens[3, 28:].tolist() == [-float(v) for v in range(0, 68)]
    index, valid = beat_windows(np.array([20, 120, 220]), 400)
    assert index.shape == (3, 96) and valid.sum(1).tolist() == [68, 96, 96]


def test_detector_finds_the_known_beats_of_generated_ecgs():
    signals, _, times, rhythms = generate_ecgs(30, seed=3, noise=0.05)
    x = preprocess(signals, 100)
    for i in range(30):
        r = detect_r_peaks(x[i, 0], 100)
        truth = np.round(times[i] * 100).astype(int)
        assert len(r) == len(truth), rhythms[i]
        assert np.abs(r - truth).max() <= 2


@needs_mirror("ecg/mitdb-208-mlii-360hz.dat")
def test_detector_on_the_real_mit_bih_record_is_physiologically_plausible():
    with np.load(mirror() / "ecg/mitdb-208-mlii-360hz.dat") as z:
        ecg = (z["ecg"].astype(np.float32) - 1024) / 200
    x = preprocess(ecg[None], 360)[0]
    assert x.shape == (30000,)  # 5 min at 100 Hz
    per_window = [len(detect_r_peaks(w, 100)) for w in windows_of(x[None], 100)[:, 0]]
    assert len(per_window) == 30
    assert all(5 <= n <= 30 for n in per_window), per_window  # 30-180 bpm in every 10-s window
    total = len(detect_r_peaks(x, 100))
    assert 420 <= total <= 560  # record 208: ~98 bpm on average (2,955 beats in 30 min)


def test_wfdb_round_trip_in_formats_16_and_212(tmp_path):
    signal = (np.random.default_rng(0).standard_normal((3, 500)) * 2).astype(np.float32)
    for fmt in ("16", "212"):
        write_record(tmp_path / f"rec{fmt}", signal, fs=250, gain=200.0, fmt=fmt)
        back, header = read_record(tmp_path / f"rec{fmt}")
        assert header.fs == 250 and header.n_samples == 500 and header.n_signals == 3
        assert np.abs(back - signal).max() <= 0.5 / 200 + 1e-6


@pytest.mark.parametrize("header, message", [
    ("rec 2 100\nrec.dat 16 200 16 0 0 0 0 I\n", "line 1: record line needs"),
    ("rec 2 100 500\nrec.dat 16 200 16 0 0 0 0 I\n", "announces 2 signals"),
    ("rec 1 100 500\nrec.dat 310 200 16 0 0 0 0 I\n", "line 2: signal format '310'"),
    ("rec 1 100 500\nrec.dat 16 abc 16 0 0 0 0 I\n", "line 2: bad gain"),
    ("rec one 100 500\n", "line 1: bad number"),
])
def test_corrupt_wfdb_headers_are_clear_errors(tmp_path, header, message):
    (tmp_path / "rec.hea").write_text(header)
    with pytest.raises(DataError, match=message) as err:
        read_header(tmp_path / "rec.hea")
    assert "rec.hea" in str(err.value)


def test_truncated_signal_file_is_a_clear_error(tmp_path):
    write_record(tmp_path / "rec", np.zeros((2, 100), np.float32), fs=100)
    data = (tmp_path / "rec.dat").read_bytes()
    (tmp_path / "rec.dat").write_bytes(data[:100])
    with pytest.raises(DataError, match="truncated|holds"):
        read_record(tmp_path / "rec")


def small_batch(n=48, seed=0):
    signals, labels, _, _ = generate_ecgs(n, seed=seed)
    tokens = tokenize_records(preprocess(signals, 100), progress=False)
    batch = {k: torch.from_numpy(v) for k, v in tokens.items() if k != "beats"}
    return batch, torch.from_numpy(labels)


def test_quantizer_learns_and_uses_many_codes():
    from recx.ecg.models import VQHBR

    torch.manual_seed(0)
    batch, _ = small_batch()
    vq = VQHBR(dim=32, encoder_depth=1, decoder_depth=1, heads=2, mlp=64, n_codes=32, code_dim=8, dim_head=16)
    opt = torch.optim.Adam(vq.parameters(), lr=2e-3)
    losses, used = [], 0
    for _ in range(25):
        out = vq(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["reconstruction"].item())
        used = len(out["index"][batch["mask"]].unique())
    assert losses[-1] < 0.6 * losses[0]
    assert used > 1
    assert (vq.codes(batch)[~batch["mask"]] == -1).all()


def test_masked_pretraining_loss_falls_and_ignores_padding():
    from recx.ecg.models import HeartLang, random_mask

    torch.manual_seed(0)
    batch, _ = small_batch()
    mask = random_mask(batch["mask"], 0.5, torch.Generator().manual_seed(0))
    assert not (mask & ~batch["mask"]).any()
    assert (mask.sum(1) == (batch["mask"].sum(1).float() * 0.5).round().long()).all()
    targets = (batch["leads"] * 3 + batch["times"]) % 16  # a stand-in for the codes, readable from the context
    model = HeartLang(dim=32, depth=1, heads=2, mlp=64, n_codes=16, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    first = last = None
    for step in range(40):
        loss = model.pretraining_loss(batch, targets, g)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if step == 0 else first
        last = loss.item()
    assert last < 0.6 * first


def test_macro_auroc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    g = torch.Generator().manual_seed(0)
    y = (torch.rand(60, 4, generator=g) < 0.4).float()
    p = torch.rand(60, 4, generator=g) + 0.3 * y
    assert macro_auroc(p, y) == pytest.approx(roc_auc_score(y.numpy(), p.numpy(), average="macro"), abs=1e-9)


def test_probe_reads_informative_features_not_noise():
    """The probe machinery: rhythm labels are linearly readable from features that carry the beat structure
    (beat count, heart-rate) and not from random ones."""
    from omegaconf import OmegaConf

    from recx.ecg.recipe import probe

    batch, labels = small_batch(n=240, seed=5)
    beats = batch["mask"].sum(1, keepdim=True).float()
    informative = torch.cat([beats / 100, (batch["times"] * batch["mask"]).amax(1, keepdim=True).float() / 10,
                             torch.randn(240, 6, generator=torch.Generator().manual_seed(0))], 1)
    noise = torch.randn(240, 8, generator=torch.Generator().manual_seed(1))
    m = OmegaConf.create({"lr": 0.05, "weight_decay": 0.0, "epochs": 60, "batch_size": 64})

    def run(features):
        split = {"train": features[:150], "valid": features[150:190], "test": features[190:]}
        ys = {"train": labels[:150], "valid": labels[150:190], "test": labels[190:]}
        return probe(split, ys, 1.0, m, seed=0)["test_auroc"]

    assert run(informative) > 0.7 and run(informative) > run(noise) + 0.15


def test_probe_head_is_a_lightning_module_tested_at_its_best_validation_epoch(monkeypatch):
    """The per-fraction probe runs as ``ProbeModule`` under a Lightning Trainer: every epoch is validated, the
    reported validation AUROC is the best epoch's, the test AUROC is that epoch's head's (not the last one's), and the
    step-level learning rates follow the model's schedule (warm-up from 0, cosine down to ``min_lr``)."""
    from omegaconf import OmegaConf

    from recx.ecg import family
    from recx.ecg.recipe import lr_schedule, probe

    g = torch.Generator().manual_seed(3)
    features = {s: torch.randn(n, 6, generator=g) for s, n in (("train", 40), ("valid", 60), ("test", 60))}
    w = torch.randn(6, 3, generator=g)
    labels = {s: (x @ w + 2.0 * torch.randn(len(x), 3, generator=g) > 0).float() for s, x in features.items()}
    m = OmegaConf.create({"lr": 0.3, "min_lr": 1e-3, "warmup_epochs": 1, "schedule": "cosine", "weight_decay": 0.0,
                          "epochs": 12, "batch_size": 8})
    seen, rates = [], []
    validate, step = family.ProbeModule.on_validation_epoch_end, family.ProbeModule.training_step

    def spy_validate(self):
        scores = torch.sigmoid(self.head(features["valid"])).detach()
        seen.append((macro_auroc(scores, labels["valid"]), {k: v.clone() for k, v in self.head.state_dict().items()}))
        validate(self)

    def spy_step(self, batch, batch_idx):
        rates.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        return step(self, batch, batch_idx)

    monkeypatch.setattr(family.ProbeModule, "on_validation_epoch_end", spy_validate)
    monkeypatch.setattr(family.ProbeModule, "training_step", spy_step)
    out = probe(features, labels, 0.5, m, seed=0)
    assert out["train_sentences"] == 20 and len(seen) == 12
    best = max(range(len(seen)), key=lambda e: seen[e][0])
    assert best < len(seen) - 1  # the last epoch is not the best here: selection matters
    assert out["valid_auroc"] == pytest.approx(seen[best][0])
    head = torch.nn.Linear(6, 3)
    head.load_state_dict({k.removeprefix("head."): v for k, v in seen[best][1].items()})
    assert out["test_auroc"] == pytest.approx(macro_auroc(torch.sigmoid(head(features["test"])).detach(),
                                                          labels["test"]))
    assert rates == pytest.approx(lr_schedule(0.3, 1e-3, 12, 3, 1, "cosine").tolist())


def write_mini_ptbxl(root):
    (root / "records100" / "00000").mkdir(parents=True)
    rows = []
    codes = ["{'NORM': 100.0, 'SR': 0.0}", "{'IMI': 50.0, 'AFIB': 0.0}", "{'NDT': 100.0, 'SR': 0.0}",
             "{'SR': 0.0}", "{'NORM': 80.0}", "{'IMI': 100.0, 'NDT': 100.0}"]
    for i, (code, fold) in enumerate(zip(codes, [1, 2, 9, 3, 10, 4]), start=1):
        name = f"records100/00000/{i:05d}_lr"
        write_record(root / name, np.full((12, 1000), float(i), np.float32) + np.sin(np.arange(1000) / 5), fs=100)
        rows.append(f'{i},{i},"{code}",{fold},{name},records500/00000/{i:05d}_hr')
    (root / "ptbxl_database.csv").write_text("ecg_id,patient_id,scp_codes,strat_fold,filename_lr,filename_hr\n"
                                             + "\n".join(rows) + "\n")
    (root / "scp_statements.csv").write_text(
        ",description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass\n"
        "NORM,normal,1.0,,,NORM,NORM\nIMI,inferior MI,1.0,,,MI,IMI\nNDT,non-diag T,1.0,1.0,,STTC,STTC\n"
        "SR,sinus rhythm,,,1.0,,\nAFIB,atrial fibrillation,,,1.0,,\n")


def test_ptbxl_labels_folds_and_normalisation(tmp_path):
    from recx.ecg.data import PTBXL, prepare_ecg

    write_mini_ptbxl(tmp_path / "ptbxl")
    files, labels, split, names = PTBXL("superclass").labels_of(tmp_path / "ptbxl")
    assert names == ["MI", "NORM", "STTC"] and len(files) == 5  # record 4 has no diagnostic statement
    assert labels.tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 1]]
    assert split.tolist() == [0, 0, 1, 2, 0]  # folds 1-8 train, 9 valid, 10 test
    _, rhythm, _, rnames = PTBXL("rhythm").labels_of(tmp_path / "ptbxl")
    assert rnames == ["AFIB", "SR"] and rhythm.sum(0).tolist() == [1, 3]
    data = prepare_ecg(PTBXL("superclass"), tmp_path / "data", from_dir=tmp_path / "ptbxl")
    assert (len(data.train), len(data.valid), len(data.test)) == (3, 1, 1)
    assert data.meta["standardize"]["fit_on"].startswith("train")
    with pytest.raises(DataError, match="ptbxl_database.csv"):
        PTBXL().labels_of(tmp_path)


def test_probe_on_a_pretrained_heartlang_beats_a_random_backbone(tmp_path):
    """The whole chain at toy size: quantizer → masked pretraining → frozen CLS → linear probe on rhythm labels."""
    from omegaconf import OmegaConf

    from recx.ecg.data import SyntheticECG, prepare_ecg
    from recx.ecg.models import VQHBR, HeartLang
    from recx.ecg.recipe import batches, cls_features, probe

    data = prepare_ecg(SyntheticECG(n_records=150, seed=4), tmp_path)
    torch.manual_seed(0)
    vq = VQHBR(dim=32, encoder_depth=1, decoder_depth=1, heads=2, mlp=64, n_codes=32, code_dim=8, dim_head=16)
    opt = torch.optim.Adam(vq.parameters(), 2e-3)
    for epoch in range(8):
        for b in batches(data.train, 32, torch.Generator().manual_seed(epoch)):
            loss = vq(b)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
    vq.eval()
    pretrained = HeartLang(dim=32, depth=2, heads=2, mlp=64, n_codes=32, dropout=0.0, dim_head=16)
    random_backbone = HeartLang(dim=32, depth=2, heads=2, mlp=64, n_codes=32, dropout=0.0, dim_head=16)
    opt = torch.optim.Adam(pretrained.parameters(), 2e-3)
    g = torch.Generator().manual_seed(0)
    for epoch in range(15):
        pretrained.train()
        for b in batches(data.train, 32, torch.Generator().manual_seed(100 + epoch)):
            loss = pretrained.pretraining_loss(b, vq.codes(b), g)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
    settings = OmegaConf.create({"lr": 5e-3, "weight_decay": 0.05, "epochs": 100, "batch_size": 64})
    labels = {s: getattr(data, s).labels for s in ("train", "valid", "test")}

    def auroc(net):
        feats = {s: cls_features(net, getattr(data, s)) for s in ("train", "valid", "test")}
        return sum(probe(feats, labels, 1.0, settings, seed)["test_auroc"] for seed in (0, 1)) / 2

    learned, chance = auroc(pretrained), auroc(random_backbone)
    assert learned > 0.62 and learned > chance + 0.05, (learned, chance)  # measured: 0.815 vs 0.760
