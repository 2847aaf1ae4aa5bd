"""The held-out case cutter: kinds, the return-value kind, reproducible files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from make_infill_cases import candidate_spans, main

SOURCE = '''
def area(shape, scale=1):
    """Docstring: return nothing here."""
    if shape is None:
        return None
    width = shape.width * scale
    return width * shape.height


def pair(a, b):
    return (a,
            b)
'''


def test_return_values_are_whole_one_line_values_outside_strings() -> None:
    data = SOURCE.encode()
    returns = [data[s:e].decode() for kind, s, e in candidate_spans(SOURCE, returns=True) if kind == "return"]
    assert returns == ["None", "width * shape.height"]  # the two-line tuple and the docstring are not cut
    assert all(kind != "return" for kind, _, _ in candidate_spans(SOURCE))  # only when asked


def test_kinds_option_cuts_only_the_named_kinds(tmp_path: Path) -> None:
    src = tmp_path / "pkg"
    src.mkdir()
    (src / "geometry.py").write_text(SOURCE * 3, encoding="utf-8")
    out = tmp_path / "cases.jsonl"
    assert main(["--source", str(src), "--package", "pkg==1", "--out", str(out), "--kinds", "return"]) == 0
    cases = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert cases and {c["kind"] for c in cases} == {"return"}
    for c in cases:
        assert c["prefix"].endswith("return ") and c["suffix"].startswith("\n")
    assert main(["--source", str(src), "--package", "pkg==1", "--out", str(out), "--kinds", "returns"]) == 2
