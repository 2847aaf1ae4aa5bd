"""Reading source files for a corpus: walk repositories or read Hugging Face datasets, filter.

A file is kept only if it is in a supported language, not ignored by git, not vendored, and
passes the per-file filters of :mod:`codemlm.filters` (valid UTF-8 text within the size limit,
not generated or minified, not empty, not an exact duplicate of a file seen before across
every source of one build); secrets are redacted there before anything is stored. Every file
left out is counted under one reason, so a build can say what it skipped.

The walk is built for trees nobody vetted: it is iterative (no depth limit), reads only regular
files (a FIFO or device under any name is counted, never opened for a blocking read), skips and
counts names that are not UTF-8 and ignore-file lines that do not compile. Writing the data
directory is :mod:`codemlm.corpus_build`.
"""

from __future__ import annotations

import os
import sysconfig
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codemlm.config import CorpusConfig
from codemlm.errors import CodemlmError, CorpusError, InputError
from codemlm.filters import SKIP_REASONS, admit_text
from codemlm.gitignore import IgnoreRules, ignore_rules, is_ignored
from codemlm.languages import LANGUAGES, Language, language_for_path
from codemlm.regular_files import FileTooLargeError, read_regular_file

__all__ = [
    "VENDORED_DIRS",
    "CorpusStats",
    "HFSource",
    "SourceFile",
    "iter_hf_dataset",
    "iter_repository",
    "stdlib_root",
]

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
    # What the build adds after the files (config, tokens, tokenizer, ...): stats.json's tail.
    extra: dict[str, Any] = field(default_factory=dict)
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
        } | self.extra


# --- shared by the repository walk and the dataset reader -----------------------------------


def _wanted_language(lang: Language | None, config: CorpusConfig) -> bool:
    return lang is not None and (not config.languages or lang.name in config.languages)


def _keep(stats: CorpusStats, source: SourceFile) -> SourceFile:
    stats.counts["kept"] += 1
    stats.languages[source.language] += 1
    stats.bytes_kept += len(source.text.encode("utf-8"))
    return source


# --- repositories -----------------------------------------------------------------------------


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _utf8_name(name: str) -> bool:
    """False for a name with bytes that are not UTF-8 (``os`` hands them over as surrogates):
    it could not be stored as Arrow or SQLite text, nor shown to a user."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def iter_repository(
    root: str | Path, config: CorpusConfig | None = None, stats: CorpusStats | None = None
) -> Iterator[SourceFile]:
    """Kept source files of a directory (a git working tree or any folder), in path order.

    ``root`` may also be a single file. Raises InputError if it does not exist; problems with
    single files, names or ignore-file lines inside are counted in ``stats`` and never stop
    the walk.
    """
    config = config or CorpusConfig()
    stats = stats if stats is not None else CorpusStats()
    given = Path(root).expanduser()
    if not given.exists():
        raise InputError(f"source path not found: {root}")
    real_root = given.resolve()
    if not real_root.is_dir():
        lang = language_for_path(real_root)
        if not _wanted_language(lang, config):
            stats.counts["unsupported"] += 1
            return
        assert lang is not None
        repo, name = _printable(real_root.parent.name), _printable(real_root.name)
        source = _read_source(real_root, repo, name, lang, config, stats, follow_symlinks=True)
        if source is not None:
            yield source
        return
    yield from _walk(real_root, _printable(real_root.name or str(real_root)), config, stats)


def _printable(name: str) -> str:
    """A name the user chose for a source (not a file inside it), made storable as text."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@dataclass
class _Frame:
    """One directory on the walk's stack: its remaining entries and the rules that apply."""

    entries: Iterator[os.DirEntry[str]]
    rel: str
    rules: IgnoreRules


def _open_frame(directory: Path, rel: str, inherited: IgnoreRules, stats: CorpusStats) -> _Frame | None:
    try:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError:  # permissions, removed during the walk, a path too long for the OS
        stats.counts["unreadable"] += 1
        return None
    return _Frame(iter(entries), rel, ignore_rules(directory, rel, inherited, stats.counts))


def _walk(root: Path, repo: str, config: CorpusConfig, stats: CorpusStats) -> Iterator[SourceFile]:
    # An explicit stack, not recursion: a tree 1,200 directories deep is a few kilobytes of
    # frames here, but past Python's recursion limit. Entries are visited in the same order a
    # recursive depth-first walk of name-sorted directories would visit them.
    first = _open_frame(root, "", (), stats)
    stack = [first] if first is not None else []
    while stack:
        frame = stack[-1]
        entry = next(frame.entries, None)
        if entry is None:
            stack.pop()
            continue
        if not _utf8_name(entry.name):
            stats.counts["bad_name"] += 1
            continue
        child_rel = f"{frame.rel}/{entry.name}" if frame.rel else entry.name
        try:
            is_link = entry.is_symlink()
            is_dir = entry.is_dir()  # follows links
        except OSError:
            stats.counts["unreadable"] += 1
            continue
        if is_dir:
            if entry.name in _VCS_DIRS:
                continue
            if is_ignored(child_rel, True, frame.rules):
                stats.counts["gitignored"] += 1
            elif entry.name in VENDORED_DIRS:
                stats.counts["vendored"] += 1
            elif is_link:
                # Outside the root it is not part of this repository; inside, its files are
                # walked at their real place (following the link could loop).
                outside = not _inside(Path(entry.path).resolve(), root)
                stats.counts["symlink_outside" if outside else "duplicate"] += 1
            else:
                child = _open_frame(Path(entry.path), child_rel, frame.rules, stats)
                if child is not None:
                    stack.append(child)
            continue
        if is_ignored(child_rel, False, frame.rules):
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
        # No links from here on: a file swapped for one (or for a FIFO) after the checks
        # above is refused by the read itself.
        source = _read_source(Path(entry.path), repo, child_rel, lang, config, stats, follow_symlinks=False)
        if source is not None:
            yield source


def _read_source(
    path: Path,
    repo: str,
    rel: str,
    lang: Language,
    config: CorpusConfig,
    stats: CorpusStats,
    *,
    follow_symlinks: bool,
) -> SourceFile | None:
    try:
        data = read_regular_file(path, max_bytes=config.max_file_bytes, follow_symlinks=follow_symlinks)
    except FileTooLargeError:
        stats.counts["too_large"] += 1
        return None
    except InputError:  # not a regular file, permissions, removed during the walk
        stats.counts["unreadable"] += 1
        return None
    text = admit_text(data, config, stats.counts, stats.seen)
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
            text = admit_text(value, config, stats.counts, stats.seen)
            if text is None:
                continue
            path = path or f"{split}/{index}{lang.extensions[0]}"
            row_repo = str(row[repo_column]) if repo_column and row[repo_column] is not None else repo
            yield _keep(stats, SourceFile(repo=row_repo, path=path, language=lang.name, text=text))
    except CodemlmError:
        raise
    except Exception as exc:  # a broken shard or a dropped connection halfway through
        raise CorpusError(f"reading dataset {name!r} failed: {exc}") from exc
