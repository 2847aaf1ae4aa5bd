"""Completion latency on real files: codemlm's infill engine next to jedi, same positions.

Files of 200-2,000 lines (default: the held-out boltons package, else the stdlib), cursor
positions where an editor asks for completions (after ``.``, ``(``, ``= ``, or inside a name),
CPU threads pinned (default 2). With ``--model DIR`` a trained model is timed; without one a
*randomly initialized* ``small`` model with a BPE tokenizer trained on stdlib files stands in
(the cost of a forward does not depend on the weights; the candidates are noise). Each engine
gets one warm-up call first (jedi's first call in a process takes seconds, reported apart).

Prints a table and, as the last line, one JSON object.

    nice .venv/bin/python benchmarks/infill_latency.py --threads 2 --positions 60
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _files(source: Path, min_lines: int, max_lines: int) -> list[Path]:
    out = []
    for path in sorted(source.rglob("*.py")):
        try:
            lines = path.read_text(encoding="utf-8").count("\n")
        except (OSError, UnicodeDecodeError):
            continue
        if min_lines <= lines <= max_lines:
            out.append(path)
    return out


def _positions(files: list[Path], count: int, seed: int) -> list[tuple[Path, int, int]]:
    """(file, 0-based line, 0-based column) where completion is typically triggered."""
    rng = random.Random(seed)
    picks: list[tuple[Path, int, int]] = []
    attempts = 0
    while len(picks) < count and attempts < count * 50:
        attempts += 1
        path = rng.choice(files)
        lines = path.read_text(encoding="utf-8").splitlines()
        i = rng.randrange(len(lines))
        line = lines[i]
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", '"', "'")):
            continue
        triggers = [j + 1 for j, ch in enumerate(line) if ch in ".("] + [
            j + 2 for j in range(len(line) - 1) if line[j : j + 2] == "= "
        ]
        if not triggers:
            continue
        picks.append((path, i, rng.choice(triggers)))
    return picks


def _summary(ms: list[float]) -> dict[str, float]:
    from codemlm.eval_infill import percentile

    return {"p50_ms": round(percentile(ms, 50), 1), "p95_ms": round(percentile(ms, 95), 1),
            "mean_ms": round(sum(ms) / len(ms), 1), "min_ms": round(min(ms), 1)}


def _random_small_model(tokenizer_files: int) -> Any:
    import torch

    from codemlm.checkpoint import LoadedModel
    from codemlm.config import ModelConfig
    from codemlm.model import CodeEncoder
    from codemlm.tokenizer import CodeTokenizer

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = []
    for path in sorted(stdlib.glob("*.py"))[:tokenizer_files]:
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
    tokenizer = CodeTokenizer.train_from_iterator(texts, vocab_size=16384)
    config = ModelConfig.from_preset("small", vocab_size=tokenizer.vocab_size)
    torch.manual_seed(0)
    model = CodeEncoder(config).eval()
    return LoadedModel(model=model, tokenizer=tokenizer, config=config, summary={"random_init": True},
                       path=Path("<random-init small>"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="trained model directory (default: random-init small)")
    parser.add_argument("--source", default="/tmp/heldout/boltons",
                        help="folder of real Python files (default: held-out boltons, else the stdlib)")
    parser.add_argument("--positions", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--tokenizer-files", type=int, default=300)
    parser.add_argument("--no-jedi", action="store_true")
    parser.add_argument("--sources", default="both", choices=["both", "model", "context"],
                        help="candidate sources of the engine (default both: context candidates judged by the model)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    from codemlm.checkpoint import load_model_dir
    from codemlm.infill import InfillConfig, InfillEngine
    from codemlm.positions import TextPositions

    torch.set_num_threads(args.threads)
    source = Path(args.source)
    if not source.is_dir():
        source = Path(sysconfig.get_paths()["stdlib"])
    files = _files(source, 200, 2000)
    if not files:
        print(f"infill_latency: no files of 200-2000 lines under {source}", file=sys.stderr)
        return 1
    positions = _positions(files, args.positions, args.seed)
    loaded = load_model_dir(args.model) if args.model else _random_small_model(args.tokenizer_files)
    engine = InfillEngine(loaded, config=InfillConfig(precision=args.precision, sources=args.sources))
    texts = {p: p.read_text(encoding="utf-8") for p in {p for p, _, _ in positions}}
    index = {p: TextPositions(t) for p, t in texts.items()}

    def codemlm_call(path: Path, line: int, col: int) -> int:
        offset = index[path].offset(line, col)
        return len(engine.complete(texts[path], offset, language="python", k=5))

    path0, line0, col0 = positions[0]
    codemlm_call(path0, line0, col0)  # warm-up
    codemlm_ms, codemlm_cpu, counts = [], [], []
    for path, line, col in positions:
        began, cpu = time.perf_counter(), time.process_time()
        counts.append(codemlm_call(path, line, col))
        codemlm_ms.append((time.perf_counter() - began) * 1000)
        codemlm_cpu.append((time.process_time() - cpu) * 1000)
    report: dict[str, Any] = {
        "benchmark": "infill_latency",
        "model": str(loaded.path),
        "random_init": bool(loaded.summary.get("random_init")),
        "preset": loaded.config.name,
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
        "precision": "bf16" if engine.autocast_bf16 else "fp32",
        "max_context_tokens": engine.max_tokens,
        "threads": args.threads,
        "sources": args.sources,
        "positions": len(positions),
        "files": len(texts),
        "file_lines": [min(t.count("\n") for t in texts.values()), max(t.count("\n") for t in texts.values())],
        "source": str(source),
        "codemlm": _summary(codemlm_ms) | {"mean_candidates": round(sum(counts) / len(counts), 2),
                                            "cpu_p50_ms": _summary(codemlm_cpu)["p50_ms"],
                                            "cpu_p95_ms": _summary(codemlm_cpu)["p95_ms"]},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    if not args.no_jedi:
        import jedi

        began = time.perf_counter()
        jedi.Script(texts[path0], path=str(path0)).complete(line0 + 1, col0)
        first_ms = (time.perf_counter() - began) * 1000
        jedi_ms, jedi_cpu = [], []
        for path, line, col in positions:
            began, cpu = time.perf_counter(), time.process_time()
            jedi.Script(texts[path], path=str(path)).complete(line + 1, col)
            jedi_ms.append((time.perf_counter() - began) * 1000)
            jedi_cpu.append((time.process_time() - cpu) * 1000)
        report["jedi"] = _summary(jedi_ms) | {"first_call_ms": round(first_ms, 1), "version": jedi.__version__,
                                              "cpu_p50_ms": _summary(jedi_cpu)["p50_ms"],
                                              "cpu_p95_ms": _summary(jedi_cpu)["p95_ms"]}
    print(f"completion latency, {report['positions']} positions in {report['files']} files "
          f"({report['file_lines'][0]}-{report['file_lines'][1]} lines), {args.threads} threads")
    print(f"  codemlm {report['preset']} ({report['parameters'] / 1e6:.1f}M params, {report['precision']}, "
          f"{'random init' if report['random_init'] else report['model']}): "
          f"p50 {report['codemlm']['p50_ms']} ms, p95 {report['codemlm']['p95_ms']} ms "
          f"(process CPU time p50 {report['codemlm']['cpu_p50_ms']} ms over {args.threads} threads)")
    if "jedi" in report:
        print(f"  jedi {report['jedi']['version']}: p50 {report['jedi']['p50_ms']} ms, "
              f"p95 {report['jedi']['p95_ms']} ms (first call {report['jedi']['first_call_ms']} ms; "
              f"CPU time p50 {report['jedi']['cpu_p50_ms']} ms)")
    print(f"  load average while measuring: {report['load_average']} (wall times inflate on a shared machine)")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
