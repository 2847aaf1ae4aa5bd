"""Writing a data directory: the one corpus pipeline, sources -> files -> tokenizer -> windows.

:func:`build_corpus` streams the files kept by :mod:`codemlm.sources` (repository walks and
datasets) to a staging Arrow file, splits them train/validation by a hash of the file or
repository key, adds syntax spans from :mod:`codemlm.syntax` and saves ``DIR/files``; then, when
asked for token windows, trains a tokenizer on the train split (or copies the one given) and cuts
``DIR/tokens`` with :mod:`codemlm.windows`. ``DIR/stats.json`` (:mod:`codemlm.corpus_stats`) is
written once, at the end. ``codemlm corpus build`` and training's first-run standard-library
corpus both call it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from codemlm.config import ChunkingConfig, CorpusConfig
from codemlm.corpus_stats import write_stats
from codemlm.errors import CorpusError, InputError
from codemlm.sources import CorpusStats, HFSource, SourceFile, iter_hf_dataset, iter_repository
from codemlm.syntax import parse
from codemlm.tokenizer import CodeTokenizer
from codemlm.windows import tokenize_corpus

__all__ = [
    "FILES_COLUMNS",
    "build_corpus",
    "split_of",
    "train_split_texts",
    "train_tokenizer",
]

# Column order and types of DIR/files (docs/INTERFACES.md).
FILES_COLUMNS: dict[str, str] = {
    "repo": "string",
    "path": "string",
    "language": "string",
    "text": "string",
    "span_start": "int32",
    "span_end": "int32",
    "span_kind": "int8",
    "boundaries": "int32",
}


def split_of(key: str, seed: int, validation_fraction: float) -> str:
    """``"validation"`` or ``"train"`` for a file or repository key: stable for a seed."""
    return "validation" if _unit(key, seed) < validation_fraction else "train"


def _unit(key: str, seed: int) -> float:
    digest = hashlib.blake2b(f"{seed}\0{key}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _staging_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("repo", pa.string()),
            ("path", pa.string()),
            ("language", pa.string()),
            ("text", pa.string()),
            ("_u", pa.float64()),
        ]
    )


class _StagingWriter:
    """Kept files streamed to one Arrow file, so memory holds one batch, not the corpus."""

    def __init__(self, path: Path, batch_rows: int = 256) -> None:
        import pyarrow as pa

        self._pa = pa
        self.path = path
        self.rows = 0
        self._batch: dict[str, list[Any]] = {name: [] for name in _staging_schema().names}
        self._batch_rows = batch_rows
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_stream(self._sink, _staging_schema())

    def add(self, source: SourceFile, unit: float) -> None:
        self._batch["repo"].append(source.repo)
        self._batch["path"].append(source.path)
        self._batch["language"].append(source.language)
        self._batch["text"].append(source.text)
        self._batch["_u"].append(unit)
        self.rows += 1
        if len(self._batch["repo"]) >= self._batch_rows:
            self._flush()

    def _flush(self) -> None:
        if self._batch["repo"]:
            table = self._pa.table(self._batch, schema=_staging_schema())
            self._writer.write_table(table)
            self._batch = {name: [] for name in self._batch}

    def close(self) -> None:
        self._flush()
        self._writer.close()
        self._sink.close()


def _files_features(*, staging: bool = True) -> Any:
    from datasets import Features, Sequence, Value

    columns = {
        name: Value(dtype) if dtype == "string" else Sequence(Value(dtype)) for name, dtype in FILES_COLUMNS.items()
    }
    return Features(columns | {"_parse_errors": Value("int32")} if staging else columns)


def _annotate(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """datasets.map function: syntax spans and boundaries of each file (module level: picklable)."""
    out: dict[str, list[Any]] = {
        "span_start": [],
        "span_end": [],
        "span_kind": [],
        "boundaries": [],
        "_parse_errors": [],
    }
    for text, language in zip(batch["text"], batch["language"], strict=True):
        try:
            result = parse(text, language)
        except Exception:  # a grammar bug must not lose the build: keep the file without spans
            out["span_start"].append([])
            out["span_end"].append([])
            out["span_kind"].append([])
            out["boundaries"].append([])
            out["_parse_errors"].append(1)
            continue
        out["span_start"].append([s.start for s in result.spans])
        out["span_end"].append([s.end for s in result.spans])
        out["span_kind"].append([int(s.kind) for s in result.spans])
        out["boundaries"].append(result.boundaries)
        out["_parse_errors"].append(1 if result.error_count else 0)
    return out


def _split_indices(units: list[float], fraction: float) -> tuple[list[int], list[int]]:
    """Row indices of train and validation. With a non-zero fraction, validation gets at least
    the key with the smallest hash and train keeps at least one key, when there are two keys."""
    validation = [i for i, u in enumerate(units) if u < fraction]
    distinct = set(units)
    if fraction > 0 and not validation and len(distinct) > 1:
        lowest = min(distinct)
        validation = [i for i, u in enumerate(units) if u == lowest]
    if len(validation) == len(units) and len(distinct) > 1:
        highest = max(distinct)
        validation = [i for i, u in enumerate(units) if u != highest]
    elif len(validation) == len(units):
        validation = []  # one key only: it all goes to train
    chosen = set(validation)
    train = [i for i in range(len(units)) if i not in chosen]
    return train, validation


def _progress(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.completed} kept · {task.fields[seen]} seen"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )


def build_corpus(
    sources: Sequence[str | Path],
    out_dir: str | Path,
    config: CorpusConfig | None = None,
    *,
    num_proc: int = 1,
    hf: HFSource | Sequence[HFSource] | None = None,
    progress: bool = True,
    chunking: ChunkingConfig | None = None,
    tokenizer: str | Path | None = None,
    vocab_size: int = 16384,
    extra_stats: Mapping[str, Any] | None = None,
) -> CorpusStats:
    """Walk ``sources`` (and read ``hf`` datasets) into ``out_dir``; ``stats.json`` last.

    Always writes ``out_dir/files``. With ``chunking``, also ``out_dir/tokenizer.json`` (a copy
    of ``tokenizer`` when given, else trained with ``vocab_size`` on the train split) and the
    training windows ``out_dir/tokens``. ``extra_stats`` are added to ``stats.json`` as they are.
    ``progress`` shows bars and a line per stage on stderr.

    Raises InputError for a missing source path or tokenizer file, CorpusError if nothing is
    kept. A bad file is counted and skipped, never the end of the build.
    """
    started = time.perf_counter()
    config = config or CorpusConfig()
    paths = [Path(s).expanduser() for s in sources]
    for path in paths:
        if not path.exists():
            raise InputError(f"source path not found: {path}")
    if config.max_file_bytes >= 2**31:
        raise InputError("max_file_bytes must be below 2 GiB: span offsets are stored as int32")
    hf_sources = [hf] if isinstance(hf, HFSource) else list(hf or [])
    if not paths and not hf_sources:
        raise CorpusError("no sources given: name a directory, a file or a dataset")
    given_tokenizer = None
    if tokenizer is not None:
        if not Path(tokenizer).is_file():
            raise InputError(f"tokenizer file not found: {tokenizer}")
        given_tokenizer = CodeTokenizer.from_file(tokenizer)  # validated before the long part
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"output path exists and is not a directory: {out}")
    files_dir = out / "files"
    if files_dir.exists() and not (files_dir / "dataset_dict.json").exists():
        raise InputError(f"{files_dir} exists and is not a corpus; refusing to overwrite it")
    out.mkdir(parents=True, exist_ok=True)

    stats = CorpusStats(sources=[str(p) for p in paths] + [f"hf:{h.name}" for h in hf_sources])
    with _dataset_bars(progress):
        _write_files(paths, hf_sources, files_dir, config, stats, num_proc=num_proc, progress=progress)
        stats.extra["config"] = _config_dict(config)
        if chunking is not None:
            from rich.console import Console

            console = Console(stderr=True, quiet=not progress)
            if given_tokenizer is not None:
                assert tokenizer is not None
                _copy_tokenizer(Path(tokenizer), out / "tokenizer.json")
                console.print(f"tokenizer copied from {tokenizer} ({given_tokenizer.vocab_size} tokens)")
                trained = given_tokenizer
            else:
                trained = train_tokenizer(files_dir, vocab_size, out / "tokenizer.json", console)
            console.print(f"cutting windows of {chunking.seq_len} tokens")
            stats.extra["tokens"] = tokenize_corpus(
                files_dir, trained, chunking, out / "tokens", num_proc=num_proc
            )
            stats.extra["tokenizer"] = {"path": "tokenizer.json", "vocab_size": trained.vocab_size}
    stats.extra.update(extra_stats or {})
    stats.seconds = time.perf_counter() - started
    write_stats(out, stats.to_dict())
    return stats


def _write_files(
    paths: list[Path],
    hf_sources: list[HFSource],
    files_dir: Path,
    config: CorpusConfig,
    stats: CorpusStats,
    *,
    num_proc: int,
    progress: bool,
) -> None:
    """DIR/files: the kept files, split, with syntax spans."""
    import datasets

    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=files_dir.parent))
    try:
        writer = _StagingWriter(staging / "files.arrow")
        try:
            _collect(paths, hf_sources, config, stats, writer, progress)
        finally:
            writer.close()
        if writer.rows == 0:
            raise CorpusError(f"no source files kept from {', '.join(stats.sources)}: {_counts_line(stats)}")
        staged = datasets.Dataset.from_file(str(writer.path))
        train_idx, validation_idx = _split_indices(staged["_u"], config.validation_fraction)
        if config.validation_fraction > 0 and not validation_idx:
            stats.warnings.append("validation split is empty: every file has the same split key")
        splits = {}
        for name, indices in (("train", train_idx), ("validation", validation_idx)):
            part = staged.select(indices)
            workers = num_proc if num_proc > 1 and len(part) >= num_proc else None
            splits[name] = part.map(
                _annotate,
                batched=True,
                batch_size=32,
                num_proc=workers,
                remove_columns=["_u"],
                features=_files_features(),
                desc=f"parsing {name}",
            )
        for name, part in splits.items():
            if "_parse_errors" in part.column_names:
                stats.counts["parse_errors"] += int(sum(part["_parse_errors"]))
                part = part.remove_columns(["_parse_errors"])
            if len(part) == 0:
                # map() skips an empty split, so give it the final schema explicitly.
                part = datasets.Dataset.from_dict(
                    {column: [] for column in FILES_COLUMNS}, features=_files_features(staging=False)
                )
            splits[name] = part
            stats.splits[name] = {"files": len(part), "bytes": _text_bytes(part)}
        if files_dir.exists():
            shutil.rmtree(files_dir)
        # datasets writes an empty split as zero shards it cannot load back; one shard each.
        datasets.DatasetDict(splits).save_to_disk(str(files_dir), num_shards={name: 1 for name in splits})
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _dataset_bars(enabled: bool) -> Iterator[None]:
    """datasets' own (tqdm) bars for parsing, tokenizing and saving: off unless ``enabled``."""
    import datasets

    were_enabled = datasets.is_progress_bar_enabled()
    if not enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if were_enabled:
            datasets.enable_progress_bars()


def _copy_tokenizer(source: Path, target: Path) -> None:
    if source.resolve() != target.resolve():
        shutil.copyfile(source, target)


def train_split_texts(files_dir: str | Path) -> Iterator[str]:
    """The texts of the train split of a ``files`` DatasetDict (a single Dataset: all of it)."""
    from datasets import DatasetDict, load_from_disk

    try:
        files = load_from_disk(str(files_dir))
    except (FileNotFoundError, ValueError) as exc:
        raise CorpusError(f"cannot read the corpus at {files_dir}: {exc}") from exc
    train = files["train"] if isinstance(files, DatasetDict) else files
    if "text" not in train.column_names:
        raise CorpusError(f"{files_dir} has no 'text' column")
    for batch in train.iter(batch_size=256):
        yield from batch["text"]


def train_tokenizer(files_dir: Path, vocab_size: int, target: Path, console: Any) -> CodeTokenizer:
    """A byte-level BPE trained on the train split of ``files_dir``, saved to ``target``."""
    from datasets import load_from_disk

    files = len(load_from_disk(str(files_dir))["train"])
    console.print(f"training a tokenizer (vocabulary {vocab_size}) on {files} files")
    tokenizer = CodeTokenizer.train_from_iterator(train_split_texts(files_dir), vocab_size=vocab_size)
    tokenizer.save(target)
    return tokenizer


def _collect(
    paths: list[Path],
    hf_sources: list[HFSource],
    config: CorpusConfig,
    stats: CorpusStats,
    writer: _StagingWriter,
    progress: bool,
) -> None:
    def key_of(source: SourceFile) -> str:
        return source.repo if config.split_by == "repo" else f"{source.repo}/{source.path}"

    with _progress(progress) as bar:
        for path in paths:
            task = bar.add_task(f"walking {path}", total=None, seen=0)
            for source in iter_repository(path, config, stats):
                writer.add(source, _unit(key_of(source), config.seed))
                bar.update(task, completed=writer.rows, seen=_seen(stats))
            bar.update(task, completed=writer.rows, seen=_seen(stats))
        for hf in hf_sources:
            task = bar.add_task(f"reading {hf.name}", total=None, seen=0)
            rows_before = writer.rows
            try:
                # HFSource's fields are iter_hf_dataset's keyword arguments, one for one.
                for source in iter_hf_dataset(**dataclasses.asdict(hf), stats=stats, config=config):
                    writer.add(source, _unit(key_of(source), config.seed))
                    bar.update(task, completed=writer.rows, seen=_seen(stats))
            except CorpusError as exc:
                if writer.rows == rows_before:
                    raise
                # Keep what was read: a dropped connection late in a stream must not lose it.
                stats.warnings.append(f"{hf.name}: stopped early: {exc}")


def _seen(stats: CorpusStats) -> int:
    not_files = ("secrets_redacted", "parse_errors", "bad_ignore_line")
    return sum(v for k, v in stats.counts.items() if k not in not_files)


def _text_bytes(dataset: Any) -> int:
    import pyarrow.compute as pc

    column = dataset.data.column("text")
    if len(column) == 0:
        return 0
    return int(pc.sum(pc.binary_length(column)).as_py() or 0)


def _config_dict(config: CorpusConfig) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    data["languages"] = list(config.languages)
    return data


def _counts_line(stats: CorpusStats) -> str:
    parts = [f"{reason} {n}" for reason, n in stats.to_dict()["counts"].items() if n]
    return ", ".join(parts) or "no files found"
