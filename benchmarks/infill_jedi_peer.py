"""The peer for identifier infill: jedi's completion list at the same holes.

For every case of the chosen kinds (default: ``identifier``) of an infill case file, asks
``jedi.Script(prefix + suffix, path=...).complete(line, column)`` at the hole and scores its
list like ``codemlm eval infill`` scores candidates: hit@1 / hit@5 = the target (trimmed) is
the first / among the first five names; ``in_list``: anywhere in jedi's (alphabetical) list. jedi only completes names, so other kinds are not a
fair comparison and are left out unless asked for. Prints a line per kind and, last, one JSON
object.

    nice .venv/bin/python benchmarks/infill_jedi_peer.py benchmarks/data/infill_cases.jsonl --source /tmp/heldout
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", help="infill case file (JSON Lines)")
    parser.add_argument("--kinds", default="identifier", help="comma-separated kinds (default identifier)")
    parser.add_argument("--source", help="folder the cases' paths are relative to: jedi then reads the whole "
                        "file, as in an editor (cases keep only 60 lines, too few for jedi to infer types)")
    args = parser.parse_args(argv)

    import jedi

    from codemlm.eval_infill import load_infill_cases, percentile

    kinds = set(args.kinds.split(","))
    cases = [c for c in load_infill_cases(args.cases) if (c.kind or "unlabeled") in kinds]
    if not cases:
        print(f"infill_jedi_peer: no cases of kinds {sorted(kinds)}", file=sys.stderr)
        return 1
    first = cases[0]
    jedi.Script(first.prefix + first.suffix, path=first.path).complete()  # warm-up (seconds)
    hits: dict[str, list[tuple[bool, bool, bool]]] = defaultdict(list)
    latencies: list[float] = []
    full_files = 0
    for case in cases:
        before, after = case.prefix, case.suffix
        if args.source and case.path:
            whole = (Path(args.source) / case.path).read_text(encoding="utf-8")
            at = whole.find(case.prefix + case.target + case.suffix)
            if at >= 0:
                before = whole[: at + len(case.prefix)]
                after = whole[at + len(case.prefix) + len(case.target) :]
                full_files += 1
        lines = before.split("\n")
        line, column = len(lines), len(lines[-1])  # jedi: 1-based line, 0-based column
        began = time.perf_counter()
        try:
            names = [c.name for c in jedi.Script(before + after, path=case.path).complete(line, column)]
        except Exception:  # jedi raises internal errors on odd positions; count as no list
            names = []
        latencies.append((time.perf_counter() - began) * 1000)
        target = case.target.strip()
        hits[case.kind or "unlabeled"].append((names[:1] == [target], target in names[:5], target in names))
    every = [h for group in hits.values() for h in group]

    def summary(group: list[tuple[bool, bool, bool]]) -> dict[str, Any]:
        return {"cases": len(group), "hit_at_1": round(sum(a for a, _, _ in group) / len(group), 4),
                "hit_at_5": round(sum(b for _, b, _ in group) / len(group), 4),
                "in_list": round(sum(c for _, _, c in group) / len(group), 4)}

    report = {"benchmark": "infill_jedi_peer", "jedi": jedi.__version__, "cases_file": args.cases,
              "whole_files": full_files,
              "overall": summary(every) | {"latency_p50_ms": round(percentile(latencies, 50), 1),
                                           "latency_p95_ms": round(percentile(latencies, 95), 1)},
              "by_kind": {kind: summary(group) for kind, group in sorted(hits.items())}}
    for kind, m in report["by_kind"].items():
        print(f"jedi {jedi.__version__} on {kind}: {m['cases']} cases, hit@1 {m['hit_at_1']:.3f}, "
              f"hit@5 {m['hit_at_5']:.3f}, target anywhere in the list {m['in_list']:.3f}")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
