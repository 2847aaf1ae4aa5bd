"""Data pipeline speed: corpus build (parse + tokenize + spans) and the masking collator.

Runs on the Python standard library (always present, real code), in one process:

* corpus build, MB of source per CPU-second for each stage: tree-sitter parse (spans and
  boundaries), BPE tokenization, windowing with the byte -> token span mapping; and the
  library's ``tokenize_corpus`` (files dataset -> training view on disk, Arrow I/O included);
* the masking collator, batches/s and tokens/s for each strategy (one worker, one thread),
  which is what a DataLoader worker does per batch;
* peak resident memory of the process.

Prints a table and, as the last line, one JSON object with every figure.

    nice .venv/bin/python benchmarks/data_pipeline.py --limit 300
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# One core per process: per-core figures must not borrow tokenizers' thread pool.
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codemlm.config import ChunkingConfig, CorpusConfig, MaskingConfig
from codemlm.masking import IGNORE_INDEX, MaskingCollator
from codemlm.sources import CorpusStats, iter_repository, stdlib_root
from codemlm.syntax import parse
from codemlm.tokenizer import CodeTokenizer
from codemlm.windows import tokenize_corpus, windows_for_file

STRATEGIES = ("token", "identifier", "ast", "mixed")


class Clock:
    """Wall and CPU seconds of a block (CPU time is what 'per core' divides by)."""

    def __enter__(self) -> Clock:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0


def collect_sources(root: Path, limit: int) -> list[tuple[str, str, str]]:
    stats = CorpusStats()
    files = []
    for source in iter_repository(root, CorpusConfig(), stats):
        files.append((source.path, source.language, source.text))
        if len(files) >= limit:
            break
    return files


def build_rows(
    files: list[tuple[str, str, str]], tokenizer: CodeTokenizer, chunking: ChunkingConfig
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    n_bytes = sum(len(t.encode("utf-8")) for _, _, t in files)
    with Clock() as parse_clock:
        parsed = [parse(text, lang) for _, lang, text in files]
    with Clock() as token_clock:
        all_ids = []
        for i in range(0, len(files), 64):
            all_ids.extend(tokenizer.encode_ids_batch([t for _, _, t in files[i : i + 64]]))
    rows: list[dict[str, Any]] = []
    with Clock() as window_clock:
        for (path, lang, text), result, ids in zip(files, parsed, all_ids, strict=True):
            starts, ends = tokenizer.byte_offsets(ids)
            spans = np.array([(s.start, s.end, int(s.kind)) for s in result.spans], dtype=np.int64).reshape(
                -1, 3
            )
            for w in windows_for_file(
                text.encode("utf-8"),
                ids,
                starts,
                ends,
                spans[:, 0],
                spans[:, 1],
                spans[:, 2].astype(np.int8),
                np.asarray(result.boundaries, dtype=np.int64),
                chunking,
                cls_id=tokenizer.cls_id,
                sep_id=tokenizer.sep_id,
            ):
                rows.append(
                    {
                        "input_ids": w.input_ids,
                        "span_start": w.span_start,
                        "span_end": w.span_end,
                        "span_kind": w.span_kind,
                        "language": lang,
                        "path": path,
                        "index": len(rows),
                    }
                )
    mb = n_bytes / 1e6
    total_cpu = parse_clock.cpu + token_clock.cpu + window_clock.cpu
    n_tokens = int(sum(len(x) for x in all_ids))
    n_spans = int(sum(len(r.spans) for r in parsed))
    figures = {
        "files": len(files),
        "mb": round(mb, 3),
        "tokens": n_tokens,
        "spans": n_spans,
        "windows": len(rows),
        "bytes_per_token": round(n_bytes / max(1, n_tokens), 3),
        "parse_mb_s_per_core": round(mb / parse_clock.cpu, 3),
        "tokenize_mb_s_per_core": round(mb / token_clock.cpu, 3),
        "windows_mb_s_per_core": round(mb / window_clock.cpu, 3),
        "build_mb_s_per_core": round(mb / total_cpu, 3),
        "build_wall_s": round(parse_clock.wall + token_clock.wall + window_clock.wall, 3),
    }
    return rows, figures


def bench_tokenize_corpus(
    files: list[tuple[str, str, str]], tokenizer: CodeTokenizer, chunking: ChunkingConfig
) -> dict[str, float]:
    """The library's dataset step (tokenize + windows + Arrow write), one process, from parsed files."""
    from datasets import Dataset, DatasetDict, Features, Sequence, Value

    columns: dict[str, list[Any]] = {
        k: []
        for k in ("repo", "path", "language", "text", "span_start", "span_end", "span_kind", "boundaries")
    }
    for path, lang, text in files:
        result = parse(text, lang)
        columns["repo"].append("bench")
        columns["path"].append(path)
        columns["language"].append(lang)
        columns["text"].append(text)
        columns["span_start"].append([x.start for x in result.spans])
        columns["span_end"].append([x.end for x in result.spans])
        columns["span_kind"].append([int(x.kind) for x in result.spans])
        columns["boundaries"].append(result.boundaries)
    ints = {"span_start": "int32", "span_end": "int32", "span_kind": "int8", "boundaries": "int32"}
    features = Features({k: Sequence(Value(ints[k])) if k in ints else Value("string") for k in columns})
    mb = sum(len(t.encode("utf-8")) for t in columns["text"]) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        DatasetDict({"train": Dataset.from_dict(columns, features=features)}).save_to_disk(f"{tmp}/files")
        with Clock() as clock:
            # A fresh copy: the BPE's word cache is warm from the first pass over these texts.
            cold = CodeTokenizer.from_str(tokenizer.to_str())
            stats = tokenize_corpus(f"{tmp}/files", cold, chunking, f"{tmp}/tokens")
    return {
        "dataset_tokenize_mb_s_per_core": round(mb / clock.cpu, 3),
        "dataset_tokenize_mb_s_wall": round(mb / clock.wall, 3),
        "dataset_windows": stats["splits"]["train"]["windows"],
    }


def bench_collator(
    rows: list[dict[str, Any]],
    tokenizer: CodeTokenizer,
    strategy: str,
    batch_size: int,
    min_seconds: float,
    *,
    as_lists: bool,
) -> dict[str, float]:
    """One worker's collator throughput. ``as_lists``: rows hold Python lists, as a plain
    Arrow dataset returns them; else numpy arrays (``dataset.with_format("numpy")``)."""
    collator = MaskingCollator(
        MaskingConfig(strategy=strategy),
        pad_id=tokenizer.pad_id,
        mask_id=tokenizer.mask_id,
        vocab_size=tokenizer.vocab_size,
        special_ids=tokenizer.special_ids,
        name_ids=tokenizer.name_ids(),
    )
    if as_lists:
        rows = [{k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in row.items()} for row in rows]
    batches = [rows[i : i + batch_size] for i in range(0, len(rows) - batch_size + 1, batch_size)]
    collator(batches[0])  # warm up (imports torch, allocators)
    n_batches = n_tokens = n_masked = n_padded = 0
    with Clock() as clock:
        while True:
            for batch in batches:
                out = collator(batch)
                n_batches += 1
                n_tokens += int(out["attention_mask"].sum())
                n_padded += out["input_ids"].numel()
                n_masked += int((out["labels"] != IGNORE_INDEX).sum())
            if time.perf_counter() - clock.wall0 >= min_seconds:
                break
    return {
        "batches_s": round(n_batches / clock.cpu, 1),
        "tokens_s": round(n_tokens / clock.cpu),
        "padded_tokens_s": round(n_padded / clock.cpu),
        "ms_per_batch": round(1000 * clock.cpu / n_batches, 3),
        "mask_rate": round(n_masked / max(1, n_tokens - 2 * n_batches * batch_size), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=None, help="source tree (default: the Python stdlib)")
    parser.add_argument("--limit", type=int, default=300, help="files to use (default: %(default)s)")
    parser.add_argument("--vocab-size", type=int, default=16384)
    parser.add_argument("--tokenizer", type=Path, help="use this tokenizer.json instead of training one")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum timing per collator strategy")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    root = args.root or stdlib_root()
    files = collect_sources(root, args.limit)
    if not files:
        print(f"no source files under {root}", file=sys.stderr)
        return 1
    with Clock() as train_clock:
        if args.tokenizer:
            tokenizer = CodeTokenizer.from_file(args.tokenizer)
        else:
            tokenizer = CodeTokenizer.train_from_iterator(
                (t for _, _, t in files), vocab_size=args.vocab_size
            )
    chunking = ChunkingConfig(seq_len=args.seq_len)
    rows, build = build_rows(files, tokenizer, chunking)
    build.update(bench_tokenize_corpus(files, tokenizer, chunking))
    collate = {
        s: bench_collator(rows, tokenizer, s, args.batch_size, args.seconds, as_lists=True)
        for s in STRATEGIES
    }
    collate_numpy = {
        s: bench_collator(rows, tokenizer, s, args.batch_size, args.seconds, as_lists=False)
        for s in STRATEGIES
    }
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    print(
        f"source: {root} ({build['files']} files, {build['mb']} MB, {build['tokens']} tokens, "
        f"{build['windows']} windows of <= {args.seq_len})"
    )
    print(
        f"tokenizer: vocab {tokenizer.vocab_size}, trained in {train_clock.wall:.1f} s, "
        f"{build['bytes_per_token']} bytes/token"
    )
    print()
    print(f"{'corpus build stage':<28}{'MB/s per core':>14}")
    for label, key in [
        ("parse (tree-sitter spans)", "parse_mb_s_per_core"),
        ("tokenize (BPE)", "tokenize_mb_s_per_core"),
        ("windows + span mapping", "windows_mb_s_per_core"),
        ("all three", "build_mb_s_per_core"),
        ("tokenize_corpus (Arrow I/O)", "dataset_tokenize_mb_s_per_core"),
    ]:
        print(f"{label:<28}{build[key]:>14.2f}")
    print()
    print(
        f"{'collator (1 worker)':<20}{'batches/s':>10}{'tokens/s':>12}{'ms/batch':>10}{'mask rate':>11}"
        f"{'tokens/s, numpy rows':>22}"
    )
    for strategy, fig in collate.items():
        print(
            f"{strategy:<20}{fig['batches_s']:>10.1f}{fig['tokens_s']:>12,}{fig['ms_per_batch']:>10.2f}"
            f"{fig['mask_rate']:>11.4f}{collate_numpy[strategy]['tokens_s']:>22,}"
        )
    print(f"\npeak memory: {peak_mb:.0f} MB")
    summary = {
        "benchmark": "data_pipeline",
        "root": str(root),
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "vocab_size": tokenizer.vocab_size,
        "tokenizer_train_s": round(train_clock.wall, 2),
        "build": build,
        "collator": collate,
        "collator_numpy_rows": collate_numpy,
        "peak_rss_mb": round(peak_mb, 1),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
