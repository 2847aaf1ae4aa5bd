"""Fit the completion ranker's weights on holes cut from TRAINING-corpus code.

The holes are cut exactly like the held-out cases (``make_infill_cases.py``: identifier,
arguments, expression, statement; 40 lines above, 20 below), but from code the model was
trained on (the CPython standard library by default), never from an evaluation set. Every
candidate the engine considers for a hole becomes one row (its features, and whether it equals
the hole's text); a ranking fit over each hole's rows (listwise, then calibrated on each hole's
first answer: ``completion_ranker.fit_listwise``) gives the weights. Holes come from one half
of the files (``--part fit``); the other half (``--part validate``) is for checking decisions
(``infill_diagnose.py --stdlib``). The shipped model's
``ranker.json`` is made by (about 15 minutes on 2 busy cores)::

    STDLIB=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['stdlib'])")
    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/infill_fit_ranker.py --source "$STDLIB" \\
        --holes 1200 --sources both model context --repo-files 30 --threads 1 --model codemlm/default_model \\
        --out codemlm/default_model/ranker.json

``--tree data/default-src/py --tree data/default-src/js`` also cuts ``--tree-holes`` holes from
each folder of third-party training-corpus packages (Python, JavaScript, TypeScript: see
``infill_holes.py``); checked on 2026-11-30 (BENCHMARKS.md), fitting on that mix ranked no better
on the validate halves than the stdlib alone, so the shipped weights are the stdlib fit's.
``--rows`` / ``--from-rows`` save the candidate rows and refit from them without the model.

``--sources both model context``: the top-level weights serve the ``both`` engine,
``modes.model`` / ``modes.context`` the model-only / context-only engines (the evaluation's
ablation rows), each fitted on its own rows, so each mode's gate is calibrated on what that
mode proposes (with both-mode weights, a context-only candidate is always "unscored" and
falls under the gate). ``--repo-files 30``: every other hole also sees
30 other stdlib modules as its repository, so repository evidence is weighed too. Rerun it
whenever the model's weights or the ranker's features change.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from infill_holes import ALL_KINDS, KINDS, PARTS, TreeRepositories, cut_holes, read_repository, tree_holes

from codemlm.completion_ranker import FEATURES, Ranker, feature_matrix, fit_listwise, fit_weights

if TYPE_CHECKING:
    from codemlm.candidates import Repository
    from codemlm.infill import InfillEngine

_MIN_LOGP_WEIGHT = 0.05


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="folder of training-corpus Python files (its top level: the stdlib)")
    parser.add_argument("--holes", type=int, default=400, help="holes cut from --source")
    parser.add_argument("--tree", action="append", default=[], metavar="DIR",
                        help="a folder of training-corpus packages, one per subfolder, Python and "
                        "JavaScript/TypeScript (data/default-src/py, data/default-src/js): --tree-holes "
                        "holes from it, the packages in turn (benchmarks/infill_holes.py); repeatable")
    parser.add_argument("--tree-holes", type=int, default=400, help="holes cut from each --tree")
    parser.add_argument("--tree-per-file", type=int, default=2, help="holes of a kind per file of a --tree")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(ALL_KINDS),
                        help="kinds of corpus holes, an equal share each (default: the held-out cases' four; "
                        "add return for return values); with --from-rows, the kinds of rows fitted on")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--part", choices=PARTS, default="fit",
                        help="the half of the files holes are cut from (default fit: the other half, "
                        "--part validate, is for checking decisions: benchmarks/infill_diagnose.py)")
    parser.add_argument("--per-file", type=int, default=4, help="holes of a kind per file of --source at most "
                        "(default 4: the fit half of the stdlib then holds about 1,200 holes)")
    parser.add_argument("--model", help="model directory (default: the shipped model)")
    parser.add_argument("--l2", type=float, default=1.0)
    parser.add_argument("--objective", choices=["listwise", "pointwise"], default="listwise",
                        help="listwise (default): rank each hole's answer first, then calibrate to a probability; "
                        "pointwise: one logistic regression over every candidate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sources", nargs="+", default=["both"], choices=["both", "model", "context"],
                        help="the engine modes to fit, each on its own rows: the first gives the top-level "
                        "weights, every other one its entry under \"modes\" (e.g. --sources both model: the "
                        "model-only mode gets a ranker and gate of its own). context: rows of context "
                        "candidates only, no model forward (the model-side weights then come from "
                        "--model-weights)")
    parser.add_argument("--model-weights", help="a ranker JSON whose model-side weights (src_model, logp, "
                        "rel_logp) are kept when fitting with --sources context")
    parser.add_argument("--repo-files", type=int, default=0,
                        help="every other hole also gets a repository: this many other files of --source "
                        "(none of the files holes are cut from), or for a --tree hole the other files of "
                        "its package, so the repository-side evidence is fitted too")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="an InfillConfig field for the engine that makes the rows (int, float or str)")
    parser.add_argument("--out", required=True, help="where to write the ranker JSON")
    parser.add_argument("--rows", help="also save every mode's feature rows as ROWS.<mode>.npz (x, y, groups, "
                        "kinds, origins), so a refit (another l2, other features) does not rerun the model")
    parser.add_argument("--from-rows", nargs="+", metavar="ROWS",
                        help="fit on rows saved by --rows (ROWS.<mode>.npz for each of --sources, several "
                        "sets joined) instead of running the engine")
    args = parser.parse_args(argv)
    if not (args.source or args.tree or args.from_rows):
        parser.error("give --source, --tree or --from-rows")

    fits: dict[str, dict[str, object]] = {}
    if args.from_rows:
        report: dict[str, object] = {"from_rows": args.from_rows}
        for mode in dict.fromkeys(args.sources):
            x, y, groups, kinds, _origins = load_rows([f"{r}.{mode}.npz" for r in args.from_rows])
            keep = np.isin(kinds, args.kinds)  # --kinds also picks rows: refit on some kinds only
            x, y, groups = x[keep], y[keep], groups[keep]
            covered = sum(int(y[groups == g].max() > 0) for g in np.unique(groups))
            fits[mode] = _fit(x, y, groups, covered, len(np.unique(groups)), args.l2,
                              args.model_weights if mode == "context" else None, args.objective)
    else:
        report = _fit_engine(args, fits)
    first, *rest = fits
    report = {**fits[first], "mode": first, "features": list(FEATURES), **report,
              "command": "python benchmarks/infill_fit_ranker.py " + " ".join(argv or sys.argv[1:])}
    if rest:
        report["modes"] = {mode: fits[mode] for mode in rest}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k not in ("weights", "features", "modes")}))
    return 0


def _fit_engine(args: argparse.Namespace, fits: dict[str, dict[str, object]]) -> dict[str, object]:
    """Cut the holes, run the engine on them in every mode, fit each mode: fills ``fits``."""
    import torch

    from codemlm.checkpoint import load_model_dir, resolve_model_dir
    from codemlm.infill import InfillConfig, InfillEngine

    torch.set_num_threads(args.threads)
    holes = cut_holes(Path(args.source), args.holes, args.seed, args.part, args.per_file,
                      tuple(args.kinds)) if args.source else []
    repositories: dict[str, Callable[[dict[str, str]], Repository | None]] = {}
    if args.source:
        shared = _repository(Path(args.source), {h["path"] for h in holes}, args.repo_files, args.seed)
        repositories["stdlib"] = lambda _hole: shared
    for tree in args.tree:
        cut = tree_holes(Path(tree), args.tree_holes, args.seed, args.part, args.tree_per_file, tuple(args.kinds))
        if args.repo_files > 0:
            side = TreeRepositories(Path(tree))
            for origin in {h["origin"] for h in cut}:
                repositories[origin] = side.for_hole
        holes += cut
    model_dir = resolve_model_dir(args.model)
    config = InfillConfig(**config_overrides(args.set))
    engine = InfillEngine(load_model_dir(model_dir), config=config)
    began = time.perf_counter()
    for mode in dict.fromkeys(args.sources):
        engine.config = replace(config, sources=mode)
        x, y, groups, kinds, covered = _rows(engine, holes, repositories, began)
        if args.rows:
            np.savez(f"{args.rows}.{mode}.npz", x=x, y=y, groups=groups, kinds=kinds,
                     origins=np.array([holes[g]["origin"] for g in groups]),
                     languages=np.array([holes[g]["language"] for g in groups]))
        fits[mode] = _fit(x, y, groups, covered, len(holes), args.l2, args.model_weights if mode == "context" else None,
                          args.objective)
    return {"holes": len(holes), "by_origin": dict(Counter(h["origin"] for h in holes)),
            "repo_files": args.repo_files, "source": args.source, "trees": args.tree, "model": str(model_dir)}


def load_rows(paths: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows saved by ``--rows`` from several runs, joined (hole ids kept apart): x, y, groups,
    kinds, origins (``stdlib`` for rows saved before origins were)."""
    xs, ys, gs, ks, os_ = [], [], [], [], []
    offset = 0
    for path in paths:
        data = np.load(path)
        groups = data["groups"]
        xs.append(data["x"])
        ys.append(data["y"])
        gs.append(groups + offset)
        ks.append(data["kinds"])
        os_.append(data["origins"] if "origins" in data.files else np.full(len(groups), "stdlib"))
        offset += int(groups.max()) + 1 if len(groups) else 0
    return (np.concatenate(xs), np.concatenate(ys), np.concatenate(gs), np.concatenate(ks),
            np.concatenate(os_))


def _rows(engine: InfillEngine, holes: list[dict[str, str]],
          repositories: dict[str, Callable[[dict[str, str]], Repository | None]], began: float,
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Feature rows of every candidate of every hole, their labels, hole ids and kinds, and how
    many holes had the answer among their candidates. Every other hole gets its repository side."""
    rows: list[list[float]] = []
    labels: list[float] = []
    groups: list[int] = []
    kinds: list[str] = []
    covered = 0
    for n, hole in enumerate(holes):
        text = hole["prefix"] + hole["suffix"]
        side = repositories.get(hole["origin"]) if n % 2 else None
        found = engine.evidence(text, len(hole["prefix"].encode("utf-8")), language=hole["language"],
                                repository=side(hole) if side is not None else None)
        target = hole["target"].strip()
        hit = False
        matrix = feature_matrix([evidence for _, evidence in found]).tolist()
        for (fill, _evidence), row in zip(found, matrix, strict=True):
            rows.append(row)
            labels.append(float(fill.strip() == target))
            groups.append(n)
            kinds.append(hole["kind"])
            hit = hit or fill.strip() == target
        covered += hit
        if (n + 1) % 50 == 0:
            print(f"{engine.config.sources}: {n + 1}/{len(holes)} holes, {time.perf_counter() - began:.0f} s",
                  file=sys.stderr)
    return np.array(rows).reshape(-1, len(FEATURES)), np.array(labels), np.array(groups), np.array(kinds), covered


def _fit(x: np.ndarray, y: np.ndarray, groups: np.ndarray, covered: int, holes: int, l2: float,
         model_weights: str | None, objective: str = "pointwise") -> dict[str, object]:
    if objective == "listwise" and not model_weights:
        weights = fit_listwise(x, y, groups, l2=l2)
        return {"weights": weights, "objective": objective, "rows": len(x), "positives": int(y.sum()),
                "candidate_recall": round(covered / max(holes, 1), 4),
                "train_top1": round(_top1(Ranker(weights), x, groups, y), 4)}
    held: dict[str, float] = {}
    if model_weights:
        given = json.loads(Path(model_weights).read_text(encoding="utf-8"))["weights"]
        held = {name: float(given.get(name, 0.0)) for name in ("src_model", "logp", "rel_logp")}
    weights = fit_weights(x, y, l2=l2, fixed=held)
    if not held and (weights["logp"] < _MIN_LOGP_WEIGHT or weights["rel_logp"] < _MIN_LOGP_WEIGHT):
        # A model whose log-probability does not help (an undertrained one) still must not rank
        # a fill it finds less likely above a more likely one with the same evidence.
        weights = fit_weights(x, y, l2=l2, fixed={name: max(weights[name], _MIN_LOGP_WEIGHT)
                                                  for name in ("logp", "rel_logp")})
    return {"weights": weights, "rows": len(x), "positives": int(y.sum()),
            "candidate_recall": round(covered / max(holes, 1), 4),
            "train_top1": round(_top1(Ranker(weights), x, groups, y), 4)}


def config_overrides(items: list[str]) -> dict[str, Any]:
    """``["score_top=30", "precision=fp32", "identifier_lengths=1,2"]`` -> InfillConfig keyword
    arguments (int, float, str, or a tuple of ints where the value has commas)."""
    out: dict[str, Any] = {}
    for item in items:
        name, _, raw = item.partition("=")
        value: Any = raw
        if "," in raw:
            out[name.strip()] = tuple(int(part) for part in raw.split(",") if part.strip())
            continue
        for kind in (int, float):
            try:
                value = kind(raw)
                break
            except ValueError:
                continue
        out[name.strip()] = value
    return out


def _repository(source: Path, used: set[str], count: int, seed: int) -> Repository | None:
    if count <= 0:
        return None
    others = sorted(p for p in source.glob("*.py") if p.name not in used)
    random.Random(seed).shuffle(others)
    return read_repository(others[:count], "python")


def _top1(ranker: Ranker, x: np.ndarray, groups: np.ndarray, y: np.ndarray) -> float:
    """Share of holes whose highest-scored row is right (on the fitting data: a sanity check)."""
    scores = x @ np.array([ranker.weights.get(f, 0.0) for f in FEATURES])
    right = 0
    ids = np.unique(groups)
    for g in ids:
        mask = groups == g
        right += int(y[mask][np.argmax(scores[mask])] == 1.0)
    return right / max(len(ids), 1)


if __name__ == "__main__":
    sys.exit(main())

