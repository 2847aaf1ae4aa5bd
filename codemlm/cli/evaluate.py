"""``codemlm eval infill CASES.jsonl``, ``eval search --repo DIR --queries Q.jsonl``, ``eval mlm PATH...``.

Both print a human table, or with ``--json`` one JSON object as the last line of stdout.
The search evaluator lives in :mod:`codemlm.eval_search` and is imported only when used.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a model: infill cases, search queries, or masked-token accuracy on code",
        description="Evaluate masked-span completion (infill) or code search on held-out cases.",
    )
    tasks = parser.add_subparsers(dest="eval_task", metavar="TASK")

    infill = tasks.add_parser(
        "infill",
        help="exact match, edit similarity, parse rate and latency of completions",
        description="Fill the hole of each case (JSON Lines: id, language, path?, kind?, prefix, "
        "suffix, target) and report EM@1, EM@5, edit similarity, parse rate and latency "
        "overall, per kind, per language and per source of the top-1 candidate.",
    )
    infill.add_argument("cases", help="JSON Lines case file")
    infill.add_argument("--model", help="model directory (default: $CODEMLM_MODEL or the shipped model)")
    infill.add_argument("-k", type=int, default=5, help="candidates per case (default 5)")
    infill.add_argument("--limit", type=int, help="evaluate only the first N cases")
    infill.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    infill.add_argument("--context-tokens", type=int, help="window size in tokens (default: the engine's)")
    infill.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="auto: bf16 where the CPU has it natively (default)")
    infill.add_argument("--mode", default="both", choices=["both", "model", "context", "ablation"],
                        help="candidate sources: both (default), model only, context only, or ablation: "
                        "all three in one run (headline = both)")
    infill.add_argument("--repo", help="the cases' source folder: each case also sees the other files "
                        "(its own file, by the case's path, is left out)")
    infill.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    infill.set_defaults(handler=_run_infill)

    search = tasks.add_parser(
        "search",
        help="MRR, recall@1/10, latency and indexing time of code search",
        description="Index --repo and run each query of --queries (JSON Lines: id, query, "
        "language?, path, line); report MRR, recall@1, recall@10, latency and indexing time.",
    )
    search.add_argument("--repo", required=True, help="repository folder the queries refer to")
    search.add_argument("--queries", required=True, help="JSON Lines query file")
    search.add_argument("--model", help="model directory (default: $CODEMLM_MODEL or the shipped model)")
    search.add_argument("--mode", default="hybrid", choices=["hybrid", "lexical", "dense"],
                        help="retrieval mode (default hybrid)")
    search.add_argument("--index-path", help="where to build the index (default: the user cache)")
    search.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    search.set_defaults(handler=_run_search)

    mlm = tasks.add_parser(
        "mlm",
        help="masked-token accuracy and perplexity of a model on any code",
        description="Mask 15%% of the tokens of the code under PATH (files or folders; seeded, "
        "every chosen token becomes <mask>) and report the model's top-1 accuracy and perplexity "
        "on them. Check a model on your own code, or compare two models on the same holes.",
    )
    mlm.add_argument("paths", nargs="+", metavar="PATH", help="files or folders of source code")
    mlm.add_argument("--model", help="model directory (default: $CODEMLM_MODEL or the shipped model)")
    mlm.add_argument("--seq-len", type=int, default=256, help="window length in tokens (default 256)")
    mlm.add_argument("--max-files", type=int, help="evaluate at most N files")
    mlm.add_argument("--seed", type=int, default=0, help="which tokens are masked (default 0)")
    mlm.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    mlm.set_defaults(handler=_run_mlm)

    parser.set_defaults(handler=lambda args: _missing_task(parser))


def _missing_task(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _run_infill(args: argparse.Namespace) -> int:
    from codemlm.errors import InputError

    if args.k < 1:
        raise InputError(f"-k must be at least 1, got {args.k}")
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be at least 1, got {args.limit}")
    from codemlm.eval_infill import evaluate_infill, format_infill_report, load_infill_cases

    load_infill_cases(args.cases)  # fail on a malformed file before loading a model
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from codemlm.checkpoint import load_model_dir, resolve_model_dir
    from codemlm.infill import InfillConfig, InfillEngine

    resolved = resolve_model_dir(args.model)
    engine = InfillEngine(load_model_dir(resolved), max_context_tokens=args.context_tokens,
                          config=InfillConfig(precision=args.precision))
    modes = ("both", "model", "context") if args.mode == "ablation" else (args.mode,)
    report = evaluate_infill(args.cases, engine=engine, k=args.k, limit=args.limit, modes=modes, repo_dir=args.repo)
    report["model"] = str(resolved)
    if args.json:
        print(json.dumps(report))
    else:
        print(format_infill_report(report))
    return 0


def _run_mlm(args: argparse.Namespace) -> int:
    from codemlm.errors import InputError

    if args.max_files is not None and args.max_files < 1:
        raise InputError(f"--max-files must be at least 1, got {args.max_files}")
    from codemlm.checkpoint import load_model_dir, resolve_model_dir
    from codemlm.eval_mlm import evaluate_mlm

    resolved = resolve_model_dir(args.model)
    result = evaluate_mlm(load_model_dir(resolved), args.paths, seq_len=args.seq_len,
                          seed=args.seed, max_files=args.max_files)
    report = {"model": str(resolved), **result.to_dict()}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['files']} files, {report['windows']} windows, {report['masked']} masked tokens "
              f"({report['seconds']:.1f} s)")
        print(f"masked-token accuracy {report['accuracy']:.4f}   perplexity {report['perplexity']:.2f}")
    return 0


def _run_search(args: argparse.Namespace) -> int:
    from codemlm.eval_search import evaluate_search, format_search_report

    report = evaluate_search(args.repo, args.queries, model_dir=args.model, mode=args.mode,
                             index_path=args.index_path)
    if args.json:
        print(json.dumps(report))
    else:
        print(format_search_report(report))
    return 0
