"""The validation set that sets a static table's dense weight: docstring queries over CPython's stdlib.

CPython's standard library is in the default model's training corpus, so measuring on it
never touches the held-out search sets (benchmarks/data/search_cases.jsonl). The set is
built the way benchmarks/make_search_cases.py builds the held-out one, so the two measure
the same task: a copy of some stdlib modules with every docstring removed (a query's words
must not sit verbatim next to its answer), and for each documented definition the first
sentence of its docstring as the query and that definition as the answer; queries that two
definitions share are dropped.
"""

from __future__ import annotations

import json
import random
import re
import sysconfig
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from codemlm.chunking import DEFINITION_KINDS, Chunk, chunk_source
from codemlm.languages import parser_for
from codemlm.syntax import definitions

__all__ = ["HELDOUT_LIBRARIES", "JUDGING_LIBRARIES", "TrainingChunk", "build_validation_set", "default_stdlib", "documented_chunks",
           "first_sentence", "strip_docstrings", "training_chunks", "training_pairs", "validation_files"]

# Parts of the stdlib that are not everyday library code (tests, GUI, vendored, generated).
# The libraries of the held-out search sets (benchmarks/data/search_cases*.jsonl): never training data.
HELDOUT_LIBRARIES = frozenset({"toolz", "cytoolz", "humanize", "inflection", "dateutil", "sortedcontainers"})
# Libraries that judge decisions without being test sets: the search encoder's second opinion
# (``training.search_encoder --library``) and the held-out completion cases
# (benchmarks/data/infill_cases*.jsonl). Training on them would make their figures flattery.
JUDGING_LIBRARIES = frozenset({"click", "rich", "markdown_it", "boltons", "tabulate", "commander"})
_SKIP = ("test", "tests", "idlelib", "tkinter", "turtledemo", "lib2to3", "site-packages", "ensurepip",
         "__pycache__", "pydoc_data", "encodings", "msilib", "config-3")


def default_stdlib() -> Path:
    """The running interpreter's stdlib (3.11 here, the version the default corpus holds)."""
    return Path(sysconfig.get_paths()["stdlib"])


def strip_docstrings(text: str) -> str:
    """The file without docstrings; a body that held only a docstring gets ``pass``."""
    data = text.encode("utf-8")
    ranges: list[tuple[int, int, bool]] = []
    stack = [parser_for("python").parse(data).root_node]
    while stack:
        node = stack.pop()
        block = node if node.type == "module" else None
        if node.type in ("function_definition", "class_definition"):
            block = node.child_by_field_name("body")
        if block is not None:
            statements = [c for c in block.named_children if c.type != "comment"]
            if statements and statements[0].type == "expression_statement":
                expr = statements[0].named_children
                if len(expr) == 1 and expr[0].type in ("string", "concatenated_string"):
                    ranges.append((statements[0].start_byte, statements[0].end_byte, len(statements) == 1))
        stack.extend(node.named_children)
    out, cursor = bytearray(), 0
    for start, end, only in sorted(ranges):
        line_start = data.rfind(b"\n", 0, start) + 1
        line_end = data.find(b"\n", end)
        line_end = len(data) if line_end < 0 else line_end + 1
        if not data[line_start:start].strip() and not data[end:line_end].strip():
            out += data[cursor:line_start] + ((data[line_start:start] + b"pass\n") if only else b"")
            cursor = line_end
        else:
            out += data[cursor:start] + (b"pass" if only else b"None")
            cursor = end
    return (out + data[cursor:]).decode("utf-8")


def first_sentence(doc: str) -> str | None:
    """The docstring's first sentence, if it is one of three words or more."""
    paragraph = re.sub(r"\s+", " ", doc.strip().split("\n\n", 1)[0]).strip()
    if not paragraph or paragraph.startswith((">>>", ":", "..")):
        return None
    sentence = re.split(r"(?<=[.!?])\s", paragraph, maxsplit=1)[0].strip()
    return sentence if len(sentence.split()) >= 3 else None


def _library_files(root: Path) -> list[Path]:
    return [
        p for p in sorted(root.rglob("*.py"))
        if not any(part in _SKIP or part.startswith(("config-", "test_")) for part in p.relative_to(root).parts)
        and 2_000 <= p.stat().st_size <= 200_000
    ]


def _stdlib_files(stdlib: Path, max_files: int) -> list[Path]:
    files = _library_files(stdlib)
    step = max(1, len(files) // max_files)  # an even spread over the alphabet, not one corner of it
    return files[::step][:max_files]


def documented_chunks(text: str) -> tuple[str, list[tuple[Chunk, str | None, str | None]]]:
    """The file without docstrings and its definition chunks (as the index cuts them from that
    stripped text), each with its parent's name and the first sentence of the docstring it
    had (or None)."""
    stripped = strip_docstrings(text)
    # Match each definition to its stripped twin by (name, parent, occurrence).
    queries: dict[tuple[str, str | None, int], str | None] = {}
    seen: Counter[tuple[str, str | None]] = Counter()
    for d in definitions(text, "python"):
        queries[(d.name, d.parent, seen[(d.name, d.parent)])] = first_sentence(d.docstring or "")
        seen[(d.name, d.parent)] += 1
    seen.clear()
    by_line: dict[int, tuple[str | None, str | None]] = {}
    for d in definitions(stripped, "python"):
        key = (d.name, d.parent, seen[(d.name, d.parent)])
        seen[(d.name, d.parent)] += 1
        if d.kind != "block":
            by_line[d.start_line] = (d.parent, queries.get(key))
    chunks = [c for c in chunk_source(stripped, "python") if c.kind in DEFINITION_KINDS]
    return stripped, [(c, *by_line.get(c.start_line, (None, None))) for c in chunks]


def validation_files(stdlib: Path | None = None, max_files: int = 60) -> list[Path]:
    """The stdlib modules the validation set is made of (training data must leave them out)."""
    return _stdlib_files(stdlib or default_stdlib(), max_files)


def build_validation_set(out_dir: Path, stdlib: Path | None = None, *, max_files: int = 60,
                         max_cases: int = 400) -> tuple[Path, Path]:
    """Write the stripped copy under ``out_dir/repo`` and the cases to ``out_dir/cases.jsonl``."""
    stdlib = stdlib or default_stdlib()
    repo = out_dir / "repo"
    candidates: list[dict[str, str | int]] = []
    for path in _stdlib_files(stdlib, max_files):
        rel = path.relative_to(stdlib).as_posix()
        try:
            stripped, pairs = documented_chunks(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(stripped, encoding="utf-8")
        for chunk, parent, query in pairs:
            if query is not None:
                candidates.append({"id": f"{rel}:{parent or ''}.{chunk.name}", "query": query,
                                   "language": "python", "path": rel, "line": chunk.start_line + 1})
    counts = Counter(str(c["query"]).lower() for c in candidates)
    ids = Counter(c["id"] for c in candidates)
    cases = [c for c in candidates if counts[str(c["query"]).lower()] == 1 and ids[c["id"]] == 1]
    step = max(1, len(cases) // max_cases)
    cases = cases[::step][:max_cases]
    if not cases:
        raise SystemExit(f"no documented definitions found under {stdlib}")
    cases_path = out_dir / "cases.jsonl"
    cases_path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    return repo, cases_path


@dataclass(frozen=True)
class TrainingChunk:
    """A definition chunk of training-corpus code (docstrings stripped, as indexed) and the
    first sentence of its docstring when it had one: the query it answers."""

    text: str
    query: str | None
    source: str = ""  # the file it came from: chunks of one file make hard negatives for each other


def training_chunks(roots: Sequence[Path], exclude: Sequence[Path] = (), *, max_chunks: int = 6000,
                    documented_share: float = 0.7, seed: int = 0) -> list[TrainingChunk]:
    """Definition chunks from the Python files under ``roots`` except ``exclude`` (the
    validation modules): documented ones first (they carry a query), up to ``documented_share``
    of ``max_chunks``, the rest undocumented, each group sampled at random."""
    skip = {p.resolve() for p in exclude}
    documented: list[TrainingChunk] = []
    plain: list[TrainingChunk] = []
    for root in roots:
        for path in _library_files(root):
            if path.resolve() in skip:
                continue
            try:
                _, pairs = documented_chunks(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, ValueError):
                continue
            for chunk, _parent, query in pairs:
                (documented if query is not None else plain).append(TrainingChunk(chunk.text, query, str(path)))
    rng = random.Random(seed)
    rng.shuffle(documented)
    rng.shuffle(plain)
    chosen = documented[: int(max_chunks * documented_share)]
    return chosen + plain[: max_chunks - len(chosen)]


def training_pairs(roots: Sequence[Path], validation: Sequence[Path], *, max_pairs: int, seed: int = 0,
                   avoid: Sequence[str] = ()) -> list[TrainingChunk]:
    """Up to ``max_pairs`` documented definition chunks (docstring first sentence, stripped code)
    from the Python trees under ``roots``, for the contrastive loss alone (no teacher). Trees of
    the held-out libraries are refused; a pair whose query or code is also in the validation
    modules (a vendored or back-ported copy of a stdlib module) or in ``avoid`` is dropped, so
    the validation set measures code the table has not seen."""
    for root in roots:
        hit = {part.lower() for part in Path(root).parts} & HELDOUT_LIBRARIES
        if hit:
            raise SystemExit(f"{root}: {', '.join(sorted(hit))} is held-out search code, never training data")
    seen_queries: set[str] = set()
    seen_code: set[str] = set(avoid)
    for path in validation:
        try:
            _, pairs = documented_chunks(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        for chunk, _parent, query in pairs:
            seen_code.add(chunk.text)
            if query is not None:
                seen_queries.add(query.lower())
    found = [c for c in training_chunks(roots, max_chunks=10**9, documented_share=1.0, seed=seed) if c.query is not None]
    kept: list[TrainingChunk] = []
    for item in found:
        if len(kept) >= max_pairs:
            break
        assert item.query is not None
        key = item.query.lower()
        if key in seen_queries or item.text in seen_code or {q.lower() for q in Path(item.source).parts} & HELDOUT_LIBRARIES:
            continue
        seen_queries.add(key)  # one chunk per query: a repeated docstring is no contrastive signal
        seen_code.add(item.text)
        kept.append(item)
    return kept
