"""The ranker fit's hole cutting: the fit and validate halves never share a file."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from infill_fit_ranker import _fit
from infill_holes import cut_holes, file_part

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


_JS_MODULE = '''function load(path, mode) {
  const data = read(path, mode || "r");
  if (!data) {
    return null;
  }
  return data.trim();
}

module.exports = { load };
'''


def test_return_holes_are_cut_only_when_asked_and_leave_the_four_kind_cut_as_it_was(tmp_path: Path) -> None:
    import pytest

    for i in range(16):
        (tmp_path / f"mod_{i}.py").write_text(_MODULE.replace("load", f"load_{i}"), encoding="utf-8")
    four = cut_holes(tmp_path, 40, 1, "all")
    assert cut_holes(tmp_path, 40, 1, "all", kinds=("identifier", "arguments", "expression", "statement")) == four
    assert "return" not in {h["kind"] for h in four}
    with_returns = cut_holes(tmp_path, 50, 1, "all", kinds=("identifier", "return"))
    returns = [h for h in with_returns if h["kind"] == "return"]
    assert len(returns) == 25 and {h["kind"] for h in with_returns} == {"identifier", "return"}
    for h in returns:
        assert h["prefix"].endswith("return ") and h["target"] in ("data.strip()", "None", "os.path.getsize(path)")
    with pytest.raises(ValueError, match="kinds"):
        cut_holes(tmp_path, 40, 1, "all", kinds=("retrun",))


def test_tree_holes_take_every_package_in_turn_and_keep_the_halves_apart(tmp_path: Path) -> None:
    from infill_holes import tree_files, tree_holes

    for package, name, text in (("alpha", "mod_{}.py", _MODULE), ("beta", "lib/mod_{}.js", _JS_MODULE)):
        for i in range(8):
            path = tmp_path / package / name.format(i)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text.replace("load", f"load_{i}"), encoding="utf-8")
    (tmp_path / "beta" / "lib" / "types.d.ts").write_text("declare function f(a: number): void;\n")
    files = tree_files(tmp_path)
    assert set(files) == {"alpha", "beta"}
    assert all(not p.name.endswith(".d.ts") for p, _ in files["beta"])
    fit = tree_holes(tmp_path, 16, 1, "fit")
    validate = tree_holes(tmp_path, 16, 7, "validate")
    assert fit and validate
    assert {h["origin"] for h in fit} == {"alpha", "beta"}
    assert {h["language"] for h in fit} == {"python", "javascript"}
    assert not {h["path"] for h in fit} & {h["path"] for h in validate}
    for h in fit + validate:
        source = (tmp_path / h["path"]).read_text(encoding="utf-8")
        assert h["prefix"] + h["target"] + h["suffix"] in source


def test_tree_repository_leaves_the_holed_file_out(tmp_path: Path) -> None:
    from infill_holes import tree_files, tree_repository

    for i in range(3):
        path = tmp_path / "alpha" / f"mod_{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"def only_in_{i}():\n    return {i}\n", encoding="utf-8")
    repo = tree_repository(tmp_path, tree_files(tmp_path),
                           {"path": "alpha/mod_0.py", "origin": "alpha", "language": "python"})
    assert len(repo) == 2 and "only_in_0" not in repo.names and "only_in_1" in repo.names
