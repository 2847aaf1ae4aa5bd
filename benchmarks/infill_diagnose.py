"""Why completion misses: for each hole, is the answer among the candidates at all, ranked
below another, or gated out?

Runs the engine's own ``evidence`` + ranker on holes (a case file, or holes cut from
training-corpus code like ``infill_fit_ranker.py`` does) and counts, per kind:

* ``right``: the top-1 after the gate equals the target;
* ``gated``: the target ranked first, but under the confidence gate;
* ``ranked_below``: the target is a candidate, another one ranked above it;
* ``no_candidate``: no source proposed the target.

Also the source mix of the target when it is present. Use it on held-out cases only to
understand *categories* of error; tune on stdlib holes (``--stdlib N``)::

    nice -n 5 .venv/bin/python benchmarks/infill_diagnose.py --stdlib 300
    nice -n 5 .venv/bin/python benchmarks/infill_diagnose.py --cases benchmarks/data/infill_cases.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--cases", help="a case file (JSON Lines)")
    group.add_argument("--stdlib", type=int, help="cut this many holes from the standard library")
    parser.add_argument("--seed", type=int, default=7, help="seed of the stdlib holes (the fit uses 1)")
    parser.add_argument("--part", default="validate", choices=["all", "fit", "validate"],
                        help="the half of the stdlib files to cut from (default validate: files the fit never saw)")
    parser.add_argument("--per-file", type=int, default=3, help="holes of a kind per file at most")
    parser.add_argument("--model", help="model directory (default: the shipped model)")
    parser.add_argument("--sources", default="both", choices=["both", "model", "context"])
    parser.add_argument("--show", type=int, default=0, help="print this many misses per kind")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ranker", help="a ranker JSON to use instead of the model directory's")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="an InfillConfig field (int, float or str), e.g. score_top=30")
    args = parser.parse_args(argv)

    import torch

    from codemlm.checkpoint import load_model_dir, resolve_model_dir
    from codemlm.completion_ranker import primary_source
    from codemlm.infill import InfillConfig, InfillEngine

    torch.set_num_threads(args.threads)
    if args.cases:
        from codemlm.eval_infill import load_infill_cases

        holes = [{"kind": c.kind or "unlabeled", "prefix": c.prefix, "suffix": c.suffix, "target": c.target,
                  "language": c.language} for c in load_infill_cases(args.cases)]
    else:
        from infill_fit_ranker import cut_holes

        from codemlm.sources import stdlib_root

        holes = [dict(h, language="python") for h in cut_holes(stdlib_root(), args.stdlib, args.seed,
                                                                    args.part, args.per_file)]
    from infill_fit_ranker import config_overrides

    from codemlm.completion_ranker import Ranker

    config = InfillConfig(sources=args.sources, **config_overrides(args.set))
    model_dir = resolve_model_dir(args.model)
    ranker = Ranker.from_file(args.ranker) if args.ranker else None
    engine = InfillEngine(load_model_dir(model_dir), config=config, ranker=ranker)
    gate = engine.config.min_probability
    outcome: dict[str, Counter[str]] = defaultdict(Counter)
    target_sources: dict[str, Counter[str]] = defaultdict(Counter)
    shown: Counter[str] = Counter()
    for hole in holes:
        text = hole["prefix"] + hole["suffix"]
        found = engine.evidence(text, len(hole["prefix"].encode("utf-8")), language=hole["language"])
        probs = engine.ranker.probabilities([e for _, e in found])
        order = sorted(range(len(found)), key=lambda i: (not found[i][1].syntax_ok, -probs[i]))
        target = hole["target"].strip()
        rank = next((r for r, i in enumerate(order) if found[i][0].strip() == target), None)
        kind = hole["kind"]
        if rank is None:
            verdict = "no_candidate"
        elif rank > 0:
            verdict = "ranked_below"
        else:
            verdict = "right" if probs[order[0]] >= gate else "gated"
        outcome[kind][verdict] += 1
        if rank is not None:
            outcome[kind]["top5"] += rank < 5
            target_sources[kind][primary_source(found[order[rank]][1].sources)] += 1
        if verdict != "right" and shown[kind] < args.show:
            shown[kind] += 1
            top = [(found[i][0].strip(), round(probs[i], 3), primary_source(found[i][1].sources)) for i in order[:3]]
            print(f"[{kind}] {verdict} rank={rank} target={target!r} left={hole['prefix'][-50:]!r} top={top}")
    report = {kind: {**{v: c[v] for v in ("right", "gated", "ranked_below", "no_candidate", "top5")},
                     "n": sum(c[v] for v in ("right", "gated", "ranked_below", "no_candidate")),
                     "target_source": dict(target_sources[kind])}
              for kind, c in sorted(outcome.items())}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
