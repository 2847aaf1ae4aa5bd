"""Nearest-neighbour search over stored vectors, behind a seam an ANN library can fill later."""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["ExactVectorStore", "VectorStore"]


class VectorStore(Protocol):
    """Nearest chunks to a query vector. ``allowed`` restricts to those chunk ids."""

    def nearest(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]: ...

    def __len__(self) -> int: ...


class ExactVectorStore:
    """All vectors in one float32 matrix; cosine = dot product of unit vectors.

    The matrix is kept transposed ([dim, n], each dimension's values together): BLAS's
    vector-times-matrix over that layout read 94k x 256 vectors in 3.7 ms on one core here,
    against 8.9 ms for matrix-times-vector over rows, and a query is that one product."""

    def __init__(self, ids: np.ndarray, matrix: np.ndarray) -> None:
        self.ids = ids.astype(np.int64)
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.ndim != 2:  # no vectors at all may come as a flat empty array
            matrix = matrix.reshape(len(self.ids), -1) if len(self.ids) else np.zeros((0, 0), np.float32)
        self.columns = np.ascontiguousarray(matrix.T)  # [dim, n]

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def nearest(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        if len(self) == 0 or k <= 0:
            return []
        scores = np.asarray(query, dtype=np.float32).reshape(-1) @ self.columns  # [n]
        if allowed is not None:
            scores = np.where(np.isin(self.ids, allowed), scores, -np.inf)
        k = min(k, len(self))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self.ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]
