"""``codemlm complete FILE --line L --column C``: fill the hole at a position of a file.

Lines and columns are 1-based on the command line (as editors show them); columns count
characters (code points). ``--end-line/--end-column`` make the hole a selection, which the
candidates replace.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from codemlm.errors import InputError, PositionError
from codemlm.positions import TextPositions

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "complete",
        help="fill the hole at a line/column of a file with the model (masked-span completion)",
        description="Print ranked candidates for the hole at --line/--column (1-based) of FILE. "
        "With --end-line/--end-column the selection between the two positions is replaced.",
    )
    parser.add_argument("file", help="source file")
    parser.add_argument("--line", type=int, required=True, help="1-based line of the cursor / selection start")
    parser.add_argument("--column", type=int, required=True, help="1-based column (characters)")
    parser.add_argument("--end-line", type=int, help="1-based line of the selection end")
    parser.add_argument("--end-column", type=int, help="1-based column of the selection end")
    parser.add_argument("-k", type=int, default=5, help="number of candidates (default 5)")
    parser.add_argument("--model", help="model directory (default: $CODEMLM_MODEL or the shipped model)")
    parser.add_argument("--language", help="language name (default: from the file extension)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--context-tokens", type=int, help="window size in tokens (default: the engine's)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="auto: bf16 where the CPU has it natively (default)")
    parser.add_argument("--no-siblings", action="store_true",
                        help="use the file alone (default: also the rest of the repository, from its index "
                        "when `codemlm index` built one, else the files with its extension in its folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_run)


def _read_source(path: Path) -> str:
    from codemlm.regular_files import MAX_SOURCE_FILE_BYTES, read_regular_file

    if path.is_dir():
        raise InputError(f"{path} is a directory, not a source file")
    if not path.exists() and not path.is_symlink():
        raise InputError(f"no such file: {path}")
    # Regular files only, capped: a FIFO or a device would block or never end.
    data = read_regular_file(path, max_bytes=MAX_SOURCE_FILE_BYTES)
    if b"\x00" in data:
        raise InputError(f"{path} looks binary (contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not valid UTF-8 (byte {exc.start})") from exc


def _repository_side(path: Path, language: str | None) -> tuple[Any, str]:
    """The rest of FILE's repository for the candidates: its index when `codemlm index` built
    one (the file itself left out), else the files with its extension beside it."""
    from codemlm.candidates import Repository, sibling_texts
    from codemlm.errors import CodemlmError
    from codemlm.index import RepoIndex, index_covering

    found = index_covering(path)
    if found is not None:
        root, index_path = found
        try:
            with RepoIndex.open(root, index_path=index_path, read_only=True) as index:
                texts = index.file_texts(language, exclude=path.resolve().relative_to(root).as_posix())
            return Repository(texts, language), "index"
        except (CodemlmError, ValueError):
            pass  # an index we cannot read: the neighbours instead
    return Repository(sibling_texts(path), language), "siblings"


def _run(args: argparse.Namespace) -> int:
    if (args.end_line is None) != (args.end_column is None):
        raise InputError("--end-line and --end-column go together")
    if args.k < 1:
        raise InputError(f"-k must be at least 1, got {args.k}")
    for name in ("line", "column", "end_line", "end_column"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise PositionError(f"--{name.replace('_', '-')} is 1-based, got {value}")
    path = Path(args.file)
    text = _read_source(path)
    if not text:
        raise InputError(f"{path} is empty: nothing to complete")

    from codemlm.languages import get_language, language_for_path

    language = get_language(args.language).name if args.language else None
    if language is None:
        found = language_for_path(path)
        language = found.name if found else None
    positions = TextPositions(text)
    start = _offset(positions, args.line, args.column)
    end = _offset(positions, args.end_line, args.end_column) if args.end_line is not None else None
    if end is not None and end < start:
        raise PositionError("the selection ends before it starts")

    import torch

    from codemlm.checkpoint import load_model_dir, resolve_model_dir
    from codemlm.infill import InfillConfig, InfillEngine

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model_dir(resolve_model_dir(args.model))
    engine = InfillEngine(loaded, max_context_tokens=args.context_tokens, config=InfillConfig(precision=args.precision))
    repository, repository_source = (None, None) if args.no_siblings else _repository_side(path, language)
    began = time.perf_counter()
    candidates = engine.complete(text, start, end, language=language, k=args.k, repository=repository)
    elapsed_ms = (time.perf_counter() - began) * 1000
    if args.json:
        print(
            json.dumps(
                {
                    "file": str(path),
                    "language": language,
                    "repository": repository_source,
                    "line": args.line,
                    "column": args.column,
                    "latency_ms": round(elapsed_ms, 1),
                    "candidates": [
                        {
                            "text": c.text,
                            "score": round(c.score, 4),
                            "syntax_ok": c.syntax_ok,
                            "source": c.source,
                            "start": _position_json(positions, c.start_byte),
                            "end": _position_json(positions, c.end_byte),
                        }
                        for c in candidates
                    ],
                }
            )
        )
        return 0
    if not candidates:
        print("no candidates")
        return 0
    print(f"{len(candidates)} candidates for {path}:{args.line}:{args.column} ({elapsed_ms:.0f} ms)")
    for rank, c in enumerate(candidates, 1):
        flag = "ok" if c.syntax_ok else "syntax!"
        print(f"{rank:>2}. {c.score:6.3f}  {flag:<7}  {c.source:<12}  {c.text!r}")
    return 0


def _offset(positions: TextPositions, line: int, column: int) -> int:
    """Byte offset of a 1-based (line, column), with an error message in the same terms."""
    if line > positions.line_count:
        raise PositionError(f"line {line} is past the end of the file ({positions.line_count} lines)")
    length = len(positions.line_text(line - 1))
    if column > length + 1:
        raise PositionError(
            f"column {column} is past the end of line {line} ({length} characters; "
            f"the last cursor column is {length + 1})"
        )
    return positions.offset(line - 1, column - 1)


def _position_json(positions: TextPositions, offset: int) -> dict[str, int]:
    line, col = positions.line_col(offset)
    return {"line": line + 1, "column": col + 1}
