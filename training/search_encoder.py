"""Choose the search encoder's rerank weight on validation and install it into a model directory.

After the contrastive stage (``codemlm train --config search-compact --init-from MODEL``), the
encoder reads the top of each search at query time (``codemlm.search_rerank``). How much its
cosine counts, and how deep it reads, is measured here on the stdlib validation set
(``training/static_validation.py``: 400 docstring queries over 60 modules the contrastive
stage leaves out, ``exclude_search_validation``), with MODEL's own search underneath (BM25 +
its static table + the code-aware reranking), never on a held-out set. Every (weight, depth)
is scored from one pass: each query is searched once to the deepest depth and the encoder's
cosines are computed once. The encoder is installed as ``MODEL/search_encoder`` (float16) only
when its best setting beats weight 0 there; otherwise nothing is written and the exit is 1.

    nice python -m training.search_encoder --encoder runs/search-compact/model --model-dir codemlm/default_model
        [--weights 0 1 2 3 4 6] [--depths 20 30 50] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from codemlm.errors import CodemlmError
from codemlm.eval_search import DEPTH, answer_chunk, read_search_cases
from codemlm.search_cross import SEARCH_CROSS_DIR, has_cross_encoder
from codemlm.search_rerank import (
    SEARCH_ENCODER2_DIR,
    SEARCH_ENCODER_DIR,
    EncoderReranker,
    RerankSettings,
    has_search_encoder,
    rescore,
)

if TYPE_CHECKING:
    from codemlm.search import SearchResult

__all__ = ["choose", "install", "labelled_grid", "main", "reciprocal_rank", "rerank_grid", "second_opinion",
           "stale_stages", "validation_searches"]


def validation_searches(model_dir: Path, work: Path, depth: int,
                        library: Path | None = None) -> Iterator[tuple[str, int | None, list[SearchResult], list[str]]]:
    """For each query of the stdlib validation set (or the same kind of set built from
    ``library``): the query, its answer's chunk id, MODEL's top ``depth`` results and their texts."""
    from codemlm.embedder import LazyModelEmbedder
    from codemlm.index import RepoIndex
    from codemlm.search import search
    from training.static_validation import build_validation_set

    repo, cases_file = build_validation_set(work / "validation", library)
    cases = read_search_cases(cases_file)
    index = RepoIndex.open(repo, index_path=work / "index.sqlite", embedder=LazyModelEmbedder(model_dir))
    try:
        index.update()
        for case in cases:
            answer = answer_chunk(index, case, str(cases_file))
            results = search(index, case.query, k=depth)
            rows = index.chunk_rows([r.chunk_id for r in results])
            yield case.query, answer, results, [rows[r.chunk_id].text for r in results]
    finally:
        index.close()


def reciprocal_rank(results: Sequence[SearchResult], answer: int | None) -> float:
    top = [r.chunk_id for r in results[:DEPTH]]
    return 1.0 / (top.index(answer) + 1) if answer in top else 0.0


def rerank_grid(model_dir: Path, encoder: Path, weights: Sequence[float], depths: Sequence[int],
                work: Path, library: Path | None = None, *, second: bool = False) -> dict[tuple[float, int], float]:
    """MRR@10 on the stdlib validation set (or the same kind of set built from ``library``, a
    second opinion) for every (weight, depth), MODEL's search underneath. With ``second`` the
    encoder rereads the top of MODEL's installed search encoder's order (at its installed
    weight and depth), as ``MODEL/search_encoder2`` does."""
    from codemlm.checkpoint import load_model_dir

    deepest = max(depths)
    first = EncoderReranker.from_model_dir(model_dir, second=False, cross=False) if second else None
    if first is not None and deepest > first.depth:
        raise CodemlmError(f"a second encoder reads within the first one's depth ({first.depth}), not {deepest}")
    reranker = EncoderReranker(load_model_dir(encoder), RerankSettings(weight=1.0, depth=deepest))
    reciprocal: dict[tuple[float, int], list[float]] = {(w, d): [] for w in weights for d in depths}
    searched = first.depth if first is not None else deepest
    for query, answer, results, texts in validation_searches(model_dir, work, searched, library):
        if first is not None:
            text = {r.chunk_id: t for r, t in zip(results, texts, strict=True)}
            results = first.reorder(query, results, text)
            texts = [text[r.chunk_id] for r in results]
        cosines = reranker.cosines(query, texts[:deepest])
        for (weight, depth), ranks in reciprocal.items():
            # The reranker's own rescoring of its top `depth`; the rest keep the order it was given.
            reread = rescore(results[:depth], cosines[:depth], weight) + list(results[depth:])
            ranks.append(reciprocal_rank(reread, answer))
    return {key: float(np.mean(values)) for key, values in reciprocal.items()}


def choose(grid: dict[tuple[float, int], float]) -> tuple[tuple[float, int], float, float]:
    """((weight, depth), its MRR, the MRR at weight 0): the best setting, and on a tie (to four
    places) the lighter weight and the shallower depth, which embeds less per query."""
    baseline = max(mrr for (weight, _), mrr in grid.items() if weight == 0.0)
    key, best = max(grid.items(), key=lambda item: (round(item[1], 4), -item[0][0], -item[0][1]))
    return key, best, baseline


def install(encoder: Path, model_dir: Path, settings: RerankSettings, validation: dict[str, Any], *,
            second: bool = False) -> Path:
    """Write ``encoder`` into ``model_dir/search_encoder`` (``search_encoder2`` with ``second``),
    float16, with its rerank settings."""
    from codemlm.checkpoint import load_model_dir, save_model_dir

    loaded = load_model_dir(encoder)
    summary = {
        **loaded.summary,
        "search_rerank": {"weight": settings.weight, "depth": settings.depth, "max_tokens": settings.max_tokens},
        "search_rerank_validation": validation,
    }
    folder = SEARCH_ENCODER2_DIR if second else SEARCH_ENCODER_DIR
    return save_model_dir(model_dir / folder, loaded.model, loaded.tokenizer, summary=summary, dtype="float16")


def stale_stages(model_dir: Path, *, second: bool) -> list[str]:
    """What the model directory ships after the stage just installed, each chosen on the order
    before it, and so to be weighed (or trained) again: one line each."""
    stale = []
    if not second and has_search_encoder(model_dir, SEARCH_ENCODER2_DIR):  # weighed after the encoder just replaced
        stale.append(f"{model_dir / SEARCH_ENCODER2_DIR} was weighed on the order of the search encoder just replaced; "
                     "rerun training.search_encoder --second")
    if has_cross_encoder(model_dir):
        stale.append(
            f"{model_dir / SEARCH_CROSS_DIR} was weighed on the order before this second encoder; rerun training.search_cross"
            if second  # its weight was chosen on the old order
            else f"{model_dir / SEARCH_CROSS_DIR} was trained against the previous search encoder; "
            "train it again (search-cross.yaml) and rerun training.search_cross"  # and weighed against it
        )
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.search_encoder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", type=Path, required=True, help="the contrastive stage's model directory")
    parser.add_argument("--model-dir", type=Path, required=True, help="the model directory to install it into")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0, 4.0, 6.0])
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 30, 50])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dry-run", action="store_true", help="measure, install nothing")
    parser.add_argument("--second", action="store_true",
                        help="weigh the encoder as a second look after MODEL's installed search encoder and install it "
                             "as MODEL/search_encoder2")
    parser.add_argument("--library", type=Path, action="append", default=[],
                        help="a second opinion: the same kind of set from this library's docstrings instead of the "
                             "stdlib's (repeatable; measures only, installs nothing)")
    args = parser.parse_args(argv)
    if any(w < 0 for w in args.weights) or any(d < 1 for d in args.depths):
        parser.error("weights must be >= 0 and depths >= 1")
    import torch

    torch.set_num_threads(max(1, args.threads))
    try:
        if args.library:
            return second_opinion(lambda work, library: rerank_grid(
                args.model_dir, args.encoder, sorted({0.0, *args.weights}), args.depths, work, library,
                second=args.second), args.library)
        with tempfile.TemporaryDirectory(prefix="codemlm-search-encoder-") as tmp:
            grid = rerank_grid(args.model_dir, args.encoder, sorted({0.0, *args.weights}), args.depths, Path(tmp),
                               second=args.second)
        (weight, depth), best, baseline = choose(grid)
        table = labelled_grid(grid)
        print(json.dumps({"validation_mrr": table, "chosen": {"weight": weight, "depth": depth, "mrr": round(best, 4)},
                          "without_encoder": round(baseline, 4)}, indent=2))
        if weight == 0.0 or best <= baseline:
            print("search_encoder: the encoder does not beat the search without it on validation; nothing installed",
                  file=sys.stderr)
            return 1
        if not args.dry_run:
            validation = {"set": "CPython stdlib docstring queries (60 modules, left out of the contrastive pairs)",
                          "mrr": round(best, 4), "mrr_without": round(baseline, 4)}
            if args.second:
                validation["after"] = "the installed search encoder"
            path = install(args.encoder, args.model_dir, RerankSettings(weight=weight, depth=depth), validation,
                           second=args.second)
            print(f"search_encoder: installed {path}", file=sys.stderr)
            for stale in stale_stages(args.model_dir, second=args.second):
                print(f"search_encoder: {stale}", file=sys.stderr)
    except CodemlmError as exc:
        print(f"search_encoder: {exc}", file=sys.stderr)
        return 2
    return 0


def labelled_grid(grid: dict[tuple[float, int], float]) -> dict[str, float]:
    """A grid's MRRs keyed ``w=W depth=D`` (four places), for the JSON report."""
    return {f"w={w:g} depth={d}": round(mrr, 4) for (w, d), mrr in sorted(grid.items())}


def second_opinion(grid: Callable[[Path, Path], dict[tuple[float, int], float]], libraries: Sequence[Path]) -> int:
    """Print MRR@10 per library and their mean for every (weight, depth), ``grid(work, library)``
    measuring one library; nothing installed."""
    per_library: dict[str, dict[tuple[float, int], float]] = {}
    with tempfile.TemporaryDirectory(prefix="codemlm-second-opinion-") as tmp:
        for n, library in enumerate(libraries):
            per_library[library.name] = grid(Path(tmp) / str(n), library)
    report = {name: labelled_grid(g) for name, g in per_library.items()}
    keys = next(iter(per_library.values()))
    report["mean"] = labelled_grid({key: float(np.mean([g[key] for g in per_library.values()])) for key in keys})
    print(json.dumps({"validation_mrr": report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
