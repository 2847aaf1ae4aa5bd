"""A training run that cannot fit in memory is one clear error before anything is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _datadir import build_data_dir

from codemlm.config import ModelConfig
from codemlm.errors import ConfigError
from codemlm.model import CodeEncoder
from training.config import load_config
from training.memory import available_bytes, estimate_training_bytes, out_of_memory_error, parameter_count
from training.run import run

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_data_dir(tmp_path_factory.mktemp("memory-data"), seq_len=64, vocab_size=512)


@pytest.mark.parametrize("preset", ["tiny", "compact", "small"])
def test_parameter_count_is_within_a_percent_of_the_built_model(preset: str) -> None:
    config = ModelConfig.from_preset(preset, vocab_size=8192)
    real = sum(p.numel() for p in CodeEncoder(config).parameters())
    assert abs(parameter_count(config) - real) / real < 0.01


def test_the_estimate_grows_with_batch_length_and_shape() -> None:
    compact = ModelConfig.from_preset("compact", vocab_size=8192)
    small = ModelConfig.from_preset("small", vocab_size=8192)
    base = estimate_training_bytes(compact, 32, 256)
    assert estimate_training_bytes(compact, 64, 256) > base
    assert estimate_training_bytes(compact, 32, 512) > base
    assert estimate_training_bytes(small, 32, 256) > base
    # The shipped CPU recipe (compact, 32 x 256) needs well under a GiB.
    assert base < 1 << 30


@pytest.mark.skipif(not Path("/proc/meminfo").is_file(), reason="reads /proc/meminfo")
def test_free_cpu_memory_is_known_on_linux() -> None:
    free = available_bytes("cpu")
    assert free is not None and 0 < free < 1 << 50


def test_a_batch_that_cannot_fit_is_refused_before_the_run_directory_exists(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = load_config("tiny", values={
        "data.dir": str(data_dir), "trainer.out_dir": str(out), "trainer.accelerator": "cpu",
        "trainer.progress": False, "optim.batch_size": 50_000_000, "optim.max_steps": 1,
    })
    with pytest.raises(ConfigError, match=r"needs about .* GiB to train; cpu has .* GiB free") as info:
        run(config)
    assert "\n" not in str(info.value)
    assert not out.exists()


def test_the_cli_says_so_in_one_line_and_exits_non_zero(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli-run"
    proc = subprocess.run(
        [sys.executable, "-m", "codemlm", "train", "--config", "tiny", "--data", str(data_dir), "--out", str(out),
         "--batch-size", "50000000", "--max-steps", "1", "--accelerator", "cpu", "--no-progress"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "smaller --batch-size" in lines[0], proc.stderr
    assert not out.exists()


def test_allocation_failures_become_one_line_errors_and_others_pass_through(tmp_path: Path) -> None:
    cpu = RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")
    for exc in (MemoryError(), cpu, RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")):
        error = out_of_memory_error(exc, batch_size=64, out_dir=tmp_path)
        assert isinstance(error, ConfigError) and "batch size 64" in str(error) and "\n" not in str(error)
    assert out_of_memory_error(RuntimeError("shapes do not match"), batch_size=64, out_dir=tmp_path) is None
