"""The ranker fit's hole cutting: the fit and validate halves never share a file."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from infill_fit_ranker import _fit, cut_holes, file_part

from codemlm.completion_ranker import FEATURES

_MODULE = '''import os


def load(path, mode="r"):
    with open(path, mode) as f:
        data = f.read()
    return data.strip()


def save(path, data):
    if not data:
        return None
    with open(path, "w") as f:
        f.write(data)
    return os.path.getsize(path)
'''


def test_fit_and_validate_holes_come_from_different_files(tmp_path: Path) -> None:
    for i in range(16):
        (tmp_path / f"mod_{i}.py").write_text(_MODULE.replace("load", f"load_{i}"), encoding="utf-8")
    parts = {name: file_part(name) for name in (p.name for p in tmp_path.glob("*.py"))}
    assert set(parts.values()) == {"fit", "validate"}
    fit = cut_holes(tmp_path, 40, 1, "fit")
    validate = cut_holes(tmp_path, 40, 7, "validate", per_file=3)
    assert fit and validate
    assert {h["path"] for h in fit} <= {n for n, p in parts.items() if p == "fit"}
    assert {h["path"] for h in validate} <= {n for n, p in parts.items() if p == "validate"}
    assert {h["kind"] for h in fit} <= {"identifier", "arguments", "expression", "statement"}
    for h in fit + validate:
        source = (tmp_path / h["path"]).read_text(encoding="utf-8")
        assert h["target"] and h["prefix"] + h["target"] + h["suffix"] in source


def test_listwise_fit_reports_its_objective() -> None:
    rng = np.random.default_rng(0)
    x = np.zeros((60, len(FEATURES)))
    x[:, FEATURES.index("bias")] = 1.0
    x[:, FEATURES.index("logp")] = rng.normal(-3.0, 1.0, 60)
    groups = np.repeat(np.arange(10), 6)
    y = np.zeros(60)
    for g in range(10):
        rows = np.flatnonzero(groups == g)
        y[rows[np.argmax(x[rows, FEATURES.index("logp")])]] = 1.0
    report = _fit(x, y, groups, covered=10, holes=10, l2=1.0, model_weights=None, objective="listwise")
    assert report["objective"] == "listwise" and report["train_top1"] == 1.0
    assert report["weights"]["logp"] > 0
