"""``codemlm search QUERY [PATH]``: code search over a repository, indexing it on first use.

Output modes: human (``path:line  name  score`` and a highlighted snippet per result),
``--vimgrep`` (one ``path:line:col: name`` line per hit, for pipes and quickfix lists),
``-l`` (matching paths only) and ``--json`` (one JSON object, 1-based lines, the last line of
stdout). Notices and progress go to stderr so they never mix with results. As with grep and
ripgrep, the exit status is 0 when something matched, 1 when nothing did, and 1 with a
one-line ``codemlm: error:`` on stderr for bad input.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from codemlm.cli.index import (
    add_index_arguments,
    note_rebuild,
    open_index,
    update_repairing,
    update_with_progress,
)

__all__ = ["register", "result_to_json"]

_LEXERS = {"tsx": "typescript", "cpp": "cpp", "c": "c"}

_EXAMPLES = """\
examples:
  codemlm search "parse the config file"            search the current directory
  codemlm search parseConfig ~/src/project          a symbol, in another repository
  codemlm search "retry with backoff" --lang go --exclude 'vendor/*'
  codemlm search "open a socket" --vimgrep | head   path:line:col: name, one hit a line
  codemlm search "read json" --json                 one JSON object for tools

modes: hybrid (default) fuses BM25 over identifiers with the model's embeddings, when the
model's dense side has a vote (the shipped model's has none, so hybrid is lexical and fast);
lexical is BM25 alone; dense is the embeddings alone (loads the model).
exit status: 0 if something matched, 1 if nothing did or on an error."""


class _IntermixedParser(argparse.ArgumentParser):
    """Lets options sit between QUERY and PATH (``search QUERY --lang go PATH``), as grep and
    ripgrep allow; a plain parser would bind an empty PATH at QUERY and reject the later one."""

    _inside = False

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if self._inside:  # parse_known_intermixed_args calls back in here
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return super().parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="search a repository's code with natural language or code",
        description="Search code by meaning and by name: definitions first, tests and generated copies after.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("query", help="what to look for, e.g. \"parse the config file\" or parseConfig")
    parser.add_argument("path", nargs="?", default=None, help="repository root (default: the current directory)")
    parser.add_argument("--repo", default=None, metavar="PATH", help="same as PATH (kept for older scripts)")
    parser.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    parser.add_argument("--lang", default=None, metavar="L", help="only this language (python, go, typescript, ...)")
    parser.add_argument("--path", dest="path_glob", default=None, metavar="GLOB", help="only paths matching this glob, e.g. 'src/*'")
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB",
        help="leave out paths matching this glob (repeatable), e.g. 'tests/*' or '*.d.ts'",
    )
    parser.add_argument("--mode", default="hybrid", choices=("hybrid", "lexical", "dense"))
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON object for tools")
    output.add_argument("--vimgrep", action="store_true", help="print one 'path:line:col: name' line per hit")
    output.add_argument("-l", "--files-with-matches", action="store_true", help="print only the paths that match")
    parser.add_argument("--explain", action="store_true", help="show each result's lexical and dense rank")
    parser.add_argument(
        "--rerank", action="store_true",
        help="let the model's search encoder reread the top results (better ranking; loads torch, ~1-2 s)",
    )
    parser.add_argument(
        "--no-update", action="store_true",
        help="search the index as it is, without writing to it (works on a read-only index)",
    )
    add_index_arguments(parser)
    parser.set_defaults(handler=_run)
    parser.__class__ = _IntermixedParser  # the subparsers action builds plain parsers


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


def _repository(args: argparse.Namespace) -> str:
    from codemlm.errors import InputError

    if args.path is not None and args.repo is not None and args.path != args.repo:
        raise InputError(f"two repositories given ({args.path} and --repo {args.repo}); give one")
    return args.path or args.repo or "."


def _search(args: argparse.Namespace, err: Any) -> tuple[list[Any], str]:
    from rich.markup import escape

    from codemlm.index import IndexDamagedError, default_index_path
    from codemlm.search import search

    repo = _repository(args)
    # --no-update on an existing index never writes (the file may be read-only to this user).
    index_path = args.index_path
    existing = index_path if index_path else default_index_path(repo)
    read_only = args.no_update and not args.rebuild and _exists(existing)
    index = open_index(
        repo, args.model, args.index_path, args.rebuild, err,
        embed=True if args.mode == "dense" else None, read_only=read_only,
    )
    try:
        if not read_only:
            update_repairing(index, err, verify=False)
        run = _reranked(args.model) if args.rerank else search
        for attempt in (1, 2):
            try:
                results = run(
                    index, args.query, k=args.k, language=args.lang, path_glob=args.path_glob, mode=args.mode,
                    exclude=args.exclude,
                )
                break
            except IndexDamagedError as exc:
                # Ours and damaged: say so, start it over and search the rebuilt index once.
                if attempt == 2 or index.read_only:
                    raise
                index.rebuild(str(exc))
                note_rebuild(index, err)
                update_with_progress(index, err)
        searched = args.mode if index.embedder is not None else "lexical"
        filters = _filters_named(args)
        if not results and filters:
            # Say whether the filters, not the query, left nothing: one more search, unfiltered.
            unfiltered = search(index, args.query, k=1, mode=args.mode)
            if unfiltered:
                err.print(f"codemlm: {escape(filters)} left out every match; the query has matches without it",
                          soft_wrap=True, highlight=False)
    finally:
        index.close()
    return results, searched


def _reranked(model: str | None) -> Any:
    """``search`` with the model's search encoder rereading the top (codemlm.search_rerank)."""
    from codemlm.checkpoint import resolve_model_dir
    from codemlm.errors import InputError
    from codemlm.search_rerank import EncoderReranker, has_search_encoder

    model_dir = resolve_model_dir(model)
    if not has_search_encoder(model_dir):
        raise InputError("--rerank needs a model with a search encoder (search_encoder/ in its directory); "
                         "search without --rerank")
    return EncoderReranker.from_model_dir(model_dir).search


def _filters_named(args: argparse.Namespace) -> str:
    """The filters the user gave, as a shell would take them back."""
    import shlex

    words = ["--lang", args.lang] if args.lang else []
    words += ["--path", args.path_glob] if args.path_glob else []
    for glob in args.exclude:
        words += ["--exclude", glob]
    return shlex.join(words)


def _exists(path: Any) -> bool:
    from pathlib import Path

    return Path(path).expanduser().exists()


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from codemlm.errors import InputError
    from codemlm.search import check_query

    if args.k < 1:
        raise InputError(f"-k must be at least 1, got {args.k}")
    check_query(args.query, language=args.lang)  # before any indexing: a bad query fails at once
    err = Console(stderr=True)
    results, searched = _search(args, err)
    status = 0 if results else 1

    if args.json:
        payload = {"query": args.query, "mode": searched, "results": [result_to_json(r) for r in results]}
        print(json.dumps(payload, ensure_ascii=False))
        return status
    if args.vimgrep:
        for r in results:
            print(f"{r.path}:{r.start_line + 1}:1: {r.name}")
        return status
    if args.files_with_matches:
        for path in dict.fromkeys(r.path for r in results):
            print(path)
        return status
    _print_human(results, args.explain)
    return status


def _print_human(results: list[Any], explain: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.syntax import Syntax

    out = Console(highlight=False)
    if not results:
        out.print("no results")
        return
    for result in results:
        note = ""
        if explain:
            note = f"  [dim](lexical {result.lexical_rank or '-'}, dense {result.dense_rank or '-'})[/dim]"
        out.print(
            f"[cyan]{escape(result.path)}:{result.start_line + 1}[/cyan]  [bold]{escape(result.name)}[/bold]  {result.score:.4f}{note}",
            soft_wrap=True,
        )
        lexer = _LEXERS.get(result.language, result.language)
        out.print(Syntax(result.snippet, lexer, start_line=result.start_line + 1, line_numbers=False, theme="ansi_dark"))
