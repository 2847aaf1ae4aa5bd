"""A random-init ``tiny`` model directory with a tokenizer trained on a few stdlib packages:
the start of the search tasks' few-step tests (contrastive, cross), which train on the same
packages' pairs."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import torch

from codemlm.checkpoint import save_model_dir
from codemlm.config import ModelConfig
from codemlm.model import CodeEncoder
from codemlm.tokenizer import CodeTokenizer

__all__ = ["STDLIB_PACKAGES", "random_start"]

STDLIB = Path(sysconfig.get_paths()["stdlib"])
STDLIB_PACKAGES = [STDLIB / "json", STDLIB / "logging", STDLIB / "email"]


def random_start(out: Path) -> Path:
    """``out``: the model directory (one thread, seed 0)."""
    torch.set_num_threads(1)
    texts = [p.read_text(encoding="utf-8") for r in STDLIB_PACKAGES for p in r.glob("*.py")]
    tokenizer = CodeTokenizer.train_from_iterator(texts, vocab_size=2000)
    torch.manual_seed(0)
    encoder = CodeEncoder(ModelConfig.from_preset("tiny", vocab_size=tokenizer.vocab_size))
    return save_model_dir(out, encoder, tokenizer, summary={"test": "random init"})
