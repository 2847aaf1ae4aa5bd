"""Average the weights of fine-tuned model directories (a "model soup").

Encoders fine-tuned from one starting model on different data or settings often sit in one
basin of the loss: the mean of their weights can rank better than any of them, at no cost at
query time (one model, the same shape). Greedy soup: begin with the first directory (the best
on validation), add each next one in turn and keep it only if validation improves — the
search encoder's rerank validation (``training.search_encoder``) decides, never a test set.

    python -m training.weight_soup --out runs/soup runs/search-compact/model runs/search-compact-more/model
    python -m training.weight_soup --greedy --model-dir MODEL --out runs/soup RUN1/model RUN2/model ...
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from codemlm.checkpoint import LoadedModel, load_model_dir, save_model_dir
from codemlm.errors import CheckpointError

__all__ = ["average", "greedy_soup", "save_soup"]


def average(models: Sequence[LoadedModel]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the models' weights; they must share the shape and tokenizer."""
    if not models:
        raise CheckpointError("a soup needs at least one model")
    first = models[0]
    for other in models[1:]:
        if other.config != first.config:
            raise CheckpointError(f"{other.path} has another shape than {first.path}")
        if other.tokenizer.to_str() != first.tokenizer.to_str():
            raise CheckpointError(f"{other.path} has another tokenizer than {first.path}")
    states = [m.model.state_dict() for m in models]
    return {name: torch.stack([s[name].float() for s in states]).mean(dim=0) for name in states[0]}


def save_soup(out: Path, models: Sequence[LoadedModel]) -> Path:
    """Write the averaged model directory; its summary lists the ingredients."""
    first = models[0]
    encoder = type(first.model)(first.config)
    encoder.load_state_dict(average(models))
    summary = dict(first.summary)
    summary["soup"] = [str(m.path) for m in models]
    return save_model_dir(out, encoder, first.tokenizer, summary=summary)


def greedy_soup(models: Sequence[LoadedModel], score: Callable[[Path], float], work: Path,
                log: Callable[[str], None] = print) -> tuple[list[LoadedModel], float]:
    """Add each model in turn while ``score`` (higher is better) of the averaged directory improves."""
    chosen = [models[0]]
    best = score(save_soup(work / "soup-0", chosen))
    log(f"{models[0].path}: {best:.4f}")
    for n, candidate in enumerate(models[1:], start=1):
        value = score(save_soup(work / f"soup-{n}", [*chosen, candidate]))
        kept = value > best
        log(f"+ {candidate.path}: {value:.4f} ({'kept' if kept else 'left out'})")
        if kept:
            chosen, best = [*chosen, candidate], value
    return chosen, best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="model directories, best first")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--greedy", action="store_true", help="keep a model only if the rerank validation improves")
    parser.add_argument("--model-dir", type=Path, help="with --greedy: the model directory whose search is reread")
    parser.add_argument("--weights", type=float, nargs="+", default=[3.0, 4.0, 5.0, 6.0])
    parser.add_argument("--depth", type=int, default=50)
    args = parser.parse_args(argv)
    try:
        models = [load_model_dir(p) for p in args.models]
        if not args.greedy:
            print(save_soup(args.out, models))
            return 0
        if args.model_dir is None:
            parser.error("--greedy needs --model-dir")
        from training.search_encoder import choose, rerank_grid

        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)

            def score(encoder: Path) -> float:
                grid = rerank_grid(args.model_dir, encoder, [0.0, *args.weights], [args.depth], work / "grid")
                return choose(grid)[1]

            chosen, best = greedy_soup(models, score, work, log=lambda line: print(line, file=sys.stderr))
        path = save_soup(args.out, chosen)
        print(json.dumps({"out": str(path), "soup": [str(m.path) for m in chosen], "validation_mrr": round(best, 4)}))
        return 0
    except CheckpointError as exc:
        print(f"weight_soup: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
