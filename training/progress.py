"""The short end-of-run summary a person reads after ``codemlm train``."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import RichProgressBar
from rich.console import Console
from rich.table import Table

__all__ = ["StepProgressBar", "format_count", "print_summary"]

# Progress-bar names of the logged metrics (the logs keep the full names).
_SHORT_NAMES = {
    "train/loss": "loss",
    "train/acc": "acc",
    "train/tokens_per_s": "tok/s",
    "val/loss": "val_loss",
}


class StepProgressBar(RichProgressBar):
    """Lightning's Rich bar for step-based runs: no "Epoch 3/-2", no v_num, short metric names."""

    def _get_train_description(self, current_epoch: int) -> str:
        # Set once per epoch by Lightning, so the live step count goes into the metrics instead.
        text = f"epoch {current_epoch}"
        return f"{text:{len(self.validation_description)}}"

    def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        shown: dict[str, Any] = {"step": f"{trainer.global_step}/{trainer.max_steps}"}
        for key, short in _SHORT_NAMES.items():
            if key in items:
                value = items[key]
                shown[short] = (
                    f"{value:,.0f}" if short == "tok/s" and isinstance(value, (int, float)) else value
                )
        return shown


# Metrics shown, in order, with their labels (others stay in the logs and the model card).
_SHOWN = (
    ("train/loss", "train loss"),
    ("train/acc", "train masked accuracy"),
    ("val/loss", "validation loss"),
    ("val/ppl", "validation perplexity"),
    ("val/acc", "validation masked accuracy"),
    ("val/acc_identifier", "  identifiers"),
    ("val/acc_expression", "  expressions"),
    ("val/acc_arguments", "  arguments"),
    ("val/acc_statement", "  statements"),
    ("val/mrr", "validation MRR"),
    ("val/recall_at_1", "validation recall@1"),
    ("train/tokens_per_s", "tokens/s (last interval)"),
)


def format_count(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def print_summary(result: Any, console: Console | None = None) -> None:
    """Steps, tokens, time, final metrics and where the model and checkpoints went."""
    console = console or Console(stderr=True)
    table = Table(title="codemlm train: done", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("steps", str(result.global_step))
    if result.tokens:  # the search tasks count pairs, not tokens
        table.add_row("tokens", format_count(result.tokens))
    minutes, seconds = divmod(result.seconds, 60)
    table.add_row("time", f"{int(minutes)}m{seconds:04.1f}s" if minutes else f"{seconds:.1f}s")
    if result.seconds > 0 and result.tokens:
        table.add_row("tokens/s (whole run)", format_count(result.tokens / result.seconds))
    masked = result.summary.get("task", "mlm") == "mlm"
    for key, label in _SHOWN:
        if not masked:  # the search tasks' accuracy is the answer's rank, not masked tokens
            label = label.replace("masked accuracy", "accuracy")
        if key in result.metrics:
            value = result.metrics[key]
            text = format_count(value) if key.endswith("per_s") else f"{value:.4f}"
            table.add_row(label, text)
    table.add_row("model", str(result.model_dir))
    table.add_row("checkpoints", str(result.checkpoint_dir))
    console.print(table)
    if result.model_dir is not None:
        console.print(f"Use it with --model {result.model_dir} (or set CODEMLM_MODEL={result.model_dir})")
