"""The ranker: candidate evidence + the model's log-probability -> probability of being right.

A logistic regression over a handful of features (source, count, distance, how much context
matched around the candidate's other occurrences, syntax validity, the MLM's mean token
log-probability). Its weights are fitted on holes cut from *training-corpus* code
(``benchmarks/infill_fit_ranker.py``), never from an evaluation set; they ship as
:data:`DEFAULT_WEIGHTS` and a model directory may carry its own ``ranker.json`` (a model that
predicts better deserves more weight on its log-probability).

The probability is also the confidence gate: a candidate below ``min_probability`` is not shown,
so a hole with nothing likely gets no answer instead of punctuation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codemlm.errors import ConfigError

__all__ = ["DEFAULT_WEIGHTS", "FEATURES", "SOURCES", "Evidence", "Ranker", "fit_weights", "primary_source"]

SOURCES = ("model", "name", "member", "analog", "role", "continuation", "wrap", "line")
# Most specific first: the label a result carries when several sources proposed it.
_PRIORITY = ("analog", "member", "continuation", "line", "role", "wrap", "name", "model")
FEATURES = (
    "bias", "logp", "unscored", *(f"src_{s}" for s in SOURCES), "log_count", "left_match", "right_match",
    "log_distance", "in_file", "syntax_bad", "no_alnum", "log_chars", "n_sources",
)
RANKER_FILE = "ranker.json"
_FAR = 1e5  # distance used for "not in this file"

# Fitted by benchmarks/infill_fit_ranker.py on holes cut from the CPython standard library (the
# training corpus) with the shipped model; see the fit's JSON output for the data and command.
DEFAULT_WEIGHTS: dict[str, float] = {
    "bias": -4.0, "logp": 0.5, "unscored": -1.0, "src_model": 0.0, "src_name": 0.0, "src_member": 1.5,
    "src_analog": 1.0, "src_role": 0.3, "src_continuation": 0.8, "src_wrap": 0.2, "src_line": 0.3,
    "log_count": 0.4, "left_match": 0.6, "right_match": 0.6, "log_distance": -0.2, "in_file": 0.5,
    "syntax_bad": -2.0, "no_alnum": -2.0, "log_chars": 0.0, "n_sources": 0.3,
}


@dataclass
class Evidence:
    """What the ranker reads about one candidate."""

    text: str
    sources: frozenset[str]
    logp: float | None = None  # mean token log-probability under the MLM; None when not scored
    count: int = 0
    left_match: int = 0
    right_match: int = 0
    distance: float = math.inf
    syntax_ok: bool = True

    def vector(self) -> list[float]:
        logp = self.logp if self.logp is not None and math.isfinite(self.logp) else None
        distance = min(self.distance, _FAR)
        values = {
            "bias": 1.0,
            "logp": max(logp, -15.0) if logp is not None else 0.0,
            "unscored": 1.0 if logp is None else 0.0,
            **{f"src_{s}": float(s in self.sources) for s in SOURCES},
            "log_count": math.log1p(self.count),
            "left_match": float(self.left_match),
            "right_match": float(self.right_match),
            "log_distance": math.log1p(distance),
            "in_file": float(distance < _FAR),
            "syntax_bad": float(not self.syntax_ok),
            "no_alnum": float(not any(ch.isalnum() for ch in self.text)),
            "log_chars": math.log1p(len(self.text.strip())),
            "n_sources": float(len(self.sources)),
        }
        return [values[name] for name in FEATURES]


def primary_source(sources: Iterable[str]) -> str:
    """The most specific source of a candidate (for display and per-source metrics)."""
    present = set(sources)
    return next((s for s in _PRIORITY if s in present), "model")


class Ranker:
    """Probability that a candidate is right; weights by feature name (missing ones are 0)."""

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        weights = DEFAULT_WEIGHTS if weights is None else weights
        unknown = set(weights) - set(FEATURES)
        if unknown:
            raise ConfigError(f"ranker weights name unknown features: {', '.join(sorted(unknown))}")
        self.weights = dict(weights)
        self._w = np.array([weights.get(name, 0.0) for name in FEATURES], dtype=np.float64)

    @classmethod
    def for_model_dir(cls, model_dir: str | Path | None) -> Ranker:
        """The model directory's ``ranker.json`` when it has one, else the shipped defaults."""
        if model_dir is None:
            return cls()
        path = Path(model_dir) / RANKER_FILE
        if not path.is_file():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: not a readable ranker file ({exc})") from exc
        weights = raw.get("weights") if isinstance(raw, dict) else None
        if not isinstance(weights, dict) or not all(isinstance(v, int | float) for v in weights.values()):
            raise ConfigError(f"{path}: expected {{\"weights\": {{feature: number}}}}")
        return cls({str(k): float(v) for k, v in weights.items()})

    def probabilities(self, evidence: Sequence[Evidence]) -> list[float]:
        if not evidence:
            return []
        x = np.array([e.vector() for e in evidence], dtype=np.float64)
        z = np.clip(x @ self._w, -30.0, 30.0)
        return (1.0 / (1.0 + np.exp(-z))).tolist()


def fit_weights(x: np.ndarray, y: np.ndarray, *, l2: float = 1.0, steps: int = 50) -> dict[str, float]:
    """Logistic regression by Newton's method (a few dozen features: exact and fast).

    ``x``: [N, len(FEATURES)] feature rows, ``y``: [N] 0/1 labels. The bias is not penalized.
    """
    if x.ndim != 2 or x.shape[1] != len(FEATURES) or len(x) != len(y):
        raise ValueError(f"x must be [N, {len(FEATURES)}] with one label per row")
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[FEATURES.index("bias")] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + penalty * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-6)
        step = np.linalg.solve(hessian, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-6:
            break
    return {name: round(float(v), 4) for name, v in zip(FEATURES, w, strict=True)}
