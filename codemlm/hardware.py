"""What the machine can do fast: one answer for training, inference and benchmarks.

bf16 pays off on a CPU only with native instructions (AVX512-BF16 or AMX): there a bf16 matmul
runs ~3x the fp32 rate, while an emulated bf16 path is slower than fp32. Torch is imported
lazily so the CLI can ask without paying for it.
"""

from __future__ import annotations

__all__ = ["PRECISIONS", "cpu_has_native_bf16", "native_bf16_available", "use_bf16"]

PRECISIONS = ("auto", "fp32", "bf16")  # an inference setting: auto = bf16 where it is native


def cpu_has_native_bf16() -> bool:
    """True when /proc/cpuinfo lists avx512_bf16 or amx_bf16 (False where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split())
                    return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        pass
    return False


def native_bf16_available(device_type: str = "cpu") -> bool:
    """Whether bf16 autocast on ``device_type`` runs on native hardware (and torch's kernels)."""
    import torch

    if device_type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and cpu_has_native_bf16()
    except (AttributeError, RuntimeError):
        return False


def use_bf16(precision: str, device_type: str = "cpu") -> bool:
    """Whether inference at ``precision`` runs under bf16 autocast on ``device_type`` (``auto``:
    only where bf16 is native; emulated bf16 is slower than fp32). Unknown names: ValueError."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision == "bf16"
    return native_bf16_available(device_type)
