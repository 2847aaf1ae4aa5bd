"""Search evaluation over the search case format (docs/INTERFACES.md).

A case is one JSON line ``{"id", "query", "language"?, "path", "line"}`` (``line`` 1-based,
``path`` relative to the repository); its answer is the innermost definition in ``path``
whose line range contains ``line``. The repository is indexed afresh into a temporary file
(so the indexing time is real), then every query is searched once, warm.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from codemlm.embedder import Embedder
from codemlm.errors import EvaluationError, InputError, ModelNotFoundError

if TYPE_CHECKING:
    from codemlm.index import RepoIndex
    from codemlm.search_rerank import EncoderReranker

__all__ = ["SearchCase", "answer_chunk", "evaluate_search", "format_search_report", "read_search_cases"]

DEPTH = 10  # MRR is MRR@10: an answer ranked below 10 counts as a miss


@dataclass(frozen=True)
class SearchCase:
    id: str
    query: str
    path: str
    line: int  # 1-based
    language: str | None = None


def read_search_cases(queries_path: str | os.PathLike[str]) -> list[SearchCase]:
    path = Path(queries_path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvaluationError(f"cannot read search cases {path}: {exc}") from exc
    cases = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise EvaluationError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise EvaluationError(f"{path}:{number}: a case must be a JSON object")
        missing = [key for key in ("id", "query", "path", "line") if key not in obj]
        if missing:
            raise EvaluationError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
        if not isinstance(obj["query"], str) or not obj["query"].strip():
            raise EvaluationError(f"{path}:{number}: 'query' must be a non-empty string")
        if not isinstance(obj["path"], str) or not obj["path"]:
            raise EvaluationError(f"{path}:{number}: 'path' must be a non-empty string")
        line = obj["line"]
        if isinstance(line, bool) or not isinstance(line, int) or line < 1:
            raise EvaluationError(f"{path}:{number}: 'line' must be an integer >= 1 (1-based), got {line!r}")
        language = obj.get("language")
        if language is not None and not isinstance(language, str):
            raise EvaluationError(f"{path}:{number}: 'language' must be a string")
        cases.append(SearchCase(str(obj["id"]), obj["query"], Path(obj["path"]).as_posix(), line, language))
    if not cases:
        raise EvaluationError(f"{path}: no search cases")
    return cases


def answer_chunk(index: RepoIndex, case: SearchCase, cases_file: str) -> int:
    found = index.innermost_chunk(case.path, case.line - 1)
    if found is None:
        raise EvaluationError(
            f"{cases_file}: case {case.id}: no indexed definition in {case.path} contains line {case.line}"
        )
    return found


def evaluate_search(
    repo: str | os.PathLike[str],
    queries_path: str | os.PathLike[str],
    *,
    model_dir: str | os.PathLike[str] | None = None,
    mode: str = "hybrid",
    embedder: Embedder | None = None,
    index_path: str | os.PathLike[str] | None = None,
    rerank: bool = True,
    reranker: EncoderReranker | None = None,
) -> dict[str, Any]:
    """MRR@10, recall@1, recall@10, per-query latency and indexing time. ``embedder`` overrides
    the model (a benchmark peer, or a test's fake); without either, the resolved default model
    is used, and with no model at all the run is lexical (``"mode"`` says so). ``rerank=False``
    measures the fused ranking without the code-aware factors; ``reranker`` adds the search
    encoder's second look at the top (``codemlm.search_rerank``)."""
    from codemlm.index import RepoIndex
    from codemlm.search import search

    root = Path(repo)
    if not root.is_dir():
        raise InputError(f"not a directory: {root}")
    cases = read_search_cases(queries_path)
    explicit = embedder is not None
    model_label = embedder.model_id if embedder is not None else None
    if embedder is None and mode != "lexical":
        from codemlm.checkpoint import resolve_model_dir
        from codemlm.embedder import LazyModelEmbedder

        try:
            resolved = resolve_model_dir(None if model_dir is None else str(model_dir))
        except ModelNotFoundError:
            if model_dir is not None:
                raise
            resolved = None
        if resolved is not None:
            embedder = LazyModelEmbedder(resolved)
            model_label = str(resolved)
    effective_mode = mode if embedder is not None else "lexical"

    with tempfile.TemporaryDirectory(prefix="codemlm-eval-") as tmp:
        started = time.perf_counter()
        # A peer embedder handed in is measured as asked; the resolved model embeds only if its
        # dense side has a vote (RepoIndex.open's default).
        index = RepoIndex.open(
            root, index_path=index_path or Path(tmp) / "index.sqlite", embedder=embedder,
            embed=True if effective_mode == "dense" or (explicit and effective_mode != "lexical") else None,
        )
        try:
            update = index.update()
            index_seconds = time.perf_counter() - started
            answers = [answer_chunk(index, case, str(queries_path)) for case in cases]
            if index.embedder is None:
                effective_mode = "lexical"  # no vectors: a model whose dense side has no vote

            def run(query: str) -> list[Any]:
                if reranker is not None:
                    return reranker.search(index, query, k=DEPTH, mode=effective_mode, rerank=rerank)
                return search(index, query, k=DEPTH, mode=effective_mode, rerank=rerank)

            run(cases[0].query)  # warm: load the vector matrix (and the reranker's weights) once
            ranks: list[int | None] = []
            latencies: list[float] = []
            per_case: list[dict[str, Any]] = []
            for case, answer in zip(cases, answers, strict=True):
                t0 = time.perf_counter()
                results = run(case.query)
                latencies.append((time.perf_counter() - t0) * 1000)
                ids = [r.chunk_id for r in results]
                rank = ids.index(answer) + 1 if answer in ids else None
                ranks.append(rank)
                per_case.append({"id": case.id, "rank": rank, "language": case.language})
            chunks = index.count_chunks()
        finally:
            index.close()

    report = _metrics(ranks)
    report.update(
        {
            "cases": len(cases),
            "mode": effective_mode,
            "model": model_label,
            "encoder_rerank": None if reranker is None else {"weight": reranker.settings.weight, "depth": reranker.depth},
            "second_rerank": None if reranker is None or reranker.second is None
            else {"weight": reranker.second.settings.weight, "depth": reranker.second.depth},
            "cross_rerank": None if reranker is None or reranker.cross is None
            else {"weight": reranker.cross.settings.weight, "depth": reranker.cross.settings.depth},
            "chunks": chunks,
            "files": update.files_indexed,
            "index_seconds": round(index_seconds, 3),
            "chunks_per_second": round(chunks / index_seconds, 1) if index_seconds > 0 else None,
            "latency_ms_p50": round(float(np.percentile(latencies, 50)), 3),
            "latency_ms_p95": round(float(np.percentile(latencies, 95)), 3),
            "by_language": {
                lang: _metrics([c["rank"] for c in per_case if (c["language"] or "unknown") == lang])
                for lang in sorted({c["language"] or "unknown" for c in per_case})
            },
            "per_case": per_case,
        }
    )
    return report


def _metrics(ranks: list[int | None]) -> dict[str, Any]:
    n = max(len(ranks), 1)
    return {
        "mrr": round(sum(1.0 / r for r in ranks if r is not None) / n, 4),
        "recall_at_1": round(sum(1 for r in ranks if r == 1) / n, 4),
        "recall_at_10": round(sum(1 for r in ranks if r is not None and r <= DEPTH) / n, 4),
    }


def format_search_report(report: dict[str, Any]) -> str:
    lines = [
        f"search evaluation: {report['cases']} cases, mode {report['mode']}, model {report.get('model') or '-'}",
        f"  MRR@10     {report['mrr']:.3f}",
        f"  recall@1   {report['recall_at_1']:.3f}",
        f"  recall@10  {report['recall_at_10']:.3f}",
        f"  latency    p50 {report['latency_ms_p50']:.1f} ms, p95 {report['latency_ms_p95']:.1f} ms",
        f"  indexing   {report['chunks']} chunks from {report['files']} files in {report['index_seconds']:.2f} s",
    ]
    by_language = report.get("by_language") or {}
    if len(by_language) > 1:
        lines.append("  by language:")
        for lang, m in by_language.items():
            lines.append(f"    {lang:<12} MRR {m['mrr']:.3f}  R@1 {m['recall_at_1']:.3f}  R@10 {m['recall_at_10']:.3f}")
    return "\n".join(lines)
