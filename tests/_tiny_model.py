"""A real, tiny model directory that has learned one small file by heart.

Tests of completion need a model that *knows* an answer: this trains the ``tiny`` preset for a
few hundred quick MLM steps on a short Python file (spans of 1-6 tokens masked anywhere), with a
tokenizer trained on that file plus the fixture repository. The result is cached per process,
so every test module that calls :func:`tiny_model_dir` shares one directory.

Use from a test module::

    @pytest.fixture(scope="session")
    def model_dir(tmp_path_factory):
        return tiny_model_dir(tmp_path_factory)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from codemlm.checkpoint import save_model_dir
from codemlm.completion_ranker import RANKER_FILE
from codemlm.config import ModelConfig
from codemlm.model import IGNORE_INDEX, CodeEncoder
from codemlm.tokenizer import CodeTokenizer

__all__ = ["SNIPPET", "TRUSTING_WEIGHTS", "tiny_model_dir"]

# Every candidate is scored now (not only the best few), so the bias sets how unlikely a fill the
# tiny model may find and still be shown: a mean token log-probability of -2.5 or better passes the gate.
TRUSTING_WEIGHTS = {"bias": 5.0, "logp": 2.0, "syntax_bad": -2.0, "no_alnum": -1.0}

# The file the model memorizes. Three look-alike functions: the body of each can only be
# filled correctly by reading the name on the left (add/sub/mul) and the arguments.
SNIPPET = '''def add(a, b):
    return a + b


def sub(a, b):
    return a - b


def mul(a, b):
    return a * b


def main():
    total = add(1, 2)
    print(total)
'''

_FIXTURE_REPO = Path(__file__).parent / "fixtures" / "multilang_repo"
_CACHE: dict[str, Path] = {}


def _tokenizer_texts() -> list[str]:
    texts = [SNIPPET] * 20
    for path in sorted(_FIXTURE_REPO.rglob("*.py"))[:40]:
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
    return texts


def _train(tokenizer: CodeTokenizer, steps: int, seed: int) -> CodeEncoder:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    ids = [tokenizer.cls_id, *tokenizer.encode(SNIPPET).ids, tokenizer.sep_id]
    config = ModelConfig.from_preset("tiny", vocab_size=tokenizer.vocab_size, dim=96, mlp_hidden=192)
    model = CodeEncoder(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    # Linear decay to zero: the last steps settle the memorized file instead of bouncing.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    base = torch.tensor(ids)
    batch = 24
    for _ in range(steps):
        inputs = base.repeat(batch, 1)
        labels = torch.full_like(inputs, IGNORE_INDEX)
        for row in range(batch):
            # Two spans of 1-6 tokens per copy, whole spans replaced by <mask> (span masking).
            for _span in range(2):
                n = rng.randint(1, 6)
                start = rng.randint(1, len(ids) - 1 - n)
                labels[row, start : start + n] = base[start : start + n]
                inputs[row, start : start + n] = tokenizer.mask_id
        loss = model.mlm_loss(inputs, None, labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, *, steps: int = 300, seed: int = 0) -> Path:
    """Build (once per process) and return the directory of the tiny trained model."""
    key = f"{steps}-{seed}"
    if key not in _CACHE:
        torch.set_num_threads(1)
        tokenizer = CodeTokenizer.train_from_iterator(_tokenizer_texts(), vocab_size=600, min_frequency=2)
        model = _train(tokenizer, steps, seed)
        out = tmp_path_factory.mktemp("tiny_model")
        save_model_dir(out, model, tokenizer, summary={"trained_on": "tests/_tiny_model.py SNIPPET", "steps": steps})
        # A model that knows its file by heart ships a ranker that trusts its log-probability,
        # as a well-trained model's ranker.json does (the code's defaults suit a weak model).
        (out / RANKER_FILE).write_text(json.dumps({"weights": TRUSTING_WEIGHTS}), encoding="utf-8")
        _CACHE[key] = out
    return _CACHE[key]
