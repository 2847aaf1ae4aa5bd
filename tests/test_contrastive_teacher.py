"""Teacher distillation in the contrastive stage: the in-batch KL term, the teacher's vectors of
the training pairs (cut to what the student reads, cached by text), and a few real steps."""

from __future__ import annotations

import hashlib
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from codemlm.errors import ConfigError
from codemlm.tokenizer import CodeTokenizer
from training.config import TrainConfig, config_from_dict
from training.contrastive import (
    ContrastiveOptions,
    Pair,
    seen_texts,
    teacher_kl,
    teacher_table,
    train_contrastive,
)
from training.teacher import LazyTeacher, teacher_vectors

STDLIB = Path(sysconfig.get_paths()["stdlib"])


class TrigramTeacher:
    """A deterministic sentence embedder (hashed character trigrams) that counts what it embeds."""

    def __init__(self, name: str = "fake-trigram", dim: int = 32) -> None:
        self.name = name
        self.dim = dim
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            padded = f"  {text.strip().lower()}  "
            for i in range(len(padded) - 2):
                slot = int.from_bytes(hashlib.blake2b(padded[i : i + 3].encode(), digest_size=4).digest(), "little")
                out[row, slot % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@pytest.fixture(scope="module")
def tokenizer() -> CodeTokenizer:
    texts = [p.read_text(encoding="utf-8") for p in sorted((STDLIB / "json").glob("*.py"))]
    return CodeTokenizer.train_from_iterator(texts, vocab_size=600)


def test_teacher_kl_is_zero_when_the_student_agrees_and_pulls_towards_the_teacher() -> None:
    torch.manual_seed(0)
    teacher_q, teacher_c = F.normalize(torch.randn(6, 8), dim=1), F.normalize(torch.randn(6, 8), dim=1)
    assert float(teacher_kl(teacher_q, teacher_c, teacher_q, teacher_c, 0.05)) == pytest.approx(0.0, abs=1e-6)
    student_q = F.normalize(torch.randn(6, 8), dim=1).requires_grad_()
    student_c = F.normalize(torch.randn(6, 8), dim=1).requires_grad_()
    kl = teacher_kl(student_q, student_c, teacher_q, teacher_c, 0.05)
    assert float(kl.detach()) > 0.1
    kl.backward()
    assert student_q.grad is not None and student_c.grad is not None
    with torch.no_grad():  # one gradient step on the student lowers the divergence
        stepped = teacher_kl(student_q - 1e-3 * student_q.grad, student_c - 1e-3 * student_c.grad,
                             teacher_q, teacher_c, 0.05)
    assert float(stepped) < float(kl.detach())
    # A duplicate code in the batch is left out of both distributions: finite, and no gradient through it.
    dup = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    keyed = teacher_kl(dup, dup, dup.detach(), dup.detach(), 0.05, torch.tensor([7, 7, 8]))
    keyed.backward()
    assert torch.isfinite(keyed) and float(keyed.detach()) == pytest.approx(0.0, abs=1e-6)
    assert dup.grad is not None and torch.isfinite(dup.grad).all()


def test_seen_texts_are_what_the_student_reads(tokenizer: CodeTokenizer) -> None:
    short = "def f(x):\n    return x"
    long = "\n".join(f"    value_{i} = compute(value_{i - 1}, {i})" for i in range(1, 60))
    cut_short, cut_long = seen_texts(tokenizer, [short, long], 32)
    assert cut_short == short
    assert long.startswith(cut_long) and len(cut_long) < len(long)
    assert len(tokenizer.encode_ids_batch([cut_long])[0]) == 30  # 32 less [CLS] and [SEP]


def test_teacher_table_embeds_each_text_once_and_reuses_the_cache(tokenizer: CodeTokenizer, tmp_path: Path) -> None:
    long_code = "\n".join(f"    total += item_{i}" for i in range(80))
    pairs = [
        Pair("Read the settings file.", "with open(path) as handle:\n    return handle.read()", 0, "doc"),
        Pair("Read the settings file.", long_code, 0, "doc"),  # the same query twice: embedded once
        Pair("load_settings def load_settings(path):", "with open(path) as handle:\n    return handle.read()", 0,
             "code"),
    ]
    options = ContrastiveOptions(max_query_tokens=16, max_code_tokens=24, teacher="fake-trigram")
    teacher = TrigramTeacher()
    table, info = teacher_table(pairs, teacher, tokenizer, options, tmp_path / "cache", block=2)
    assert info["texts"] == info["embedded"] == 4 == len(teacher.embedded)  # 2 queries, 2 codes (one cut)
    assert all(len(tokenizer.encode_ids_batch([t])[0]) <= 22 for t in teacher.embedded)
    query, code = table.lookup(pairs)
    assert query.shape == code.shape == (3, 32)
    assert torch.allclose(query[0], query[1]) and torch.allclose(code[0], code[2])
    assert torch.allclose(code.norm(dim=1), torch.ones(3))
    expected = TrigramTeacher().embed(seen_texts(tokenizer, [long_code], 24))[0]
    assert np.allclose(code[1].numpy(), expected, atol=1e-6)
    again = TrigramTeacher()
    table_again, info_again = teacher_table(pairs, again, tokenizer, options, tmp_path / "cache")
    assert again.embedded == [] and info_again["embedded"] == 0
    assert torch.equal(table_again.vectors, table.vectors)
    # The static table's cache has the same format: vectors cached by one caller serve the other.
    assert np.array_equal(teacher_vectors(TrigramTeacher(), [pairs[0].query], tmp_path / "cache")[0],
                          table.vectors[table.query_rows[pairs[0].query]].numpy())


def test_teacher_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown teacher"):
        LazyTeacher("no-such-model")
    with pytest.raises(ConfigError, match="teacher_weight"):
        ContrastiveOptions(teacher="all-MiniLM-L6-v2", teacher_weight=-1.0)
    with pytest.raises(ConfigError, match="teacher_temperature"):
        ContrastiveOptions(teacher_temperature=0.0)
    options = ContrastiveOptions.from_task_options({"teacher": "all-MiniLM-L6-v2", "teacher_weight": 0.5})
    assert options.teacher == "all-MiniLM-L6-v2" and options.teacher_weight == 0.5


def test_a_few_distilled_steps_log_the_teacher_term(tokenizer: CodeTokenizer, tmp_path: Path) -> None:
    from codemlm.checkpoint import save_model_dir
    from codemlm.config import ModelConfig
    from codemlm.model import CodeEncoder

    torch.set_num_threads(1)
    torch.manual_seed(0)
    encoder = CodeEncoder(ModelConfig.from_preset("tiny", vocab_size=tokenizer.vocab_size))
    start = save_model_dir(tmp_path / "mlm", encoder, tokenizer, summary={"test": "random init"})

    def config(teacher: str, out: str) -> TrainConfig:
        return config_from_dict({
            "task": "contrastive",
            "init_from": str(start),
            "optim": {"lr": 3e-3, "warmup_steps": 2, "max_steps": 6, "batch_size": 8, "schedule": "constant"},
            "trainer": {"accelerator": "cpu", "devices": 1, "val_check_interval": 0, "checkpoint_every": 0,
                        "progress": False, "out_dir": str(tmp_path / out), "log_every": 1},
            "task_options": {"repos": [str(STDLIB / "json")], "max_query_tokens": 16, "max_code_tokens": 32,
                             "validation_fraction": 0.3, "max_validation_pairs": 50, "teacher": teacher,
                             "teacher_weight": 2.0},
        })

    teacher = TrigramTeacher()
    result = train_contrastive(config("fake-trigram", "run"), teacher=teacher)
    summary = result.summary
    assert summary["teacher"]["name"] == "fake-trigram" and summary["teacher"]["weight"] == 2.0
    assert summary["teacher"]["embedded"] == len(teacher.embedded) > 0
    assert (tmp_path / "run" / "teacher-cache").is_dir()  # the default cache: OUT_DIR/teacher-cache
    kl = summary["metrics"]["train/teacher_kl"]
    assert np.isfinite(kl) and summary["metrics"]["train/loss"] > summary["metrics"]["train/contrastive_loss"]
    assert result.model_dir is not None and (result.model_dir / "model.safetensors").is_file()
    with pytest.raises(ConfigError, match="teacher given"):
        train_contrastive(config("all-MiniLM-L6-v2", "other"), teacher=teacher)
