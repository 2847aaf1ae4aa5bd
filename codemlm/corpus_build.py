"""Writing a data directory's source files: ``DIR/files`` and ``DIR/stats.json``.

:func:`build_corpus` streams the files kept by :mod:`codemlm.corpus` (repository walks and
datasets) to a staging Arrow file, splits them train/validation by a hash of the file or
repository key, adds syntax spans from :mod:`codemlm.syntax`, and saves a ``DatasetDict``; the
tokenizer and the training view are built from it by :mod:`codemlm.tokenizer` and
:mod:`codemlm.windows`. ``stats.json`` I/O and its summary table live here too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codemlm.config import CorpusConfig
from codemlm.errors import CorpusError, InputError

if TYPE_CHECKING:
    # Imported inside the functions at run time: codemlm.corpus re-exports this module's names.
    from codemlm.corpus import CorpusStats, HFSource, SourceFile

__all__ = [
    "FILES_COLUMNS",
    "build_corpus",
    "load_stats",
    "split_of",
    "stats_table",
    "write_stats",
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
    from codemlm.syntax import parse

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
) -> CorpusStats:
    """Walk ``sources`` (and read ``hf`` datasets), write ``out_dir/files`` and ``stats.json``.

    Raises InputError for a missing source path, CorpusError if nothing is kept. A bad file is
    counted and skipped, never the end of the build.
    """
    import datasets

    from codemlm.corpus import CorpusStats, HFSource

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
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"output path exists and is not a directory: {out}")
    files_dir = out / "files"
    if files_dir.exists() and not (files_dir / "dataset_dict.json").exists():
        raise InputError(f"{files_dir} exists and is not a corpus; refusing to overwrite it")
    out.mkdir(parents=True, exist_ok=True)

    stats = CorpusStats(sources=[str(p) for p in paths] + [f"hf:{h.name}" for h in hf_sources])
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    bars_were_enabled = datasets.is_progress_bar_enabled()
    if not progress:
        datasets.disable_progress_bars()  # datasets' own (tqdm) bars for parsing and saving
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
        if bars_were_enabled:
            datasets.enable_progress_bars()
    stats.seconds = time.perf_counter() - started
    write_stats(out, stats.to_dict() | {"config": _config_dict(config)})
    return stats


def _collect(
    paths: list[Path],
    hf_sources: list[HFSource],
    config: CorpusConfig,
    stats: CorpusStats,
    writer: _StagingWriter,
    progress: bool,
) -> None:
    from codemlm.corpus import iter_hf_dataset, iter_repository

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
    return sum(v for k, v in stats.counts.items() if k not in ("secrets_redacted", "parse_errors"))


def _text_bytes(dataset: Any) -> int:
    import pyarrow.compute as pc

    column = dataset.data.column("text")
    if len(column) == 0:
        return 0
    return int(pc.sum(pc.binary_length(column)).as_py() or 0)


def _config_dict(config: CorpusConfig) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(config)
    data["languages"] = list(config.languages)
    return data


def _counts_line(stats: CorpusStats) -> str:
    parts = [f"{reason} {n}" for reason, n in stats.to_dict()["counts"].items() if n]
    return ", ".join(parts) or "no files found"


# --- stats.json -------------------------------------------------------------------------------


def write_stats(out_dir: str | Path, data: dict[str, Any]) -> Path:
    path = Path(out_dir) / "stats.json"
    tmp = path.with_name("stats.json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_stats(out_dir: str | Path) -> dict[str, Any]:
    path = Path(out_dir) / "stats.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"no stats.json in {out_dir}: build the corpus first (codemlm corpus build)"
        ) from None
    except (OSError, ValueError) as exc:
        raise CorpusError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CorpusError(f"{path} is not a JSON object")
    return data


def stats_table(data: dict[str, Any]) -> Any:
    """A rich Table of a stats.json mapping: filter counts, languages, splits, tokens."""
    from rich.table import Table

    table = Table(title="corpus", show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("count", justify="right")
    for reason, n in data.get("counts", {}).items():
        table.add_row(reason.replace("_", " "), f"{n:,}", style="bold green" if reason == "kept" else None)
    table.add_section()
    for language, n in data.get("languages", {}).items():
        table.add_row(f"files: {language}", f"{n:,}")
    table.add_section()
    for split, n in data.get("files", {}).items():
        size = data.get("bytes", {}).get(split, 0)
        table.add_row(f"{split} files (bytes)", f"{n:,} ({size:,})")
    tokens = data.get("tokens") or {}
    for split, info in (tokens.get("splits") or {}).items():
        table.add_row(f"{split} windows (tokens)", f"{info.get('windows', 0):,} ({info.get('tokens', 0):,})")
    if "seconds" in data:
        table.add_row("seconds", f"{data['seconds']:.1f}")
    for warning in data.get("warnings", []):
        table.add_row("warning", warning, style="yellow")
    return table
