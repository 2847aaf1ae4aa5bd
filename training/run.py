"""The training entry point: pick the task, build the Lightning Trainer, export the model.

``run(config)`` looks ``config.task`` up in :data:`TASKS` (``"module:function"`` strings,
imported only when chosen, so a task can be added by adding its module and one line here)
and calls it. Tasks use the helpers below so that every task gets the same hardware
handling, checkpoints, resume and export:

- :func:`build_trainer` — accelerator/devices/nodes/strategy (ddp, fsdp) and precision
  (``auto`` → bf16-mixed on a GPU or a CPU with native bf16, else 32-bit), step-based validation, a Lightning
  checkpoint every N steps (``last.ckpt``), CSV logs, the Rich progress bar.
- :func:`resolve_resume` — ``--resume last`` or a path.
- :func:`export_encoder` — the trained encoder as a model directory
  (:func:`codemlm.checkpoint.save_model_dir`), gathered on rank 0 under FSDP.

Multi-GPU and multi-node runs are launched by ``torchrun`` or SLURM (Lightning detects both);
``--devices N`` on one machine makes Lightning start the other processes itself.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codemlm.errors import CheckpointError, ConfigError, CorpusError, InputError
from training.config import TrainConfig

__all__ = [
    "TASKS",
    "RunResult",
    "build_trainer",
    "check_resume_checkpoint",
    "checkpoint_dir",
    "export_encoder",
    "final_metrics",
    "resolve_data_dir",
    "resolve_precision",
    "resolve_resume",
    "resolve_task",
    "run",
    "save_final_checkpoint",
    "uses_gpu",
]

# task name -> "module:function"; the function takes (config, *, command, callbacks) -> RunResult.
TASKS: dict[str, str] = {
    "mlm": "training.mlm:train_mlm",
    "contrastive": "training.contrastive:train_contrastive",
    "cross": "training.cross_encoder:train_cross",
}

LAST_CHECKPOINT = "last.ckpt"


@dataclass
class RunResult:
    """What a finished run produced (``model_dir`` is None on ranks other than 0)."""

    model_dir: Path | None
    checkpoint_dir: Path
    global_step: int
    tokens: int
    seconds: float
    metrics: dict[str, float]
    summary: dict[str, Any] = field(default_factory=dict)


def resolve_task(name: str) -> Callable[..., RunResult]:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    module_name, _, func_name = TASKS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name in ("lightning", "datasets"):
            raise ConfigError(
                f"training needs the '{exc.name}' package: pip install -e '.[train]' in the codemlm checkout"
            ) from exc
        if exc.name == module_name:
            raise ConfigError(
                f"task {name!r} is not available in this installation ({module_name} missing)"
            ) from exc
        raise
    task: Callable[..., RunResult] = getattr(module, func_name)
    return task


def run(
    config: TrainConfig, *, command: Sequence[str] | None = None, callbacks: Sequence[Any] = ()
) -> RunResult:
    """Train as ``config`` says. ``callbacks`` (Lightning callbacks) are added to the trainer's."""
    task = resolve_task(config.task)
    return task(config, command=command, callbacks=callbacks)


# --------------------------------------------------------------------------- helpers for tasks


def uses_gpu(config: TrainConfig) -> bool:
    accelerator = config.trainer.accelerator
    if accelerator in ("gpu", "cuda"):
        return True
    if accelerator != "auto":
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_precision(config: TrainConfig) -> str:
    precision = config.trainer.precision
    if precision == "auto":
        # bf16 autocast on a GPU, and on a CPU with native bf16 (~3x its fp32 matmul rate);
        # an emulated bf16 CPU path is slower than fp32, so those CPUs keep 32-bit.
        if uses_gpu(config):
            return "bf16-mixed"
        from codemlm.hardware import native_bf16_available

        return "bf16-mixed" if native_bf16_available("cpu") else "32-true"
    return "32-true" if precision == "32" else precision


def resolve_data_dir(config: TrainConfig) -> Path:
    """The configured data directory, or the standard-library one (built on first use)."""
    if config.data.dir is None:
        from training.data import ensure_stdlib_data

        return ensure_stdlib_data(config.data)
    path = Path(config.data.dir).expanduser()
    if not (path / "tokens").is_dir():
        raise CorpusError(
            f"{path} is not a data directory (no tokens/ inside); make one with `codemlm corpus build SRC --out {path}`"
        )
    return path


def check_resume_checkpoint(path: str, module: Any) -> None:
    """Refuse, in one line, a checkpoint that is unreadable or belongs to another configuration.

    Loaded with ``weights_only=True`` (tensors and plain containers, never arbitrary pickled
    objects), and its model state compared with ``module``'s by name and shape, before
    Lightning touches it: Lightning's own errors for these cases are long tracebacks.
    """
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad bytes, truncation, pickles
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"cannot resume from {path}: not a readable checkpoint ({reason[:160]})") from None
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or "global_step" not in checkpoint:
        raise CheckpointError(f"cannot resume from {path}: not a Lightning training checkpoint")
    expected = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in state.items() if isinstance(t, torch.Tensor)}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    reshaped = sorted(n for n in set(expected) & set(found) if expected[n] != found[n])
    if missing or unexpected or reshaped:
        if reshaped:
            first = reshaped[0]
            detail = f"{first} is {list(found[first])} there, {list(expected[first])} here"
        else:
            detail = f"parameter {(missing or unexpected)[0]} is {'missing' if missing else 'unexpected'}"
        raise CheckpointError(
            f"cannot resume from {path}: it was written by a run with another model or task ({detail}); "
            "resume with the config it was trained with, or start a new --out directory"
        )


def checkpoint_dir(config: TrainConfig) -> Path:
    return config.out_dir / "checkpoints"


def resolve_resume(config: TrainConfig) -> str | None:
    """``trainer.resume``: ``last`` → OUT/checkpoints/last.ckpt; a path must exist."""
    resume = config.trainer.resume
    if not resume:
        return None
    path = checkpoint_dir(config) / LAST_CHECKPOINT if resume == "last" else Path(resume).expanduser()
    if not path.is_file():
        raise InputError(f"no checkpoint to resume from at {path}")
    return str(path)


def _strategy(config: TrainConfig) -> Any:
    name = config.trainer.strategy
    if name == "fsdp" and not uses_gpu(config):
        raise ConfigError("trainer.strategy fsdp needs GPUs (Lightning's FSDP is CUDA-only); use ddp on CPUs")
    if name == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy

        from codemlm.model import Block

        # One FSDP unit per transformer block; full (consolidated) checkpoints keep resume simple.
        return FSDPStrategy(auto_wrap_policy={Block}, state_dict_type="full")
    if name == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(gradient_as_bucket_view=True, static_graph=False)
    return name


def _devices(config: TrainConfig) -> int | str:
    devices = config.trainer.devices
    if isinstance(devices, str) and devices.lstrip("-").isdigit():
        return int(devices)
    return devices


class _DropLightningTips(logging.Filter):
    """Lightning advertises its cloud logger on every run; not our users' business."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def _quiet_lightning() -> None:
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropLightningTips) for f in logger.filters):
        logger.addFilter(_DropLightningTips())
    # Lightning 2.6 on torch 2.13 warns about its own use of a deprecated torch pytree API.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # Logging is per optimizer step across epochs; short epochs are fine.
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")


def build_trainer(config: TrainConfig, *, callbacks: Sequence[Any] = ()) -> Any:
    """A Lightning Trainer for ``config`` (see the module docstring)."""
    import torch
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    _quiet_lightning()
    t, opt = config.trainer, config.optim
    if uses_gpu(config):
        torch.set_float32_matmul_precision("high")  # TF32 for any fp32 matmul left under autocast
    elif t.cpu_threads:
        torch.set_num_threads(t.cpu_threads)
    all_callbacks: list[Any] = list(callbacks)
    if t.checkpoint_every:
        all_callbacks.append(
            ModelCheckpoint(
                dirpath=checkpoint_dir(config),
                every_n_train_steps=t.checkpoint_every,
                save_top_k=0,  # only last.ckpt, overwritten: long runs keep one resumable state
                save_last=True,
                save_on_train_epoch_end=False,
                enable_version_counter=False,
            )
        )
    if t.progress:
        from training.progress import StepProgressBar

        all_callbacks.append(StepProgressBar(leave=True))
    validate = t.val_check_interval > 0 and t.limit_val_batches > 0
    settings: dict[str, Any] = {
        "accelerator": "gpu" if t.accelerator == "cuda" else t.accelerator,
        "devices": _devices(config),
        "num_nodes": t.num_nodes,
        "strategy": _strategy(config),
        "precision": resolve_precision(config),
        "max_steps": opt.max_steps,
        "max_time": {"minutes": t.max_minutes} if t.max_minutes else None,
        "max_epochs": -1,
        "accumulate_grad_batches": opt.accumulate,
        "gradient_clip_val": opt.grad_clip if opt.grad_clip > 0 else None,
        # Validation every N optimizer steps, counted across epochs (so short epochs are fine).
        "val_check_interval": t.val_check_interval * opt.accumulate if validate else None,
        "check_val_every_n_epoch": None,
        "limit_val_batches": t.limit_val_batches if validate else 0,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": t.log_every,
        "callbacks": all_callbacks,
        "logger": CSVLogger(str(config.out_dir), name="logs"),
        "enable_checkpointing": bool(t.checkpoint_every),
        "enable_progress_bar": t.progress,
        "enable_model_summary": t.progress,
        # The data module shards by rank itself, so the order stays resumable.
        "use_distributed_sampler": False,
        "default_root_dir": str(config.out_dir),
    }
    try:
        return Trainer(**settings)
    except (ValueError, MisconfigurationException) as exc:
        # e.g. more devices than this machine has, or a precision the accelerator lacks
        raise ConfigError(f"cannot set up training: {exc}") from exc


def save_final_checkpoint(trainer: Any, config: TrainConfig) -> None:
    """A resumable ``last.ckpt`` at the final step too (every rank calls: FSDP gathers)."""
    if not config.trainer.checkpoint_every:
        return
    trainer.save_checkpoint(str(checkpoint_dir(config) / LAST_CHECKPOINT), weights_only=False)


def final_metrics(trainer: Any) -> dict[str, float]:
    """The last logged value of every metric (train on its last log step, val on its last run)."""
    out = {}
    for name, value in sorted(trainer.callback_metrics.items()):
        try:
            out[name] = round(float(value), 6)
        except (TypeError, ValueError):
            continue
    return out


def export_encoder(
    trainer: Any,
    encoder: Any,
    model_config: Any,
    tokenizer: Any,
    config: TrainConfig,
    summary: dict[str, Any],
    *,
    prefix: str = "encoder.",
) -> Path | None:
    """Write the trained encoder as a model directory on rank 0; returns its path there.

    ``strategy.lightning_module_state_dict()`` gathers the full weights under FSDP, so every
    rank must call this. The weights go into a fresh CPU encoder (uncompiled, fp32) first.
    """
    from codemlm.checkpoint import save_model_dir
    from codemlm.model import CodeEncoder

    state = trainer.strategy.lightning_module_state_dict()
    out: Path | None = None
    if trainer.is_global_zero:
        weights = {k[len(prefix) :]: v.detach().cpu() for k, v in state.items() if k.startswith(prefix)}
        fresh = CodeEncoder(model_config)
        fresh.load_state_dict(weights)
        fresh.eval()
        out = save_model_dir(config.export_dir, fresh, tokenizer, summary=summary)
    trainer.strategy.barrier("codemlm-export")
    return out
