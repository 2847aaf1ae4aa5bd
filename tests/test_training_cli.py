"""`codemlm train` interrupted: it says how to continue."""

from __future__ import annotations

from pathlib import Path

from training.cli import _resume_hint
from training.config import load_config


def test_resume_hint_names_the_checkpoint_and_the_command(tmp_path: Path) -> None:
    config = load_config("tiny", values={"trainer.out_dir": str(tmp_path / "run")})
    command = ["codemlm", "train", "--config", "tiny", "--resume", "old.ckpt", "--out", str(tmp_path / "run")]
    assert "before its first checkpoint" in _resume_hint(config, command)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"x")
    hint = _resume_hint(config, command)
    assert str(tmp_path / "run" / "checkpoints" / "last.ckpt") in hint
    assert hint.endswith(f"codemlm train --config tiny --out {tmp_path / 'run'} --resume last")
    assert "old.ckpt" not in hint
