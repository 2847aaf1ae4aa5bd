"""``codemlm corpus build|stats``: source files -> DIR/files -> DIR/tokenizer.json -> DIR/tokens.

One ``build`` command makes the whole data directory of docs/INTERFACES.md: it walks the
sources (the running Python's standard library when none are named), trains a tokenizer on the
train split (or copies the one given) and cuts the files into training windows. The work is
:func:`codemlm.corpus_build.build_corpus`, the same pipeline training's first run uses; this
module only turns arguments into its parameters and prints its summary.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from codemlm.errors import InputError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("corpus", help="build a training corpus from repositories or datasets")
    actions = parser.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)

    build = actions.add_parser(
        "build",
        help="walk sources, filter, parse, train a tokenizer, cut training windows",
        description="Build DIR/files (files with syntax spans), DIR/tokenizer.json, DIR/tokens "
        "(training windows) and DIR/stats.json. With no SRC and no --hf-dataset the running "
        "Python's standard library is the corpus.",
    )
    build.add_argument("sources", nargs="*", metavar="SRC", help="repository folders or source files")
    build.add_argument("--out", required=True, metavar="DIR", help="the data directory to write")
    hf = build.add_argument_group("Hugging Face datasets")
    hf.add_argument(
        "--hf-dataset",
        metavar="NAME",
        help="a hub dataset name, a local folder of data files, a save_to_disk folder, or a .jsonl/.parquet file",
    )
    hf.add_argument("--text-column", default="content", metavar="COL", help="default: %(default)s")
    hf.add_argument("--hf-split", default="train", metavar="SPLIT", help="default: %(default)s")
    hf.add_argument("--path-column", metavar="COL", help="file paths (their extension gives the language)")
    hf.add_argument("--language-column", metavar="COL", help="language names such as Python, C++")
    hf.add_argument("--hf-language", metavar="LANG", help="the language of every row, when no column says")
    hf.add_argument("--repo-column", metavar="COL", help="repository names (for --split-by repo)")
    hf.add_argument("--hf-limit", type=int, metavar="N", help="read at most N rows")
    filters = build.add_argument_group("filters and split")
    filters.add_argument(
        "--max-file-bytes", type=int, default=1_000_000, metavar="B", help="default: %(default)s"
    )
    filters.add_argument(
        "--validation-fraction", type=float, default=0.05, metavar="F", help="default: %(default)s"
    )
    filters.add_argument("--split-by", choices=("file", "repo"), default="file", help="default: %(default)s")
    filters.add_argument("--seed", type=int, default=0, metavar="S", help="split seed; default: %(default)s")
    filters.add_argument("--languages", metavar="L1,L2", help="keep only these languages (default: all)")
    tok = build.add_argument_group("tokenizer and windows")
    tok.add_argument("--tokenizer", metavar="PATH", help="use this tokenizer.json instead of training one")
    tok.add_argument("--vocab-size", type=int, default=16384, metavar="V", help="default: %(default)s")
    tok.add_argument(
        "--seq-len", type=int, default=512, metavar="L", help="window length; default: %(default)s"
    )
    tok.add_argument("--no-tokenize", action="store_true", help="stop after DIR/files and stats.json")
    build.add_argument(
        "--num-proc", type=int, default=1, metavar="N", help="parallel workers; default: %(default)s"
    )
    build.add_argument("--quiet", action="store_true", help="no progress bars or summary table")
    build.add_argument("--json", action="store_true", help="print stats.json as the last line of stdout")
    build.set_defaults(handler=_build)

    stats = actions.add_parser("stats", help="show the summary of a built corpus (DIR/stats.json)")
    stats.add_argument("dir", metavar="DIR")
    stats.add_argument("--json", action="store_true", help="print the raw JSON")
    stats.set_defaults(handler=_stats)


def _corpus_config(args: argparse.Namespace) -> Any:
    from codemlm.config import CorpusConfig
    from codemlm.languages import get_language

    languages: tuple[str, ...] = ()
    if args.languages:
        languages = tuple(
            get_language(name.strip()).name for name in args.languages.split(",") if name.strip()
        )
    return CorpusConfig(
        max_file_bytes=args.max_file_bytes,
        validation_fraction=args.validation_fraction,
        split_by=args.split_by,
        seed=args.seed,
        languages=languages,
    )


def _build(args: argparse.Namespace) -> int:
    from rich.console import Console

    from codemlm.config import ChunkingConfig
    from codemlm.corpus_build import build_corpus
    from codemlm.corpus_stats import stats_table
    from codemlm.sources import HFSource, stdlib_root

    if args.num_proc < 1:
        raise InputError("--num-proc must be at least 1")
    config = _corpus_config(args)
    chunking = None if args.no_tokenize else ChunkingConfig(seq_len=args.seq_len)
    sources: list[str] = list(args.sources)
    hf = None
    if args.hf_dataset:
        hf = HFSource(
            name=args.hf_dataset,
            text_column=args.text_column,
            split=args.hf_split,
            path_column=args.path_column,
            language_column=args.language_column,
            language=args.hf_language,
            repo_column=args.repo_column,
            limit=args.hf_limit,
        )
    elif not sources:
        sources = [str(stdlib_root())]
    import datasets  # first: a missing 'train' extra is one line before any output (cli.main)

    if args.quiet:
        datasets.disable_progress_bars()  # this process only: the command's output stays clean
    console = Console(stderr=True, quiet=args.quiet)
    console.print(f"[bold]corpus[/bold] from {', '.join(sources + ([f'hf:{hf.name}'] if hf else []))}")
    stats = build_corpus(
        sources,
        Path(args.out),
        config,
        num_proc=args.num_proc,
        hf=hf,
        progress=not args.quiet,
        chunking=chunking,
        tokenizer=args.tokenizer,
        vocab_size=args.vocab_size,
    )
    data = stats.to_dict()
    if not args.quiet:
        Console().print(stats_table(data))
    if args.json:
        print(json.dumps(data))
    return 0


def _stats(args: argparse.Namespace) -> int:
    from rich.console import Console

    from codemlm.corpus_stats import load_stats, stats_table

    data = load_stats(args.dir)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        Console().print(stats_table(data))
    return 0
