"""The training view: files (text + byte spans) -> training windows of token ids with token spans.

Here a *window* is always a training window: one model input sequence, ``<cls>`` + a piece of
one file's tokens + ``<sep>``, with the syntax spans inside it (:class:`TrainingWindow`, a row of
``DIR/tokens``). It is not the infill context window around a hole (:mod:`codemlm.infill`).

A file is tokenized once, its syntax spans are mapped from bytes to token index ranges, and
the token stream is cut into windows of at most ``seq_len`` tokens (``<cls>`` … ``<sep>``
included). Cuts prefer syntax boundaries (ends of top-level statements and definitions) in
the last ``boundary_slack`` share of a window, then line ends in its second half, then fall
back to a hard cut, so a window mostly holds whole definitions. Only spans wholly inside a
window are kept; masking never sees half a node.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codemlm.config import ChunkingConfig
from codemlm.errors import CorpusError
from codemlm.tokenizer import CodeTokenizer

__all__ = [
    "TOKENS_FEATURES",
    "TrainingWindow",
    "byte_spans_to_token_spans",
    "cut_points",
    "tokenize_corpus",
    "windows_for_file",
]

# Column order and types of DIR/tokens (docs/INTERFACES.md).
TOKENS_FEATURES: dict[str, str] = {
    "input_ids": "int32",
    "span_start": "int32",
    "span_end": "int32",
    "span_kind": "int8",
    "language": "string",
    "path": "string",
}


@dataclass(frozen=True)
class TrainingWindow:
    """One training sequence (a row of ``DIR/tokens``).

    Span indices point into ``input_ids`` (``<cls>`` is index 0).
    """

    input_ids: np.ndarray  # Int32[T]
    span_start: np.ndarray  # Int32[S]
    span_end: np.ndarray  # Int32[S], exclusive
    span_kind: np.ndarray  # Int8[S]
    start_byte: int  # byte range of the file the window covers
    end_byte: int


def byte_spans_to_token_spans(
    token_starts: np.ndarray, token_ends: np.ndarray, span_start: np.ndarray, span_end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Map byte ranges to token ranges ``[first, last)``: every token overlapping the bytes.

    ``token_starts``/``token_ends`` are the tokens' byte offsets (tiling the text, sorted).
    An empty byte span, or one past the last token, maps to an empty range (first >= last);
    callers drop those.
    """
    span_start = np.asarray(span_start, dtype=np.int64)
    span_end = np.asarray(span_end, dtype=np.int64)
    first = np.searchsorted(token_ends, span_start, side="right")  # first token ending after start
    last = np.searchsorted(token_starts, span_end, side="left")  # tokens starting before end
    last = np.where(span_end > span_start, last, first)
    return first.astype(np.int64), last.astype(np.int64)


def cut_points(
    n_tokens: int,
    capacity: int,
    boundary_cuts: np.ndarray,
    line_cuts: np.ndarray,
    boundary_slack: float,
) -> list[tuple[int, int]]:
    """Split ``range(n_tokens)`` into consecutive pieces of at most ``capacity`` tokens.

    ``boundary_cuts`` / ``line_cuts`` are sorted token indices where a piece may start
    (a syntax boundary / the first token after a newline). A piece ends at the last
    boundary cut within its final ``boundary_slack`` share, else at the last line cut in
    its second half, else at ``capacity`` tokens.
    """
    pieces: list[tuple[int, int]] = []
    pos = 0
    slack_tokens = math.floor(capacity * boundary_slack)
    while pos < n_tokens:
        limit = pos + capacity
        if limit >= n_tokens:
            pieces.append((pos, n_tokens))
            break
        cut = _last_in(boundary_cuts, limit - slack_tokens, limit) if slack_tokens else -1
        if cut < 0:
            cut = _last_in(line_cuts, pos + max(1, capacity // 2), limit)
        if cut < 0:
            cut = limit
        pieces.append((pos, cut))
        pos = cut
    return pieces


def _last_in(sorted_values: np.ndarray, low: int, high: int) -> int:
    """The largest value v with low <= v <= high, or -1."""
    i = int(np.searchsorted(sorted_values, high, side="right")) - 1
    if i >= 0 and sorted_values[i] >= low:
        return int(sorted_values[i])
    return -1


def windows_for_file(
    text_bytes: bytes,
    ids: np.ndarray,
    token_starts: np.ndarray,
    token_ends: np.ndarray,
    span_start: np.ndarray,
    span_end: np.ndarray,
    span_kind: np.ndarray,
    boundaries: np.ndarray,
    chunking: ChunkingConfig,
    *,
    cls_id: int,
    sep_id: int,
) -> list[TrainingWindow]:
    """Cut one tokenized file into windows; pure (no tokenizer, no I/O)."""
    ids = np.asarray(ids, dtype=np.int32)
    n = int(ids.shape[0])
    if n == 0:
        return []
    token_starts = np.asarray(token_starts, dtype=np.int64)
    token_ends = np.asarray(token_ends, dtype=np.int64)

    # Syntax boundaries become cut positions at the first token starting at/after them.
    bounds = np.asarray(boundaries, dtype=np.int64)
    boundary_cuts = np.unique(np.searchsorted(token_starts, bounds, side="left"))
    boundary_cuts = boundary_cuts[(boundary_cuts > 0) & (boundary_cuts < n)]
    # A line cut is the token after one that holds a newline byte.
    newline_prefix = np.concatenate(([0], np.cumsum(np.frombuffer(text_bytes, dtype=np.uint8) == 10)))
    has_newline = newline_prefix[token_ends] > newline_prefix[token_starts]
    line_cuts = np.flatnonzero(has_newline[:-1]) + 1

    first, last = byte_spans_to_token_spans(token_starts, token_ends, span_start, span_end)
    kinds = np.asarray(span_kind, dtype=np.int8)
    keep = last > first
    first, last, kinds = first[keep], last[keep], kinds[keep]
    # Outer spans first at equal starts: the order masking builds its span tree in.
    order = np.lexsort((-last, first))
    first, last, kinds = first[order], last[order], kinds[order]

    windows: list[TrainingWindow] = []
    for a, b in cut_points(n, chunking.seq_len - 2, boundary_cuts, line_cuts, chunking.boundary_slack):
        if b - a < chunking.min_tokens:
            continue
        inside = (first >= a) & (last <= b)
        windows.append(
            TrainingWindow(
                input_ids=np.concatenate(([cls_id], ids[a:b], [sep_id])).astype(np.int32),
                span_start=(first[inside] - a + 1).astype(np.int32),
                span_end=(last[inside] - a + 1).astype(np.int32),
                span_kind=kinds[inside].astype(np.int8),
                start_byte=int(token_starts[a]),
                end_byte=int(token_ends[b - 1]),
            )
        )
    return windows


class _WindowBatcher:
    """The batched ``datasets.map`` function: files in, windows out (picklable)."""

    def __init__(self, tokenizer: CodeTokenizer, chunking: ChunkingConfig) -> None:
        self.tokenizer = tokenizer
        self.chunking = chunking

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {name: [] for name in TOKENS_FEATURES}
        tokenizer = self.tokenizer
        all_ids = tokenizer.encode_ids_batch(batch["text"])
        for i, ids in enumerate(all_ids):
            starts, ends = tokenizer.byte_offsets(ids)
            windows = windows_for_file(
                batch["text"][i].encode("utf-8"),
                ids,
                starts,
                ends,
                np.asarray(batch["span_start"][i], dtype=np.int64),
                np.asarray(batch["span_end"][i], dtype=np.int64),
                np.asarray(batch["span_kind"][i], dtype=np.int8),
                np.asarray(batch["boundaries"][i], dtype=np.int64),
                self.chunking,
                cls_id=tokenizer.cls_id,
                sep_id=tokenizer.sep_id,
            )
            for w in windows:
                out["input_ids"].append(w.input_ids)
                out["span_start"].append(w.span_start)
                out["span_end"].append(w.span_end)
                out["span_kind"].append(w.span_kind)
                out["language"].append(batch["language"][i])
                out["path"].append(batch["path"][i])
        return out


def _features() -> Any:
    from datasets import Features, Sequence, Value

    return Features(
        {
            name: Value(dtype) if dtype == "string" else Sequence(Value(dtype))
            for name, dtype in TOKENS_FEATURES.items()
        }
    )


def tokenize_corpus(
    files_dir: str | Path,
    tokenizer: CodeTokenizer,
    chunking: ChunkingConfig,
    out_dir: str | Path,
    *,
    num_proc: int = 1,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Build ``out_dir`` (the ``tokens`` DatasetDict) from the ``files`` DatasetDict.

    Returns per-split statistics: files, windows, tokens (including specials), seconds.
    ``chunking.min_tokens`` counts a window's file tokens (``<cls>``/``<sep>`` excluded).
    """
    from datasets import Dataset, DatasetDict, load_from_disk

    files_dir, out_dir = Path(files_dir), Path(out_dir)
    try:
        files = load_from_disk(str(files_dir))
    except (FileNotFoundError, ValueError, IndexError) as exc:  # IndexError: a zero-shard split
        raise CorpusError(f"cannot read the files dataset at {files_dir}: {exc!r}") from exc
    if not isinstance(files, DatasetDict):
        raise CorpusError(f"{files_dir} holds a single Dataset, expected a DatasetDict of splits")
    required = {"path", "language", "text", "span_start", "span_end", "span_kind", "boundaries"}
    if out_dir.exists() and not (out_dir / "dataset_dict.json").exists():
        raise CorpusError(f"{out_dir} exists and is not a token dataset; refusing to overwrite it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    stats: dict[str, Any] = {"seq_len": chunking.seq_len, "splits": {}}
    # map() caches next to its input unless told otherwise: stage beside out_dir instead, so
    # DIR/files stays as built and a crash never leaves half a DIR/tokens behind.
    staging = Path(tempfile.mkdtemp(prefix=".tokens-staging-", dir=out_dir.parent))
    try:
        views = {}
        for split, dataset in files.items():
            missing = required - set(dataset.column_names)
            if missing:
                raise CorpusError(f"{files_dir}/{split} lacks column(s): {', '.join(sorted(missing))}")
            t0 = time.perf_counter()
            view = dataset.map(
                _WindowBatcher(tokenizer, chunking),
                batched=True,
                batch_size=batch_size,
                num_proc=num_proc if num_proc > 1 and len(dataset) >= num_proc else None,
                remove_columns=dataset.column_names,
                features=_features(),
                cache_file_name=str(staging / f"{split}.arrow"),
                desc=f"tokenizing {split}",
            )
            if len(view) == 0:
                # A map that yields no rows leaves no schema behind; write a typed empty split.
                view = Dataset.from_dict({name: [] for name in TOKENS_FEATURES}, features=_features())
            lengths = _list_lengths(view, "input_ids")
            stats["splits"][split] = {
                "files": len(dataset),
                "windows": len(view),
                "tokens": int(lengths.sum()),
                "mean_window_tokens": float(lengths.mean()) if len(lengths) else 0.0,
                "seconds": round(time.perf_counter() - t0, 3),
            }
            views[split] = view
        # datasets writes an empty split as zero shards, which it then cannot load: force one.
        empty = {name: 1 for name, view in views.items() if len(view) == 0}
        DatasetDict(views).save_to_disk(str(staging / "tokens"), num_shards=empty or None)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging / "tokens", out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    stats["seconds"] = round(time.perf_counter() - started, 3)
    return stats


def _list_lengths(dataset: Any, column: str) -> np.ndarray:
    """Lengths of a list column, read from Arrow without building Python lists."""
    import pyarrow.compute as pc

    if len(dataset) == 0:
        return np.zeros(0, dtype=np.int64)
    chunks = dataset.data.column(column)
    return np.asarray(pc.list_value_length(chunks).to_numpy(zero_copy_only=False), dtype=np.int64)
