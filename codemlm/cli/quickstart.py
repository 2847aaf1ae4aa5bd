"""``codemlm quickstart``: a short tour of the product on the shipped default model.

Indexes a repository (this project by default), runs a few searches and fills a few holes
cut out of the repository's own code, so a new user sees search and completion working
before configuring anything.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from codemlm.errors import InputError

__all__ = ["register"]

# Queries that find something in codemlm's own source; used when touring this project.
_SELF_QUERIES = (
    "redact secrets such as private keys and access tokens",
    "reciprocal rank fusion of lexical and dense results",
    "convert a line and column to a byte offset",
)
_GENERIC_QUERIES = (
    "parse command line arguments",
    "read a file and return its lines",
    "handle an error and retry",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quickstart",
        help="tour: index a repository, search it and complete code with the default model",
        description="Index a repository (this project by default), then show search results "
        "and masked-span completions from the shipped default model.",
    )
    parser.add_argument("path", nargs="?", help="repository to tour (default: codemlm's own source)")
    parser.add_argument("--model", help="model directory (default: the shipped model)")
    parser.add_argument("--query", action="append", help="a search query to run (repeatable)")
    parser.add_argument("--holes", type=int, default=3, help="how many holes to complete")
    parser.add_argument("--index-path", help="where to keep the index (default: user cache)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=_run)


def _default_repo() -> Path:
    package_dir = Path(__file__).resolve().parents[1]
    checkout = package_dir.parent
    return checkout if (checkout / "pyproject.toml").is_file() else package_dir


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.panel import Panel
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.syntax import Syntax
    from rich.table import Table

    from codemlm.checkpoint import load_model_dir, resolve_model_dir
    from codemlm.embedder import ModelEmbedder
    from codemlm.index import RepoIndex
    from codemlm.infill import InfillEngine
    from codemlm.search import search

    console = Console()
    repo = Path(args.path).expanduser() if args.path else _default_repo()
    if not repo.is_dir():
        raise InputError(f"not a directory: {repo}")
    touring_self = args.path is None

    model_dir = resolve_model_dir(args.model)
    loaded = load_model_dir(model_dir)
    config = loaded.config
    summary = loaded.summary or {}
    console.print(
        Panel.fit(
            f"[bold]codemlm[/bold] quickstart\n"
            f"model: [cyan]{config.name}[/cyan] preset, {config.num_parameters() / 1e6:.1f}M parameters, "
            f"context {config.max_seq_len} tokens\n"
            f"from:  {model_dir}\n"
            f"trained: {summary.get('trained_on', summary.get('data', 'see MODEL_CARD.md'))}",
            title="1. the model",
        )
    )

    # 2. Index.
    console.print(f"\n[bold]2. indexing[/bold] {repo}")
    index = RepoIndex.open(repo, index_path=args.index_path, embedder=ModelEmbedder(loaded))
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("indexing", total=None)

            def on_progress(done: int, total: int, path: str = "") -> None:
                progress.update(task, completed=done, total=total, description=f"indexing {path[-40:]}")

            started = time.perf_counter()
            stats = index.update(progress=on_progress)
            seconds = time.perf_counter() - started
        console.print(f"   {stats}  ({seconds:.1f} s; unchanged files are skipped on the next run)")

        # 3. Search.
        queries = args.query or list(_SELF_QUERIES if touring_self else _GENERIC_QUERIES)
        console.print("\n[bold]3. search[/bold]  (hybrid: BM25 over identifiers + the model's embeddings)")
        for query in queries:
            table = Table(title=f"“{query}”", title_justify="left", show_edge=False, pad_edge=False)
            table.add_column("location", style="cyan", no_wrap=True)
            table.add_column("name", style="bold")
            table.add_column("score", justify="right")
            for result in search(index, query, k=3):
                table.add_row(f"{result.path}:{result.start_line + 1}", result.name, f"{result.score:.3f}")
            console.print(table)
    finally:
        index.close()

    # 4. Completion on holes cut out of the repository's own code.
    console.print("\n[bold]4. masked-span completion[/bold]  (the hole is filled from the code on both sides)")
    engine = InfillEngine(loaded)
    holes = _pick_holes(repo, args.holes, random.Random(args.seed))
    if not holes:
        console.print("   no Python, JavaScript or other supported source with a suitable hole was found")
    hits = 0
    for path, language, text, start, end in holes:
        data = text.encode("utf-8")
        answer = data[start:end].decode("utf-8")
        holed = data[:start].decode("utf-8") + data[end:].decode("utf-8")
        started = time.perf_counter()
        candidates = engine.complete(holed, len(data[:start]), language=language, k=5)
        millis = (time.perf_counter() - started) * 1000
        line_start = data.rfind(b"\n", 0, start) + 1
        line_end = data.find(b"\n", end)
        line = data[line_start : line_end if line_end >= 0 else len(data)].decode("utf-8")
        shown = line.replace(answer, "▁▁▁", 1)
        console.print(f"\n   {path.relative_to(repo)}  ({millis:.0f} ms)")
        console.print(Syntax(shown.strip(), language if language != "tsx" else "typescript", theme="ansi_dark"))
        for rank, cand in enumerate(candidates, 1):
            mark = "[green]✓[/green]" if cand.text.strip() == answer.strip() else " "
            flag = "" if cand.syntax_ok else "  [dim](breaks the parse: ranked last)[/dim]"
            console.print(f"   {mark} {rank}. {cand.text!r:40} score {cand.score:.3f}{flag}")
        hits += any(c.text.strip() == answer.strip() for c in candidates[:1])
        console.print(f"   original: {answer!r}")
    if holes:
        console.print(f"\n   top-1 matched the original in {hits} of {len(holes)} holes")

    console.print(
        "\n[bold]next[/bold]: codemlm search \"your query\" --repo PATH · codemlm complete FILE --line L --column C"
        " · codemlm-lsp in your editor (see editors/README.md) · codemlm train"
    )
    return 0


def _pick_holes(repo: Path, count: int, rng: random.Random) -> list[tuple[Path, str, str, int, int]]:
    """Choose identifier and argument spans from the repository's own files, deterministically."""
    from codemlm.config import CorpusConfig
    from codemlm.corpus import CorpusStats, iter_repository
    from codemlm.kinds import SpanKind
    from codemlm.syntax import parse

    files = sorted(iter_repository(repo, CorpusConfig(), CorpusStats()), key=lambda f: f.path)
    files = [f for f in files if f.language == "python" and 2_000 < len(f.text) < 60_000] or files
    rng.shuffle(files)
    holes: list[tuple[Path, str, str, int, int]] = []
    for source in files:
        if len(holes) >= count:
            break
        data = source.text.encode("utf-8")
        spans = [
            s
            for s in parse(source.text, source.language).spans
            if s.kind in (SpanKind.IDENTIFIER, SpanKind.ARGUMENTS)
            and 3 <= s.end - s.start <= 24
            and b"\n" not in data[s.start : s.end]
        ]
        if spans:
            span = rng.choice(spans)
            holes.append((repo / source.path, source.language, source.text, span.start, span.end))
    return holes
