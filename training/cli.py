"""``codemlm train``: pretrain the encoder (masked language model) with Lightning.

This subcommand lives in ``training``, not in ``codemlm.cli``: the library never imports the
training layer. ``codemlm``'s parser finds it through the ``codemlm.commands`` entry point
that this project declares (``train = "training.cli:register"``), so the arrow points from
``training`` down to ``codemlm`` only (docs/ARCHITECTURE.md).

With no arguments it trains the ``tiny`` model on a slice of the Python standard library
(built into the cache on first use) for a few hundred steps on the CPU, with a progress bar
and a summary — the quickest way to see training work. Real runs take ``--config`` (a YAML
file, or the name of a shipped one: tiny, small, base, default) and ``--data DIR`` from
``codemlm corpus build``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from codemlm.errors import CodemlmError

__all__ = ["build_config", "register"]

# Direct flags for the common overrides: flag dest -> dotted config key.
_FLAG_KEYS = {
    "data": "data.dir",
    "out": "trainer.out_dir",
    "export": "trainer.export_dir",
    "preset": "model.preset",
    "max_steps": "optim.max_steps",
    "batch_size": "optim.batch_size",
    "lr": "optim.lr",
    "devices": "trainer.devices",
    "num_nodes": "trainer.num_nodes",
    "strategy": "trainer.strategy",
    "accelerator": "trainer.accelerator",
    "precision": "trainer.precision",
    "num_workers": "data.num_workers",
    "seed": "trainer.seed",
    "init_from": "init_from",
    "resume": "trainer.resume",
}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the code encoder (masked language model)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", "-c", metavar="YAML", help="config file or shipped name (default: default)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set optim.lr=3e-4 (repeatable)",
    )
    p.add_argument("--data", metavar="DIR", help="data directory from `codemlm corpus build`")
    p.add_argument("--out", metavar="DIR", help="run directory (checkpoints, logs)")
    p.add_argument("--export", metavar="DIR", help="where the model directory goes (default OUT/model)")
    p.add_argument("--preset", help="model preset: tiny, small, base")
    p.add_argument("--max-steps", type=int, metavar="N")
    p.add_argument("--batch-size", type=int, metavar="N", help="windows per device per step")
    p.add_argument("--lr", type=float, metavar="LR", help="peak learning rate")
    p.add_argument("--devices", metavar="N", help="devices per node (a count, auto or -1)")
    p.add_argument("--num-nodes", type=int, metavar="N")
    p.add_argument("--strategy", choices=("auto", "ddp", "fsdp", "ddp_spawn", "single_device"))
    p.add_argument("--accelerator", choices=("auto", "cpu", "gpu", "cuda", "mps"))
    p.add_argument("--precision", help="auto, 32-true, bf16-mixed, 16-mixed")
    p.add_argument("--num-workers", type=int, metavar="N", help="data loader workers")
    p.add_argument("--seed", type=int)
    p.add_argument("--init-from", metavar="MODEL_DIR", help="start from the weights of a model directory")
    p.add_argument("--resume", metavar="CKPT|last", help="continue a run from a Lightning checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.set_defaults(handler=_handle)


def build_config(args: argparse.Namespace) -> Any:
    """The TrainConfig the arguments describe (YAML, then --set, then direct flags)."""
    from training.config import load_config

    values: dict[str, Any] = {}
    for dest, key in _FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is not None:
            values[key] = value
    if args.no_progress:
        values["trainer.progress"] = False
    return load_config(args.config, args.overrides, values)


def _handle(args: argparse.Namespace) -> int:
    config = build_config(args)
    if args.print_config:
        import yaml

        sys.stdout.write(yaml.safe_dump(config.to_dict(), sort_keys=False))
        return 0
    try:
        from training.progress import print_summary
        from training.run import run
    except ModuleNotFoundError as exc:  # the base install has no Lightning / datasets
        raise CodemlmError(
            f"`codemlm train` needs the 'train' extra ({exc.name} is not installed): "
            "pip install -e '.[train]' in the codemlm checkout"
        ) from None

    # The words the user typed (main() may stash its argv on the namespace; else the process's).
    words = getattr(args, "argv", None)
    command = ["codemlm", *(words if words is not None else sys.argv[1:])]
    try:
        result = run(config, command=command)
    except KeyboardInterrupt:
        print(_resume_hint(config, command), file=sys.stderr)
        return 130
    if result.model_dir is not None:
        print_summary(result)
    return 0


def _resume_hint(config: Any, command: list[str]) -> str:
    """What to type to continue an interrupted run from its last checkpoint."""
    from training.run import LAST_CHECKPOINT, checkpoint_dir

    last = checkpoint_dir(config) / LAST_CHECKPOINT
    if not last.is_file():
        return "codemlm: training interrupted before its first checkpoint; nothing to resume"
    words: list[str] = []
    skip = False
    for word in command:  # drop an earlier --resume X / --resume=X
        if skip or word.startswith("--resume="):
            skip = False
            continue
        if word == "--resume":
            skip = True
            continue
        words.append(word)
    return f"codemlm: training interrupted; continue from {last} with:\n  {' '.join(words)} --resume last"
