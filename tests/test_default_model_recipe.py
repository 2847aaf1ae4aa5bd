"""scripts/train_default_model.sh: the CPU and GPU recipes resolve and validate without training."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_default_model.sh"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PY": sys.executable,
        "CODEMLM": str(bin_dir / "codemlm"),
        "DATA": str(tmp_path / "data"),
        "SRC": str(tmp_path / "src"),
        "RUNS": str(tmp_path / "runs"),
        "EXPORT": str(tmp_path / "model"),
    }
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, check=False)


@pytest.mark.parametrize(("flag", "phases"), [("", ["compact", "compact-spans", "compact-decay"]),
                                              ("--gpu", ["gpu-default", "gpu-default-spans"])])
def test_dry_run_validates_every_step_and_writes_nothing(flag: str, phases: list[str], tmp_path: Path) -> None:
    run = _run(tmp_path, *([flag] if flag else []), "--dry-run")
    assert run.returncode == 0, run.stderr
    steps = [line for line in run.stdout.splitlines() if line.startswith("+ ")]
    # fetch, corpus build, one step per phase, the ranker fit, the static table, the contrastive
    # stage, its four continuations, the search encoder's install (on a GPU: the shipped compact
    # encoder copied), the second encoder, its two continuations and its install, the cross-encoder (on a GPU the shipped
    # one) and its install after both encoders, the export
    gpu = flag == "--gpu"
    assert len(steps) == 2 + len(phases) + (9 if gpu else 15)
    assert "corpus build" in steps[1] and "--vocab-size 8192" in steps[1]
    for index, phase in enumerate(phases):
        assert f"training/configs/{phase}.yaml" in steps[2 + index]
        if index:
            assert f"--init-from {tmp_path}/runs/{phases[index - 1]}/model" in steps[2 + index]
    last_model = f"{tmp_path}/runs/{phases[-1]}/model"
    if gpu:
        ranker, table, copy, second, second_more, second_last, second_install, cross_install, export = steps[-9:]
        assert copy.startswith("+ cp -r codemlm/default_model/search_encoder") and f"{last_model}/search_encoder" in copy
        assert "--cross codemlm/default_model/search_cross" in cross_install  # the shipped one, weighed again
        assert f"--init-from {last_model}" in second  # from the small MLM just trained
    else:
        ranker, table, contrastive, *continued, install, second, second_more, second_last, second_install, cross, \
            cross_install, export = steps[-15:]
        assert "search-cross.yaml" in cross and f"--init-from {last_model}/search_encoder" in cross
        assert f"task_options.residual_to={last_model}/search_encoder" in cross
        assert f"--cross {tmp_path}/runs/search-cross/model" in cross_install
        assert "--init-from codemlm/default_model" in second  # the shipped small MLM
        assert "search-compact-more.yaml" in contrastive and f"--init-from {last_model}" in contrastive
        previous = f"{tmp_path}/runs/search-compact-more"
        for round_, step in enumerate(continued, start=1):  # each continuation starts from the one before
            assert "search-compact-continue.yaml" in step and f"--init-from {previous}/model" in step
            previous = f"{tmp_path}/runs/search-compact-continue{round_}"
        assert len(continued) == 4
        assert "training.search_encoder" in install and f"--model-dir {last_model}" in install
        assert f"--encoder {previous}/model" in install
    assert "search-small-second.yaml" in second and f"--out {tmp_path}/runs/search-small " in second
    assert "search-small-second.yaml" in second_more and f"--init-from {tmp_path}/runs/search-small/model" in second_more
    assert "search-small-second.yaml" in second_last and f"--init-from {tmp_path}/runs/search-small2/model" in second_last
    assert f"--encoder {tmp_path}/runs/search-small3/model" in second_install
    assert "training.search_encoder --second" in second_install and f"--model-dir {last_model}" in second_install
    assert "training.search_cross" in cross_install and f"--model-dir {last_model}" in cross_install
    assert "infill_fit_ranker.py" in ranker and f"--out {last_model}/ranker.json" in ranker
    assert "training.distill_static" in table and f"--model-dir {last_model}" in table
    assert "export_default_model.py" in export and export.split()[3] == last_model
    assert all(f"{tmp_path}/runs/{phase}" in export for phase in phases)
    assert not any((tmp_path / name).exists() for name in ("data", "src", "runs", "model"))


def test_gpu_config_is_the_ten_minute_recipe() -> None:
    from training.config import load_config

    config = load_config(str(ROOT / "training/configs/gpu-default.yaml"))
    tokens = config.optim.max_steps * config.optim.batch_size * 256  # windows of 256 tokens
    assert tokens >= 300_000_000
    assert config.trainer.precision == "bf16-mixed" and config.trainer.compile
    spans = load_config(str(ROOT / "training/configs/gpu-default-spans.yaml"))
    assert config.trainer.max_minutes + spans.trainer.max_minutes <= 10


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_recipe_without_a_gpu_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    run = _run(tmp_path, "--gpu")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "train_default_model: --gpu needs a CUDA GPU and torch sees none; nothing was written"
    ]
    assert not any(tmp_path.iterdir())


def test_unknown_option_is_refused(tmp_path: Path) -> None:
    run = _run(tmp_path, "--tpu")
    assert run.returncode == 2 and "unknown option --tpu" in run.stderr
