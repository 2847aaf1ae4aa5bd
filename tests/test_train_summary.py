"""What a finished run prints, and the learning-curve picture of a run with no token curve."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

from rich.console import Console

from training.progress import print_summary
from training.run import RunResult


def _printed(result: RunResult) -> str:
    out = io.StringIO()
    print_summary(result, Console(file=out, width=120))
    return out.getvalue()


def test_an_mlm_run_reports_tokens_and_masked_accuracy() -> None:
    text = _printed(RunResult(Path("m"), Path("c"), 10, 5000, 2.0, {"train/acc": 0.3, "val/acc": 0.25},
                              {"task": "mlm"}))
    assert "5.0k" in text and "train masked accuracy" in text and "validation masked accuracy" in text


def test_a_search_run_reports_its_rank_metrics_not_masked_tokens() -> None:
    text = _printed(RunResult(Path("m"), Path("c"), 10, 0, 2.0,
                              {"train/acc": 0.5, "val/mrr": 0.62, "val/recall_at_1": 0.44}, {"task": "cross"}))
    assert "masked" not in text and "tokens" not in text
    assert "train accuracy" in text and "validation MRR" in text and "0.6200" in text


def test_the_learning_curve_of_a_run_without_tokens_draws_without_dividing_by_zero() -> None:
    script = Path(__file__).resolve().parents[1] / "scripts" / "export_default_model.py"
    spec = importlib.util.spec_from_file_location("export_default_model", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    series = {"train/loss": [(0.0, 2.0)], "val/loss": [], "train/acc": [(0.0, 0.1)], "val/acc": []}
    svg = module.render_svg(series, [])
    assert svg.startswith("<svg") and "polyline" in svg
