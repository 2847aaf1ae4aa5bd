"""Will a training run fit in memory? Checked before anything is written, and again when it fails.

A preset that cannot fit should cost the user one line, not a swap storm, an OOM-killed
process or a run directory half written. :func:`check_fits` estimates the peak memory of a
training step from the shape (weights, gradients, AdamW state, activations kept for the
backward pass, attention scores, the head at the masked positions) and compares it with what
the device has free; :func:`out_of_memory_error` turns an allocation failure that slips past
the estimate into the same kind of one-line error.

The estimate is deliberately rough and on the generous side of the truth (it counts fp32
activations even under bf16 autocast), so it refuses only runs that clearly cannot fit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from codemlm.config import ModelConfig
from codemlm.errors import ConfigError

__all__ = ["MemoryEstimate", "available_bytes", "check_fits", "estimate_training_bytes", "out_of_memory_error"]

_GIB = 1 << 30
# Bytes per parameter: fp32 weights, fp32 gradients, AdamW's two fp32 moments.
_BYTES_PER_PARAM = 16
# fp32 values saved per token per layer for the backward pass: norms, q/k/v, attention output,
# projections and residuals (~12 x dim) plus the MLP's hidden activations before and after the
# nonlinearity (2 x mlp_hidden).
_SAVED_PER_DIM = 12
_SAVED_PER_MLP = 2


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    bytes_needed: int
    bytes_available: int | None
    device: str

    @property
    def fits(self) -> bool:
        return self.bytes_available is None or self.bytes_needed <= self.bytes_available


def parameter_count(config: ModelConfig) -> int:
    """Parameters of the encoder of this shape: the model itself, built on the meta device
    (no memory, no copy of its architecture here)."""
    import torch

    from codemlm.model import CodeEncoder

    with torch.device("meta"):
        return sum(p.numel() for p in CodeEncoder(config).parameters())


def estimate_training_bytes(config: ModelConfig, batch_size: int, seq_len: int, mask_rate: float = 0.3) -> int:
    """Peak bytes of one training step of ``config`` on ``batch_size`` windows of ``seq_len`` tokens."""
    tokens = batch_size * seq_len
    state = parameter_count(config) * _BYTES_PER_PARAM
    per_layer = tokens * (_SAVED_PER_DIM * config.dim + _SAVED_PER_MLP * config.mlp_hidden) * 4
    # Scores and probabilities of the attention (the CPU kernels may materialise them).
    attention = 2 * batch_size * config.n_heads * seq_len * seq_len * 4
    head = int(tokens * mask_rate) * config.vocab_size * 4 * 2  # logits and their gradient
    return state + config.n_layers * (per_layer + attention) + head


def available_bytes(device: str) -> int | None:
    """Free memory of ``device`` ("cpu" or "cuda[:N]"); None when it cannot be told."""
    if device.startswith("cuda"):
        try:
            import torch

            free, _total = torch.cuda.mem_get_info(torch.device(device))
            return int(free)
        except (RuntimeError, AssertionError, ValueError):
            return None
    limits = [_meminfo_available(), _cgroup_room()]
    known = [x for x in limits if x is not None]
    return min(known) if known else None


def check_fits(config: ModelConfig, batch_size: int, seq_len: int, *, device: str, mask_rate: float = 0.3) -> MemoryEstimate:
    """Raise :class:`ConfigError` (one line) when a training step of this shape cannot fit ``device``."""
    estimate = MemoryEstimate(
        parameters=parameter_count(config),
        bytes_needed=estimate_training_bytes(config, batch_size, seq_len, mask_rate),
        bytes_available=available_bytes(device),
        device=device,
    )
    if not estimate.fits:
        assert estimate.bytes_available is not None
        raise ConfigError(
            f"the {config.name or 'configured'} model ({estimate.parameters / 1e6:.1f} M parameters) with "
            f"batch {batch_size} x {seq_len} tokens needs about {estimate.bytes_needed / _GIB:.1f} GiB to train; "
            f"{device} has {estimate.bytes_available / _GIB:.1f} GiB free: use a smaller --batch-size or preset"
        )
    return estimate


def out_of_memory_error(exc: BaseException, *, batch_size: int, out_dir: Any) -> ConfigError | None:
    """The one-line error for an allocation failure during training, or None if ``exc`` is not one."""
    message = str(exc)
    is_oom = isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and ("can't allocate memory" in message or "out of memory" in message)
    )
    if not is_oom:
        return None
    return ConfigError(
        f"training ran out of memory at batch size {batch_size}: use a smaller --batch-size or preset "
        f"(checkpoints written so far stay in {out_dir})"
    )


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_room() -> int | None:
    """Room left under a cgroup v2 memory limit (containers), if there is one."""
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as f:
            current = int(f.read().strip())
        return max(0, int(limit) - current)
    except (OSError, ValueError):
        return None
