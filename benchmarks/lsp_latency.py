"""Completion and search latency through the language server, over stdio, on real files.

What an editor user waits for: the time from writing a ``textDocument/completion`` (or
``workspace/executeCommand codemlm.search``) request to reading its response, with the
server as a subprocess, exactly as an editor runs it. The files are standard-library modules
of 200-2,000 lines; completion is asked right after a ``.`` that starts an attribute access
(``self.|name``), the place where editors ask most. jedi-language-server answers the same
positions in the same run, after codemlm's server has exited (the two never share the CPU).

Search queries are the first sentences of the docstrings of functions in those files, asked
of the index the server built of them.

    python benchmarks/lsp_latency.py --model DIR            # a trained model directory
    python benchmarks/lsp_latency.py --random-model small   # latency of a preset's shape, random weights

The last line of stdout is one JSON object with every figure (``--json`` prints only that).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

_ATTRIBUTE = re.compile(r"\b[A-Za-z_]\w*\.(?=[A-Za-z_])")


@dataclass
class Timings:
    seconds: list[float] = field(default_factory=list)
    errors: int = 0
    empty: int = 0

    def summary(self) -> dict[str, Any]:
        values = sorted(self.seconds)
        if not values:
            return {"n": 0, "errors": self.errors, "empty": self.empty}
        return {
            "n": len(values),
            "p50_ms": round(1000 * statistics.median(values), 1),
            "p95_ms": round(1000 * values[min(len(values) - 1, int(0.95 * len(values)))], 1),
            "mean_ms": round(1000 * statistics.fmean(values), 1),
            "max_ms": round(1000 * values[-1], 1),
            "errors": self.errors,
            "empty": self.empty,
        }


# --------------------------------------------------------------------------- the work
def pick_files(count: int, rng: random.Random) -> list[Path]:
    from codemlm.sources import stdlib_root

    root = stdlib_root()
    chosen = []
    for path in sorted(root.glob("*.py")) + sorted(root.glob("*/*.py")):
        if "test" in path.parts[-2:] or path.name.startswith("test") or "site-packages" in path.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if 200 <= text.count("\n") <= 2000:
            chosen.append(path)
    rng.shuffle(chosen)
    return sorted(chosen[:count])


def make_workspace(files: list[Path], into: Path) -> list[Path]:
    from codemlm.sources import stdlib_root

    root = stdlib_root()
    copies = []
    for path in files:
        target = into / "__".join(path.relative_to(root).parts)
        shutil.copyfile(path, target)
        copies.append(target)
    return copies


def utf16_len(text: str) -> int:
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def completion_positions(path: Path, per_file: int, rng: random.Random) -> list[types.Position]:
    candidates = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if line.lstrip().startswith("#"):
            continue
        for match in _ATTRIBUTE.finditer(line):
            candidates.append(types.Position(line=number, character=utf16_len(line[: match.end()])))
    rng.shuffle(candidates)
    return sorted(candidates[:per_file], key=lambda p: (p.line, p.character))


def search_queries(files: list[Path], count: int, rng: random.Random) -> list[str]:
    queries = []
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    sentence = doc.strip().split("\n\n")[0].replace("\n", " ").split(". ")[0].strip()
                    if 3 <= len(sentence.split()) <= 25:
                        queries.append(sentence)
    rng.shuffle(queries)
    return queries[:count]


def random_model(preset: str, files: list[Path], into: Path) -> Path:
    """A model directory of the preset's shape with random weights and a tokenizer trained
    on the benchmark files: the latency of that shape, nothing about quality."""
    import torch

    from codemlm.checkpoint import save_model_dir
    from codemlm.config import ModelConfig
    from codemlm.model import CodeEncoder
    from codemlm.tokenizer import CodeTokenizer

    texts = [p.read_text(encoding="utf-8") for p in files]
    tokenizer = CodeTokenizer.train_from_iterator(texts, vocab_size=16384, min_frequency=2)
    torch.manual_seed(0)
    model = CodeEncoder(ModelConfig.from_preset(preset, vocab_size=tokenizer.vocab_size)).eval()
    return save_model_dir(into, model, tokenizer, summary={"note": f"random weights, {preset} shape, latency only"})


# --------------------------------------------------------------------------- driving a server
async def start(command: list[str], root: Path, init: Any, env: dict[str, str]) -> tuple[LanguageClient, list[Any]]:
    client = LanguageClient("codemlm-latency-bench", "1")
    statuses: list[Any] = []
    client.feature("codemlm/status")(lambda params: statuses.append(params))
    client.feature(types.WINDOW_LOG_MESSAGE)(lambda params: None)
    client.feature(types.WINDOW_SHOW_MESSAGE)(lambda params: print("  server says:", params.message, file=sys.stderr))
    client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)(lambda params: None)
    client.feature(types.PROGRESS)(lambda params: None)
    client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)(lambda params: None)
    client.feature(types.CLIENT_REGISTER_CAPABILITY)(lambda params: None)
    client.feature(types.WORKSPACE_CONFIGURATION)(lambda params: [None for _ in params.items])
    await client.start_io(*command, env=env)
    server = client._server
    if server is not None and server.stderr is not None:  # drain it, or a chatty server blocks
        stderr = server.stderr

        async def drain() -> None:
            while await stderr.read(65536):
                pass

        asyncio.get_running_loop().create_task(drain())
    capabilities = types.ClientCapabilities(
        window=types.WindowClientCapabilities(work_done_progress=True),
        text_document=types.TextDocumentClientCapabilities(
            completion=types.CompletionClientCapabilities(
                completion_item=types.ClientCompletionItemOptions(snippet_support=False)
            )
        ),
    )
    await client.initialize_async(
        types.InitializeParams(
            process_id=os.getpid(), root_uri=root.as_uri(), capabilities=capabilities, initialization_options=init
        )
    )
    client.initialized(types.InitializedParams())
    return client, statuses


async def stop(client: LanguageClient) -> None:
    try:
        await asyncio.wait_for(client.shutdown_async(None), 30)
        client.exit(None)
    finally:
        await client.stop()


def open_files(client: LanguageClient, files: list[Path]) -> None:
    for path in files:
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=path.as_uri(), language_id="python", version=1, text=path.read_text(encoding="utf-8")
                )
            )
        )


async def time_completions(
    client: LanguageClient, positions: list[tuple[Path, types.Position]], warmup: int
) -> Timings:
    timings = Timings()
    for index, (path, position) in enumerate(positions[:warmup] + positions):
        params = types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=path.as_uri()), position=position)
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(client.text_document_completion_async(params), 120)
        except Exception:  # jedi answers some positions with an internal error
            if index >= warmup:
                timings.errors += 1
            continue
        elapsed = time.perf_counter() - started
        if index < warmup:
            continue
        items = result.items if isinstance(result, types.CompletionList) else (result or [])
        timings.empty += not items
        timings.seconds.append(elapsed)
    return timings


async def time_searches(client: LanguageClient, queries: list[str], k: int, warmup: int) -> Timings:
    timings = Timings()
    for index, query in enumerate(queries[:warmup] + queries):  # warm-up loads the vector matrix
        params = types.ExecuteCommandParams(command="codemlm.search", arguments=[{"query": query, "k": k}])
        started = time.perf_counter()
        result = await client.workspace_execute_command_async(params)
        elapsed = time.perf_counter() - started
        if index >= min(warmup, len(queries)):
            timings.seconds.append(elapsed)
            timings.empty += not result
    return timings


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="codemlm-lsp-bench-"))
    try:
        workspace = work / "workspace"
        workspace.mkdir()
        files = make_workspace(pick_files(args.files, rng), workspace)
        positions = [(path, pos) for path in files for pos in completion_positions(path, args.positions, rng)]
        queries = search_queries(files, args.queries, rng)
        model_dir = Path(args.model) if args.model else random_model(args.random_model, files, work / "model")
        env = {**os.environ, "CODEMLM_CACHE_DIR": str(work / "cache"), "TOKENIZERS_PARALLELISM": "false"}
        env.pop("CODEMLM_MODEL", None)
        lines = sum(p.read_text(encoding="utf-8").count("\n") for p in files)
        report: dict[str, Any] = {
            "files": len(files),
            "lines": lines,
            "positions": len(positions),
            "queries": len(queries),
            "model": str(model_dir) if args.model else f"random {args.random_model}",
            "cpus": os.cpu_count(),
        }

        started = time.perf_counter()
        command = [sys.executable, "-m", "lsp_server", "--log-file", str(work / "codemlm-lsp.log")]
        client, statuses = await start(command, workspace, {"modelDir": str(model_dir)}, env)
        try:
            while not any(getattr(s, "state", None) in ("ready", "no-model") for s in statuses):
                await asyncio.sleep(0.05)
            report["codemlm_ready_s"] = round(time.perf_counter() - started, 2)
            report["codemlm_status"] = statuses[-1].message
            open_files(client, files)
            report["codemlm_completion"] = (await time_completions(client, positions, args.warmup)).summary()
            report["codemlm_search"] = (await time_searches(client, queries, 10, args.warmup)).summary()
        finally:
            await stop(client)

        jedi = shutil.which("jedi-language-server") or str(Path(sys.executable).parent / "jedi-language-server")
        if not args.no_jedi and not Path(jedi).exists():
            # Say so: a table without its peer must not read as if the peer had been run.
            report["jedi_completion"] = None
            print("lsp_latency: jedi-language-server is not installed (pip install jedi-language-server); "
                  "no peer in this run", file=sys.stderr)
        elif not args.no_jedi:
            client, _ = await start([jedi], workspace, None, env)
            try:
                open_files(client, files)
                report["jedi_completion"] = (await time_completions(client, positions, args.warmup)).summary()
            finally:
                await stop(client)
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a model directory (written by `codemlm train`)")
    source.add_argument("--random-model", choices=["tiny", "small", "base"], help="random weights of a preset's shape")
    parser.add_argument("--files", type=int, default=12, help="stdlib files of 200-2,000 lines (default 12)")
    parser.add_argument("--positions", type=int, default=10, help="completion positions per file (default 10)")
    parser.add_argument("--queries", type=int, default=40, help="search queries (default 40)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured completions first, per server (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-jedi", action="store_true", help="skip jedi-language-server")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args))
    if not args.json:
        for name in ("codemlm_completion", "jedi_completion", "codemlm_search"):
            if report.get(name):
                s = report[name]
                print(f"{name:20s} n={s['n']:4d}  p50 {s.get('p50_ms', '-'):>7} ms  p95 {s.get('p95_ms', '-'):>7} ms  "
                      f"errors {s['errors']}  empty {s['empty']}")
        print(f"codemlm ready (model load + index) in {report['codemlm_ready_s']} s: {report['codemlm_status']}")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
