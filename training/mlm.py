"""Masked-language-model pretraining of the code encoder with Lightning.

:class:`MLMModule` wraps :class:`codemlm.model.CodeEncoder`: AdamW without weight decay on
norms, biases and embeddings, linear warm-up then cosine/linear decay per optimizer step,
metrics (loss, masked-token accuracy overall and per span kind, tokens/s, lr; validation
loss and perplexity). :func:`train_mlm` is the ``mlm`` task of ``training.run``: data, model,
trainer, fit (or resume), export of a model directory, summary.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule
from torch import nn

from codemlm.config import ModelConfig
from codemlm.errors import CheckpointError, ConfigError
from codemlm.kinds import SpanKind
from codemlm.model import CodeEncoder
from training.config import OptimConfig, TrainConfig

__all__ = ["AdamWModule", "MLMModule", "lr_factor", "parameter_groups", "train_mlm"]

_NUM_KINDS = max(SpanKind) + 1


def lr_factor(step: int, *, warmup_steps: int, max_steps: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the peak learning rate after ``step`` optimizer steps."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    decay_steps = max(1, max_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / decay_steps))
    shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress
    return min_ratio + (1.0 - min_ratio) * shape


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices only: norms, biases and embedding tables are left undecayed."""
    embedding_params = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        if param.ndim < 2 or id(param) in embedding_params:
            no_decay.append(param)
        else:
            decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


class AdamWModule(LightningModule):
    """A task's LightningModule optimised by AdamW under the warm-up + decay schedule of
    :func:`lr_factor` (``self.optim``), fused where nothing is scaled, with clipping that works
    with the fused optimizer."""

    optim: OptimConfig

    def adamw_with_schedule(self, groups: list[dict[str, Any]]) -> dict[str, Any]:
        """What ``configure_optimizers`` returns: AdamW over ``groups``, the schedule stepped per
        optimizer step."""
        opt = self.optim
        # A fused AdamW updates every parameter in one vectorized pass (CPU and CUDA). Under fp16
        # AMP it unscales the gradients inside its step, after clipping would have had to see
        # them, so there it stays unfused when clipping; bf16 and fp32 scale nothing.
        try:
            precision = str(self.trainer.precision)
        except RuntimeError:  # not attached to a Trainer (a module built by hand): nothing is scaled
            precision = "32"
        scaled = precision.startswith("16")
        fused = self.device.type in ("cpu", "cuda") and not (scaled and opt.grad_clip > 0)
        optimizer = torch.optim.AdamW(groups, lr=opt.lr, betas=opt.betas, eps=opt.eps, fused=fused)

        def factor(step: int) -> float:
            return lr_factor(step, warmup_steps=opt.warmup_steps, max_steps=opt.max_steps, schedule=opt.schedule,
                             min_ratio=opt.min_lr_ratio)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_gradient_clipping(
        self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        if gradient_clip_val and getattr(optimizer, "_step_supports_amp_scaling", False):
            # Lightning's AMP plugin refuses to clip for any optimizer that could unscale itself;
            # this one was fused only where nothing is scaled (adamw_with_schedule), so the
            # gradients here are the true ones and clipping them is what the plugin would do.
            torch.nn.utils.clip_grad_norm_(self.parameters(), float(gradient_clip_val))
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)


class MLMModule(AdamWModule):
    """The encoder under masked-language-model training."""

    tokens_seen: torch.Tensor

    def __init__(
        self,
        model_config: ModelConfig,
        optim: OptimConfig,
        *,
        compile: bool = False,
        log_every: int = 10,
    ) -> None:
        super().__init__()
        self.save_hyperparameters({"model": asdict(model_config), "optim": asdict(optim)})
        self.model_config = model_config
        self.optim = optim
        self.encoder = CodeEncoder(model_config)
        self.compile_model = compile
        self.log_every = log_every
        # Tokens (non-padding) consumed by all ranks; a buffer so checkpoints carry it.
        self.register_buffer("tokens_seen", torch.zeros((), dtype=torch.long))
        self._tokens_pending: torch.Tensor | None = None  # this rank's tokens since the last sync
        self._rate_clock: tuple[float, int] | None = None  # (time, tokens_seen) at the last rate log
        self._val: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ setup
    def configure_model(self) -> None:
        if self.compile_model and not getattr(self, "_compiled", False):
            # Compile in place: parameter names (and so checkpoints) stay the same.
            self.encoder.compile()
            self._compiled = True

    def configure_optimizers(self) -> Any:
        return self.adamw_with_schedule(parameter_groups(self.encoder, self.optim.weight_decay))

    # ------------------------------------------------------------------ metrics
    def _accuracy_by_kind(
        self, out: Any, mask_kind: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(correct Bool[N], correct per kind Float[K], count per kind Float[K])."""
        correct = out.logits.argmax(dim=-1) == out.targets  # [N]
        kinds = mask_kind[out.positions].clamp(0, _NUM_KINDS - 1)  # [N], row-major like the logits
        hits = torch.bincount(kinds, weights=correct.float(), minlength=_NUM_KINDS)
        counts = torch.bincount(kinds, minlength=_NUM_KINDS).float()
        return correct, hits, counts

    def _sync_tokens(self) -> int:
        """Fold every rank's pending token count into ``tokens_seen`` (a collective: all ranks call it)."""
        pending = self._tokens_pending
        if pending is None:
            pending = torch.zeros((), dtype=torch.long, device=self.device)
        total = self.trainer.strategy.reduce(pending.clone(), reduce_op="sum")
        self.tokens_seen += total.to(self.tokens_seen.device, torch.long)
        self._tokens_pending = None
        return int(self.tokens_seen.item())

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.encoder.mlm_loss(batch["input_ids"], batch["attention_mask"], batch["labels"])
        tokens = batch["attention_mask"].sum()
        self._tokens_pending = tokens if self._tokens_pending is None else self._tokens_pending + tokens
        self.log("train/loss", out.loss.detach(), prog_bar=True)
        if self.global_step % self.log_every == 0:
            with torch.no_grad():
                correct, hits, counts = self._accuracy_by_kind(out, batch["mask_kind"])
                if correct.numel():
                    self.log("train/acc", correct.float().mean(), prog_bar=True)
                for kind in SpanKind:
                    if counts[kind] > 0:
                        self.log(f"train/acc_{kind.label}", hits[kind] / counts[kind])
        return out.loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.log("train/lr", optimizer.param_groups[0]["lr"])

    def sync_and_log_tokens(self, *, log_rate: bool) -> None:
        """Fold in every rank's tokens (a collective: every rank calls it at the same step)."""
        total = self._sync_tokens()
        self.log("train/tokens", float(total))
        now = time.perf_counter()
        if log_rate:
            if self._rate_clock is not None and now > self._rate_clock[0]:
                rate = (total - self._rate_clock[1]) / (now - self._rate_clock[0])
                self.log("train/tokens_per_s", float(rate), prog_bar=True)
            self._rate_clock = (now, total)

    def on_train_end(self) -> None:
        self._sync_tokens()

    def on_validation_epoch_start(self) -> None:
        zeros = torch.zeros(_NUM_KINDS, dtype=torch.float64, device=self.device)
        self._val = {
            "loss_sum": torch.zeros((), dtype=torch.float64, device=self.device),
            "hits": zeros.clone(),
            "counts": zeros.clone(),
        }

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        out = self.encoder.mlm_loss(batch["input_ids"], batch["attention_mask"], batch["labels"])
        _, hits, counts = self._accuracy_by_kind(out, batch["mask_kind"])
        # Token-weighted: the validation loss is the mean over every masked token, not over batches.
        self._val["loss_sum"] += out.loss.double() * out.targets.numel()
        self._val["hits"] += hits.double()
        self._val["counts"] += counts.double()

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        strategy = self.trainer.strategy
        loss_sum = strategy.reduce(self._val["loss_sum"], reduce_op="sum")
        hits = strategy.reduce(self._val["hits"], reduce_op="sum")
        counts = strategy.reduce(self._val["counts"], reduce_op="sum")
        total = counts.sum()
        if total <= 0:
            return
        loss = loss_sum / total
        # Already summed over ranks, so identical everywhere; sync_dist averages equal values.
        values = {"val/loss": loss, "val/ppl": torch.exp(loss), "val/acc": hits.sum() / total}
        for kind in SpanKind:
            if counts[kind] > 0:
                values[f"val/acc_{kind.label}"] = hits[kind] / counts[kind]
        for name, value in values.items():
            self.log(name, value.float(), prog_bar=name == "val/loss", sync_dist=True)


class _TokenSync(Callback):
    """Counts tokens over all ranks at log steps and right before checkpoints are written.

    A callback rather than a module hook because callbacks' ``on_train_batch_end`` runs before
    the module's, and Lightning puts ModelCheckpoint last: the count in a checkpoint is exact.
    """

    def __init__(self, checkpoint_every: int, log_every: int) -> None:
        self.checkpoint_every = checkpoint_every
        self.log_every = log_every
        self._last_step = -1

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step  # counts this batch's optimizer step, if it made one
        if step == self._last_step:
            return  # an accumulation micro-batch, or a step already counted
        log_step = step % self.log_every == 0
        if log_step or (self.checkpoint_every and step % self.checkpoint_every == 0):
            self._last_step = step
            pl_module.sync_and_log_tokens(log_rate=log_step)


def _init_weights(module: MLMModule, model_dir: str, vocab: str) -> None:
    """Start from an exported model directory; its tokenizer must be the data's."""
    from codemlm.checkpoint import load_model_dir

    loaded = load_model_dir(model_dir)
    if loaded.tokenizer.to_str() != vocab:
        raise ConfigError(f"init_from {model_dir}: its tokenizer differs from the data directory's tokenizer")
    try:
        module.encoder.load_state_dict(loaded.model.state_dict())
    except RuntimeError as exc:
        raise CheckpointError(
            f"init_from {model_dir}: shapes differ from the configured model: {exc}"
        ) from exc


def train_mlm(
    config: TrainConfig, *, command: Sequence[str] | None = None, callbacks: Sequence[Callback] = ()
) -> Any:
    """The ``mlm`` task: returns a :class:`training.run.RunResult`."""
    from lightning.pytorch import seed_everything

    from codemlm.checkpoint import load_model_dir
    from training import run as run_lib
    from training.data import TokenWindowsDataModule, data_stats
    from training.memory import check_fits, out_of_memory_error

    data_dir = run_lib.resolve_data_dir(config)
    trainer_cfg = config.trainer
    use_gpu = run_lib.uses_gpu(config)
    if config.init_from:
        # The architecture comes from the directory we continue from; presets do not apply.
        model_config = load_model_dir(config.init_from).config
        base_config = None
    else:
        model_config = None
        base_config = config.model
    datamodule = TokenWindowsDataModule(
        data_dir,
        masking=config.masking,
        batch_size=config.optim.batch_size,
        num_workers=config.data.num_workers,
        seed=trainer_cfg.seed,
        pin_memory=use_gpu,
        group_by_length=config.data.group_by_length,
    )
    tokenizer = datamodule.tokenizer
    longest_window = datamodule.max_window_tokens()  # a scan of every split: once
    if base_config is not None:
        model_config = base_config.build(
            vocab_size=tokenizer.vocab_size,
            pad_id=tokenizer.pad_id,
            min_seq_len=longest_window,
        )
    assert model_config is not None
    if model_config.vocab_size != tokenizer.vocab_size:
        raise ConfigError(
            f"model vocabulary ({model_config.vocab_size}) differs from the data tokenizer ({tokenizer.vocab_size})"
        )
    if trainer_cfg.compile:
        # One padded width for every batch: no recompiles for new sequence lengths.
        datamodule.max_len = longest_window
    # Before the trainer exists: a shape that cannot fit writes nothing (no logs, no checkpoint).
    check_fits(model_config, config.optim.batch_size, longest_window,
               device="cuda" if use_gpu else "cpu", mask_rate=config.masking.rate)

    seed_everything(trainer_cfg.seed, workers=True, verbose=False)
    module = MLMModule(
        model_config,
        config.optim,
        compile=trainer_cfg.compile,
        log_every=trainer_cfg.log_every,
    )
    if config.init_from:
        _init_weights(module, config.init_from, tokenizer.to_str())

    all_callbacks = [_TokenSync(trainer_cfg.checkpoint_every, trainer_cfg.log_every), *callbacks]
    trainer = run_lib.build_trainer(config, callbacks=all_callbacks)
    ckpt_path = run_lib.resolve_resume(config)
    if ckpt_path is not None:
        run_lib.check_resume_checkpoint(ckpt_path, module)
    started = time.perf_counter()
    with warnings.catch_warnings():
        # The data module restores the data position itself (TokenWindowsDataModule.state_dict),
        # which Lightning's check for a resumable DataLoader cannot see.
        warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        except (RuntimeError, MemoryError) as exc:
            oom = out_of_memory_error(exc, batch_size=config.optim.batch_size, out_dir=config.out_dir)
            if oom is None:
                raise
            raise oom from exc
    seconds = time.perf_counter() - started
    run_lib.save_final_checkpoint(trainer, config)

    metrics = run_lib.final_metrics(trainer)
    summary = {
        "task": "mlm",
        "command": list(command) if command is not None else None,
        "data_dir": str(data_dir),
        "data": data_stats(data_dir),
        "train_windows": datamodule.num_rows("train"),
        "validation_windows": datamodule.num_rows("validation"),
        "steps": int(trainer.global_step),
        "tokens": int(module.tokens_seen.item()),
        "seconds": round(seconds, 2),
        "world_size": int(trainer.world_size),
        "resumed_from": ckpt_path,
        "metrics": metrics,
        "parameters": sum(p.numel() for p in module.encoder.parameters()),
        "config": config.to_dict(),
    }
    model_dir = run_lib.export_encoder(trainer, module.encoder, model_config, tokenizer, config, summary)
    return run_lib.RunResult(
        model_dir=model_dir,
        checkpoint_dir=run_lib.checkpoint_dir(config),
        global_step=int(trainer.global_step),
        tokens=int(module.tokens_seen.item()),
        seconds=seconds,
        metrics=metrics,
        summary=summary,
    )
