"""Masked-token accuracy and perplexity of a model on any code: ``codemlm eval mlm PATH...``.

The files are read the way the corpus reads them (regular files of supported languages, size
caps, ignore files honoured), tokenized with the model's own tokenizer and cut into windows of
``seq_len`` tokens framed by ``<cls>``/``<sep>`` as in training. In each window 15% of the
ordinary tokens (seeded, so two runs and two models see the same holes) are replaced by
``<mask>`` — every chosen token, not BERT's 80/10/10, so a kept token never counts as a free
hit — and the model predicts them. Accuracy is the share of exact top-1 predictions;
perplexity is ``exp`` of the mean cross-entropy over the same positions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from codemlm.errors import InputError

if TYPE_CHECKING:
    from codemlm.checkpoint import LoadedModel

__all__ = ["MLMEvalResult", "evaluate_mlm", "masked_windows"]

MASK_RATE = 0.15


@dataclass
class MLMEvalResult:
    files: int
    windows: int
    tokens: int
    masked: int
    correct: int
    loss_sum: float
    seconds: float
    languages: dict[str, int] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.correct / self.masked if self.masked else 0.0

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss_sum / self.masked) if self.masked else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "windows": self.windows,
            "tokens": self.tokens,
            "masked": self.masked,
            "mask_rate": MASK_RATE,
            "languages": dict(sorted(self.languages.items())),
            "seconds": round(self.seconds, 3),
            "accuracy": round(self.accuracy, 4),
            "perplexity": round(self.perplexity, 3),
        }


def masked_windows(
    ids: np.ndarray, seq_len: int, *, cls_id: int, sep_id: int, mask_id: int, first_ordinary: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(inputs, labels) per window of one file's token ids; labels are -1 where nothing is masked.

    Windows hold ``seq_len - 2`` content tokens plus ``<cls>``/``<sep>``; each masks
    ``round(15%)`` of its ordinary tokens (at least one) chosen by a generator seeded with
    ``seed`` and the window's index, so the choice does not depend on the model.
    """
    body = seq_len - 2
    out = []
    for index, start in enumerate(range(0, len(ids), body)):
        chunk = ids[start : start + body]
        if len(chunk) < 8:  # a tail this short has almost no context to predict from
            continue
        inputs = np.concatenate(([cls_id], chunk, [sep_id])).astype(np.int64)
        maskable = np.flatnonzero(inputs >= first_ordinary)
        if maskable.size == 0:
            continue
        rng = np.random.default_rng([seed, index])
        count = max(1, round(MASK_RATE * maskable.size))
        chosen = rng.choice(maskable, size=count, replace=False)
        labels = np.full_like(inputs, -1)
        labels[chosen] = inputs[chosen]
        inputs = inputs.copy()
        inputs[chosen] = mask_id
        out.append((inputs, labels))
    return out


def evaluate_mlm(
    loaded: LoadedModel,
    paths: Sequence[str | Path],
    *,
    seq_len: int | None = None,
    batch_size: int = 16,
    seed: int = 0,
    max_files: int | None = None,
    bf16: bool | None = None,
) -> MLMEvalResult:
    """Masked-token accuracy and perplexity of ``loaded`` on the code under ``paths``."""
    import torch

    from codemlm.hardware import native_bf16_available
    from codemlm.tokenizer import SPECIAL_TOKENS

    if not paths:
        raise InputError("give at least one file or folder of code to evaluate on")
    tokenizer, model = loaded.tokenizer, loaded.model
    seq_len = min(seq_len or 256, loaded.config.max_seq_len)
    if seq_len < 16:
        raise InputError(f"seq_len must be at least 16, got {seq_len}")
    use_bf16 = native_bf16_available("cpu") if bf16 is None else bf16
    start = time.perf_counter()
    result = MLMEvalResult(files=0, windows=0, tokens=0, masked=0, correct=0, loss_sum=0.0, seconds=0.0)
    windows: list[tuple[np.ndarray, np.ndarray]] = []
    for source in _sources(paths, max_files):
        ids = np.asarray(tokenizer.encode_ids_batch([source.text])[0], dtype=np.int64)
        file_windows = masked_windows(
            ids,
            seq_len,
            cls_id=tokenizer.cls_id,
            sep_id=tokenizer.sep_id,
            mask_id=SPECIAL_TOKENS.index("<mask>"),
            first_ordinary=len(SPECIAL_TOKENS),
            seed=seed + result.files,
        )
        result.files += 1
        result.languages[source.language] = result.languages.get(source.language, 0) + 1
        windows.extend(file_windows)
    if not windows:
        raise InputError("no code to evaluate: the paths hold no readable source files of a supported language")
    model.eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
        for first in range(0, len(windows), batch_size):
            batch = windows[first : first + batch_size]
            width = max(len(w[0]) for w in batch)
            inputs = torch.zeros((len(batch), width), dtype=torch.long)
            labels = torch.full((len(batch), width), -1, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.bool)
            for row, (window_inputs, window_labels) in enumerate(batch):
                n = len(window_inputs)
                inputs[row, :n] = torch.from_numpy(window_inputs)
                labels[row, :n] = torch.from_numpy(window_labels)
                attention[row, :n] = True
            hidden = model(inputs, attention)  # [B, T, D]
            positions = labels >= 0
            logits = model.mlm_logits(hidden[positions]).float()  # [N, V]
            targets = labels[positions]
            result.loss_sum += float(torch.nn.functional.cross_entropy(logits, targets, reduction="sum"))
            result.correct += int((logits.argmax(-1) == targets).sum())
            result.masked += int(targets.numel())
            result.tokens += int(attention.sum())
            result.windows += len(batch)
    result.seconds = time.perf_counter() - start
    return result


def _sources(paths: Sequence[str | Path], max_files: int | None) -> Iterable[Any]:
    from codemlm.sources import CorpusStats, iter_repository

    count = 0
    for path in paths:
        if not Path(path).expanduser().exists():
            raise InputError(f"path not found: {path}")
        for source in iter_repository(path, None, CorpusStats()):
            if max_files is not None and count >= max_files:
                return
            count += 1
            yield source
