"""Why completion misses: for each hole, is the answer among the candidates at all, ranked
below another, or gated out?

Runs the engine's own ``evidence`` + ranker on holes (a case file, or holes cut from
training-corpus code like ``infill_fit_ranker.py`` does) and counts, per kind:

* ``right``: the top-1 after the gate equals the target;
* ``gated``: the target ranked first, but under the confidence gate;
* ``ranked_below``: the target is a candidate, another one ranked above it;
* ``no_candidate``: no source proposed the target;
* ``top5``: the target among the first five (before the gate).

Also the source mix of the target when it is present, and ``by_group``: EM@1 per kind for each
group of holes (``stdlib``, ``py``: the Python packages of a ``--tree``, ``js``: its JavaScript
and TypeScript ones). Use it on held-out cases only to understand *categories* of error; decide
on training-corpus holes of the validate half (files the ranker fit never saw)::

    nice -n 5 .venv/bin/python benchmarks/infill_diagnose.py --stdlib 600 --tree data/default-src/py \\
        --tree data/default-src/js --tree-holes 300 --rows /tmp/validate
    nice -n 5 .venv/bin/python benchmarks/infill_diagnose.py --from-rows /tmp/validate --ranker NEW.json

``--rows`` saves every candidate's features (ROWS.npz), so another ranker is compared on the same
candidates in seconds with ``--from-rows`` (no model run; a ranker change only, not a source change).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from infill_holes import ALL_KINDS, KINDS

_VERDICTS = ("right", "gated", "ranked_below", "no_candidate")


def group_of(origin: str, language: str) -> str:
    """``stdlib``, ``py`` or ``js``: the three kinds of code the decisions are checked on."""
    if origin == "stdlib":
        return "stdlib"
    return "py" if language == "python" else "js"


def verdict(probs: list[float], syntax_ok: list[bool], right: list[bool], gate: float) -> tuple[str, int | None]:
    """A hole's verdict and the target's rank, from its candidates' probabilities (the engine's
    order: syntax-breaking candidates after the others, then by probability)."""
    order = sorted(range(len(probs)), key=lambda i: (not syntax_ok[i], -probs[i]))
    rank = next((r for r, i in enumerate(order) if right[i]), None)
    if rank is None:
        return "no_candidate", None
    if rank > 0:
        return "ranked_below", rank
    return ("right" if probs[order[0]] >= gate else "gated"), 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", help="a case file (JSON Lines)")
    parser.add_argument("--stdlib", type=int, help="cut this many holes from the standard library")
    parser.add_argument("--tree", action="append", default=[], metavar="DIR",
                        help="also cut --tree-holes holes from this folder of training-corpus packages "
                        "(benchmarks/infill_holes.py); repeatable")
    parser.add_argument("--tree-holes", type=int, default=300)
    parser.add_argument("--tree-per-file", type=int, default=2)
    parser.add_argument("--from-rows", nargs="+", metavar="ROWS", help="candidate rows saved by --rows: "
                        "rank them with --ranker (or the model's) instead of running the engine")
    parser.add_argument("--rows", help="save every candidate's features as ROWS.npz")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(ALL_KINDS),
                        help="kinds of corpus holes, an equal share each (default: the held-out cases' four; "
                        "add return for return values)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the corpus holes (the fit uses 1)")
    parser.add_argument("--part", default="validate", choices=["all", "fit", "validate"],
                        help="the half of the corpus files to cut from (default validate: files the fit never saw)")
    parser.add_argument("--per-file", type=int, default=3, help="holes of a kind per stdlib file at most")
    parser.add_argument("--model", help="model directory (default: the shipped model)")
    parser.add_argument("--sources", default="both", choices=["both", "model", "context"])
    parser.add_argument("--show", type=int, default=0, help="print this many misses per kind")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ranker", help="a ranker JSON to use instead of the model directory's")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="an InfillConfig field (int, float or str), e.g. score_top=30")
    args = parser.parse_args(argv)
    if not (args.cases or args.stdlib or args.tree or args.from_rows):
        parser.error("give --cases, --stdlib, --tree or --from-rows")

    from infill_fit_ranker import config_overrides

    from codemlm.checkpoint import resolve_model_dir
    from codemlm.completion_ranker import Ranker
    from codemlm.infill import InfillConfig

    config = InfillConfig(sources=args.sources, **config_overrides(args.set))
    if args.ranker:
        ranker = Ranker.from_file(args.ranker, args.sources)
    else:
        ranker = Ranker.for_model_dir(resolve_model_dir(args.model), args.sources)
    if args.from_rows:
        holes = _from_rows(args.from_rows, ranker, config.min_probability)
    else:
        holes = _run_engine(args, config, ranker)
    print(json.dumps(report(holes), indent=1))
    return 0


def report(holes: list[dict[str, Any]]) -> dict[str, Any]:
    """Verdict counts per kind, the target's source mix, and EM@1 per group and kind."""
    outcome: dict[str, Counter[str]] = defaultdict(Counter)
    sources: dict[str, Counter[str]] = defaultdict(Counter)
    groups: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for h in holes:
        outcome[h["kind"]][h["verdict"]] += 1
        if h["rank"] is not None:
            outcome[h["kind"]]["top5"] += h["rank"] < 5
            if h.get("source"):
                sources[h["kind"]][h["source"]] += 1
        for kind in (h["kind"], "all"):
            cell = groups[h["group"]][kind]
            cell[0] += h["verdict"] == "right"
            cell[1] += 1
    out: dict[str, Any] = {kind: {**{v: c[v] for v in (*_VERDICTS, "top5")}, "n": sum(c[v] for v in _VERDICTS),
                                  "target_source": dict(sources[kind])}
                           for kind, c in sorted(outcome.items())}
    out["by_group"] = {group: {kind: f"{right / n:.3f} ({n})" for kind, (right, n) in sorted(cells.items())}
                       for group, cells in sorted(groups.items())}
    right = sum(h["verdict"] == "right" for h in holes)
    out["em_at_1"] = round(right / max(len(holes), 1), 4)
    return out


def _from_rows(paths: list[str], ranker: Any, gate: float) -> list[dict[str, Any]]:
    """Verdicts of saved candidate rows under ``ranker`` (the model is not run)."""
    from codemlm.completion_ranker import FEATURES

    bad = FEATURES.index("syntax_bad")
    weights = np.array([ranker.weights.get(name, 0.0) for name in FEATURES])
    holes = []
    for path in paths:
        data = np.load(path if path.endswith(".npz") else path + ".npz")
        x, y, groups = data["x"], data["y"], data["groups"]
        kinds, origins, languages = data["kinds"], data["origins"], data["languages"]
        z = np.clip(x @ weights, -30.0, 30.0)
        probs = 1.0 / (1.0 + np.exp(-z))
        bounds = np.flatnonzero(np.diff(groups)) + 1
        for rows in np.split(np.arange(len(groups)), bounds):
            if not len(rows):
                continue
            v, rank = verdict(probs[rows].tolist(), (x[rows, bad] == 0).tolist(), (y[rows] > 0).tolist(), gate)
            first = rows[0]
            holes.append({"kind": str(kinds[first]), "verdict": v, "rank": rank,
                          "group": group_of(str(origins[first]), str(languages[first]))})
    return holes


def _run_engine(args: argparse.Namespace, config: Any, ranker: Any) -> list[dict[str, Any]]:
    """Cut (or read) the holes, run the engine's evidence on each, and judge it."""
    import torch

    from codemlm.checkpoint import load_model_dir, resolve_model_dir
    from codemlm.completion_ranker import feature_matrix, primary_source
    from codemlm.infill import InfillEngine

    torch.set_num_threads(args.threads)
    cut: list[dict[str, str]] = []
    if args.cases:
        from codemlm.eval_infill import load_infill_cases

        cut = [{"kind": c.kind or "unlabeled", "prefix": c.prefix, "suffix": c.suffix, "target": c.target,
                "language": c.language, "origin": "cases"} for c in load_infill_cases(args.cases)]
    if args.stdlib:
        from infill_holes import cut_holes

        from codemlm.sources import stdlib_root

        cut += cut_holes(stdlib_root(), args.stdlib, args.seed, args.part, args.per_file, tuple(args.kinds))
    for tree in args.tree:
        from infill_holes import tree_holes

        cut += tree_holes(Path(tree), args.tree_holes, args.seed, args.part, args.tree_per_file, tuple(args.kinds))
    engine = InfillEngine(load_model_dir(resolve_model_dir(args.model)), config=config, ranker=ranker)
    gate = engine.config.min_probability
    shown: Counter[str] = Counter()
    rows: dict[str, list[Any]] = defaultdict(list)
    out = []
    for n, hole in enumerate(cut):
        text = hole["prefix"] + hole["suffix"]
        found = engine.evidence(text, len(hole["prefix"].encode("utf-8")), language=hole["language"])
        probs = engine.ranker.probabilities([e for _, e in found])
        target = hole["target"].strip()
        right = [fill.strip() == target for fill, _ in found]
        v, rank = verdict(probs, [e.syntax_ok for _, e in found], right, gate)
        source = primary_source(found[right.index(True)][1].sources) if rank is not None else None
        out.append({"kind": hole["kind"], "verdict": v, "rank": rank, "source": source,
                    "group": group_of(hole["origin"], hole["language"])})
        if args.rows and found:
            rows["x"].append(feature_matrix([e for _, e in found]))
            rows["y"].extend(right)
            rows["groups"].extend([n] * len(found))
            for key in ("kind", "origin", "language"):
                rows[key + "s"].extend([hole[key]] * len(found))
        if v != "right" and shown[hole["kind"]] < args.show:
            shown[hole["kind"]] += 1
            order = sorted(range(len(found)), key=lambda i: (not found[i][1].syntax_ok, -probs[i]))
            top = [(found[i][0].strip(), round(probs[i], 3), primary_source(found[i][1].sources)) for i in order[:3]]
            print(f"[{hole['kind']}/{hole['origin']}] {v} rank={rank} target={target!r} "
                  f"left={hole['prefix'][-50:]!r} top={top}")
    if args.rows:
        np.savez(args.rows + ".npz", x=np.concatenate(rows["x"]), y=np.array(rows["y"], dtype=np.float64),
                 groups=np.array(rows["groups"]), kinds=np.array(rows["kinds"]), origins=np.array(rows["origins"]),
                 languages=np.array(rows["languages"]))
    return out


if __name__ == "__main__":
    sys.exit(main())
