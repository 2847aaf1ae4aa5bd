"""Masking ablation: token-level vs AST-aware (``mixed``) masking at the same training budget.

Trains two encoders that differ only in ``masking.strategy`` (same preset, data, steps,
batch, learning rate, seed), evaluates both on the held-out infill cases with
:func:`codemlm.eval_infill.evaluate_infill`, and writes a per-kind table of EM@1 / EM@5 /
edit similarity as JSON and Markdown.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/masking_ablation.py \\
        --data data/default --max-steps 2000

Each run gets one torch thread (``trainer.cpu_threads=1``): the benchmark is meant to run
beside other work on a shared CPU, and it compares the two strategies, not absolute speed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["STRATEGIES", "format_markdown", "main", "train_one"]

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `training` is a top-level package of the checkout
    sys.path.insert(0, str(ROOT))

STRATEGIES = ("token", "mixed")
KINDS = ("identifier", "arguments", "expression", "statement")
METRICS = ("em_at_1", "em_at_5", "edit_similarity")


def train_one(strategy: str, args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    """Train one model with ``masking.strategy=strategy``; everything else is shared."""
    from training.config import load_config
    from training.run import run

    out = Path(args.work_dir) / strategy
    overrides = [
        f"data.dir={args.data}",
        f"masking.strategy={strategy}",
        f"optim.max_steps={args.max_steps}",
        f"optim.batch_size={args.batch_size}",
        f"optim.lr={args.lr}",
        f"trainer.seed={args.seed}",
        "trainer.cpu_threads=1",
        "trainer.accelerator=cpu",
        "trainer.val_check_interval=0",
        f"trainer.checkpoint_every={args.max_steps}",
        "trainer.progress=false",
        f"trainer.out_dir={out}",
        *extra,
    ]
    config = load_config(args.config, overrides)
    began = time.perf_counter()
    result = run(config, command=["benchmarks/masking_ablation.py", strategy])
    return {
        "strategy": strategy,
        "model_dir": str(result.model_dir),
        "steps": result.global_step,
        "tokens": result.tokens,
        "train_seconds": round(time.perf_counter() - began, 1),
        "metrics": {k: round(float(v), 4) for k, v in result.metrics.items()},
        "config": config.to_dict(),
    }


def _cell(report: dict[str, Any], kind: str | None, metric: str) -> float:
    block = report["overall"] if kind is None else report["by_kind"].get(kind, {})
    return float(block.get(metric, float("nan")))


def format_markdown(results: dict[str, Any]) -> str:
    """The per-kind comparison table (plus the setup it was measured under)."""
    evals = results["eval"]
    lines = [
        "# Masking ablation: token vs mixed (AST-aware), same budget",
        "",
        f"- date: {results['date']}",
        f"- machine: {results['machine']}",
        f"- command: `{results['command']}`",
        f"- setup: {results['setup']}",
        "",
        "| kind | cases | metric | token | mixed | mixed − token |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for kind in (*KINDS, None):
        label = kind or "overall"
        block = evals["token"]["overall"] if kind is None else evals["token"]["by_kind"].get(kind, {})
        cases = block.get("cases", 0)
        for metric in METRICS:
            a, b = _cell(evals["token"], kind, metric), _cell(evals["mixed"], kind, metric)
            lines.append(f"| {label} | {cases} | {metric} | {a:.3f} | {b:.3f} | {b - a:+.3f} |")
    lines += ["", "| run | steps | train s | final train loss | train masked acc |", "|---|---:|---:|---:|---:|"]
    for strategy in STRATEGIES:
        run = results["runs"][strategy]
        m = run["metrics"]
        loss = m.get("train/loss", m.get("train_loss", float("nan")))
        acc = m.get("train/acc", float("nan"))
        lines.append(f"| {strategy} | {run['steps']} | {run['train_seconds']} | {loss:.3f} | {acc:.3f} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/default", help="data directory from `codemlm corpus build`")
    p.add_argument("--cases", default="benchmarks/data/infill_cases.jsonl")
    p.add_argument("--config", default="tiny", help="shipped config name or YAML (same for both runs)")
    p.add_argument("--max-steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override applied to BOTH runs (e.g. model.dim=128)")
    p.add_argument("--work-dir", default="runs/masking-ablation", help="where the two runs go")
    p.add_argument("--out", default="benchmarks/results/masking_ablation",
                   help="output path stem (.json and .md are written)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N cases (smoke runs)")
    p.add_argument("--machine", default="", help="free-text note on the machine (recorded)")
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)
    from codemlm.eval_infill import evaluate_infill

    began = time.perf_counter()
    runs: dict[str, Any] = {}
    evals: dict[str, Any] = {}
    for strategy in STRATEGIES:
        print(f"[masking_ablation] training {strategy} ({args.max_steps} steps)", flush=True)
        runs[strategy] = train_one(strategy, args, args.overrides)
        print(f"[masking_ablation] {strategy}: {runs[strategy]['train_seconds']} s, "
              f"metrics {runs[strategy]['metrics']}", flush=True)
        report = evaluate_infill(args.cases, model_dir=runs[strategy]["model_dir"], limit=args.limit)
        report.pop("cases", None)
        evals[strategy] = report
        print(f"[masking_ablation] {strategy} eval: {json.dumps(report['overall'])}", flush=True)

    results = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": args.machine or f"{platform.node()} ({os.cpu_count()} CPUs), 1 torch thread per run",
        "command": " ".join(["benchmarks/masking_ablation.py", *(argv if argv is not None else sys.argv[1:])]),
        "setup": (f"config {args.config} {' '.join(args.overrides)}, data {args.data}, "
                  f"{args.max_steps} steps x batch {args.batch_size}, lr {args.lr}, seed {args.seed}; "
                  f"only masking.strategy differs"),
        "seconds": round(time.perf_counter() - began, 1),
        "runs": runs,
        "eval": evals,
    }
    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    table = format_markdown(results)
    stem.with_suffix(".md").write_text(table, encoding="utf-8")
    print(table)
    print(f"[masking_ablation] total {results['seconds']} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
