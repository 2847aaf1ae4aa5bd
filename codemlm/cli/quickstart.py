"""``codemlm quickstart``: a short tour of the product on the shipped default model.

Indexes a repository (this project by default), searches it with queries taken from its own
definitions (a docstring's first sentence, else a function's name in words) and fills holes cut
out of its own code, so a new user sees search and completion working on *their* code before
configuring anything, with an honest count of what the model got right.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from codemlm.errors import InputError

__all__ = ["TourQuery", "command_prefix", "path_hint", "register", "tour_queries"]

# Files worth touring: big enough to hold real code, small enough to parse in a blink.
_MIN_FILE_CHARS = 1_000
_MAX_FILE_CHARS = 60_000
_SEARCH_K = 3
_COMPLETION_K = 5


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quickstart",
        help="tour: index a repository, search it and complete code with the default model",
        description="Index a repository (this project by default), then search it with queries taken "
        "from its own docstrings and function names, and fill holes cut out of its own code with the "
        "shipped default model. Ctrl-C while indexing keeps what is done: run it again to continue.",
    )
    parser.add_argument("path", nargs="?", help="repository to tour (default: codemlm's own source)")
    parser.add_argument("--model", help="model directory (default: the shipped model)")
    parser.add_argument("--query", action="append", help="your own search query (repeatable); default: "
                        "queries taken from the repository's docstrings and function names")
    parser.add_argument("--queries", type=int, default=3, help="how many queries to take from the repository")
    parser.add_argument("--holes", type=int, default=3, help="how many holes to complete")
    parser.add_argument("--index-path", help="where to keep the index (default: user cache)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=_run)


def _default_repo() -> Path:
    package_dir = Path(__file__).resolve().parents[1]
    checkout = package_dir.parent
    return checkout if (checkout / "pyproject.toml").is_file() else package_dir


@dataclass(frozen=True)
class TourQuery:
    """A search query and, when it was taken from a definition, the definition it should find."""

    text: str
    origin: str  # "docstring" | "name" | "yours"
    path: str | None = None  # repository-relative, posix
    name: str | None = None
    line: int | None = None  # 0-based first line of the definition


def _first_sentence(docstring: str) -> str:
    text = " ".join(docstring.split())
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return (match.group(1) if match else text).rstrip(".")


def _name_words(name: str) -> list[str]:
    """``parse_config_file`` / ``parseConfigFile`` / ``ParseConfigFile`` -> parse config file."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name.replace("_", " "))
    return [w.lower() for w in spaced.split() if w]


def tour_queries(files: list[tuple[str, str, str]], count: int, rng: random.Random) -> list[TourQuery]:
    """Up to ``count`` queries from the definitions of ``files`` ((path, language, text)): the
    first sentence of a docstring where one says something, else a function name of two or more
    words. At most one per file, so the tour visits several corners of the repository."""
    from codemlm.syntax import definitions

    by_doc: list[TourQuery] = []
    by_name: list[TourQuery] = []
    order = list(files)
    rng.shuffle(order)
    for path, language, text in order:
        if len(by_doc) >= count:
            break
        found = definitions(text, language)
        doc_here: TourQuery | None = None
        name_here: TourQuery | None = None
        for d in found:
            if d.kind not in ("function", "method") or d.name.startswith("_"):
                continue
            sentence = _first_sentence(d.docstring or "")
            if doc_here is None and 3 <= len(sentence.split()) <= 16 and len(sentence) <= 120:
                doc_here = TourQuery(sentence, "docstring", path, d.name, d.start_line)
            words = _name_words(d.name)
            if name_here is None and 2 <= len(words) <= 6:
                name_here = TourQuery(" ".join(words), "name", path, d.name, d.start_line)
        if doc_here is not None:
            by_doc.append(doc_here)
        elif name_here is not None:
            by_name.append(name_here)
    return (by_doc + by_name)[:count]


def command_prefix() -> tuple[Path, str]:
    """The directory holding this installation's ``codemlm`` command, and how to call it."""
    bin_dir = Path(sys.executable).parent  # not resolved: a venv's python is a symlink out of it
    script = bin_dir / ("codemlm.exe" if os.name == "nt" else "codemlm")
    return bin_dir, "codemlm" if script.exists() else f"{shlex.quote(sys.executable)} -m codemlm"


def path_hint(bin_dir: Path, path_env: str | None = None) -> str | None:
    """The shell line that makes ``codemlm`` this installation's command, or None when it
    already is (``which codemlm`` finds the one in ``bin_dir``)."""
    found = shutil.which("codemlm", path=os.environ.get("PATH", "") if path_env is None else path_env)
    if found is not None and Path(found).parent.resolve() == bin_dir.resolve():
        return None
    activate = bin_dir / "activate"
    if activate.is_file():
        return f"source {shlex.quote(str(activate))}"
    return f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"'


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.panel import Panel
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.syntax import Syntax
    from rich.table import Table

    from codemlm.candidates import Repository
    from codemlm.checkpoint import load_model_dir, resolve_model_dir
    from codemlm.embedder import search_embedder
    from codemlm.index import RepoIndex
    from codemlm.infill import InfillEngine
    from codemlm.search import search
    from codemlm.search_rerank import EncoderReranker, has_search_encoder
    from codemlm.static_embedder import StaticEmbedder

    console = Console()
    repo = Path(args.path).expanduser() if args.path else _default_repo()
    if not repo.is_dir():
        raise InputError(f"not a directory: {repo}")
    repo = repo.resolve()
    bin_dir, codemlm_cmd = command_prefix()
    on_path = codemlm_cmd != "codemlm" or path_hint(bin_dir) is None
    # The command to run this tour again, exactly as given, with a codemlm the shell will find.
    again_cmd = codemlm_cmd if on_path else shlex.quote(str(bin_dir / "codemlm"))
    again = f"{again_cmd} {shlex.join(getattr(args, 'argv', None) or ['quickstart'])}"

    model_dir = resolve_model_dir(args.model)
    loaded = load_model_dir(model_dir)
    config = loaded.config
    summary = loaded.summary or {}
    console.print(
        Panel.fit(
            f"[bold]codemlm[/bold] quickstart\n"
            f"model: [cyan]{config.name}[/cyan] preset, {config.num_parameters() / 1e6:.1f}M parameters, "
            f"context {config.max_seq_len} tokens\n"
            f"from:  {escape(str(model_dir))}\n"
            f"trained: {escape(str(summary.get('trained_on', summary.get('data', 'see MODEL_CARD.md'))))}",
            title="1. the model",
        )
    )

    files = _source_files(repo)

    # 2. Index.
    console.print(f"\n[bold]2. indexing[/bold] {escape(str(repo))}")
    embedder = search_embedder(loaded)  # what `codemlm search` embeds with: the static table, if shipped
    index = RepoIndex.open(repo, index_path=args.index_path, embedder=embedder)
    try:
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
        except KeyboardInterrupt:
            # Each file is committed as it is indexed, so the work done so far is kept and the
            # next run only does the rest (unchanged files are skipped by content hash).
            console.print(
                "\n[yellow]interrupted while indexing[/yellow]: the files indexed so far are kept. "
                "To continue where it stopped, run again:"
            )
            console.print(f"    {escape(again)}", soft_wrap=True)
            return 130
        console.print(f"   {escape(str(stats))}  ({seconds:.1f} s; unchanged files are skipped on the next run)")

        # 3. Search.
        rng = random.Random(args.seed)
        if args.query:
            queries = [TourQuery(q, "yours") for q in args.query]
        else:
            queries = tour_queries(files, args.queries, rng)
        # Say what actually ranks: a model trained with MLM alone gets little or no vote.
        weight = float(embedder.dense_weight)
        if weight <= 0:
            how = "BM25 over identifiers and text; this model has no search training, so its embeddings get no vote"
        elif isinstance(embedder, StaticEmbedder):
            how = f"hybrid: BM25 over identifiers + the model's static token table (weight {weight:g})"
        else:
            how = f"hybrid: BM25 over identifiers + the model's embeddings (weight {weight:g})"
        reranker = EncoderReranker.from_model_dir(model_dir) if has_search_encoder(model_dir) else None
        if reranker is not None:
            how += f", then its search encoder rereads the top {reranker.depth}"
        run_search = reranker.search if reranker is not None else search
        console.print(f"\n[bold]3. search[/bold]  ({escape(how)})", soft_wrap=True)
        if queries and queries[0].origin != "yours":
            console.print(
                "   queries taken from this repository: a docstring's first sentence, or a function's name "
                "in words; the definition they come from should be among the first results"
            )
        elif not queries:
            console.print("   no documented or multi-word function found to make a query from; try --query")
        found_expected = 0
        for query in queries:
            results = run_search(index, query.text, k=_SEARCH_K)
            origin = "" if query.path is None else f"  [dim](the {query.origin} of {query.name} in {query.path})[/dim]"
            # One unwrapped line: the query and where it came from, copyable as is.
            console.print(f"\n   “{escape(query.text)}”{origin}", soft_wrap=True)
            table = Table(show_edge=False, pad_edge=False)
            table.add_column("", width=1)
            table.add_column("location", style="cyan", no_wrap=True)
            table.add_column("name", style="bold")
            table.add_column("score", justify="right")
            rank = None
            for i, result in enumerate(results, 1):
                expected = query.path is not None and result.path == query.path and (
                    result.start_line == query.line or result.name.split(".")[-1] == query.name
                )
                if expected and rank is None:
                    rank = i
                table.add_row(
                    "[green]✓[/green]" if expected else "",
                    escape(f"{result.path}:{result.start_line + 1}"),
                    escape(result.name),
                    f"{result.score:.3f}",
                )
            if not results:
                table.add_row("", "(no results)", "", "")
            console.print(table)
            if query.path is not None:
                found_expected += rank is not None
                if rank is None:
                    console.print(f"   [yellow]{escape(query.name or '')} was not in the first {_SEARCH_K}[/yellow]")
        asked = sum(q.path is not None for q in queries)
        if asked:
            console.print(f"\n   the definition a query came from was in the first {_SEARCH_K} results for "
                          f"{found_expected} of {asked} queries", soft_wrap=True)
        example_query = queries[0].text if queries else "parse the config file"
        holes = _pick_holes(files, args.holes, random.Random(args.seed))
        # Completion reads the rest of the repository from the index just built; the holed file
        # is left out, so the answer cannot come from its own unholed copy.
        others = {path: index.file_texts(language, exclude=path) for path, language, *_ in holes}
    finally:
        index.close()

    # 4. Completion on holes cut out of the repository's own code.
    console.print("\n[bold]4. masked-span completion[/bold]  (the hole is filled from the code on both sides)")
    engine = InfillEngine(loaded)
    if not holes:
        console.print("   no supported source file with a suitable hole was found")
    top1 = anywhere = 0
    for path, language, text, start, end in holes:
        data = text.encode("utf-8")
        answer = data[start:end].decode("utf-8")
        holed = data[:start].decode("utf-8") + data[end:].decode("utf-8")
        repository = Repository(others.get(path, []), language)
        started = time.perf_counter()
        candidates = engine.complete(holed, start, language=language, k=_COMPLETION_K, repository=repository)
        millis = (time.perf_counter() - started) * 1000
        line_start = data.rfind(b"\n", 0, start) + 1
        line_end = data.find(b"\n", end)
        before = data[line_start:start].decode("utf-8")
        after = data[end : line_end if line_end >= 0 else len(data)].decode("utf-8")
        line_no = data.count(b"\n", 0, start) + 1
        console.print(f"\n   {escape(path)}:{line_no}  ({millis:.0f} ms)")
        console.print(Syntax((before + "▁▁▁" + after).strip(), language if language != "tsx" else "typescript",
                             theme="ansi_dark"))
        right = [c.text.strip() == answer.strip() for c in candidates]
        for rank, (cand, ok) in enumerate(zip(candidates, right, strict=True), 1):
            mark = "[green]✓[/green]" if ok else " "
            flag = "" if cand.syntax_ok else "  [dim](breaks the parse: ranked last)[/dim]"
            console.print(f"   {mark} {rank}. {escape(repr(cand.text)):40} score {cand.score:.3f}{flag}")
        if not candidates:
            console.print("     (no suggestion)")
        top1 += bool(right[:1] and right[0])
        anywhere += any(right)
        console.print(f"   original: {escape(repr(answer))}")
    if holes:
        console.print(
            f"\n   filled correctly: {top1} of {len(holes)} holes as the first suggestion, "
            f"{anywhere} of {len(holes)} among the first {_COMPLETION_K}",
            soft_wrap=True,
        )

    # What to type next: the exact command, which may not be on PATH yet (it lives in .venv/bin).
    hint = None if on_path else path_hint(bin_dir)
    console.print("\n[bold]next[/bold]")
    if hint is not None:
        console.print(f"   codemlm is installed in {escape(str(bin_dir))}, which is not on your PATH; first run:")
        console.print(f"     {escape(hint)}", soft_wrap=True)
        console.print("   then:")
    # The same model and index as this tour, so the search reuses what was just indexed.
    same = [w for flag, value in (("--model", args.model), ("--index-path", args.index_path)) if value
            for w in (flag, value)]
    search_words = ["search", example_query, str(repo), *same]
    console.print(f"     {escape(codemlm_cmd)} {escape(shlex.join(search_words))}", soft_wrap=True)
    console.print(f"     {escape(codemlm_cmd)} complete FILE --line L --column C", soft_wrap=True)
    lsp = "codemlm-lsp" if codemlm_cmd == "codemlm" else f"{shlex.quote(sys.executable)} -m lsp_server"
    console.print(f"     {escape(lsp)}   (the language server; editor setups in editors/README.md)", soft_wrap=True)
    return 0


def _source_files(repo: Path) -> list[tuple[str, str, str]]:
    """(path, language, text) of the repository's supported source files, sorted by path."""
    from codemlm.config import CorpusConfig
    from codemlm.sources import CorpusStats, iter_repository

    return sorted(
        ((f.path, f.language, f.text) for f in iter_repository(repo, CorpusConfig(), CorpusStats())),
        key=lambda f: f[0],
    )


def _pick_holes(
    files: list[tuple[str, str, str]], count: int, rng: random.Random
) -> list[tuple[str, str, str, int, int]]:
    """Choose identifier and argument spans from the repository's own files, deterministically:
    one per file, from files of any supported language (the repository's own mix)."""
    from codemlm.kinds import SpanKind
    from codemlm.syntax import parse

    candidates = [f for f in files if _MIN_FILE_CHARS < len(f[2]) < _MAX_FILE_CHARS] or list(files)
    rng.shuffle(candidates)
    holes: list[tuple[str, str, str, int, int]] = []
    for path, language, text in candidates:
        if len(holes) >= count:
            break
        data = text.encode("utf-8")
        spans = [
            s
            for s in parse(text, language).spans
            if s.kind in (SpanKind.IDENTIFIER, SpanKind.ARGUMENTS)
            and 3 <= s.end - s.start <= 24
            and b"\n" not in data[s.start : s.end]
        ]
        if spans:
            span = rng.choice(spans)
            holes.append((path, language, text, span.start, span.end))
    return holes
