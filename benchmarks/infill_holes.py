"""Holes cut from a tree of training-corpus packages (Python and JavaScript/TypeScript), for
fitting the completion ranker and checking decisions on code that is not the standard library.

The standard library alone is one codebase with one style; the held-out libraries are
third-party Python and JavaScript. ``tree_holes`` cuts holes exactly like the held-out cases
(``make_infill_cases.py``: identifier, arguments, expression, statement; 40 lines above, 20
below) from every package folder directly under a root (``data/default-src/py``: flask,
jinja2, packaging, pygments, werkzeug; ``data/default-src/js``: lodash-es, express, rxjs, ...),
taking them in turn from each package so that one big package (lodash-es's 600 one-function
files, pygments' 260 lexers) does not make up the whole set. The files are split in two halves
by a hash of their path under the root (``file_part``, the same rule as the stdlib split), so
the fit half and the validate half never share a file.

``tree_repository`` gives a hole the repository side an editor would: the other files of the
same package and language (nearest folder first), never the holed file itself.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from make_infill_cases import ALL_KINDS, candidate_spans, make_case

from codemlm.languages import language_for_path

if TYPE_CHECKING:
    from codemlm.candidates import Repository

__all__ = ["ALL_KINDS", "KINDS", "PARTS", "TreeRepositories", "cut_holes", "file_part", "tree_holes", "tree_repository"]

PARTS = ("all", "fit", "validate")
KINDS = ("identifier", "arguments", "expression", "statement")
# The languages holes are cut in; a type declaration file (.d.ts) has no bodies to fill.
_LANGUAGES = frozenset({"python", "javascript", "typescript"})
_MAX_CHARS = 400_000
_MAX_LINE_MEAN = 200  # characters a line on average: above it a file is minified, not code to fill
_REPO_FILES = 30


def file_part(name: str) -> str:
    """Which half of the corpus a file belongs to: ``fit`` or ``validate`` (by a hash of its
    name or path, so the halves never share a file and do not depend on the seed)."""
    return "validate" if zlib.crc32(name.encode("utf-8")) % 2 else "fit"


def cut_holes(source: Path, count: int, seed: int, part: str = "all", per_file: int = 2,
              kinds: tuple[str, ...] = KINDS) -> list[dict[str, str]]:
    """``count`` holes spread over the Python files of ``source`` (top level only: the stdlib's own
    modules, not site-packages), balanced over ``kinds`` (the four of the held-out cases; add
    ``return`` for return values). ``part``: ``fit`` or ``validate`` keeps only that half of the
    files (:func:`file_part`), so ranker decisions can be checked on files the fit never saw;
    ``all`` takes every file."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    _check_kinds(kinds)
    rng = random.Random(seed)
    files = sorted(p for p in source.glob("*.py") if p.is_file() and part in ("all", file_part(p.name)))
    rng.shuffle(files)
    per_kind = count // len(kinds)
    picked: dict[str, list[dict[str, str]]] = {kind: [] for kind in kinds}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) > _MAX_CHARS:
            continue
        spans = candidate_spans(text, returns="return" in kinds)
        rng.shuffle(spans)
        taken: Counter[str] = Counter()
        for kind, start, end in spans:
            if kind not in picked or len(picked[kind]) >= per_kind or taken[kind] >= per_file:
                continue
            prefix, suffix, target = make_case(text, start, end, 40, 20)
            picked[kind].append({"kind": kind, "prefix": prefix, "suffix": suffix, "target": target,
                                 "path": path.name, "language": "python", "origin": "stdlib"})
            taken[kind] += 1
        if all(len(v) >= per_kind for v in picked.values()):
            break
    return [h for hs in picked.values() for h in hs]


def _check_kinds(kinds: tuple[str, ...]) -> None:
    unknown = sorted(set(kinds) - set(ALL_KINDS))
    if not kinds or unknown:
        raise ValueError(f"kinds must be some of {ALL_KINDS}, got {list(kinds)!r}")


def tree_files(root: Path, part: str = "all") -> dict[str, list[tuple[Path, str]]]:
    """``{package: [(file, language), ...]}`` for every package folder directly under ``root``."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    out: dict[str, list[tuple[Path, str]]] = {}
    for package in sorted(p for p in root.iterdir() if p.is_dir()):
        files = []
        for path in sorted(package.rglob("*")):
            language = language_for_path(path)
            if language is None or language.name not in _LANGUAGES or path.name.endswith(".d.ts") \
                    or not path.is_file():
                continue
            if part in ("all", file_part(path.relative_to(root).as_posix())):
                files.append((path, language.name))
        if files:
            out[package.name] = files
    return out


def _package_holes(files: list[tuple[Path, str]], root: Path, rng: random.Random, per_file: int,
                   package: str, kinds: tuple[str, ...]) -> dict[str, Iterator[dict[str, str]]]:
    """Per kind, the package's holes in a random order (at most ``per_file`` of a kind per file)."""
    spans: dict[str, list[tuple[str, str, int, int, str]]] = defaultdict(list)
    texts: dict[str, str] = {}
    for path, language in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        lines = text.count("\n") + 1
        if len(text) > _MAX_CHARS or len(text) / lines > _MAX_LINE_MEAN:
            continue
        rel = path.relative_to(root).as_posix()
        texts[rel] = text
        by_kind: dict[str, list[tuple[str, str, int, int, str]]] = defaultdict(list)
        for kind, start, end in candidate_spans(text, language, returns="return" in kinds):
            by_kind[kind].append((rel, language, start, end, kind))
        for kind, found in by_kind.items():
            rng.shuffle(found)
            spans[kind].extend(found[:per_file])

    def holes(kind: str) -> Iterator[dict[str, str]]:
        found = spans.get(kind, [])
        rng.shuffle(found)
        for rel, language, start, end, _ in found:
            prefix, suffix, target = make_case(texts[rel], start, end, 40, 20)
            yield {"kind": kind, "prefix": prefix, "suffix": suffix, "target": target, "path": rel,
                   "language": language, "origin": package}

    return {kind: holes(kind) for kind in kinds}


def tree_holes(root: Path, count: int, seed: int, part: str = "all", per_file: int = 2,
               kinds: tuple[str, ...] = KINDS) -> list[dict[str, str]]:
    """``count`` holes from the packages under ``root``, an equal share of each of ``kinds``,
    taken from the packages in turn (a package that runs out leaves its turns to the others)."""
    _check_kinds(kinds)
    rng = random.Random(seed)
    packages = tree_files(root, part)
    streams = {name: _package_holes(files, root, rng, per_file, name, kinds) for name, files in packages.items()}
    out: list[dict[str, str]] = []
    for kind in kinds:
        want = count // len(kinds)
        live = [streams[name][kind] for name in packages]
        taken = 0
        while taken < want and live:
            for stream in list(live):
                hole = next(stream, None)
                if hole is None:
                    live.remove(stream)
                    continue
                out.append(hole)
                taken += 1
                if taken == want:
                    break
    return out


class TreeRepositories:
    """The repository side of a tree hole, built once per holed file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files = tree_files(root)
        self._cache: dict[str, Repository] = {}

    def for_hole(self, hole: dict[str, str]) -> Repository | None:
        rel = hole["path"]
        if rel not in self._cache:
            self._cache[rel] = tree_repository(self.root, self._files, hole)
        return self._cache[rel]


def tree_repository(root: Path, files: dict[str, list[tuple[Path, str]]], hole: dict[str, str],
                    limit: int = _REPO_FILES) -> Repository:
    """The other files of the hole's package in its language, those of its own folder first."""
    own = (root / hole["path"]).resolve()
    folder = own.parent
    others = [p for p, language in files.get(hole["origin"], []) if language == hole["language"] and p.resolve() != own]
    others.sort(key=lambda p: (p.resolve().parent != folder, p.as_posix()))
    return read_repository(others[:limit], hole["language"])


def read_repository(paths: list[Path], language: str) -> Repository:
    """A ``Repository`` of the files that read as UTF-8 (the rest are skipped)."""
    from codemlm.candidates import Repository

    texts = []
    for path in paths:
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
    return Repository(texts, language)
