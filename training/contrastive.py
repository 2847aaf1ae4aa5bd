"""Contrastive training of the encoder for code search (the ``contrastive`` task).

MLM-only encoders are near useless for retrieval until a contrastive stage (CodeSage and
every published code-search encoder). Pairs come from the corpus through tree-sitter:

- doc -> code: the first paragraph of a definition's documentation -> the definition with the
  documentation cut out (``syntax.doc_code_pairs``), so the model cannot just copy words;
- code -> code: a definition's name and first line (its signature) -> the rest of its body.

Pairs are deduplicated, and the validation pairs come only from files the training pairs
never saw (the data directory's validation split, or a file-hash split of repositories).
The loss is symmetric InfoNCE with in-batch negatives and a learnable temperature; batches
are composed of small runs of pairs from one file, so neighbours in a batch are hard
negatives (same vocabulary, same style) where a file has several. Optionally an MLM term
on the code side keeps the encoder a good infiller. Validation logs recall@1 and MRR of
query -> code over all validation pairs. Starts from ``init_from`` (an MLM model directory)
and exports a model directory like every task.

``task_options`` (all optional): ``repos`` (list of source roots, used instead of the data
directory), ``max_query_tokens`` (64), ``max_code_tokens`` (256), ``temperature`` (0.05,
initial; a continuation from a contrastive run starts from the temperature that run learned),
``learn_temperature`` (true), ``same_file_run`` (4, pairs per file kept adjacent),
``code_views`` (true), ``code_view_ratio`` (1.0: at most this many code->code pairs per
doc->code pair, so the views that search does not ask for cannot swamp the ones it does), ``mlm_weight`` (0.0), ``mlm_rate`` (0.15), ``max_validation_pairs``
(2000), ``validation_fraction`` (0.1, for ``repos``), ``exclude_search_validation`` (false: true
leaves out every file whose text is one of the stdlib modules of search's validation set,
``training/static_validation.py``, so the rerank weight chosen there is not chosen on pairs the
encoder trained on).

Teacher distillation (``teacher``: a teacher's name from ``training.teacher.TEACHERS``, e.g.
``all-MiniLM-L6-v2``; null, the default, is off): before training the teacher embeds every
training pair's query and code, each cut to what the student reads of it (``max_query_tokens``,
``max_code_tokens``), and the vectors are cached by text digest in ``teacher_cache`` (default
``OUT_DIR/teacher-cache``; the static table's cache has the same format). The loss then adds,
weighted by ``teacher_weight`` (1.0), the KL divergence from the teacher's in-batch
query -> code (and code -> query) similarity distribution to the student's, both at
``teacher_temperature`` (0.05): soft targets for the in-batch negatives, so a negative the
teacher finds nearly as relevant as the positive is pushed away less (``teacher_kl``).
InfoNCE stays; its learnable temperature is not touched by this term.
"""

from __future__ import annotations

import hashlib
import math
import random
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningDataModule
from torch.utils.data import DataLoader, Sampler

from codemlm.config import ModelConfig
from codemlm.errors import ConfigError, CorpusError
from codemlm.model import IGNORE_INDEX, CodeEncoder
from codemlm.tokenizer import CodeTokenizer, padded_batch
from training.config import OptimConfig, TrainConfig
from training.mlm import AdamWModule, parameter_groups

if TYPE_CHECKING:
    from codemlm.sources import SourceFile
    from training.teacher import Teacher

__all__ = [
    "HARD_NEGATIVE_MINERS",
    "ContrastiveModule",
    "ContrastiveOptions",
    "Pair",
    "PairDataModule",
    "TeacherTable",
    "continued_temperature",
    "embed_texts",
    "info_nce",
    "options_from_dict",
    "pairs_from_files",
    "retrieval_metrics",
    "seen_texts",
    "teacher_kl",
    "teacher_table",
    "train_contrastive",
]


HARD_NEGATIVE_MINERS = ("bm25", "encoder", "encoder+bm25")


@dataclass(frozen=True)
class ContrastiveOptions:
    repos: tuple[str, ...] = ()
    extra_repos: tuple[str, ...] = ()  # more training pairs beside the data directory's (never validation)
    skip_missing_packages: bool = False  # a pkg:NAME of extra_repos that is not installed: skipped, not an error
    max_query_tokens: int = 64
    max_code_tokens: int = 256
    temperature: float = 0.05
    learn_temperature: bool = True
    same_file_run: int = 4
    hard_negatives: bool = False  # each doc pair also meets a mined negative code (hard_negative_miner)
    # "bm25": BM25's top for the query; "encoder": init_from's nearest code below the margin (none if
    # none); "encoder+bm25": that, else BM25's
    hard_negative_miner: str = "bm25"
    code_views: bool = True
    code_view_ratio: float = 1.0
    mlm_weight: float = 0.0
    mlm_rate: float = 0.15
    max_validation_pairs: int = 2000
    validation_fraction: float = 0.1
    exclude_search_validation: bool = False
    teacher: str | None = None
    teacher_weight: float = 1.0
    teacher_temperature: float = 0.05
    teacher_cache: str | None = None

    def __post_init__(self) -> None:
        if self.max_query_tokens < 4 or self.max_code_tokens < 4:
            raise ConfigError("task_options.max_query_tokens and max_code_tokens must be >= 4")
        if not 0.0 < self.temperature < 1.0:
            raise ConfigError("task_options.temperature must be in (0, 1)")
        if self.same_file_run < 1:
            raise ConfigError("task_options.same_file_run must be >= 1")
        if self.mlm_weight < 0 or not 0.0 < self.mlm_rate < 1.0:
            raise ConfigError("task_options.mlm_weight must be >= 0 and mlm_rate in (0, 1)")
        if self.code_view_ratio < 0:
            raise ConfigError("task_options.code_view_ratio must be >= 0")
        if self.max_validation_pairs < 2:
            raise ConfigError("task_options.max_validation_pairs must be >= 2")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError("task_options.validation_fraction must be in (0, 1)")
        if self.hard_negative_miner not in HARD_NEGATIVE_MINERS:
            raise ConfigError(f"task_options.hard_negative_miner must be one of {', '.join(HARD_NEGATIVE_MINERS)}")
        if self.teacher_weight < 0 or not 0.0 < self.teacher_temperature < 1.0:
            raise ConfigError("task_options.teacher_weight must be >= 0 and teacher_temperature in (0, 1)")

    @classmethod
    def from_task_options(cls, options: dict[str, Any]) -> ContrastiveOptions:
        return options_from_dict(cls, options, "contrastive")


_Options = TypeVar("_Options")


def options_from_dict(cls: type[_Options], options: dict[str, Any], task: str) -> _Options:
    """``task_options`` as the dataclass ``cls`` of a search task: unknown keys named, a single
    folder for ``repos`` / ``extra_repos`` taken as a list of one, invalid values a ConfigError."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown task_options for {task}: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    values = dict(options)
    for key in ("repos", "extra_repos"):
        if key in values:
            repos = values[key]
            values[key] = (repos,) if isinstance(repos, str) else tuple(str(r) for r in repos)
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"invalid task_options: {exc}") from exc


# --------------------------------------------------------------------------- pairs
@dataclass(frozen=True)
class Pair:
    query: str
    code: str
    group: int  # file number: pairs of one group are hard negatives for each other
    kind: str  # "doc" | "code"


def _first_paragraph(doc: str) -> str:
    return doc.strip().split("\n\n", 1)[0].strip()


def pairs_from_files(files: Iterable[tuple[str, str]], *, code_views: bool = True) -> list[Pair]:
    """Deduplicated pairs from (text, language) files, in file order."""
    from codemlm.errors import UnsupportedLanguageError
    from codemlm.syntax import definitions, doc_code_pairs

    pairs: list[Pair] = []
    seen: set[bytes] = set()

    def add(query: str, code: str, group: int, kind: str) -> None:
        query, code = query.strip(), code.strip()
        if len(query) < 8 or len(code) < 16:
            return
        key = hashlib.blake2b(f"{query}\x00{code}".encode(), digest_size=16).digest()
        if key not in seen:
            seen.add(key)
            pairs.append(Pair(query, code, group, kind))

    for group, (text, language) in enumerate(files):
        try:
            for doc in doc_code_pairs(text, language):
                add(_first_paragraph(doc.doc), doc.code, group, "doc")
            if code_views:
                for d in definitions(text, language):
                    if d.kind not in ("function", "method"):
                        continue
                    head, _, body = d.text.partition("\n")
                    if sum(1 for line in body.splitlines() if line.strip()) >= 2:
                        add(f"{d.name} {head.strip()}", body, group, "code")
        except UnsupportedLanguageError:
            continue
    return pairs


def _cap_code_views(pairs: list[Pair], ratio: float) -> list[Pair]:
    """Keep every doc pair and an evenly spread subset of code views (deterministic)."""
    docs = sum(p.kind == "doc" for p in pairs)
    views = len(pairs) - docs
    keep = min(views, int(ratio * docs))
    if keep >= views:
        return pairs
    stride = views / max(keep, 1)
    chosen = {int(i * stride) for i in range(keep)}
    out, view_index = [], 0
    for p in pairs:
        if p.kind == "code":
            if view_index in chosen:
                out.append(p)
            view_index += 1
        else:
            out.append(p)
    return out


def _file_split(path: str, fraction: float) -> str:
    bucket = int(hashlib.sha1(path.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "validation" if bucket < fraction else "train"


def load_pairs(config: TrainConfig, options: ContrastiveOptions) -> tuple[list[Pair], list[Pair], str]:
    """(train pairs, validation pairs, where they came from); validation files never in train."""
    train_files: list[tuple[str, str]] = []
    val_files: list[tuple[str, str]] = []
    if options.repos:
        for root, source in _repository_files(_folders(options.repos)):
            split = _file_split(f"{root}/{source.path}", options.validation_fraction)
            (val_files if split == "validation" else train_files).append((source.text, source.language))
        origin = "repos: " + ", ".join(options.repos)
    else:
        from datasets import load_from_disk

        data_dir = _files_dir_owner(config)
        try:
            files = load_from_disk(str(data_dir / "files"))
        except (OSError, ValueError, FileNotFoundError) as exc:
            raise CorpusError(f"{data_dir}/files is not a corpus file table: {exc}") from exc
        train_files = list(zip(files["train"]["text"], files["train"]["language"], strict=True))
        if "validation" in files and files["validation"].num_rows:
            val_files = list(zip(files["validation"]["text"], files["validation"]["language"], strict=True))
        origin = str(data_dir)
    extra = _folders(options.extra_repos, skip_missing=options.skip_missing_packages)
    if extra:
        train_files += [(source.text, source.language) for _, source in _repository_files(extra)]
        origin += " + " + ", ".join(root for root, _ in extra)
    if options.exclude_search_validation:
        held = _search_validation_digests()
        train_files = [f for f in train_files if _text_digest(f[0]) not in held]
        val_files = [f for f in val_files if _text_digest(f[0]) not in held]
    train = _cap_code_views(pairs_from_files(train_files, code_views=options.code_views), options.code_view_ratio)
    validation = pairs_from_files(val_files, code_views=False)  # measure what search asks: doc -> code
    train_codes = {p.code for p in train}
    validation = [p for p in validation if p.code not in train_codes][: options.max_validation_pairs]
    if len(train) < 2:
        raise CorpusError(f"too few (doc, code) pairs to train on ({len(train)}) from {origin}")
    return train, validation, origin


def _folders(roots: Sequence[str], *, skip_missing: bool = False) -> list[tuple[str, Path]]:
    """(root, folder) for each root: a path, or ``pkg:NAME``'s installed folder. With
    ``skip_missing`` a ``pkg:`` that is not installed is left out and named on stderr."""
    out: list[tuple[str, Path]] = []
    missing: list[str] = []
    for root in roots:
        path = _package_folder(root[4:], missing_ok=skip_missing) if root.startswith("pkg:") else Path(root).expanduser()
        if path is None:
            missing.append(root)
            continue
        if not path.is_dir():
            raise CorpusError(f"{root} is not a directory of source files")
        out.append((root, path))
    if missing:
        print(f"contrastive: not installed, skipped: {', '.join(missing)}", file=sys.stderr)
    return out


def _repository_files(folders: Sequence[tuple[str, Path]]) -> Iterator[tuple[str, SourceFile]]:
    from codemlm.config import CorpusConfig
    from codemlm.sources import CorpusStats, iter_repository

    for root, path in folders:
        for source in iter_repository(path, CorpusConfig(), CorpusStats()):
            yield root, source


def _package_folder(name: str, *, missing_ok: bool = False) -> Path | None:
    """``pkg:NAME``: the folder of an installed package (found without importing it), so a
    config can name training code by package instead of by a site-packages path. A held-out or
    validation library is always an error; a package that is not installed is None with
    ``missing_ok``."""
    import importlib.util

    from training.static_validation import HELDOUT_LIBRARIES, JUDGING_LIBRARIES

    if name in HELDOUT_LIBRARIES:
        raise CorpusError(f"pkg:{name} is a held-out search library; it is never training data")
    if name in JUDGING_LIBRARIES:
        raise CorpusError(f"pkg:{name} is a validation or held-out completion library; it is never training data")
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        if missing_ok:
            return None
        raise CorpusError(f"pkg:{name}: no installed package folder of that name")
    return Path(locations[0])


def _text_digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=16).digest()


def _search_validation_digests() -> set[bytes]:
    from training.static_validation import validation_files

    digests = set()
    for path in validation_files():
        try:
            digests.add(_text_digest(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            continue
    return digests


def _files_dir_owner(config: TrainConfig) -> Path:
    """The data directory whose ``files/`` table holds the source files (only ``files/`` is
    needed here: ``codemlm corpus build`` output with or without the token windows)."""
    from training import run as run_lib

    if config.data.dir is None:
        return run_lib.resolve_data_dir(config)  # the standard-library slice, built on first use
    path = Path(config.data.dir).expanduser()
    if not (path / "files").is_dir():
        raise CorpusError(f"{path} has no files/ table; make it with `codemlm corpus build SRC --out {path}`")
    return path


# --------------------------------------------------------------------------- teacher
def seen_texts(tokenizer: CodeTokenizer, texts: Sequence[str], max_tokens: int) -> list[str]:
    """Each text cut to what the student reads of it: its first ``max_tokens`` - 2 tokens
    (``_encode`` adds [CLS] and [SEP]), so the teacher judges what the student sees."""
    body = max_tokens - 2
    out = []
    for text, ids in zip(texts, tokenizer.encode_ids_batch(texts), strict=True):
        if len(ids) <= body:
            out.append(text)
            continue
        end = int(tokenizer.byte_lengths[ids[:body].astype(np.int64)].sum())
        out.append(text.encode("utf-8", "replace")[:end].decode("utf-8", "ignore"))
    return out


@dataclass(frozen=True)
class TeacherTable:
    """The teacher's unit vectors for the training pairs: the row of each pair's query and code."""

    name: str
    vectors: torch.Tensor  # [texts, dim] float32
    query_rows: dict[str, int]
    code_rows: dict[str, int]

    def lookup(self, pairs: Sequence[Pair]) -> tuple[torch.Tensor, torch.Tensor]:
        """([B, dim], [B, dim]): the teacher's vectors of the batch's queries and codes."""
        return (self.vectors[[self.query_rows[p.query] for p in pairs]],
                self.vectors[[self.code_rows[p.code] for p in pairs]])


class _CountingTeacher:
    def __init__(self, teacher: Teacher) -> None:
        self.teacher = teacher
        self.name = teacher.name
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += len(texts)
        return self.teacher.embed(texts)


def teacher_table(pairs: Sequence[Pair], teacher: Teacher, tokenizer: CodeTokenizer, options: ContrastiveOptions,
                  cache: Path | None, *, block: int = 2048, verbose: bool = False) -> tuple[TeacherTable, dict[str, Any]]:
    """The teacher's vectors of every query and code of ``pairs`` (as the student reads them),
    through the cache of ``training.teacher.teacher_vectors``. With a cache the texts are embedded
    in blocks of ``block``, each kept as it is done: a run stopped midway loses one block at most."""
    from training.teacher import teacher_vectors

    started = time.perf_counter()
    queries = list(dict.fromkeys(p.query for p in pairs))
    codes = list(dict.fromkeys(p.code for p in pairs))
    query_seen = seen_texts(tokenizer, queries, options.max_query_tokens)
    code_seen = seen_texts(tokenizer, codes, options.max_code_tokens)
    texts = list(dict.fromkeys([*query_seen, *code_seen]))
    counting = _CountingTeacher(teacher)
    if cache is not None and len(texts) > block:
        for start in range(0, len(texts), block):
            teacher_vectors(counting, texts[start : start + block], cache)
            if verbose:
                print(f"teacher {teacher.name}: {min(start + block, len(texts))}/{len(texts)} texts, "
                      f"{counting.texts} embedded, {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
    vectors = torch.nn.functional.normalize(torch.from_numpy(teacher_vectors(counting, texts, cache)).float(), dim=1)
    row = {text: i for i, text in enumerate(texts)}
    table = TeacherTable(
        name=teacher.name, vectors=vectors,
        query_rows={q: row[s] for q, s in zip(queries, query_seen, strict=True)},
        code_rows={c: row[s] for c, s in zip(codes, code_seen, strict=True)},
    )
    info = {"name": teacher.name, "weight": options.teacher_weight, "temperature": options.teacher_temperature,
            "texts": len(texts), "embedded": counting.texts, "seconds": round(time.perf_counter() - started, 1),
            "cache": str(cache) if cache is not None else None}
    return table, info


# --------------------------------------------------------------------------- batches
def _encode(tokenizer: CodeTokenizer, texts: Sequence[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    heads = tokenizer.encode_ids_heads(texts, max_tokens - 2)  # the same ids as cutting whole texts
    return padded_batch([[tokenizer.cls_id, *ids.tolist(), tokenizer.sep_id] for ids in heads], tokenizer.pad_id)


class _Collate:
    def __init__(self, tokenizer: CodeTokenizer, options: ContrastiveOptions, teacher: TeacherTable | None = None,
                 negatives: dict[Pair, str] | None = None) -> None:
        self.tokenizer = tokenizer
        self.options = options
        self.teacher = teacher
        self.negatives = negatives or {}

    def __call__(self, pairs: list[Pair]) -> dict[str, torch.Tensor]:
        q_ids, q_mask = _encode(self.tokenizer, [p.query for p in pairs], self.options.max_query_tokens)
        c_ids, c_mask = _encode(self.tokenizer, [p.code for p in pairs], self.options.max_code_tokens)
        # Two pairs with the same code (or query) in a batch are not negatives of each other.
        groups = torch.tensor([hash(p.code) for p in pairs], dtype=torch.long)
        batch = {"query_ids": q_ids, "query_mask": q_mask, "code_ids": c_ids, "code_mask": c_mask, "code_key": groups}
        if self.teacher is not None:
            batch["teacher_query"], batch["teacher_code"] = self.teacher.lookup(pairs)
        hard = [self.negatives[p] for p in pairs if p in self.negatives]
        if hard:
            batch["hard_ids"], batch["hard_mask"] = _encode(self.tokenizer, hard, self.options.max_code_tokens)
            batch["hard_key"] = torch.tensor([hash(code) for code in hard], dtype=torch.long)
        return batch


class SameFileRunSampler(Sampler[int]):
    """Each epoch: shuffle files, keep runs of up to ``run`` pairs of one file together, shuffle
    the runs. Shards by rank; deterministic in (seed, epoch)."""

    def __init__(self, groups: Sequence[int], run: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.groups = list(groups)
        self.run = run
        self.seed = seed
        self.rank = rank
        self.world = world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        by_group: dict[int, list[int]] = {}
        for index, group in enumerate(self.groups):
            by_group.setdefault(group, []).append(index)
        runs: list[list[int]] = []
        for members in by_group.values():
            rng.shuffle(members)
            runs.extend(members[i : i + self.run] for i in range(0, len(members), self.run))
        rng.shuffle(runs)
        order = [i for r in runs for i in r]
        per_rank = len(order) // self.world
        return iter(order[self.rank * per_rank : (self.rank + 1) * per_rank])

    def __len__(self) -> int:
        return len(self.groups) // self.world


class PairDataModule(LightningDataModule):
    def __init__(
        self, train: list[Pair], validation: list[Pair], tokenizer: CodeTokenizer, options: ContrastiveOptions,
        *, batch_size: int, num_workers: int = 0, seed: int = 0, teacher: TeacherTable | None = None,
        negatives: dict[Pair, str] | None = None,
    ) -> None:
        super().__init__()
        self.train_pairs = train
        self.validation_pairs = validation
        self.collate = _Collate(tokenizer, options)  # validation and probes: no teacher
        self.train_collate = _Collate(tokenizer, options, teacher, negatives) \
            if teacher is not None or negatives else self.collate
        self.options = options
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed

    def train_dataloader(self) -> DataLoader:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        sampler = SameFileRunSampler([p.group for p in self.train_pairs], self.options.same_file_run, self.seed, rank, world)
        return DataLoader(
            self.train_pairs,  # type: ignore[arg-type]
            batch_size=self.batch_size, sampler=sampler, collate_fn=self.train_collate,
            num_workers=self.num_workers, drop_last=len(self.train_pairs) // world >= self.batch_size,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.validation_pairs,  # type: ignore[arg-type]
            batch_size=max(self.batch_size, 64), shuffle=False, collate_fn=self.collate, num_workers=self.num_workers,
        )


# --------------------------------------------------------------------------- loss and metrics
def info_nce(query: torch.Tensor, code: torch.Tensor, scale: torch.Tensor, code_key: torch.Tensor | None = None,
             hard: torch.Tensor | None = None, hard_key: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of unit vectors [B, D]: row i's positive is column i, every
    other column is a negative (except exact duplicates of the positive, which are masked).
    ``hard`` [H, D]: mined negative codes, extra columns for every query (query -> code only);
    one that is a duplicate of a row's positive (``hard_key``) is masked for that row."""
    logits = scale * query @ code.T  # [B, B]
    if code_key is not None:
        duplicate = (code_key[:, None] == code_key[None, :]) & ~torch.eye(len(code_key), dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(duplicate, float("-inf"))
    targets = torch.arange(len(query), device=logits.device)
    to_code = logits
    if hard is not None and len(hard):
        extra = scale * query @ hard.T  # [B, H]
        if code_key is not None and hard_key is not None:
            extra = extra.masked_fill(code_key[:, None] == hard_key[None, :], float("-inf"))
        to_code = torch.cat([logits, extra], dim=1)
    return 0.5 * (F.cross_entropy(to_code, targets) + F.cross_entropy(logits.T, targets))


def teacher_kl(query: torch.Tensor, code: torch.Tensor, teacher_query: torch.Tensor, teacher_code: torch.Tensor,
               temperature: float, code_key: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric KL(teacher || student) of the in-batch similarity distributions: each query's
    softmax over the batch's codes and each code's over the batch's queries, student and
    teacher cosines both divided by ``temperature``. Duplicates of the positive are left out of
    both distributions, as in :func:`info_nce`. Zero when the student's cosines are the teacher's."""
    with torch.autocast(device_type=query.device.type, enabled=False):  # float32: logits up to 1 / temperature
        student = query.float() @ code.float().T / temperature
        teacher = teacher_query.float() @ teacher_code.float().T / temperature
    if code_key is not None:
        duplicate = (code_key[:, None] == code_key[None, :]) & ~torch.eye(len(code_key), dtype=torch.bool,
                                                                         device=student.device)
        # Finite, not -inf: a left-out entry has teacher probability 0 and adds 0 (not nan) to the sum.
        student = student.masked_fill(duplicate, -1e4)
        teacher = teacher.masked_fill(duplicate, -1e4)

    def rows(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        log_t = F.log_softmax(t, dim=1)
        return (log_t.exp() * (log_t - F.log_softmax(s, dim=1))).sum(dim=1).mean()

    return 0.5 * (rows(student, teacher) + rows(student.T, teacher.T))


def retrieval_metrics(query: torch.Tensor, code: torch.Tensor) -> dict[str, float]:
    """recall@1, recall@10 and MRR of query i -> code i among all codes."""
    scores = query.float() @ code.float().T  # [N, N]
    positive = scores.diagonal()[:, None]
    rank = (scores > positive).sum(dim=1) + 1  # 1-based; ties count in the pair's favour
    return {
        "recall_at_1": float((rank == 1).float().mean()),
        "recall_at_10": float((rank <= 10).float().mean()),
        "mrr": float((1.0 / rank.float()).mean()),
    }


# --------------------------------------------------------------------------- the module
class ContrastiveModule(AdamWModule):
    def __init__(self, model_config: ModelConfig, optim: OptimConfig, options: ContrastiveOptions, *, mask_id: int,
                 special_ids: Sequence[int]) -> None:
        super().__init__()
        self.save_hyperparameters({"model": asdict(model_config), "optim": asdict(optim), "options": asdict(options)})
        self.model_config = model_config
        self.optim = optim
        self.options = options
        self.mask_id = mask_id
        self.special_ids = torch.tensor(sorted(special_ids), dtype=torch.long)
        self.encoder = CodeEncoder(model_config)
        # log(1 / temperature), learnable (CLIP), capped at 100 so the logits cannot blow up.
        self.log_scale = torch.nn.Parameter(
            torch.tensor(math.log(1.0 / options.temperature)), requires_grad=options.learn_temperature
        )
        self._val_query: list[torch.Tensor] = []
        self._val_code: list[torch.Tensor] = []

    def scale(self) -> torch.Tensor:
        return self.log_scale.clamp(max=math.log(100.0)).exp()

    def configure_optimizers(self) -> Any:
        opt = self.optim
        groups = parameter_groups(self.encoder, opt.weight_decay)
        if self.log_scale.requires_grad:
            groups.append({"params": [self.log_scale], "weight_decay": 0.0})
        return self.adamw_with_schedule(groups)

    def _mlm_term(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        chosen = (torch.rand(ids.shape, device=ids.device) < self.options.mlm_rate) & mask
        chosen &= ~torch.isin(ids, self.special_ids.to(ids.device))
        labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))
        return self.encoder.mlm_loss(ids.masked_fill(chosen, self.mask_id), mask, labels).loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        query = self.encoder.embed(batch["query_ids"], batch["query_mask"])
        code = self.encoder.embed(batch["code_ids"], batch["code_mask"])
        hard = self.encoder.embed(batch["hard_ids"], batch["hard_mask"]) if "hard_ids" in batch else None
        loss = info_nce(query, code, self.scale(), batch["code_key"], hard, batch.get("hard_key"))
        self.log("train/contrastive_loss", loss.detach(), prog_bar=True)
        if "teacher_query" in batch and self.options.teacher_weight > 0:
            kl = teacher_kl(query, code, batch["teacher_query"], batch["teacher_code"],
                            self.options.teacher_temperature, batch["code_key"])
            self.log("train/teacher_kl", kl.detach())
            loss = loss + self.options.teacher_weight * kl
        if self.options.mlm_weight > 0:
            mlm = self._mlm_term(batch["code_ids"], batch["code_mask"])
            self.log("train/mlm_loss", mlm.detach())
            loss = loss + self.options.mlm_weight * mlm
        self.log("train/loss", loss.detach())
        self.log("train/temperature", 1.0 / self.scale().detach())
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_query, self._val_code = [], []

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._val_query.append(self.encoder.embed(batch["query_ids"], batch["query_mask"]).float())
        self._val_code.append(self.encoder.embed(batch["code_ids"], batch["code_mask"]).float())

    def on_validation_epoch_end(self) -> None:
        if not self._val_query:
            return
        # Every rank evaluates all validation pairs (no distributed sampler), so no gather is needed.
        query, code = torch.cat(self._val_query), torch.cat(self._val_code)
        metrics = retrieval_metrics(query, code)
        self.log("val/recall_at_1", metrics["recall_at_1"], prog_bar=True, sync_dist=False)
        self.log("val/recall_at_10", metrics["recall_at_10"], sync_dist=False)
        self.log("val/mrr", metrics["mrr"], sync_dist=False)


# --------------------------------------------------------------------------- the task
def train_contrastive(
    config: TrainConfig, *, command: Sequence[str] | None = None, callbacks: Sequence[Callback] = (),
    teacher: Teacher | None = None,
) -> Any:
    """The ``contrastive`` task of ``training.run``; returns a :class:`training.run.RunResult`.
    ``teacher`` (an object with ``name`` and ``embed``) stands in for ``task_options.teacher``,
    whose name it must carry; by default the named teacher is loaded when a text is not cached."""
    from lightning.pytorch import seed_everything

    from codemlm.checkpoint import load_model_dir
    from training import run as run_lib

    options = ContrastiveOptions.from_task_options(config.task_options)
    train_pairs, val_pairs, origin = load_pairs(config, options)
    if config.init_from:
        loaded = load_model_dir(config.init_from)
        tokenizer, model_config = loaded.tokenizer, loaded.config
    else:
        from training.data import load_data_tokenizer

        if options.repos:
            raise ConfigError("contrastive training from repos needs init_from (a model directory with a tokenizer)")
        tokenizer = load_data_tokenizer(_files_dir_owner(config))
        model_config = config.model.build(vocab_size=tokenizer.vocab_size, pad_id=tokenizer.pad_id)
        loaded = None

    table, teacher_info = None, None
    if options.teacher is not None:
        from training.teacher import LazyTeacher

        if teacher is not None and teacher.name != options.teacher:
            raise ConfigError(f"the teacher given is {teacher.name!r}, task_options.teacher is {options.teacher!r}")
        cache = Path(options.teacher_cache).expanduser() if options.teacher_cache \
            else Path(config.trainer.out_dir) / "teacher-cache"
        table, teacher_info = teacher_table(train_pairs, teacher or LazyTeacher(options.teacher), tokenizer, options,
                                            cache, verbose=True)

    seed_everything(config.trainer.seed, workers=True, verbose=False)
    module = ContrastiveModule(model_config, config.optim, options, mask_id=tokenizer.mask_id,
                               special_ids=sorted(tokenizer.special_ids))
    temperature_from = None
    if loaded is not None:
        module.encoder.load_state_dict(loaded.model.state_dict())
        temperature_from = continued_temperature(loaded.summary, options)
        if temperature_from is not None:
            with torch.no_grad():
                module.log_scale.fill_(math.log(1.0 / temperature_from))
    negatives, mined = None, None
    if options.hard_negatives:
        if options.hard_negative_miner != "bm25" and loaded is None:
            raise ConfigError("hard_negative_miner: encoder needs init_from (the encoder that mines)")
        began = time.perf_counter()
        chosen, by_miner = _mine(train_pairs, options, module.encoder, tokenizer)
        negatives = {p: train_pairs[j].code for p, j in zip(train_pairs, chosen, strict=True) if j >= 0}
        mined = {"pairs": len(negatives), "miner": options.hard_negative_miner, "by_miner": by_miner,
                 "seconds": round(time.perf_counter() - began, 1)}
        print(f"hard negatives ({options.hard_negative_miner}): {len(negatives)} of {len(train_pairs)} pairs "
              f"{by_miner} ({mined['seconds']} s)", file=sys.stderr)

    datamodule = PairDataModule(train_pairs, val_pairs, tokenizer, options, batch_size=config.optim.batch_size,
                                num_workers=config.data.num_workers, seed=config.trainer.seed, teacher=table,
                                negatives=negatives)
    trainer = run_lib.build_trainer(config, callbacks=list(callbacks))
    ckpt_path = run_lib.resolve_resume(config)
    if ckpt_path is not None:
        run_lib.check_resume_checkpoint(ckpt_path, module)

    # A fixed sample of training doc pairs: did the model fit what it saw? (validation: does it generalize?)
    probe = [p for p in train_pairs if p.kind == "doc"][: options.max_validation_pairs] or train_pairs[:256]
    before = _retrieval_on(module, val_pairs, datamodule.collate)
    probe_before = _retrieval_on(module, probe, datamodule.collate)
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    seconds = time.perf_counter() - started
    run_lib.save_final_checkpoint(trainer, config)
    after = _retrieval_on(module, val_pairs, datamodule.collate)
    probe_after = _retrieval_on(module, probe, datamodule.collate)

    metrics = run_lib.final_metrics(trainer)
    metrics.update({f"final/{k}": round(v, 4) for k, v in after.items()})
    summary = {
        "task": "contrastive",
        "command": list(command) if command is not None else None,
        "pairs_from": origin,
        "train_pairs": len(train_pairs),
        "train_pairs_doc": sum(p.kind == "doc" for p in train_pairs),
        "validation_pairs": len(val_pairs),
        "init_from": config.init_from,
        "teacher": teacher_info,
        "hard_negatives": mined,
        "steps": int(trainer.global_step),
        "seconds": round(seconds, 2),
        "validation_before": {k: round(v, 4) for k, v in before.items()},
        "validation_after": {k: round(v, 4) for k, v in after.items()},
        "train_probe_before": {k: round(v, 4) for k, v in probe_before.items()},
        "train_probe_after": {k: round(v, 4) for k, v in probe_after.items()},
        "temperature": round(float(1.0 / module.scale().detach()), 5),
        "temperature_from_init": temperature_from,
        "metrics": metrics,
        "config": config.to_dict(),
    }
    model_dir = run_lib.export_encoder(trainer, module.encoder, model_config, tokenizer, config, summary)
    return run_lib.RunResult(
        model_dir=model_dir, checkpoint_dir=run_lib.checkpoint_dir(config), global_step=int(trainer.global_step),
        tokens=0, seconds=seconds, metrics=metrics, summary=summary,
    )


def continued_temperature(init_summary: dict[str, Any], options: ContrastiveOptions) -> float | None:
    """The temperature a continuation starts from: the one ``init_from`` learned, when it was a
    contrastive run and this one learns its temperature too (restarting at ``temperature`` threw
    away what the run learned; the first round that carried it recovered from its learning-rate
    restart faster than the round before, pair validation 0.629 against 0.601 at step 1,000 —
    rounds, not a controlled comparison, BENCHMARKS.md); else None, and ``options.temperature`` stands."""
    learned = init_summary.get("temperature")
    if not options.learn_temperature or init_summary.get("task") != "contrastive":
        return None
    if not isinstance(learned, (int, float)) or isinstance(learned, bool) or not 0.0 < learned < 1.0:
        return None
    return float(learned)


def _mine(pairs: list[Pair], options: ContrastiveOptions, encoder: CodeEncoder,
          tokenizer: CodeTokenizer) -> tuple[list[int], dict[str, int]]:
    """Each doc pair's mined negative (an index into ``pairs``, or -1), by ``hard_negative_miner``,
    and how many each miner gave. The encoder passes over pairs whose nearest codes all score too
    close to the positive (every pair whose own code is not among its nearest, among others);
    under "encoder+bm25" those keep BM25's."""
    from training.hard_negatives import mine_hard_negatives, mine_nearest_negatives

    queries, codes, groups = [p.query for p in pairs], [p.code for p in pairs], [p.group for p in pairs]
    wanted = [p.kind == "doc" for p in pairs]
    if options.hard_negative_miner == "bm25":
        lexical = mine_hard_negatives(queries, codes, groups, wanted)
        return lexical, {"bm25": sum(j >= 0 for j in lexical)}
    rows = [i for i, w in enumerate(wanted) if w]
    query_vectors = np.zeros((len(pairs), encoder.config.dim), dtype=np.float32)
    query_vectors[rows] = embed_texts(encoder, tokenizer, [queries[i] for i in rows], options.max_query_tokens)
    code_vectors = embed_texts(encoder, tokenizer, codes, options.max_code_tokens)
    chosen = mine_nearest_negatives(query_vectors, code_vectors, queries, codes, groups, wanted)
    by_encoder = sum(j >= 0 for j in chosen)
    if options.hard_negative_miner == "encoder":
        return chosen, {"encoder": by_encoder}
    lexical = mine_hard_negatives(queries, codes, groups, wanted)
    chosen = [j if j >= 0 else k for j, k in zip(chosen, lexical, strict=True)]
    return chosen, {"encoder": by_encoder, "bm25": sum(j >= 0 for j in chosen) - by_encoder}


def embed_texts(encoder: CodeEncoder, tokenizer: CodeTokenizer, texts: Sequence[str], max_tokens: int,
                *, batch_size: int = 256, report_every: int = 25_600) -> np.ndarray:
    """Unit vectors of ``texts`` ([len(texts), dim]) as search reads them (``ModelEmbedder``:
    ``<cls> ids <sep>`` cut to ``max_tokens``, batches of similar length), each distinct text
    once; a line on stderr every ``report_every`` texts says how far it is."""
    from codemlm.checkpoint import LoadedModel
    from codemlm.embedder import ModelEmbedder

    embedder = ModelEmbedder(LoadedModel(encoder, tokenizer, encoder.config, {}, Path()), batch_size,
                             max_tokens=max_tokens)
    unique = list(dict.fromkeys(texts))
    vectors = np.zeros((len(unique), encoder.config.dim), dtype=np.float32)
    for start in range(0, len(unique), report_every):
        vectors[start : start + report_every] = embedder.embed_code(unique[start : start + report_every])
        if len(unique) > report_every:
            print(f"embedded {min(start + report_every, len(unique))} of {len(unique)} texts", file=sys.stderr, flush=True)
    position = {text: i for i, text in enumerate(unique)}
    return vectors[[position[t] for t in texts]]


@torch.no_grad()
def _retrieval_on(module: ContrastiveModule, pairs: list[Pair], collate: _Collate) -> dict[str, float]:
    """Retrieval metrics of query -> code among ``pairs``, outside the Trainer (before and after)."""
    if len(pairs) < 2:
        return {}
    was_training = module.training
    module.eval()
    device = next(module.parameters()).device
    queries, codes = [], []
    for start in range(0, len(pairs), 64):
        batch = collate(pairs[start : start + 64])
        queries.append(module.encoder.embed(batch["query_ids"].to(device), batch["query_mask"].to(device)).float().cpu())
        codes.append(module.encoder.embed(batch["code_ids"].to(device), batch["code_mask"].to(device)).float().cpu())
    module.train(was_training)
    return retrieval_metrics(torch.cat(queries), torch.cat(codes))
