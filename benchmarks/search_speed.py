"""Search speed: indexing chunks/s (ours: encoder and static table, vs all-MiniLM-L6-v2) and warm query latency at 10k/100k chunks.

1. Indexing: the held-out repository (see benchmarks/make_search_cases.py) indexed from scratch
   with each embedder on ``--threads`` CPU threads (default 2): chunks per second end to end
   (walk, tree-sitter, embedding, SQLite).
2. Query latency: synthetic repositories of N chunks (N = 10k, 100k): generated Python
   functions with identifiers drawn from a fixed vocabulary, stored with random unit vectors
   of the shipped embedder's width (what a query costs does not depend on the values). Queries
   are embedded for real, as ``codemlm search`` embeds them (the model's static table when it
   has one, else the encoder), so query latency includes it. p50/p95 over warm queries (the matrix is loaded once, first query
   excluded), per mode; then again with the lexical side's postings held in memory, as the
   language server holds them (``held``: load time, size, p50/p95 and the FTS5/held ratio).
3. Query latency on real code (``--real-repo DIR``, e.g. the installed torch package, 2,285
   Python files, ~94k chunks): indexed as ``codemlm search`` indexes a repository with the
   shipped model (its static table, if it has one, as the dense side), then the same warm
   queries in the shipped default mode and lexical. The synthetic repositories above are the
   worst case for the lexical side: every query word sits in ~20% of chunks, so BM25 ranks
   ~37k matches per query; real code has rarer words.

    nice .venv/bin/python benchmarks/search_speed.py --model DIR [--sizes 10000 100000] [--out r.json]
    nice .venv/bin/python benchmarks/search_speed.py --skip-encoder --skip-minilm --sizes \
        --real-repo .venv/lib/python3.11/site-packages/torch

On a machine shared with other work, torch's and OpenBLAS's 2-thread runs spin-wait on each
other and swing by 10-100x between runs; ``OMP_NUM_THREADS=1 ... --threads 1`` gives stable
numbers (and is the faster setting for one short query at a time).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from codemlm.embedder import normalize_rows  # noqa: E402

WORDS = [
    "parse", "load", "save", "read", "write", "open", "close", "user", "account", "order", "item",
    "cart", "price", "total", "tax", "config", "setting", "option", "value", "key", "map", "list",
    "dict", "set", "queue", "stack", "tree", "node", "graph", "edge", "path", "file", "stream", "buffer",
    "cache", "token", "text", "line", "word", "count", "sum", "mean", "max", "min", "sort", "filter",
    "merge", "split", "join", "format", "render", "html", "json", "yaml", "csv", "date", "time", "retry",
    "timeout", "request", "response", "client", "server", "socket", "port", "host", "url", "query",
    "search", "index", "score", "rank", "match",
]
QUERIES = [
    "parse the config file",
    "save user account",
    "compute the total price with tax",
    "merge two sorted lists",
    "retry a request after a timeout",
    "render a date as text",
    "count words in a line",
    "load json from a path",
    "find the shortest path in a graph",
    "close the socket",
    "format html for a response",
    "cache the search index",
]


class SyntheticVectors:
    """Random unit vectors for chunks; queries embedded by the real model (same width, same id)."""

    def __init__(self, real: Any, seed: int = 0) -> None:
        self.real = real
        self.model_id = "synthetic:" + real.model_id
        self.dim = real.dim
        self.dense_weight = 1.0
        self.rng = np.random.default_rng(seed)

    def embed_code(self, texts: Sequence[str]) -> np.ndarray:
        return normalize_rows(self.rng.standard_normal((len(texts), self.dim)).astype(np.float32))

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.real.embed_query(texts), dtype=np.float32)


def synthetic_repo(root: Path, chunks: int, per_file: int = 100, seed: int = 0) -> Path:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for f in range((chunks + per_file - 1) // per_file):
        lines = []
        for _ in range(min(per_file, chunks - f * per_file)):
            name = "_".join(rng.sample(WORDS, 3))
            args = ", ".join(rng.sample(WORDS, 2))
            body = " + ".join(
                f"{a}_{b}" for a, b in zip(rng.sample(WORDS, 3), rng.sample(WORDS, 3), strict=True)
            )
            lines.append(f"def {name}({args}):\n    result = {body}\n    return result\n\n")
        (root / f"module_{f:05d}.py").write_text("\n".join(lines), encoding="utf-8")
    return root


def indexing_speed(embedder: Any, label: str, tmp: Path, repo: Path, embed: bool | None = True) -> dict[str, Any]:
    """``embed=True`` measures the embedder even when its dense side has no vote in search;
    ``None`` indexes as codemlm does by default (nothing embedded at dense weight 0)."""
    from codemlm.index import RepoIndex

    started = time.perf_counter()
    with RepoIndex.open(repo, index_path=tmp / f"{label}.sqlite", embedder=embedder, embed=embed) as index:
        stats = index.update()
        chunks = index.count_chunks()
    seconds = time.perf_counter() - started
    row = {
        "system": label,
        "chunks": chunks,
        "seconds": round(seconds, 2),
        "chunks_per_s": round(chunks / seconds, 1),
        "embedded": stats.chunks_embedded,
    }
    print(json.dumps(row), flush=True)
    return row


def warm_query_times(index: Any, modes: Sequence[str], repeats: int) -> dict[str, Any]:
    """p50/p95 per mode over ``repeats`` rounds of QUERIES, after one query that loads the matrix:
    first with the lexical side answered by FTS5 (what one CLI search does), then, under
    ``held``, by the postings held in memory (``codemlm.search.hold_postings``, what the
    language server does), with what loading them cost."""
    from codemlm.search import hold_postings

    out: dict[str, Any] = _timed_modes(index, modes, repeats)
    started = time.perf_counter()
    held = hold_postings(index)
    loaded = time.perf_counter() - started
    if held:
        postings, nbytes = index.postings_size()
        out["held"] = {
            "load_seconds": round(loaded, 2), "postings": postings, "megabytes": round(nbytes / 1e6, 1),
            **_timed_modes(index, [m for m in modes if m != "dense"], repeats),
        }
        for mode in modes:
            if mode in out["held"]:
                out["held"][mode]["p95_fts5_over_held"] = round(out[mode]["p95_ms"] / out["held"][mode]["p95_ms"], 1)
    return out


def _timed_modes(index: Any, modes: Sequence[str], repeats: int) -> dict[str, Any]:
    from codemlm.search import search

    out: dict[str, Any] = {}
    for mode in modes:
        search(index, QUERIES[0], mode=mode)
        times = []
        for _ in range(repeats):
            for query in QUERIES:
                t0 = time.perf_counter()
                search(index, query, k=10, mode=mode)
                times.append((time.perf_counter() - t0) * 1000)
        out[mode] = {
            "p50_ms": round(float(np.percentile(times, 50)), 2),
            "p95_ms": round(float(np.percentile(times, 95)), 2),
            "queries": len(times),
        }
    return out


def query_latency(real: Any, size: int, tmp: Path, repeats: int) -> dict[str, Any]:
    from codemlm.index import RepoIndex

    repo = synthetic_repo(tmp / f"synthetic_{size}", size)
    started = time.perf_counter()
    with RepoIndex.open(
        repo, index_path=tmp / f"synthetic_{size}.sqlite", embedder=SyntheticVectors(real), embed=True
    ) as index:
        index.update()
        build = time.perf_counter() - started
        out: dict[str, Any] = {"chunks": index.count_chunks(), "build_seconds": round(build, 1)}
        out.update(warm_query_times(index, ("hybrid", "lexical", "dense"), repeats))
        t0 = time.perf_counter()
        for query in QUERIES:
            real.embed_query([query])
        out["query_embedding_ms_mean"] = round((time.perf_counter() - t0) * 1000 / len(QUERIES), 2)
    print(json.dumps({"size": size, **out}), flush=True)
    return out


def real_repo_latency(embedder: Any, repo: Path, tmp: Path, repeats: int) -> dict[str, Any]:
    """Warm query latency over a real source tree, indexed as the search command would."""
    from codemlm.index import RepoIndex

    started = time.perf_counter()
    with RepoIndex.open(repo, index_path=tmp / "real.sqlite", embedder=embedder) as index:
        index.update()
        out: dict[str, Any] = {
            "repo": str(repo),
            "chunks": index.count_chunks(),
            "vectors": index.count_vectors(),
            "embedder": getattr(embedder, "model_id", None),
            "build_seconds": round(time.perf_counter() - started, 1),
        }
        out.update(warm_query_times(index, ("hybrid", "lexical"), repeats))
    print(json.dumps({"real_repo": out}), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None)
    parser.add_argument("--random-init", choices=("tiny", "small"), default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000], help="none: no latency runs")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-minilm", action="store_true")
    parser.add_argument("--skip-encoder", action="store_true", help="do not index with the full encoder (minutes)")
    parser.add_argument("--static", default=None,
                        help="a static table for the model's tokenizer (default: MODEL_DIR/static.safetensors if present)")
    parser.add_argument("--repo", default=None, help="the held-out repository (default: where make_search_cases.py puts it)")
    parser.add_argument("--real-repo", default=None, type=Path,
                        help="also time warm queries over this real source tree (indexed with the shipped embedder)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.real_repo is not None and not args.real_repo.is_dir():
        parser.error(f"--real-repo: not a directory: {args.real_repo}")

    import torch
    from make_search_cases import require_heldout_repo
    from search_quality import MiniLMEmbedder, random_init_model

    from codemlm.checkpoint import load_model_dir, resolve_model_dir
    from codemlm.embedder import LazyModelEmbedder, ModelEmbedder
    from codemlm.static_embedder import STATIC_FILE, StaticEmbedder

    torch.set_num_threads(args.threads)
    repo = require_heldout_repo(args.repo)
    tmp = Path(tempfile.mkdtemp(prefix="codemlm-search-speed-"))
    try:
        model_dir = (
            random_init_model(args.random_init, tmp / "model")
            if args.random_init
            else resolve_model_dir(args.model)
        )
        loaded = load_model_dir(model_dir)
        ours = ModelEmbedder(loaded)
        results: dict[str, Any] = {
            "model": str(model_dir),
            "preset": loaded.config.name,
            "dim": loaded.config.dim,
            "parameters": loaded.config.num_parameters(),
            "threads": args.threads,
            "indexing": [],
            "latency": {},
        }
        results["indexing"].append(
            indexing_speed(ours, f"codemlm {loaded.config.name} as shipped (dense weight {ours.dense_weight})", tmp, repo, None)
        )
        if not args.skip_encoder:
            results["indexing"].append(indexing_speed(ours, f"codemlm {loaded.config.name}", tmp, repo))
        if args.static or (model_dir / STATIC_FILE).is_file():
            static = StaticEmbedder.from_model_dir(model_dir, args.static)
            label = f"codemlm static table ({static.metadata.get('teacher')}, {static.dim} dims)"
            results["indexing"].append(indexing_speed(static, label, tmp, repo))
        if not args.skip_minilm:
            results["indexing"].append(indexing_speed(MiniLMEmbedder(), "all-MiniLM-L6-v2", tmp, repo))
        # Queries are embedded as `codemlm search` embeds them: by the model directory's static table
        # when it has one (no encoder at query time), else by the encoder.
        shipped = LazyModelEmbedder(model_dir)
        results["query_embedder"] = shipped.model_id
        for size in args.sizes:
            results["latency"][str(size)] = query_latency(shipped, size, tmp, args.repeats)
        if args.real_repo is not None:
            results["real_repo"] = real_repo_latency(shipped, args.real_repo.resolve(), tmp, args.repeats)
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the 100k-chunk indexes take a gigabyte
    return 0


if __name__ == "__main__":
    sys.exit(main())
