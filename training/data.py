"""Training data: the windows of ``DIR/tokens`` in a resumable order, masked by the collator.

Exact resume rests on one rule: **what a step sees is a pure function of (seed, epoch,
position)**. The order of an epoch is a permutation drawn from ``(seed, epoch)``; each rank
takes every ``world_size``-th entry of it; the masks come from the collator's
``rng([seed, epoch, index])``. The data module stores ``(epoch, batches consumed)`` in
Lightning checkpoints and the sampler skips exactly those batches when the run resumes, so a
resumed run sees the same batches, with the same masks, as one that never stopped — no
matter how many workers prefetch ahead.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset, Sampler

from codemlm.cache import cache_dir
from codemlm.config import ChunkingConfig, CorpusConfig, MaskingConfig
from codemlm.errors import CorpusError
from codemlm.masking import MaskingCollator
from codemlm.tokenizer import CodeTokenizer
from training.config import DataConfig

__all__ = [
    "EpochShardSampler",
    "TokenWindowsDataModule",
    "WindowDataset",
    "cache_dir",
    "data_stats",
    "ensure_stdlib_data",
    "group_by_length",
    "load_data_tokenizer",
    "stdlib_sample",
]

# Columns of the training view the collator needs (the rest stay on disk).
_COLUMNS = ("input_ids", "span_start", "span_end", "span_kind")


class WindowDataset(Dataset):
    """Rows of one split of ``DIR/tokens``, keyed by ``(index, epoch)`` as the sampler yields them.

    Each example is the row plus ``index`` and ``epoch``, which seed its mask.
    """

    def __init__(self, rows: Any) -> None:
        missing = [c for c in _COLUMNS if c not in rows.column_names]
        if missing:
            raise CorpusError(
                f"token dataset lacks columns {missing}; rebuild it with `codemlm corpus build`"
            )
        self.rows = rows.select_columns(list(_COLUMNS))

    def __len__(self) -> int:
        return len(self.rows)

    @functools.cached_property
    def lengths(self) -> np.ndarray:
        """Tokens in each row (one columnar pass, no row is decoded; read once). Through the
        arrow view, so the rows of a ``select()``ed split are its own, in its order."""
        import pyarrow.compute as pc

        column = self.rows.with_format("arrow")["input_ids"]
        return np.asarray(pc.list_value_length(column).to_numpy(zero_copy_only=False), dtype=np.int64)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: Sequence[tuple[int, int]]) -> list[dict[str, Any]]:
        # One columnar read for the whole batch: far cheaper than a read per row.
        indices = [int(k[0]) for k in keys]
        columns = self.rows[indices]
        return [
            {**{c: columns[c][i] for c in _COLUMNS}, "index": index, "epoch": int(key[1])}
            for i, (index, key) in enumerate(zip(indices, keys, strict=True))
        ]


class EpochShardSampler(Sampler[tuple[int, int]]):
    """Yields ``(row index, epoch)``: a (seed, epoch) permutation, sharded round-robin over ranks.

    Every rank gets the same number of rows (the order wraps around to pad), as DDP needs.
    :meth:`resume_at` makes the next pass over ``epoch`` start after the rows a checkpoint
    already consumed; ``__len__`` stays the full epoch length, as Lightning expects of a
    resumable loader. With ``lengths`` (tokens per row) and ``batch_size``, the order is
    grouped by length (:func:`group_by_length`) so that a batch pads little.
    """

    def __init__(
        self,
        num_rows: int,
        *,
        seed: int,
        shuffle: bool,
        rank: int = 0,
        world_size: int = 1,
        follow_epoch: bool = True,
        lengths: np.ndarray | None = None,
        batch_size: int | None = None,
    ) -> None:
        if num_rows < 1:
            raise CorpusError("the token dataset split is empty")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        if lengths is not None and (len(lengths) != num_rows or not batch_size or batch_size < 1):
            raise ValueError("grouping by length needs one length per row and a batch size")
        self.lengths = lengths
        self.batch_size = batch_size
        self.num_rows = num_rows
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.follow_epoch = follow_epoch
        self.epoch = 0
        self._resume: tuple[int, int] | None = None  # (epoch, rows to skip on this rank)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch (ignored when not ``follow_epoch``)."""
        if self.follow_epoch:
            self.epoch = epoch

    def resume_at(self, epoch: int, rows_consumed: int) -> None:
        self._resume = (epoch, rows_consumed)

    def __len__(self) -> int:
        return math.ceil(self.num_rows / self.world_size)

    def order(self, epoch: int) -> np.ndarray:
        """This rank's row indices for an epoch (before any resume skip)."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.num_rows)
        else:
            order = np.arange(self.num_rows)
        padded = len(self) * self.world_size
        if padded > self.num_rows:
            order = np.concatenate([order, order[: padded - self.num_rows]])
        if self.lengths is not None and self.shuffle and self.batch_size:
            # One step takes batch_size rows from each rank, round-robin: group global batches.
            rng = np.random.default_rng([self.seed, epoch, 1])
            order = group_by_length(order, self.lengths, self.batch_size * self.world_size, rng)
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        start = 0
        if self._resume is not None:
            resume_epoch, consumed = self._resume
            self._resume = None  # one pass only: the next epoch starts at its beginning
            if resume_epoch == epoch:
                start = consumed
        for index in self.order(epoch)[start:]:
            yield int(index), epoch


def group_by_length(
    order: np.ndarray, lengths: np.ndarray, batch_rows: int, rng: np.random.Generator, *, pool_batches: int = 50
) -> np.ndarray:
    """``order`` regrouped so that each run of ``batch_rows`` rows has similar lengths.

    A batch is padded to its longest row and on a CPU every padded position is computed, so
    random batches of windows (most near the full length, some short: a file's last window)
    waste about 8% of the work. Within each pool of ``pool_batches`` consecutive batches of the
    shuffled order, rows are sorted by length, cut into batches, and the batches shuffled: the
    same rows in the same pool, so randomness across the epoch is kept (as HF's
    ``group_by_length`` megabatches do). A permutation of ``order``'s positions.
    """
    pool = batch_rows * pool_batches
    out = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches = [chunk[i : i + batch_rows] for i in range(0, len(chunk), batch_rows)]
        # The last (partial) batch of the epoch stays last, so every other batch is full.
        full = [b for b in batches if len(b) == batch_rows]
        rest = [b for b in batches if len(b) < batch_rows]
        out += [full[i] for i in rng.permutation(len(full))] + rest
    return np.concatenate(out) if out else order


def data_stats(data_dir: Path) -> dict[str, Any]:
    """The build summary of a data directory (``stats.json``), or {} when absent."""
    path = Path(data_dir) / "stats.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


class TokenWindowsDataModule(LightningDataModule):
    """Train/validation loaders over ``DIR/tokens`` with dynamic masking.

    Sharding over ranks is done here (Trainer ``use_distributed_sampler=False``) so the order
    stays a pure function of the seed, and so it can be resumed mid-epoch.
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        masking: MaskingConfig,
        batch_size: int,
        num_workers: int = 0,
        seed: int = 0,
        max_len: int | None = None,
        pin_memory: bool = False,
        group_by_length: bool = DataConfig.group_by_length,  # one default: the config's
    ) -> None:
        super().__init__()
        self.group_by_length = group_by_length
        self.data_dir = Path(data_dir)
        self.masking = masking
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.max_len = max_len
        self.pin_memory = pin_memory
        self.tokenizer = load_data_tokenizer(self.data_dir)
        self._splits: dict[str, WindowDataset] = {}
        self._train_sampler: EpochShardSampler | None = None
        self._pending_resume: dict[str, int] | None = None

    # ------------------------------------------------------------------ data
    def _load(self) -> None:
        if self._splits:
            return
        from datasets import DatasetDict, load_from_disk

        path = self.data_dir / "tokens"
        if not path.is_dir():
            raise CorpusError(
                f"{path} not found: build the data directory with `codemlm corpus build SRC --out {self.data_dir}`"
            )
        try:
            splits = load_from_disk(str(path))
        except (OSError, ValueError) as exc:
            raise CorpusError(f"cannot read token dataset {path}: {exc}") from exc
        if not isinstance(splits, DatasetDict) or "train" not in splits:
            raise CorpusError(f"{path} must be a DatasetDict with a 'train' split")
        self._splits = {name: WindowDataset(rows) for name, rows in splits.items() if len(rows) > 0}
        if "train" not in self._splits:
            raise CorpusError(f"{path}: the train split is empty")

    def setup(self, stage: str | None = None) -> None:
        self._load()

    def max_window_tokens(self) -> int:
        """Length of the longest window (the model's context must reach it)."""
        self._load()
        return max((int(split.lengths.max()) for split in self._splits.values() if len(split)), default=0)

    def num_rows(self, split: str) -> int:
        self._load()
        return len(self._splits[split]) if split in self._splits else 0

    def _collator(self) -> MaskingCollator:
        tok = self.tokenizer
        return MaskingCollator(
            self.masking,
            pad_id=tok.pad_id,
            mask_id=tok.mask_id,
            vocab_size=tok.vocab_size,
            special_ids=tok.special_ids,
            seed=self.seed,
            max_len=self.max_len,
            # " foo" and "foo" are one name: mask all its occurrences or none.
            name_ids=tok.name_ids(),
        )

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def _loader(self, dataset: WindowDataset, sampler: EpochShardSampler) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            collate_fn=self._collator(),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=False,  # workers must see the sampler's epoch afresh every epoch
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        self._load()
        rank, world = self._rank_and_world()
        train = self._splits["train"]
        # A fixed width (max_len, for a compiled model) pads every batch alike: nothing to group.
        grouped = self.group_by_length and self.max_len is None
        sampler = EpochShardSampler(
            len(train), seed=self.seed, shuffle=True, rank=rank, world_size=world,
            lengths=train.lengths if grouped else None, batch_size=self.batch_size if grouped else None,
        )
        # Lightning creates the first iterator before it calls set_epoch (and workers draw
        # indices at once), so the sampler must already be in the epoch the fit loop runs next.
        trainer = getattr(self, "trainer", None)
        if self._pending_resume is not None:
            sampler.set_epoch(self._pending_resume["epoch"])
            sampler.resume_at(self._pending_resume["epoch"], self._pending_resume["rows"])
            self._pending_resume = None
        elif trainer is not None:
            sampler.set_epoch(int(trainer.current_epoch))
        self._train_sampler = sampler
        return self._loader(self._splits["train"], sampler)

    def val_dataloader(self) -> DataLoader | list:
        self._load()
        if "validation" not in self._splits:
            return []
        rank, world = self._rank_and_world()
        # Fixed order and epoch-0 masks: every validation scores the same masked tokens.
        sampler = EpochShardSampler(
            len(self._splits["validation"]),
            seed=self.seed,
            shuffle=False,
            rank=rank,
            world_size=world,
            follow_epoch=False,
        )
        return self._loader(self._splits["validation"], sampler)

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Position in the data at checkpoint time, from Lightning's own batch counter.

        The loader may have prefetched further; what counts is what the model consumed,
        which the fit loop's progress tracks exactly (a checkpoint taken after batch b of an
        epoch has ``ready == b + 1``).
        """
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return {}
        epoch = int(trainer.current_epoch)
        batches = int(trainer.fit_loop.epoch_loop.batch_progress.current.ready)
        if batches >= trainer.num_training_batches:
            # The epoch is used up: Lightning resumes with the next one, from its start.
            epoch, batches = epoch + 1, 0
        return {
            "epoch": epoch,
            "batches": batches,
            "batch_size": self.batch_size,
            "world_size": int(trainer.world_size),
            "seed": self.seed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        batches, batch_size = int(state["batches"]), int(state["batch_size"])
        rows = batches * batch_size
        _, world = self._rank_and_world()
        if (
            batch_size != self.batch_size
            or int(state["world_size"]) != world
            or state.get("seed") != self.seed
        ):
            # Different batch size or world: skip the same number of rows overall (approximate).
            rank_zero_warn(
                "resuming with a different batch size, world size or seed than the checkpoint; "
                "the data position is approximate"
            )
            rows = (batches * batch_size * int(state["world_size"])) // max(world, 1)
        self._pending_resume = {"epoch": int(state["epoch"]), "rows": rows}


def load_data_tokenizer(data_dir: Path) -> CodeTokenizer:
    path = Path(data_dir) / "tokenizer.json"
    if not path.is_file():
        raise CorpusError(f"{path} not found: is {data_dir} a data directory made by `codemlm corpus build`?")
    return CodeTokenizer.from_file(path)


# --------------------------------------------------------------------------- the default corpus

# Standard-library folders that are tests, tools or third-party code rather than library code.
_STDLIB_SKIP = frozenset(
    {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__", "lib2to3"}
)


def stdlib_sample(max_files: int) -> list[Path]:
    """Up to ``max_files`` Python files of the standard library, spread evenly over its sorted
    file list (so every corner of it is represented), never tests or site-packages."""
    from codemlm.sources import stdlib_root

    root = stdlib_root()
    files = sorted(
        p
        for p in root.rglob("*.py")
        if not _STDLIB_SKIP.intersection(p.relative_to(root).parts) and p.is_file()
    )
    if len(files) <= max_files:
        return files
    step = len(files) / max_files
    return [files[int(i * step)] for i in range(max_files)]


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One builder at a time (ranks started together by torchrun all come here)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; builds go to separate staging dirs anyway
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_stdlib_data(config: Any) -> Path:
    """The data directory of a standard-library slice (``DataConfig.stdlib_*``), built on first use.

    Built with the corpus pipeline (filters, tree-sitter spans), a tokenizer trained on its
    train split and windows of ``stdlib_seq_len`` tokens, into a staging folder that is renamed
    into place when complete, so an interrupted build never leaves a half data directory.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    name = (
        f"stdlib-py{version}-{config.stdlib_max_files}f-{config.stdlib_seq_len}t-{config.stdlib_vocab_size}v"
    )
    target = cache_dir() / "data" / name
    if _complete(target):
        return target
    with _exclusive(target.parent / f".{name}.lock"):
        if _complete(target):
            return target  # another process built it while we waited
        _build_stdlib(target, config)
    return target


def _complete(data_dir: Path) -> bool:
    return (data_dir / "tokens" / "dataset_dict.json").is_file() and (data_dir / "tokenizer.json").is_file()


def _build_stdlib(target: Path, config: Any) -> None:
    from rich.console import Console

    from codemlm.corpus_build import build_corpus
    from codemlm.sources import stdlib_root

    console = Console(stderr=True)
    files = stdlib_sample(config.stdlib_max_files)
    if not files:
        raise CorpusError("no Python files found in the standard library")
    root = stdlib_root()
    console.print(
        f"[bold]first run:[/bold] building a training corpus from {len(files)} standard-library files into {target}"
    )
    staging = target.with_name(f".{target.name}.building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        src = staging / "src" / "stdlib"
        for file in files:
            dest = src / file.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, dest)
        build_corpus(
            [src],
            staging,
            CorpusConfig(),
            progress=False,
            chunking=ChunkingConfig(seq_len=config.stdlib_seq_len),
            vocab_size=config.stdlib_vocab_size,
            extra_stats={"stdlib_files": len(files)},
        )
        shutil.rmtree(staging / "src")
        if target.exists():
            shutil.rmtree(target)  # an incomplete leftover (complete ones returned earlier)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
