"""``codemlm search "QUERY"``: hybrid code search over a repository, indexing it on first use.

Human output: ``path:line  name  score`` and a highlighted snippet per result. ``--json``
prints one JSON object (1-based lines) as the last line of stdout for tools; notices and the
progress bar go to stderr so they never mix with it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from codemlm.cli.index import add_index_arguments, open_index, update_with_progress

__all__ = ["register", "result_to_json"]

_LEXERS = {"tsx": "typescript", "cpp": "cpp", "c": "c"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="search a repository's code with natural language or code",
        description="Hybrid search (BM25 over identifiers + the model's embeddings, fused by reciprocal rank).",
    )
    parser.add_argument("query", help="what to look for, e.g. \"parse the config file\"")
    parser.add_argument("--repo", default=".", metavar="PATH", help="repository root (default: the current directory)")
    parser.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    parser.add_argument("--lang", default=None, metavar="L", help="only this language (python, go, ...)")
    parser.add_argument("--path", default=None, metavar="GLOB", help="only paths matching this glob, e.g. 'src/*'")
    parser.add_argument("--mode", default="hybrid", choices=("hybrid", "lexical", "dense"))
    parser.add_argument("--json", action="store_true", help="print one JSON object for tools")
    parser.add_argument("--explain", action="store_true", help="show each result's lexical and dense rank")
    parser.add_argument("--no-update", action="store_true", help="search the index as it is (skip the incremental update)")
    add_index_arguments(parser)
    parser.set_defaults(handler=_run)


def result_to_json(result: Any) -> dict[str, Any]:
    return {
        "path": result.path,
        "line": result.start_line + 1,
        "end_line": result.end_line + 1,
        "name": result.name,
        "kind": result.kind,
        "language": result.language,
        "score": round(result.score, 6),
        "lexical_rank": result.lexical_rank,
        "dense_rank": result.dense_rank,
        "snippet": result.snippet,
    }


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.syntax import Syntax

    from codemlm.errors import InputError
    from codemlm.search import search

    if args.k < 1:
        raise InputError(f"-k must be at least 1, got {args.k}")
    err = Console(stderr=True)
    index = open_index(args.repo, args.model, args.index_path, args.rebuild, err)
    try:
        if not args.no_update or index.count_chunks() == 0:
            update_with_progress(index, err)
        mode = args.mode
        if mode == "dense" and index.embedder is None:
            raise InputError("--mode dense needs a model; pass --model DIR")
        results = search(index, args.query, k=args.k, language=args.lang, path_glob=args.path, mode=mode)
        searched = mode if index.embedder is not None else "lexical"
    finally:
        index.close()

    if args.json:
        payload = {"query": args.query, "mode": searched, "results": [result_to_json(r) for r in results]}
        print(json.dumps(payload, ensure_ascii=False))
        return 0
    out = Console(highlight=False)
    if not results:
        out.print("no results")
        return 0
    for result in results:
        explain = ""
        if args.explain:
            explain = f"  [dim](lexical {result.lexical_rank or '-'}, dense {result.dense_rank or '-'})[/dim]"
        out.print(
            f"[cyan]{escape(result.path)}:{result.start_line + 1}[/cyan]  [bold]{escape(result.name)}[/bold]  {result.score:.4f}{explain}",
            soft_wrap=True,
        )
        lexer = _LEXERS.get(result.language, result.language)
        out.print(Syntax(result.snippet, lexer, start_line=result.start_line + 1, line_numbers=False, theme="ansi_dark"))
    return 0
