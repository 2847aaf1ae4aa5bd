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
import zlib
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_infill_cases import candidate_spans, make_case

from codemlm.completion_ranker import FEATURES, Ranker, feature_matrix, fit_listwise, fit_weights

if TYPE_CHECKING:
    from codemlm.candidates import Repository
    from codemlm.infill import InfillEngine

_MIN_LOGP_WEIGHT = 0.05


PARTS = ("all", "fit", "validate")


def file_part(name: str) -> str:
    """Which half of the corpus a file belongs to: ``fit`` or ``validate`` (by a hash of its
    name, so the halves never share a file and do not depend on the seed)."""
    return "validate" if zlib.crc32(name.encode("utf-8")) % 2 else "fit"


def cut_holes(source: Path, count: int, seed: int, part: str = "all", per_file: int = 2) -> list[dict[str, str]]:
    """``count`` holes spread over the files of ``source`` (top level only: the stdlib's own
    modules, not site-packages), balanced over the four kinds. ``part``: ``fit`` or ``validate``
    keeps only that half of the files (:func:`file_part`), so ranker decisions can be checked on
    files the fit never saw; ``all`` takes every file."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    rng = random.Random(seed)
    files = sorted(p for p in source.glob("*.py") if p.is_file() and part in ("all", file_part(p.name)))
    rng.shuffle(files)
    per_kind = count // 4
    picked: dict[str, list[dict[str, str]]] = {"identifier": [], "arguments": [], "expression": [], "statement": []}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) > 400_000:
            continue
        spans = candidate_spans(text)
        rng.shuffle(spans)
        taken: Counter[str] = Counter()
        for kind, start, end in spans:
            if len(picked[kind]) >= per_kind or taken[kind] >= per_file:
                continue
            prefix, suffix, target = make_case(text, start, end, 40, 20)
            picked[kind].append({"kind": kind, "prefix": prefix, "suffix": suffix, "target": target,
                                 "path": path.name})
            taken[kind] += 1
        if all(len(v) >= per_kind for v in picked.values()):
            break
    return [h for hs in picked.values() for h in hs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="folder of training-corpus Python files")
    parser.add_argument("--holes", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--part", choices=PARTS, default="fit",
                        help="the half of the files holes are cut from (default fit: the other half, "
                        "--part validate, is for checking decisions: benchmarks/infill_diagnose.py)")
    parser.add_argument("--per-file", type=int, default=4, help="holes of a kind per file at most (default 4: "
                        "the fit half of the stdlib then holds about 1,200 holes)")
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
                        help="every other hole also gets this many other files of --source as its "
                        "repository (none of the files holes are cut from), so the repository-side "
                        "evidence is fitted too")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="an InfillConfig field for the engine that makes the rows (int, float or str)")
    parser.add_argument("--out", required=True, help="where to write the ranker JSON")
    parser.add_argument("--rows", help="also save every mode's feature rows as ROWS.<mode>.npz (x, y, groups, "
                        "kinds), so a refit (another l2, other features) does not rerun the model")
    args = parser.parse_args(argv)

    import torch

    from codemlm.checkpoint import load_model_dir, resolve_model_dir
    from codemlm.infill import InfillConfig, InfillEngine

    torch.set_num_threads(args.threads)
    holes = cut_holes(Path(args.source), args.holes, args.seed, args.part, args.per_file)
    repository = _repository(Path(args.source), {h["path"] for h in holes}, args.repo_files, args.seed)
    model_dir = resolve_model_dir(args.model)
    config = InfillConfig(**config_overrides(args.set))
    engine = InfillEngine(load_model_dir(model_dir), config=config)
    began = time.perf_counter()
    fits: dict[str, dict[str, object]] = {}
    for mode in dict.fromkeys(args.sources):
        engine.config = replace(config, sources=mode)
        x, y, groups, kinds, covered = _rows(engine, holes, repository, began)
        if args.rows:
            np.savez(f"{args.rows}.{mode}.npz", x=x, y=y, groups=groups, kinds=kinds)
        fits[mode] = _fit(x, y, groups, covered, len(holes), args.l2, args.model_weights if mode == "context" else None,
                          args.objective)
    first, *rest = fits
    report = {**fits[first], "mode": first, "features": list(FEATURES), "holes": len(holes),
              "repo_files": args.repo_files, "source": str(args.source), "model": str(model_dir),
              "command": "python benchmarks/infill_fit_ranker.py " + " ".join(argv or sys.argv[1:])}
    if rest:
        report["modes"] = {mode: fits[mode] for mode in rest}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k not in ("weights", "features")}))
    return 0


def _rows(engine: InfillEngine, holes: list[dict[str, str]], repository: Repository | None, began: float,
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Feature rows of every candidate of every hole, their labels, hole ids and kinds, and how
    many holes had the answer among their candidates."""
    rows: list[list[float]] = []
    labels: list[float] = []
    groups: list[int] = []
    kinds: list[str] = []
    covered = 0
    for n, hole in enumerate(holes):
        text = hole["prefix"] + hole["suffix"]
        found = engine.evidence(text, len(hole["prefix"].encode("utf-8")), language="python",
                                repository=repository if n % 2 else None)
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
    """``["score_top=30", "precision=fp32"]`` -> InfillConfig keyword arguments (int, float or str)."""
    out: dict[str, Any] = {}
    for item in items:
        name, _, raw = item.partition("=")
        value: Any = raw
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
    from codemlm.candidates import Repository

    others = sorted(p for p in source.glob("*.py") if p.name not in used)
    random.Random(seed).shuffle(others)
    texts = []
    for path in others[:count]:
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
    return Repository(texts, "python")


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

