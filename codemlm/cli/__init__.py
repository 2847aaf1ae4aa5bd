"""The ``codemlm`` command.

Each subcommand lives in its own module with a ``register(subparsers)`` function; heavy
imports (torch, datasets, lightning) happen inside the handlers so ``codemlm --help`` is fast.
Library errors become one line on stderr and exit status 1.

Layers above the library add subcommands through the ``codemlm.commands`` entry-point group
(``train`` comes from ``training.cli``): the library finds them by name at run time and never
imports them, so its imports point down only.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import sys
from collections.abc import Sequence

from codemlm import __version__
from codemlm.errors import CodemlmError

__all__ = ["PLUGIN_GROUP", "build_parser", "main"]

# Entry-point group through which other layers (training) contribute subcommands.
PLUGIN_GROUP = "codemlm.commands"

# Optional packages -> the extra of pyproject.toml that installs them.
_EXTRA_FOR = {"datasets": "train", "lightning": "train", "pyarrow": "train", "jedi_language_server": "bench"}

# Modules under codemlm.cli that contribute subcommands, in help order.
_COMMAND_MODULES = (
    "quickstart",
    "corpus",
    "tokenizer",
    "complete",
    "index",
    "search",
    "evaluate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codemlm",
        description="Code completion and code search from a code encoder trained on your code.",
    )
    parser.add_argument("--version", action="version", version=f"codemlm {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"codemlm.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"codemlm.cli.{name}":
                continue  # command not built yet in this tree
            raise
        module.register(subparsers)
    for entry in sorted(importlib.metadata.entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            register = entry.load()
        except ImportError:
            continue  # the providing layer is not installed here; its command is simply absent
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # The exact command line, recorded in a trained model's summary.
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except CodemlmError as exc:
        print(f"codemlm: error: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        extra = _EXTRA_FOR.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        print(
            f"codemlm: error: this command needs the '{extra}' extra ({exc.name} is not installed): "
            f"pip install -e '.[{extra}]' in the codemlm checkout",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("codemlm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed: not an error for a CLI.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
