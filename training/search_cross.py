"""Choose the cross-encoder's weight and depth on validation and install it into a model directory.

After the ``cross`` task (``codemlm train --config search-cross``), the cross-encoder reads the
top ``depth`` of the search encoder's order and adds ``weight`` times its score
(``codemlm.search_cross``). Both are measured here exactly as ``training.search_encoder``
measures the search encoder: on the stdlib validation set, MODEL's own search underneath and
MODEL's installed search encoders (at their installed weights and depths) rereading it first, never
on a held-out set. Weight 0 is the search encoder alone. The cross-encoder is installed as
``MODEL/search_cross`` (float16) only when its best setting beats weight 0; otherwise nothing is
written and the exit is 1. ``--library`` gives the second opinion (measures only).

    nice python -m training.search_cross --cross runs/search-cross/model --model-dir codemlm/default_model
        [--weights 0 0.05 0.1 0.2 0.3 0.5] [--depths 5 10 20] [--threads 2] [--dry-run] [--library DIR ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from codemlm.errors import CheckpointError, CodemlmError
from codemlm.search_cross import SEARCH_CROSS_DIR, CrossScorer, CrossSettings
from codemlm.search_rerank import SEARCH_ENCODER_DIR, EncoderReranker, has_search_encoder, rescore
from training.search_encoder import (
    choose,
    labelled_grid,
    reciprocal_rank,
    second_opinion,
    validation_searches,
)

__all__ = ["cross_grid", "install", "main"]


def cross_grid(model_dir: Path, cross: Path, weights: Sequence[float], depths: Sequence[int], work: Path,
               library: Path | None = None) -> dict[tuple[float, int], float]:
    """MRR@10 for every (weight, depth) of the cross-encoder after MODEL's search encoder."""
    from codemlm.checkpoint import load_model_dir

    if not has_search_encoder(model_dir):
        raise CheckpointError(f"{model_dir} has no search encoder ({SEARCH_ENCODER_DIR}/): the cross-encoder reads "
                              "after one; install it first (python -m training.search_encoder)")
    reranker = EncoderReranker.from_model_dir(model_dir, cross=False)  # the installed encoders, not the cross
    scorer = CrossScorer(load_model_dir(cross))
    deepest = max(depths)
    reciprocal: dict[tuple[float, int], list[float]] = {(w, d): [] for w in weights for d in depths}
    for query, answer, results, texts in validation_searches(model_dir, work, reranker.depth, library):
        text = {r.chunk_id: t for r, t in zip(results, texts, strict=True)}
        reread = reranker.reorder(query, results, text)
        scores = dict(zip((r.chunk_id for r in reread[:deepest]),
                          scorer.scores(query, [text[r.chunk_id] for r in reread[:deepest]]).tolist(), strict=True))
        for (weight, depth), ranks in reciprocal.items():
            top = reread[:depth]
            final = rescore(top, [scores[r.chunk_id] for r in top], weight) + reread[depth:]
            ranks.append(reciprocal_rank(final, answer))
    return {key: float(np.mean(values)) for key, values in reciprocal.items()}


def install(cross: Path, model_dir: Path, weight: float, depth: int, validation: dict[str, Any]) -> Path:
    """Write ``cross`` into ``model_dir/search_cross`` (float16) with its rerank settings."""
    from codemlm.checkpoint import load_model_dir, save_model_dir

    loaded = load_model_dir(cross)
    read = CrossSettings.from_summary(loaded.summary)
    summary = {
        **loaded.summary,
        "cross_rerank": {"weight": weight, "depth": depth, "max_query_tokens": read.max_query_tokens,
                         "max_code_tokens": read.max_code_tokens},
        "cross_rerank_validation": validation,
    }
    return save_model_dir(model_dir / SEARCH_CROSS_DIR, loaded.model, loaded.tokenizer, summary=summary, dtype="float16")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.search_cross", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cross", type=Path, required=True, help="the cross task's model directory")
    parser.add_argument("--model-dir", type=Path, required=True,
                        help="the model directory to install it into (it must ship a search encoder)")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2, 0.3, 0.5])
    parser.add_argument("--depths", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dry-run", action="store_true", help="measure, install nothing")
    parser.add_argument("--library", type=Path, action="append", default=[],
                        help="a second opinion: the same kind of set from this library's docstrings (repeatable; "
                             "measures only, installs nothing)")
    args = parser.parse_args(argv)
    if any(w < 0 for w in args.weights) or any(d < 1 for d in args.depths):
        parser.error("weights must be >= 0 and depths >= 1")
    import torch

    torch.set_num_threads(max(1, args.threads))
    weights = sorted({0.0, *args.weights})
    try:
        if args.library:
            return second_opinion(lambda work, library: cross_grid(
                args.model_dir, args.cross, weights, args.depths, work, library), args.library)
        with tempfile.TemporaryDirectory(prefix="codemlm-search-cross-") as tmp:
            grid = cross_grid(args.model_dir, args.cross, weights, args.depths, Path(tmp))
        (weight, depth), best, baseline = choose(grid)
        print(json.dumps({"validation_mrr": labelled_grid(grid),
                          "chosen": {"weight": weight, "depth": depth, "mrr": round(best, 4)},
                          "search_encoder_alone": round(baseline, 4)}, indent=2))
        if weight == 0.0 or best <= baseline:
            print("search_cross: the cross-encoder does not beat the search encoder alone on validation; "
                  "nothing installed", file=sys.stderr)
            return 1
        if not args.dry_run:
            validation = {"set": "CPython stdlib docstring queries (60 modules, left out of the training pairs)",
                          "mrr": round(best, 4), "mrr_without": round(baseline, 4)}
            path = install(args.cross, args.model_dir, weight, depth, validation)
            print(f"search_cross: installed {path}", file=sys.stderr)
    except CodemlmError as exc:
        print(f"search_cross: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
