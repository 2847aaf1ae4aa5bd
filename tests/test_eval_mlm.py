"""`codemlm eval mlm`: masked-token accuracy and perplexity on any code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codemlm.checkpoint import load_model_dir
from codemlm.errors import InputError
from codemlm.eval_mlm import MASK_RATE, evaluate_mlm, masked_windows
from tests._tiny_model import SNIPPET, tiny_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory)


def test_masked_windows_mask_fifteen_percent_of_ordinary_tokens_reproducibly() -> None:
    ids = np.arange(5, 5 + 1000)
    windows = masked_windows(ids, 128, cls_id=2, sep_id=3, mask_id=4, first_ordinary=5, seed=7)
    again = masked_windows(ids, 128, cls_id=2, sep_id=3, mask_id=4, first_ordinary=5, seed=7)
    other = masked_windows(ids, 128, cls_id=2, sep_id=3, mask_id=4, first_ordinary=5, seed=8)
    assert len(windows) == 8  # 126 content tokens per window; the 118-token tail is kept
    for (inputs, labels), (inputs2, _), (inputs3, _) in zip(windows, again, other, strict=True):
        assert inputs[0] == 2 and inputs[-1] == 3 and len(inputs) <= 128
        masked = labels >= 0
        assert masked.sum() == round(MASK_RATE * (len(inputs) - 2))
        assert (inputs[masked] == 4).all()  # every chosen token becomes <mask>
        assert not masked[0] and not masked[-1]  # never the frame
        assert (inputs == inputs2).all()
        assert not (inputs == inputs3).all()
    assert windows[0][1][windows[0][1] >= 0].min() >= 5


def test_a_model_scores_higher_on_code_it_learned_than_on_other_code(model_dir: Path, tmp_path: Path) -> None:
    learned = tmp_path / "learned"
    learned.mkdir()
    (learned / "snippet.py").write_text(SNIPPET * 3)
    other = tmp_path / "other"
    other.mkdir()
    (other / "text.py").write_text(
        "import os\n\n\nclass Walker:\n    def visit(self, root):\n        for entry in os.scandir(root):\n"
        "            yield entry.name.upper()\n" * 3
    )
    loaded = load_model_dir(model_dir)
    on_learned = evaluate_mlm(loaded, [learned], seq_len=64, bf16=False)
    on_other = evaluate_mlm(loaded, [other], seq_len=64, bf16=False)
    assert on_learned.files == 1 and on_learned.masked > 0
    assert on_learned.accuracy > on_other.accuracy
    assert on_learned.perplexity < on_other.perplexity
    assert 0.0 <= on_other.accuracy <= 1.0


def test_no_code_is_a_clear_error(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not code")
    with pytest.raises(InputError, match="no code to evaluate"):
        evaluate_mlm(load_model_dir(model_dir), [tmp_path])
    with pytest.raises(InputError, match="not found"):
        evaluate_mlm(load_model_dir(model_dir), [tmp_path / "missing"])


def test_cli_json_last_line_carries_accuracy_and_perplexity(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(SNIPPET)
    run = subprocess.run(
        [sys.executable, "-m", "codemlm", "eval", "mlm", str(tmp_path), "--model", str(model_dir),
         "--seq-len", "64", "--json"],
        capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["files"] == 1 and 0.0 <= report["accuracy"] <= 1.0 and report["perplexity"] > 1.0
    bad = subprocess.run(
        [sys.executable, "-m", "codemlm", "eval", "mlm", str(tmp_path / "nope"), "--model", str(model_dir)],
        capture_output=True, text=True, check=False,
    )
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1
