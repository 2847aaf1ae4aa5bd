"""``codemlm tokenizer train|encode``: train the byte-level BPE, or show how a file tokenizes."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from codemlm.errors import CorpusError, InputError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tokenizer", help="train or inspect the byte-level BPE tokenizer")
    actions = parser.add_subparsers(dest="tokenizer_command", metavar="ACTION", required=True)

    train = actions.add_parser(
        "train",
        help="train a tokenizer on source repositories or a built corpus",
        description="Train a byte-level BPE on source files (repositories walked like `corpus build`) "
        "or on the train split of a corpus built by `codemlm corpus build` (--corpus DIR).",
    )
    train.add_argument("sources", nargs="*", metavar="SRC", help="repository folders or source files")
    train.add_argument("--corpus", metavar="DIR", help="a corpus directory (reads DIR/files, train split)")
    train.add_argument("--out", required=True, metavar="PATH", help="where to write tokenizer.json")
    train.add_argument("--vocab-size", type=int, default=16384, metavar="N", help="default: %(default)s")
    train.add_argument("--min-frequency", type=int, default=2, metavar="N", help="default: %(default)s")
    train.set_defaults(handler=_train)

    encode = actions.add_parser("encode", help="show the tokens of a file (or - for stdin)")
    encode.add_argument("file", metavar="FILE")
    encode.add_argument("--tokenizer", required=True, metavar="PATH", help="a tokenizer.json")
    encode.add_argument("--json", action="store_true", help="print ids and byte offsets as one JSON object")
    encode.set_defaults(handler=_encode)


def _iter_source_texts(sources: list[str]) -> Iterator[str]:
    from codemlm.config import CorpusConfig
    from codemlm.sources import CorpusStats, iter_repository

    config = CorpusConfig()
    stats = CorpusStats()
    for source in sources:
        # Files and folders alike, with the corpus filters (vendored, generated, binary...).
        for item in iter_repository(source, config, stats):
            yield item.text


def _iter_corpus_texts(corpus_dir: str) -> Iterator[str]:
    from codemlm.corpus_build import train_split_texts

    return train_split_texts(Path(corpus_dir) / "files")


def _train(args: argparse.Namespace) -> int:
    from codemlm.tokenizer import CodeTokenizer

    if bool(args.sources) == bool(args.corpus):
        raise InputError("give source folders/files or --corpus DIR (exactly one of them)")
    count = {"files": 0, "bytes": 0}

    def counted(texts: Iterator[str]) -> Iterator[str]:
        for text in texts:
            count["files"] += 1
            count["bytes"] += len(text.encode("utf-8"))
            yield text

    texts = _iter_corpus_texts(args.corpus) if args.corpus else _iter_source_texts(args.sources)
    tokenizer = CodeTokenizer.train_from_iterator(
        counted(texts), vocab_size=args.vocab_size, min_frequency=args.min_frequency
    )
    if count["files"] == 0:
        raise CorpusError("no source files found to train on")
    out = tokenizer.save(args.out)
    print(
        f"trained a {tokenizer.vocab_size}-token vocabulary on {count['files']} files "
        f"({count['bytes'] / 1e6:.2f} MB) -> {out}"
    )
    return 0


# The largest file `encode` reads: far beyond source code, well below a memory problem.
_ENCODE_MAX_BYTES = 64 << 20


def _read_text(path: Path) -> str:
    from codemlm.regular_files import read_regular_file

    # Only a regular file (a FIFO would block, /dev/zero never ends); stdin is `-`.
    data = read_regular_file(path, max_bytes=_ENCODE_MAX_BYTES)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not valid UTF-8 (byte {exc.start})") from exc


def _encode(args: argparse.Namespace) -> int:
    from codemlm.tokenizer import CodeTokenizer

    tokenizer = CodeTokenizer.from_file(args.tokenizer)
    text = sys.stdin.read() if args.file == "-" else _read_text(Path(args.file))
    encoded = tokenizer.encode(text)
    n_bytes = len(text.encode("utf-8"))
    if args.json:
        print(json.dumps({"ids": encoded.ids, "offsets": encoded.offsets, "bytes": n_bytes}))
        return 0
    for token_id, piece, (start, end) in zip(
        encoded.ids, tokenizer.tokens(encoded.ids), encoded.offsets, strict=True
    ):
        print(f"{start:>7}-{end:<7} {token_id:>6}  {json.dumps(piece, ensure_ascii=False)}")
    ratio = n_bytes / len(encoded.ids) if encoded.ids else 0.0
    print(f"{len(encoded.ids)} tokens, {n_bytes} bytes, {ratio:.2f} bytes/token")
    return 0
