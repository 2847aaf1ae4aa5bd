"""Training throughput: tokens/s and MFU of one MLM training step, ours against a peer.

For each preset, times forward + backward + AdamW on random batches for :class:`CodeEncoder`
and, in the same run on the same batches, for Hugging Face ``transformers``'
``ModernBertForMaskedLM`` of the same shape (width, layers, heads, gated-MLP width, vocabulary,
sequence length; all layers global attention, logits only at masked positions, like ours;
``BertForMaskedLM`` with an MLP of equal parameter count if ModernBERT is unavailable).

Both models are built once and timed in alternating rounds; the best round of each counts,
which keeps the ratio honest on a machine shared with other work.

MFU = model FLOPs per token x tokens/s / peak FLOPs. Model FLOPs: 6 per weight per token for
every matmul the token passes through (the MLM head only for masked tokens) plus attention
(12 x layers x width x seq_len). Peak: the datasheet dense bf16 figure for known GPUs, else a
measured matmul peak (on a CPU always measured, in the dtype trained, so CPU "MFU" is relative
to what this machine's matmul reaches in that dtype).

    python -m training.bench --preset base --compile                # on a GPU
    python -m training.bench --preset tiny small --batch-size 4 --seq-len 128 --steps 3
    python -m training.bench --preset compact --precision both --no-peer --parity-steps 300   # CPU bf16

The last line of stdout is one JSON object with every figure. The peer needs
``pip install transformers`` (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from codemlm.config import MODEL_PRESETS, MaskingConfig, ModelConfig
from codemlm.model import IGNORE_INDEX, CodeEncoder

__all__ = [
    "GPU_PEAK_BF16_FLOPS",
    "BenchResult",
    "StepTimer",
    "bench_preset",
    "main",
    "measure_matmul_peak",
    "peak_flops",
    "run_bench",
]

MASK_ID = 4  # <mask> in codemlm's tokenizer (SPECIAL_TOKENS order)
FIRST_ORDINARY_ID = 5

# Dense bf16 tensor-core peaks from NVIDIA datasheets (no sparsity), by device-name substring.
# Order matters: the more specific names come first.
GPU_PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("GH200", 989.4e12),
    ("H200", 989.4e12),
    ("H100 NVL", 835e12),
    ("H100 PCIe", 756e12),
    ("H100", 989.4e12),  # SXM
    ("H800", 989.4e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("A10", 125e12),
)


@dataclass
class BenchResult:
    name: str
    params: int
    tokens_per_s: float
    step_ms: float
    mfu: float
    loss: float
    rounds_tokens_per_s: list[float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.params,
            "tokens_per_s": round(self.tokens_per_s, 1),
            "step_ms": round(self.step_ms, 2),
            "mfu": round(self.mfu, 4),
            "loss": round(self.loss, 4),
            "rounds_tokens_per_s": [round(x, 1) for x in self.rounds_tokens_per_s],
        }


# --------------------------------------------------------------------------- peak FLOPs
def measure_matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 1024, reps: int = 5) -> float:
    """Best observed FLOP/s of an n x n matmul (a practical peak, not a datasheet one)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(reps + 1):  # the first run warms up
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def peak_flops(device: torch.device, bf16: bool = True) -> tuple[float, str]:
    """(peak FLOP/s, where the figure came from) for the dtype the benchmark trains in."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, flops in GPU_PEAK_BF16_FLOPS:
            if key in name:
                return flops, f"datasheet dense bf16 for {key} ({name})"
        return measure_matmul_peak(device, torch.bfloat16, n=8192, reps=10), f"measured bf16 matmul ({name})"
    dtype, label = (torch.bfloat16, "bf16") if bf16 else (torch.float32, "fp32")
    return measure_matmul_peak(
        device, dtype, n=2048, reps=5
    ), f"measured {label} matmul ({platform.processor() or 'cpu'}, {torch.get_num_threads()} threads)"


def resolve_precisions(choice: str, device: torch.device) -> list[bool]:
    """The bf16 flags to time: ``both`` times fp32 then bf16 for ours, in the same run."""
    if choice == "both":
        return [False, True]
    if choice == "auto":
        from codemlm.hardware import native_bf16_available

        return [native_bf16_available(device.type)]
    return [choice == "bf16"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- batches and models
def make_batches(
    config: ModelConfig, batch_size: int, seq_len: int, mask_rate: float, count: int, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random MLM batches: (input_ids with <mask> at chosen positions, labels -100 elsewhere)."""
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        ids = torch.randint(FIRST_ORDINARY_ID, config.vocab_size, (batch_size, seq_len), generator=g)
        chosen = torch.rand(ids.shape, generator=g) < mask_rate
        labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))
        inputs = torch.where(chosen, torch.full_like(ids, MASK_ID), ids)
        batches.append((inputs.to(device), labels.to(device)))
    return batches


def build_peer(config: ModelConfig, seq_len: int) -> tuple[nn.Module, str]:
    """The same shape in transformers: ModernBertForMaskedLM, else BertForMaskedLM."""
    try:
        from transformers import ModernBertConfig, ModernBertForMaskedLM
    except ImportError:  # transformers < 4.48: no ModernBERT
        return _build_bert_peer(config, seq_len)
    peer_config = ModernBertConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.dim,
        intermediate_size=config.mlp_hidden,  # ModernBERT's Wi is [D, 2*intermediate]: GeGLU like ours
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        max_position_embeddings=max(seq_len, config.max_seq_len),
        layer_types=["full_attention"] * config.n_layers,  # every layer global, as ours
        sparse_prediction=True,  # logits only at masked positions, as ours
        decoder_bias=False,
        pad_token_id=0,
        bos_token_id=2,
        cls_token_id=2,
        eos_token_id=3,
        sep_token_id=3,
    )
    peer_config._attn_implementation = "sdpa"
    return ModernBertForMaskedLM(peer_config), "transformers.ModernBertForMaskedLM"


def _build_bert_peer(config: ModelConfig, seq_len: int) -> tuple[nn.Module, str]:
    from transformers import BertConfig, BertForMaskedLM

    bert_config = BertConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.dim,
        intermediate_size=3 * config.mlp_hidden // 2,  # same MLP parameter count as a GeGLU of mlp_hidden
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        max_position_embeddings=max(seq_len, config.max_seq_len),
        pad_token_id=0,
    )
    bert_config._attn_implementation = "sdpa"
    return BertForMaskedLM(bert_config), "transformers.BertForMaskedLM"


def _ours_step(model: CodeEncoder) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda ids, labels: model.mlm_loss(ids, None, labels).loss


def _peer_step(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda ids, labels: model(input_ids=ids, labels=labels).loss


# --------------------------------------------------------------------------- timing
class StepTimer:
    """One model's training step (forward + backward + AdamW), timed over a few steps at a time."""

    def __init__(
        self,
        name: str,
        model: nn.Module,
        step_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        device: torch.device,
        *,
        compile_model: bool,
        bf16: bool,
    ) -> None:
        self.name = name
        self.bf16 = bf16
        self.model = model.to(device).train()
        self.params = sum(p.numel() for p in model.parameters())
        self.device = device
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
        self.step_loss = torch.compile(step_loss) if compile_model else step_loss
        self.loss = float("nan")
        self.step_seconds: list[float] = []  # one entry per timed round

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def run(
        self, batches: list[tuple[torch.Tensor, torch.Tensor]], steps: int, *, timed: bool = True
    ) -> None:
        _sync(self.device)
        start = time.perf_counter()
        loss = torch.zeros(())
        for i in range(steps):
            ids, labels = batches[i % len(batches)]
            with self._autocast():
                loss = self.step_loss(ids, labels)
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        _sync(self.device)
        if timed:
            self.step_seconds.append((time.perf_counter() - start) / steps)
        self.loss = float(loss.detach().float().item())

    def result(self, tokens_per_step: int, flops_per_token: float, peak: float) -> BenchResult:
        best = min(self.step_seconds)  # best round: the least disturbed by other load
        tokens_per_s = tokens_per_step / best
        return BenchResult(
            name=self.name,
            params=self.params,
            tokens_per_s=tokens_per_s,
            step_ms=best * 1e3,
            mfu=flops_per_token * tokens_per_s / peak,
            loss=self.loss,
            rounds_tokens_per_s=[tokens_per_step / s for s in self.step_seconds],
        )


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def bench_preset(preset: str, args: argparse.Namespace, device: torch.device, peak: float) -> dict[str, Any]:
    """Ours and the peer on the same batches, timed in alternating rounds (best round reported)."""
    config = _model_config(preset, args)
    seq_len = args.seq_len or config.max_seq_len
    batch_size = args.batch_size or (32 if device.type == "cuda" else 4)
    batches = make_batches(config, batch_size, seq_len, args.mask_rate, min(4, args.steps), device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    precisions = resolve_precisions(args.precision, device)
    timers = []
    flops = 0.0
    for bf16 in precisions:
        torch.manual_seed(0)  # the same initial weights in every precision
        ours_model = CodeEncoder(config)
        flops = ours_model.flops_per_token(seq_len, masked_fraction=args.mask_rate)
        name = "codemlm.CodeEncoder" + (f" [{_label(bf16)}]" if len(precisions) > 1 else "")
        timers.append(
            StepTimer(name, ours_model, _ours_step(ours_model), device, compile_model=args.compile, bf16=bf16)
        )
    peer_error = None
    if not args.no_peer:
        try:
            torch.manual_seed(0)
            peer_model, peer_name = build_peer(config, seq_len)
        except ImportError as exc:
            peer_error = f"transformers not installed ({exc}); pip install transformers"
            print(f"peer skipped: {peer_error}", flush=True)
        else:
            timers.append(
                StepTimer(
                    peer_name,
                    peer_model,
                    _peer_step(peer_model),
                    device,
                    compile_model=args.compile,
                    bf16=precisions[-1],
                )
            )

    for timer in timers:
        timer.run(batches, args.warmup, timed=False)
    for round_index in range(args.rounds):
        # Alternate who goes first, so neither always runs right after the other.
        for timer in timers if round_index % 2 == 0 else timers[::-1]:
            timer.run(batches, args.steps)

    tokens = batch_size * seq_len
    # Both models are resident together, so this is the pair's peak, not one model's.
    memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    results = [t.result(tokens, flops, peak) for t in timers]
    ours_by_precision = results[: len(precisions)]
    ours = ours_by_precision[-1]
    peer = results[len(precisions)] if len(results) > len(precisions) else None
    for r in results:
        print(_line(preset, r, batch_size, seq_len), flush=True)
    ratio = ours.tokens_per_s / peer.tokens_per_s if peer else None
    if ratio is not None:
        print(f"{preset}: ours/peer tokens/s = {ratio:.2f}x", flush=True)
    bf16_speedup = None
    if len(ours_by_precision) == 2:
        bf16_speedup = ours_by_precision[1].tokens_per_s / ours_by_precision[0].tokens_per_s
        print(f"{preset}: bf16/fp32 tokens/s = {bf16_speedup:.2f}x", flush=True)
    del timers
    _free(device)
    return {
        "preset": preset,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "mask_rate": args.mask_rate,
        "model_flops_per_token": flops,
        "ours": ours.as_dict(),
        "ours_fp32": ours_by_precision[0].as_dict() if len(precisions) == 2 else None,
        "bf16_over_fp32_tokens_per_s": round(bf16_speedup, 3) if bf16_speedup else None,
        "peer": peer.as_dict() if peer else None,
        "peer_error": peer_error,
        "ratio_tokens_per_s": round(ratio, 3) if ratio is not None else None,
        "max_memory_gb_both_models": None if memory is None else round(memory, 2),
    }


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    peak, peak_source = peak_flops(device, bf16=resolve_precisions(args.precision, device)[-1])
    print(f"device {device} | peak {peak / 1e12:.2f} TFLOP/s ({peak_source})", flush=True)
    presets = args.preset or (["base"] if device.type == "cuda" else ["tiny", "small"])
    results = [bench_preset(preset, args, device, peak) for preset in presets]
    parity = [loss_parity(p, args, device) for p in presets] if args.parity_steps else []
    return {
        "benchmark": "training_throughput",
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "dtype": "+".join(_label(b) for b in resolve_precisions(args.precision, device)),
        "loss_parity": parity,
        "peak_flops": peak,
        "peak_source": peak_source,
        "compile": args.compile,
        "steps": args.steps,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "torch": torch.__version__,
        "transformers": _transformers_version(),
        "command": " ".join(["python -m training.bench", *sys.argv[1:]]),
        "results": results,
    }


def loss_parity(preset: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """fp32 and bf16 training of the same initial model on the same batches: the losses should agree.

    Fixed random batches (the model memorises them), ``--parity-steps`` optimizer steps each,
    loss averaged over the last tenth of the steps.
    """
    config = _model_config(preset, args)
    seq_len = args.seq_len or config.max_seq_len
    batch_size = args.batch_size or (32 if device.type == "cuda" else 4)
    batches = make_batches(config, batch_size, seq_len, args.mask_rate, 8, device)
    losses: dict[str, float] = {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        model = CodeEncoder(config).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        tail: list[float] = []
        for step in range(args.parity_steps):
            ids, labels = batches[step % len(batches)]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = model.mlm_loss(ids, None, labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step >= args.parity_steps - max(1, args.parity_steps // 10):
                tail.append(float(loss.detach().float()))
        losses[_label(bf16)] = sum(tail) / len(tail)
        del model, optimizer
    gap = abs(losses["bf16"] - losses["fp32"]) / max(losses["fp32"], 1e-9)
    print(
        f"{preset}: loss after {args.parity_steps} steps fp32 {losses['fp32']:.4f} "
        f"bf16 {losses['bf16']:.4f} (relative gap {100 * gap:.2f}%)",
        flush=True,
    )
    return {"preset": preset, "steps": args.parity_steps, "loss": losses, "relative_gap": round(gap, 4)}


def _model_config(preset: str, args: argparse.Namespace) -> ModelConfig:
    overrides: dict[str, Any] = {"vocab_size": args.vocab_size} if args.vocab_size else {}
    for item in args.overrides:
        key, _, value = item.partition("=")
        if not value.lstrip("-").isdigit():
            raise SystemExit(f"bench: --set wants FIELD=INT, got {item!r}")
        overrides[key] = int(value)
    try:
        return ModelConfig.from_preset(preset, **overrides)
    except TypeError as exc:
        raise SystemExit(f"bench: {exc}") from None


def _label(bf16: bool) -> str:
    return "bf16" if bf16 else "fp32"


def _line(preset: str, r: BenchResult, batch_size: int, seq_len: int) -> str:
    return (
        f"{preset:>5} {r.name:<36} {r.params / 1e6:7.2f}M params | B={batch_size} T={seq_len} | "
        f"{r.tokens_per_s:10.0f} tok/s | {r.step_ms:8.1f} ms/step | MFU {100 * r.mfu:5.1f}% | loss {r.loss:.3f}"
    )


def _transformers_version() -> str | None:
    try:
        import transformers
    except ImportError:
        return None
    return str(transformers.__version__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset", nargs="+", choices=sorted(MODEL_PRESETS), help="default: base on GPU, tiny small on CPU"
    )
    parser.add_argument("--batch-size", type=int, help="default: 32 on GPU, 4 on CPU")
    parser.add_argument("--seq-len", type=int, help="default: the preset's max_seq_len")
    parser.add_argument("--vocab-size", type=int, help="default: the preset's (16384)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=INT",
        help="override a model field, e.g. --set dim=256 --set n_layers=4 (repeatable)",
    )
    parser.add_argument("--mask-rate", type=float, default=MaskingConfig().rate)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument(
        "--rounds", type=int, default=3, help="timed rounds, ours and peer alternating; the best round counts"
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation, autotuning)")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the training step (both models)"
    )
    parser.add_argument("--device", help="cuda, cuda:1, cpu (default: cuda if available)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--no-peer", action="store_true", help="skip the transformers peer")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "both"),
        default="auto",
        help="auto: bf16 autocast on a GPU or a CPU with native bf16; both: ours in fp32 and bf16",
    )
    parser.add_argument(
        "--parity-steps", type=int, default=0, help="also train fp32 and bf16 this many steps and compare losses"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.steps < 1 or args.rounds < 1 or args.warmup < 0 or not 0.0 < args.mask_rate < 1.0:
        print(
            "bench: --steps and --rounds must be >= 1, --warmup >= 0, --mask-rate in (0, 1)", file=sys.stderr
        )
        return 2
    report = run_bench(args)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
