"""MLM training end to end on the fixture repository: learning, exact resume, DDP, export."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _datadir import build_data_dir
from hypothesis import given, settings
from hypothesis import strategies as st
from lightning.pytorch import Callback

from codemlm.checkpoint import load_model_dir
from codemlm.masking import MaskingCollator
from training.config import TrainConfig, load_config
from training.data import EpochShardSampler, WindowDataset, group_by_length
from training.run import run

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_data_dir(tmp_path_factory.mktemp("mlm-data"), seq_len=64, vocab_size=512)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def tiny_config(data_dir: Path, out: Path, **values: object) -> TrainConfig:
    base: dict[str, object] = {
        "data.dir": str(data_dir),
        "trainer.out_dir": str(out),
        "trainer.accelerator": "cpu",
        "trainer.progress": False,
        "trainer.val_check_interval": 0,
        "trainer.checkpoint_every": 0,
        "trainer.log_every": 5,
        "optim.batch_size": 16,
    }
    base.update(values)
    return load_config("tiny", values=base)


class LossRecorder(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.losses.append(float(outputs["loss"]))


class Interrupt(Exception):
    """Stands in for a killed job."""


class InterruptAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            raise Interrupt(f"stopped before step {self.step + 1}")


def masked_scores(model_dir: Path, data_dir: Path) -> dict[str, float]:
    """The trained model on fresh masks (epoch 1000) of every training window, next to the two
    context-free references: always answering the most frequent masked token (accuracy) and
    the unigram distribution of the masked tokens (cross-entropy = its entropy)."""
    from datasets import load_from_disk

    loaded = load_model_dir(model_dir)
    tok = loaded.tokenizer
    rows = WindowDataset(load_from_disk(str(data_dir / "tokens"))["train"])
    collate = MaskingCollator(
        load_config("tiny").masking,
        pad_id=tok.pad_id,
        mask_id=tok.mask_id,
        vocab_size=tok.vocab_size,
        special_ids=tok.special_ids,
        seed=0,
    )
    hits = total = 0
    loss_sum = 0.0
    labels_seen: Counter[int] = Counter()
    with torch.no_grad():
        for start in range(0, len(rows), 32):
            batch = collate(rows.__getitems__([(i, 1000) for i in range(start, min(start + 32, len(rows)))]))
            out = loaded.model.mlm_loss(batch["input_ids"], batch["attention_mask"], batch["labels"])
            hits += int((out.logits.argmax(-1) == out.targets).sum())
            loss_sum += float(out.loss) * out.targets.numel()
            total += out.targets.numel()
            labels_seen.update(out.targets.tolist())
    assert total > 500, "too few masked tokens to compare against a baseline"
    probs = [n / total for n in labels_seen.values()]
    return {
        "accuracy": hits / total,
        "most_frequent_accuracy": max(probs),
        "cross_entropy": loss_sum / total,
        "unigram_entropy": -sum(p * math.log(p) for p in probs),
    }


def test_tiny_model_learns_on_the_fixture_repository(data_dir: Path, tmp_path: Path) -> None:
    recorder = LossRecorder()
    config = tiny_config(
        data_dir,
        tmp_path / "run",
        **{
            "optim.max_steps": 400,
            "optim.lr": 5e-3,
            "optim.warmup_steps": 20,
            "masking.strategy": "ast",  # whole syntax nodes: the project's own objective
            "trainer.val_check_interval": 200,
        },
    )
    result = run(config, callbacks=[recorder])

    assert result.global_step == 400
    start = sum(recorder.losses[:5]) / 5
    end = sum(recorder.losses[-20:]) / 20
    # Uniform guessing is ln(512) = 6.24 nats at the start.
    assert end < start - 1.0, f"loss fell only from {start:.2f} to {end:.2f}"
    assert result.model_dir is not None
    scores = masked_scores(result.model_dir, data_dir)
    print(f"loss {start:.2f} -> {end:.2f}; {scores}")
    # Knowing token frequencies alone gives exactly these two references; beating both means
    # the model uses the context around the hole. Scored on the mixed masks of the tiny config.
    assert scores["accuracy"] > 2 * scores["most_frequent_accuracy"], scores
    assert scores["cross_entropy"] < scores["unigram_entropy"] - 0.3, scores
    # The run's own metrics were logged: validation loss/perplexity and per-kind accuracy.
    assert {"train/loss", "train/acc", "train/lr", "train/tokens_per_s", "val/loss", "val/ppl"} <= set(
        result.metrics
    )
    assert any(k.startswith("train/acc_") for k in result.metrics)
    assert result.tokens > 400 * 16 * 8


@pytest.mark.parametrize("where", ["mid-epoch", "epoch-end"])
def test_resume_is_exact(where: str, data_dir: Path, tmp_path: Path) -> None:
    """Uninterrupted (no loader workers) vs. stopped two steps after its only checkpoint and
    resumed from it (2 workers): same steps, same tokens, bit-identical weights."""
    from datasets import load_from_disk

    windows = len(load_from_disk(str(data_dir / "tokens"))["train"])
    per_epoch = math.ceil(windows / 16)
    # The checkpoint lands inside the third epoch, or exactly at its end.
    checkpoint_step = 3 * per_epoch - (2 if where == "mid-epoch" else 0)
    assert (checkpoint_step % per_epoch != 0) == (where == "mid-epoch")
    values = {
        "optim.max_steps": checkpoint_step + 6,
        "optim.warmup_steps": 4,
        "trainer.checkpoint_every": checkpoint_step,
        "trainer.val_check_interval": 7,
        "trainer.log_every": 3,
    }
    straight = run(tiny_config(data_dir, tmp_path / "straight", **values))

    # Loader workers must not change what is trained: masks depend on (seed, epoch, index) only.
    values_with_workers = {**values, "data.num_workers": 2}
    with pytest.raises(Interrupt):
        run(
            tiny_config(data_dir, tmp_path / "resumed", **values_with_workers),
            callbacks=[InterruptAt(checkpoint_step + 2)],
        )
    ckpt = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == checkpoint_step

    resumed = run(
        tiny_config(data_dir, tmp_path / "resumed", **{**values_with_workers, "trainer.resume": "last"})
    )

    assert resumed.global_step == straight.global_step == checkpoint_step + 6
    assert resumed.tokens == straight.tokens
    assert straight.model_dir is not None and resumed.model_dir is not None
    a = load_model_dir(straight.model_dir).model.state_dict()
    b = load_model_dir(resumed.model_dir).model.state_dict()
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_two_process_ddp_keeps_ranks_in_sync_on_different_data(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    proc = _run_driver(data_dir, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["global_step"] for r in ranks] == [6, 6]
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert len(ranks[0]["batches"]) == len(ranks[1]["batches"]) == 6
    assert not set(ranks[0]["batches"]) & set(ranks[1]["batches"]), "ranks trained on the same batches"
    summary = json.loads((out / "model" / "config.json").read_text())["summary"]
    assert summary["world_size"] == 2 and summary["steps"] == 6


def _run_driver(data_dir: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")]),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "_ddp_train.py"), str(data_dir), str(out), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.gpu
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_gpus_bf16(strategy: str, data_dir: Path, tmp_path: Path) -> None:
    """Needs 2 CUDA devices: bf16-mixed (precision auto) under DDP and FSDP, exported model loads."""
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 CUDA devices")
    out = tmp_path / strategy
    proc = _run_driver(data_dir, out, strategy, "gpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["global_step"] for r in ranks] == [6, 6]
    assert not set(ranks[0]["batches"]) & set(ranks[1]["batches"])
    loaded = load_model_dir(out / "model")
    assert all(
        t.dtype == torch.float32 and torch.isfinite(t).all() for t in loaded.model.state_dict().values()
    )
    assert loaded.summary["config"]["trainer"]["strategy"] == strategy
    assert math.isfinite(loaded.summary["metrics"]["val/loss"])


def test_sampler_shards_disjointly_and_resumes_where_it_stopped() -> None:
    shards = [EpochShardSampler(10, seed=3, shuffle=True, rank=r, world_size=3) for r in range(3)]
    for s in shards:
        s.set_epoch(2)
    seen = [list(s) for s in shards]
    assert all(len(x) == 4 for x in seen)  # ceil(10 / 3), padded by wrapping around
    indices = [i for x in seen for i, _ in x]
    assert set(indices) == set(range(10)) and len(indices) == 12
    assert all(epoch == 2 for x in seen for _, epoch in x)
    # A new epoch is a new order; the same epoch is the same order.
    assert list(shards[0]) == seen[0]
    shards[0].set_epoch(3)
    assert list(shards[0]) != seen[0]
    # Resuming at epoch 2 after 3 rows continues with the 4th, once.
    fresh = EpochShardSampler(10, seed=3, shuffle=True, rank=0, world_size=3)
    fresh.resume_at(2, 3)
    fresh.set_epoch(2)
    assert list(fresh) == seen[0][3:]
    assert list(fresh) == seen[0]


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 256), min_size=1, max_size=300),
    batch_rows=st.integers(1, 17),
    pool_batches=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_grouping_by_length_permutes_within_pools_and_keeps_partial_batches_last(
    lengths: list[int], batch_rows: int, pool_batches: int, seed: int
) -> None:
    lens = np.asarray(lengths)
    order = np.random.default_rng(seed).permutation(len(lens))
    grouped = group_by_length(order, lens, batch_rows, np.random.default_rng(seed), pool_batches=pool_batches)
    pool = batch_rows * pool_batches
    assert len(grouped) == len(order)
    for start in range(0, len(order), pool):  # the same rows in every pool: shuffled only inside it
        assert sorted(grouped[start : start + pool]) == sorted(order[start : start + pool])
        chunk = grouped[start : start + pool]
        for b in range(0, len(chunk) - len(chunk) % batch_rows, batch_rows):
            batch = lens[chunk[b : b + batch_rows]]
            assert list(batch) == sorted(batch, reverse=True)  # a batch is one run of the sorted pool
    partial = len(order) % batch_rows
    if partial and len(order) > partial:  # the epoch's partial batch is last: the last pool's shortest rows
        last_pool = grouped[(len(order) - 1) // pool * pool :]
        assert max(lens[grouped[-partial:]]) <= min(lens[last_pool[:-partial]], default=256)


def test_grouped_batches_pad_less_and_the_sampler_stays_disjoint_and_resumable() -> None:
    rng = np.random.default_rng(0)
    lengths = np.where(rng.random(2000) < 0.8, 256, rng.integers(20, 256, 2000))  # windows: most full
    def padded(order: np.ndarray, batch: int) -> int:  # positions computed when a batch pads to its longest
        return sum(int(lengths[order[i : i + batch]].max()) * len(order[i : i + batch]) for i in range(0, len(order), batch))

    plain = EpochShardSampler(2000, seed=1, shuffle=True)
    grouped = EpochShardSampler(2000, seed=1, shuffle=True, lengths=lengths, batch_size=16)
    assert sorted(grouped.order(0)) == list(range(2000))
    assert padded(grouped.order(0), 16) < 0.95 * padded(plain.order(0), 16)
    assert not np.array_equal(grouped.order(0), grouped.order(1))
    shards = [EpochShardSampler(2000, seed=1, shuffle=True, rank=r, world_size=2, lengths=lengths, batch_size=16)
              for r in range(2)]
    assert sorted([i for s in shards for i, _ in s]) == list(range(2000))
    shards[0].resume_at(0, 5)
    assert [i for i, _ in shards[0]] == list(shards[0].order(0)[5:])
    with pytest.raises(ValueError, match="one length per row"):
        EpochShardSampler(10, seed=1, shuffle=True, lengths=lengths, batch_size=4)


def test_cli_train_exports_a_model_dir_that_loads_identically(data_dir: Path, tmp_path: Path) -> None:
    from codemlm.cli import main

    out = tmp_path / "cli-run"
    code = main(
        [
            "train",
            "--config",
            str(REPO_ROOT / "training" / "configs" / "tiny.yaml"),
            "--data",
            str(data_dir),
            "--out",
            str(out),
            "--max-steps",
            "3",
            "--batch-size",
            "8",
            "--accelerator",
            "cpu",
            "--no-progress",
            "--set",
            "trainer.val_check_interval=0",
        ]
    )
    assert code == 0
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 3
    loaded = load_model_dir(out / "model")
    trained = {k[len("encoder.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("encoder.")}
    state = loaded.model.state_dict()
    assert state.keys() == trained.keys()
    for name, tensor in state.items():
        assert torch.equal(tensor, trained[name]), name
    summary = loaded.summary
    assert summary["steps"] == 3 and summary["tokens"] > 0
    assert summary["command"][0] == "codemlm"
    assert "train/loss" in summary["metrics"]
    assert (
        loaded.tokenizer.to_str()
        == __import__("codemlm.tokenizer")
        .tokenizer.CodeTokenizer.from_file(data_dir / "tokenizer.json")
        .to_str()
    )


def test_cli_train_without_data_builds_the_stdlib_slice_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`codemlm train` with no --data: the standard-library data directory is built into the
    cache on first use (here a 12-file slice) and reused afterwards."""
    from codemlm.cli import main

    monkeypatch.setenv("CODEMLM_CACHE_DIR", str(tmp_path / "cache"))
    args = ["train", "--max-steps", "2", "--batch-size", "4", "--no-progress", "--accelerator", "cpu"]
    small = ["--set", "data.stdlib_max_files=12", "--set", "data.stdlib_vocab_size=600"]
    assert main([*args, *small, "--out", str(tmp_path / "one")]) == 0
    built = sorted((tmp_path / "cache" / "data").glob("stdlib-*"))
    assert len(built) == 1 and (built[0] / "tokens" / "dataset_dict.json").is_file()
    stats = json.loads((built[0] / "stats.json").read_text())
    assert stats["stdlib_files"] == 12 and stats["tokens"]["splits"]["train"]["windows"] > 0
    assert "first run" in capsys.readouterr().err
    marker = (built[0] / "tokenizer.json").stat().st_mtime_ns

    assert main([*args, *small, "--out", str(tmp_path / "two")]) == 0
    assert (built[0] / "tokenizer.json").stat().st_mtime_ns == marker
    assert "first run" not in capsys.readouterr().err
    summary = load_model_dir(tmp_path / "two" / "model").summary
    assert summary["data_dir"] == str(built[0]) and summary["steps"] == 2


def test_resuming_from_another_configs_or_a_corrupt_checkpoint_is_one_clear_error(
    data_dir: Path, tmp_path: Path
) -> None:
    from codemlm.errors import CheckpointError

    values = {"optim.max_steps": 3, "trainer.checkpoint_every": 3, "trainer.val_check_interval": 0}
    run(tiny_config(data_dir, tmp_path / "a", **values))
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    assert last.is_file()
    before = last.read_bytes()
    wider = tiny_config(
        data_dir, tmp_path / "a", **values, **{"model.dim": 96, "model.n_heads": 4, "trainer.resume": "last"}
    )
    with pytest.raises(CheckpointError, match="another model or task") as info:
        run(wider)
    assert "\n" not in str(info.value)
    assert last.read_bytes() == before  # nothing overwritten

    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(before[: len(before) // 3])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        run(tiny_config(data_dir, tmp_path / "b", **values, **{"trainer.resume": str(corrupt)}))
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "global_step": 0, "hook": Interrupt("x")}, pickled)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):  # weights_only refuses objects
        run(tiny_config(data_dir, tmp_path / "c", **values, **{"trainer.resume": str(pickled)}))


def test_a_wall_clock_limit_ends_the_run_and_still_exports(data_dir: Path, tmp_path: Path) -> None:
    values = {"optim.max_steps": 100000, "trainer.max_minutes": 0.05, "trainer.val_check_interval": 0}
    result = run(tiny_config(data_dir, tmp_path / "timed", **values))
    assert 0 < result.global_step < 100000
    assert result.model_dir is not None and (result.model_dir / "model.safetensors").is_file()


def test_adamw_is_fused_on_a_cpu_and_its_gradients_are_still_clipped() -> None:
    from codemlm.model import ModelConfig
    from training.config import OptimConfig
    from training.mlm import MLMModule

    module = MLMModule(ModelConfig(vocab_size=64, dim=16, n_layers=1, n_heads=2, mlp_hidden=32, max_seq_len=32),
                       OptimConfig(grad_clip=1.0))
    optimizer = module.configure_optimizers()["optimizer"]
    assert optimizer.defaults["fused"] is True
    for p in module.parameters():
        p.grad = torch.full_like(p, 10.0)
    module.configure_gradient_clipping(optimizer, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in module.parameters()]))
    assert norm == pytest.approx(1.0, rel=1e-3)
    optimizer.step()  # the fused CPU kernel runs
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_window_lengths_follow_a_selected_split_not_the_table_under_it() -> None:
    import datasets

    rows = datasets.Dataset.from_dict({
        "input_ids": [[1] * n for n in range(1, 11)], "span_start": [[0]] * 10, "span_end": [[0]] * 10,
        "span_kind": [[0]] * 10,
    })
    assert WindowDataset(rows).lengths.tolist() == list(range(1, 11))
    assert WindowDataset(rows.select([9, 0, 3])).lengths.tolist() == [10, 1, 4]
