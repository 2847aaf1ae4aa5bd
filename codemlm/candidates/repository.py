"""The repository side of the context sources: other files, lexed once, with lookup tables.

Built once per set of texts and reused for every hole: a table from the last one or two tokens
to the positions that follow them (the n-gram continuation table and the member lookup), the
name counts, and the syntax-role table of :mod:`codemlm.candidates.analogs`. The holed file is
never part of it (the caller passes the *other* files), so the answer cannot leak in.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from codemlm.candidates.analogs import RoleTable
from codemlm.candidates.context import SIDE_CHARS, Doc
from codemlm.candidates.lexical import is_name, lex
from codemlm.errors import CodemlmError
from codemlm.regular_files import read_regular_file

__all__ = ["Repository", "sibling_texts"]

# A repository bigger than this (characters) is cut: a completion must never wait on a huge tree.
MAX_REPO_CHARS = 4_000_000
_MAX_SIBLING_BYTES = 1 << 20  # a source file bigger than 1 MiB is generated or data, not a neighbour
_MAX_HITS = 400  # positions returned per lookup, nearest files first in input order


class Repository:
    """Other files of the repository, searchable by the tokens that precede a position."""

    def __init__(self, texts: Iterable[str], language: str | None) -> None:
        self.language = language
        self.docs: list[Doc] = []
        self.names: Counter[str] = Counter()
        self._after1: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self._after2: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        self.roles = RoleTable()
        total = 0
        for text in texts:
            text = text[:SIDE_CHARS * 2]
            total += len(text)
            if total > MAX_REPO_CHARS:
                break
            doc = Doc(text, lex(text, language), "repo")
            d = len(self.docs)
            self.docs.append(doc)
            toks = doc.toks
            for i in range(1, len(toks)):
                self._after1[toks[i - 1].text].append((d, i))
                if i >= 2:
                    self._after2[(toks[i - 2].text, toks[i - 1].text)].append((d, i))
                if is_name(toks[i].text):
                    self.names[toks[i].text] += 1
            self.roles.add_text(text, language, "repo")

    def after(self, keys: Sequence[str]) -> list[tuple[Doc, int]]:
        """Positions that follow the token sequence ``keys`` (its last one or two tokens)."""
        if not keys:
            return []
        hits = self._after2.get((keys[-2], keys[-1]), []) if len(keys) >= 2 else self._after1.get(keys[-1], [])
        return [(self.docs[d], i) for d, i in hits[:_MAX_HITS]]

    def __len__(self) -> int:
        return len(self.docs)


def sibling_texts(path: Path, *, max_files: int = 200) -> list[str]:
    """Texts of the other files with the same extension in ``path``'s folder (never ``path``)."""
    out: list[str] = []
    try:
        siblings = sorted(p for p in path.parent.iterdir() if p.suffix == path.suffix and p != path and p.is_file())
    except OSError:
        return out
    total = 0
    for sibling in siblings[:max_files]:
        # Only regular files, each capped: a sibling may be a FIFO, a device or a huge dump.
        try:
            text = read_regular_file(sibling, max_bytes=_MAX_SIBLING_BYTES).decode("utf-8")
        except (CodemlmError, UnicodeDecodeError):
            continue
        total += len(text)
        if total > MAX_REPO_CHARS:
            break
        out.append(text)
    return out
