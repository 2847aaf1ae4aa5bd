"""Source files for training: walk repositories or read Hugging Face datasets, filter, redact.

A file is kept only if it is in a supported language, not ignored by git, not vendored, not
generated or minified, valid UTF-8 text within the size limit, and not an exact duplicate of a
file seen before (across every source of one build). Secrets are redacted before anything is
stored. Every file left out is counted under one reason, so a build can say what it skipped.

:func:`build_corpus` writes ``DIR/files`` (a ``DatasetDict`` train/validation with syntax spans
from :mod:`codemlm.syntax`) and ``DIR/stats.json``; the tokenizer and the training view are
built from it by :mod:`codemlm.tokenizer` and :mod:`codemlm.windows`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sysconfig
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codemlm.config import CorpusConfig
from codemlm.errors import CodemlmError, CorpusError, InputError
from codemlm.languages import LANGUAGES, Language, language_for_path

__all__ = [
    "FILES_COLUMNS",
    "SKIP_REASONS",
    "VENDORED_DIRS",
    "CorpusStats",
    "HFSource",
    "SourceFile",
    "build_corpus",
    "iter_hf_dataset",
    "iter_repository",
    "load_stats",
    "redact_secrets",
    "split_of",
    "stats_table",
    "stdlib_root",
    "write_stats",
]

# Why a file was left out (or kept); the order of the summary table.
SKIP_REASONS = (
    "gitignored",
    "vendored",
    "generated",
    "minified",
    "binary",
    "non_utf8",
    "too_large",
    "symlink_outside",
    "duplicate",
    "unsupported",
    "unreadable",
    "empty",
    "secrets_redacted",
    "parse_errors",
    "kept",
)

# Dependency, build and tool directories: code someone else wrote, or no code at all.
VENDORED_DIRS = frozenset(
    {
        "node_modules",
        "bower_components",
        "vendor",
        "third_party",
        "third-party",
        "site-packages",
        "dist-packages",
        ".venv",
        "venv",
        "__pycache__",
        "dist",
        "build",
        ".tox",
        ".nox",
        ".eggs",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
    }
)
_VCS_DIRS = frozenset({".git", ".hg", ".svn"})

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


@dataclass
class SourceFile:
    repo: str
    path: str  # relative to the repository root, posix separators
    language: str
    text: str


@dataclass
class CorpusStats:
    """Counts by reason (see SKIP_REASONS), kept files per language, and the split sizes."""

    counts: Counter[str] = field(default_factory=Counter)
    languages: Counter[str] = field(default_factory=Counter)
    bytes_kept: int = 0
    splits: dict[str, dict[str, int]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Content hashes of kept files: shared by every source of one build, so duplicates
    # across repositories and datasets are caught too.
    seen: set[bytes] = field(default_factory=set, repr=False)

    def to_dict(self) -> dict[str, Any]:
        counts = {reason: int(self.counts.get(reason, 0)) for reason in SKIP_REASONS}
        counts.update({k: int(v) for k, v in self.counts.items() if k not in counts})
        return {
            "counts": counts,
            "languages": dict(sorted(self.languages.items())),
            "files": {name: split["files"] for name, split in self.splits.items()},
            "bytes": {name: split["bytes"] for name, split in self.splits.items()},
            "bytes_kept": self.bytes_kept,
            "sources": list(self.sources),
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 3),
        }


# --- secrets ----------------------------------------------------------------------------------

REDACTED = "<REDACTED>"

_PEM_BLOCK = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)
_TOKEN_PATTERNS = (
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),  # GitHub tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{30,}\b"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),  # Slack
)
# `db_password = "..."`, `"apiKey": '...'`, `token := "..."`: a name ending in a secret-ish word,
# assigned a quoted value of 8+ non-space characters (short or spaced values are messages or
# placeholders, not credentials).
_ASSIGNED_SECRET = re.compile(
    r"""(?ix)
    (?P<key>["']?[A-Za-z0-9_.-]*?(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth[_-]?key)["']?)
    (?P<op>(?:[ \t]*:[ \t]*[A-Za-z_][\w.]*)?[ \t]*(?::=|=|:)[ \t]*)  # optional type annotation; one line
    (?P<quote>["'])(?P<value>[^"'\s]{8,})(?P=quote)
    """
)


def redact_secrets(text: str) -> tuple[str, int]:
    """Replace private keys, cloud/API tokens and assigned passwords with ``<REDACTED>``."""
    count = 0

    def _replace(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return REDACTED

    text = _PEM_BLOCK.sub(_replace, text)
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(_replace, text)

    def _replace_value(match: re.Match[str]) -> str:
        nonlocal count
        if match.group("value") == REDACTED:
            return match.group(0)
        count += 1
        return (
            f"{match.group('key')}{match.group('op')}{match.group('quote')}{REDACTED}{match.group('quote')}"
        )

    text = _ASSIGNED_SECRET.sub(_replace_value, text)
    return text, count


# --- file filters -----------------------------------------------------------------------------

_GENERATED_HEADER = re.compile(
    r"(?i)(@generated\b|do not edit|auto-?generated|generated by\b|this file (?:is|was) (?:automatically )?generated)"
)
_HEADER_LINES = 5


def _is_generated(text: str) -> bool:
    head = "\n".join(text[:4096].splitlines()[:_HEADER_LINES])
    return _GENERATED_HEADER.search(head) is not None


def _is_minified(text: str, config: CorpusConfig) -> bool:
    if any(len(line) > config.max_line_length for line in text.splitlines()):
        return True
    if len(text) < 512:
        return False  # too short to judge by whitespace
    whitespace = sum(text.count(ch) for ch in " \t\r\n")
    return whitespace / len(text) < config.min_whitespace_ratio


def _admit(data: bytes | str, config: CorpusConfig, stats: CorpusStats) -> str | None:
    """The text to keep, redacted, or None (with the reason counted)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > config.max_file_bytes:
        stats.counts["too_large"] += 1
        return None
    if b"\x00" in raw:
        stats.counts["binary"] += 1
        return None
    if isinstance(data, str):
        try:
            raw.decode("utf-8")  # lone surrogates in a dataset row are not valid text either
        except UnicodeDecodeError:
            stats.counts["non_utf8"] += 1
            return None
        text = data
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            stats.counts["non_utf8"] += 1
            return None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        stats.counts["empty"] += 1  # nothing to learn; stdlib alone has dozens of empty __init__.py
        return None
    if _is_generated(text):
        stats.counts["generated"] += 1
        return None
    if _is_minified(text, config):
        stats.counts["minified"] += 1
        return None
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
    if digest in stats.seen:
        stats.counts["duplicate"] += 1
        return None
    stats.seen.add(digest)
    text, redacted = redact_secrets(text)
    stats.counts["secrets_redacted"] += redacted
    return text


def _wanted_language(lang: Language | None, config: CorpusConfig) -> bool:
    return lang is not None and (not config.languages or lang.name in config.languages)


def _keep(stats: CorpusStats, source: SourceFile) -> SourceFile:
    stats.counts["kept"] += 1
    stats.languages[source.language] += 1
    stats.bytes_kept += len(source.text.encode("utf-8"))
    return source


# --- repositories -----------------------------------------------------------------------------

_IgnoreRules = tuple[tuple[str, Any], ...]  # (directory relative to the root, GitIgnoreSpec)


def _read_ignore_file(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _ignore_rules(directory: Path, rel: str, inherited: _IgnoreRules) -> _IgnoreRules:
    import pathspec

    lines = _read_ignore_file(directory / ".gitignore")
    if not rel:
        lines = _read_ignore_file(directory / ".git" / "info" / "exclude") + lines
    if not any(line.strip() and not line.lstrip().startswith("#") for line in lines):
        return inherited
    return (*inherited, (rel, pathspec.GitIgnoreSpec.from_lines(lines)))


def _is_ignored(rel: str, is_dir: bool, rules: _IgnoreRules) -> bool:
    """Git's answer: the deepest .gitignore with a matching pattern decides (`!` re-includes)."""
    for base, spec in reversed(rules):
        local = rel[len(base) + 1 :] if base else rel
        result = spec.check_file(local + "/" if is_dir else local)
        if result.include is not None:
            return bool(result.include)
    return False


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def iter_repository(
    root: str | Path, config: CorpusConfig | None = None, stats: CorpusStats | None = None
) -> Iterator[SourceFile]:
    """Kept source files of a directory (a git working tree or any folder), in path order.

    ``root`` may also be a single file. Raises InputError if it does not exist; problems with
    single files inside are counted in ``stats`` and never stop the walk.
    """
    config = config or CorpusConfig()
    stats = stats if stats is not None else CorpusStats()
    given = Path(root).expanduser()
    if not given.exists():
        raise InputError(f"source path not found: {root}")
    real_root = given.resolve()
    if real_root.is_file():
        lang = language_for_path(real_root)
        if not _wanted_language(lang, config):
            stats.counts["unsupported"] += 1
            return
        assert lang is not None
        source = _read_source(real_root, real_root.parent.name, real_root.name, lang, config, stats)
        if source is not None:
            yield source
        return
    repo = real_root.name or str(real_root)
    yield from _walk(real_root, "", (), real_root, repo, config, stats)


def _walk(
    directory: Path,
    rel: str,
    inherited: _IgnoreRules,
    root: Path,
    repo: str,
    config: CorpusConfig,
    stats: CorpusStats,
) -> Iterator[SourceFile]:
    rules = _ignore_rules(directory, rel, inherited)
    try:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError:
        stats.counts["unreadable"] += 1
        return
    for entry in entries:
        child_rel = f"{rel}/{entry.name}" if rel else entry.name
        try:
            is_link = entry.is_symlink()
            is_dir = entry.is_dir()  # follows links
        except OSError:
            stats.counts["unreadable"] += 1
            continue
        if is_dir:
            if entry.name in _VCS_DIRS:
                continue
            if _is_ignored(child_rel, True, rules):
                stats.counts["gitignored"] += 1
            elif entry.name in VENDORED_DIRS:
                stats.counts["vendored"] += 1
            elif is_link:
                # Outside the root it is not part of this repository; inside, its files are
                # walked at their real place (following the link could loop).
                outside = not _inside(Path(entry.path).resolve(), root)
                stats.counts["symlink_outside" if outside else "duplicate"] += 1
            else:
                yield from _walk(Path(entry.path), child_rel, rules, root, repo, config, stats)
            continue
        if _is_ignored(child_rel, False, rules):
            stats.counts["gitignored"] += 1
            continue
        lang = language_for_path(entry.name)
        if not _wanted_language(lang, config):
            stats.counts["unsupported"] += 1
            continue
        if not entry.is_file():  # a dangling link, a FIFO (reading it would block), a socket
            stats.counts["unreadable"] += 1
            continue
        if is_link:
            outside = not _inside(Path(entry.path).resolve(), root)
            stats.counts["symlink_outside" if outside else "duplicate"] += 1  # inside: read at its real path
            continue
        assert lang is not None
        source = _read_source(Path(entry.path), repo, child_rel, lang, config, stats)
        if source is not None:
            yield source


def _read_source(
    path: Path, repo: str, rel: str, lang: Language, config: CorpusConfig, stats: CorpusStats
) -> SourceFile | None:
    try:
        if path.stat().st_size > config.max_file_bytes:
            stats.counts["too_large"] += 1
            return None
        data = path.read_bytes()
    except OSError:  # permissions, a dangling link, a file removed during the walk
        stats.counts["unreadable"] += 1
        return None
    text = _admit(data, config, stats)
    if text is None:
        return None
    return _keep(stats, SourceFile(repo=repo, path=rel, language=lang.name, text=text))


def stdlib_root() -> Path:
    """The running interpreter's standard library: a corpus that is always there.

    Its ``site-packages`` is skipped by the vendored-directory filter.
    """
    return Path(sysconfig.get_paths()["stdlib"])


# --- Hugging Face datasets --------------------------------------------------------------------

_LANGUAGE_ALIASES = {
    "py": "python",
    "python3": "python",
    "js": "javascript",
    "jsx": "javascript",
    "node": "javascript",
    "ts": "typescript",
    "golang": "go",
    "rs": "rust",
    "c++": "cpp",
    "cxx": "cpp",
    "cc": "cpp",
}

_DATA_FILE_BUILDERS = {
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
    ".csv": "csv",
    ".arrow": "arrow",
}


@dataclass(frozen=True)
class HFSource:
    """A Hugging Face dataset to read code from (see :func:`iter_hf_dataset`)."""

    name: str
    text_column: str = "content"
    split: str = "train"
    path_column: str | None = None
    language_column: str | None = None
    language: str | None = None
    repo_column: str | None = None
    limit: int | None = None


def _language_from_label(label: Any) -> Language | None:
    if not isinstance(label, str):
        return None
    key = label.strip().lower()
    key = _LANGUAGE_ALIASES.get(key, key)
    return LANGUAGES.get(key)


def _load_hf(name: str, split: str, streaming: bool) -> Iterable[dict[str, Any]]:
    """A hub name, a local folder of data files, a `save_to_disk` folder, or one data file."""
    import datasets

    path = Path(name).expanduser()
    try:
        if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise CorpusError(f"dataset {name} has no split {split!r} (splits: {', '.join(loaded)})")
                loaded = loaded[split]
            return loaded.to_iterable_dataset() if streaming else loaded
        if path.is_file():
            builder = _DATA_FILE_BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise CorpusError(
                    f"cannot read {name} as a dataset: expected one of {', '.join(sorted(_DATA_FILE_BUILDERS))}"
                )
            return datasets.load_dataset(builder, data_files=str(path), split=split, streaming=streaming)
        return datasets.load_dataset(name, split=split, streaming=streaming)
    except CodemlmError:
        raise
    except Exception as exc:  # datasets raises many kinds (FileNotFoundError, ValueError, hub errors)
        raise CorpusError(f"could not load dataset {name!r} (split {split!r}): {exc}") from exc


def iter_hf_dataset(
    name: str,
    text_column: str,
    *,
    split: str = "train",
    path_column: str | None = None,
    language_column: str | None = None,
    language: str | None = None,
    repo_column: str | None = None,
    streaming: bool = True,
    limit: int | None = None,
    stats: CorpusStats | None = None,
    config: CorpusConfig | None = None,
) -> Iterator[SourceFile]:
    """Kept source files from a dataset's rows, through the same filters as repositories.

    A row's language comes from ``language_column`` (names like "Python", "C++"), else from the
    extension in ``path_column``, else from ``language``; rows with none are counted
    ``unsupported``. ``repo_column`` names each row's repository (for ``split_by="repo"``);
    without it the dataset is one repository. ``limit`` bounds the rows read, not the rows kept.
    """
    config = config or CorpusConfig()
    stats = stats if stats is not None else CorpusStats()
    fixed = LANGUAGES.get(language) if language else None
    if language and fixed is None:
        raise InputError(f"unsupported language {language!r}; supported: {', '.join(LANGUAGES)}")
    rows = _load_hf(name, split, streaming)
    repo = Path(name).name if Path(name).exists() else name
    try:
        for index, row in enumerate(rows):
            if limit is not None and index >= limit:
                break
            if index == 0:
                for column in (text_column, path_column, language_column, repo_column):
                    if column is not None and column not in row:
                        raise CorpusError(
                            f"dataset {name!r} has no column {column!r}; columns: {', '.join(row)}"
                        )
            path = str(row[path_column]) if path_column and row[path_column] is not None else ""
            lang = _language_from_label(row[language_column]) if language_column else None
            lang = lang or (language_for_path(path) if path else None) or fixed
            if not _wanted_language(lang, config):
                stats.counts["unsupported"] += 1
                continue
            assert lang is not None
            value = row[text_column]
            if not isinstance(value, str):
                stats.counts["unreadable"] += 1
                continue
            text = _admit(value, config, stats)
            if text is None:
                continue
            path = path or f"{split}/{index}{lang.extensions[0]}"
            row_repo = str(row[repo_column]) if repo_column and row[repo_column] is not None else repo
            yield _keep(stats, SourceFile(repo=row_repo, path=path, language=lang.name, text=text))
    except CodemlmError:
        raise
    except Exception as exc:  # a broken shard or a dropped connection halfway through
        raise CorpusError(f"reading dataset {name!r} failed: {exc}") from exc


# --- building DIR/files -----------------------------------------------------------------------


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


def _files_features() -> Any:
    from datasets import Features, Sequence, Value

    return Features(
        {
            name: Value(dtype) if dtype == "string" else Sequence(Value(dtype))
            for name, dtype in FILES_COLUMNS.items()
        }
        | {"_parse_errors": Value("int32")}
    )


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
            stats.counts["parse_errors"] += int(sum(part["_parse_errors"]))
            part = part.remove_columns(["_parse_errors"])
            splits[name] = part
            stats.splits[name] = {"files": len(part), "bytes": _text_bytes(part)}
        if files_dir.exists():
            shutil.rmtree(files_dir)
        datasets.DatasetDict(splits).save_to_disk(str(files_dir))
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
                for source in iter_hf_dataset(
                    hf.name,
                    hf.text_column,
                    split=hf.split,
                    path_column=hf.path_column,
                    language_column=hf.language_column,
                    language=hf.language,
                    repo_column=hf.repo_column,
                    limit=hf.limit,
                    stats=stats,
                    config=config,
                ):
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
