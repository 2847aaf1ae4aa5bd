"""Ignore rules for a directory walk: ``.gitignore``, ``.ignore`` and ``.git/info/exclude``.

``.ignore`` is ripgrep's and the silver searcher's file of the same syntax, for what a search
tool should skip but git should keep; in one directory its lines come after ``.gitignore``'s,
so they win where both match (ripgrep's precedence).

Written for trees nobody vetted: an ignore file is read only if it is a regular file under
:data:`IGNORE_FILE_MAX_BYTES` (a FIFO named ``.gitignore`` would block the walk forever), and a
line that does not compile (``!``, a trailing ``\\``, ``[z-a]``) is skipped and counted, as git
itself shrugs such lines off, instead of ending the walk.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pathspec

from codemlm.errors import InputError
from codemlm.regular_files import read_regular_file

__all__ = ["IGNORE_FILE_MAX_BYTES", "IgnoreRules", "ignore_rules", "is_ignored"]

# Real ignore files are a few kilobytes; anything near this is hostile or generated.
IGNORE_FILE_MAX_BYTES = 1 << 20

IgnoreRules = tuple[tuple[str, Any], ...]  # (directory relative to the root, GitIgnoreSpec)


def _read_lines(path: Path, counts: Counter[str]) -> list[str]:
    if not path.exists() and not path.is_symlink():
        return []  # the common case, and nothing to count
    try:
        data = read_regular_file(path, max_bytes=IGNORE_FILE_MAX_BYTES)
    except InputError:  # a FIFO, a directory, a device, too large, permissions
        counts["unreadable"] += 1
        return []
    return data.decode("utf-8", errors="replace").splitlines()


def _compile(lines: list[str], counts: Counter[str]) -> Any:
    """A GitIgnoreSpec of the lines that compile, or None when no line is a pattern."""
    good: list[str] = []
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            pathspec.GitIgnoreSpec.from_lines([line])
        except Exception:  # pathspec raises its own pattern errors and re.error alike
            counts["bad_ignore_line"] += 1
            continue
        good.append(line)
    return pathspec.GitIgnoreSpec.from_lines(good) if good else None


def ignore_rules(directory: Path, rel: str, inherited: IgnoreRules, counts: Counter[str]) -> IgnoreRules:
    """``inherited`` plus the rules of ``directory`` (``rel`` to the root; "" is the root)."""
    lines = _read_lines(directory / ".gitignore", counts) + _read_lines(directory / ".ignore", counts)
    if not rel:
        lines = _read_lines(directory / ".git" / "info" / "exclude", counts) + lines
    spec = _compile(lines, counts)
    return inherited if spec is None else (*inherited, (rel, spec))


def is_ignored(rel: str, is_dir: bool, rules: IgnoreRules) -> bool:
    """Git's answer: the deepest ignore file with a matching pattern decides (`!` re-includes)."""
    for base, spec in reversed(rules):
        local = rel[len(base) + 1 :] if base else rel
        result = spec.check_file(local + "/" if is_dir else local)
        if result.include is not None:
            return bool(result.include)
    return False
