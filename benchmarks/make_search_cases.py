"""Make the held-out search benchmark: a repository copy without docstrings, plus query cases.

Source: pure-Python packages that no training corpus of ours contains (see
benchmarks/data/HELDOUT.md). For every documented function, method or class outside the
packages' tests, the first sentence of its docstring becomes a query, and the answer is that
definition. Every docstring is removed from the indexed copy, so the query's words cannot be
found verbatim next to the answer; queries that two definitions share are dropped (no single
answer). Output follows the docs/INTERFACES.md case format, lines 1-based:

    .venv/bin/pip download --no-deps toolz==1.2.0 humanize==4.17.0 inflection==0.5.1 -d /tmp/heldout_search_dl
    for w in /tmp/heldout_search_dl/*.whl; do .venv/bin/python -m zipfile -e $w /tmp/heldout_search; done
    .venv/bin/python benchmarks/make_search_cases.py --source /tmp/heldout_search

writes the stripped code (~200 KB) to ~/.cache/codemlm/bench/search_heldout (under
$CODEMLM_CACHE_DIR if set; --out-repo to choose) and the cases to
benchmarks/data/search_cases.jsonl (+ .manifest.json). The code copy is not committed: it is
third-party code that the project's linters and any corpus built from this repository must
not see; the wheels' sha256 in HELDOUT.md and this deterministic script recreate it exactly.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codemlm.syntax import definitions  # noqa: E402

PACKAGES = ("toolz", "humanize", "inflection")


def default_heldout_repo() -> Path:
    base = os.environ.get("CODEMLM_CACHE_DIR") or str(Path.home() / ".cache" / "codemlm")
    return Path(base).expanduser() / "bench" / "search_heldout"


def require_heldout_repo(path: str | os.PathLike[str] | None) -> Path:
    repo = Path(path) if path else default_heldout_repo()
    if not any(repo.rglob("*.py")) if repo.is_dir() else True:
        raise SystemExit(
            f"no held-out repository at {repo}: make it first (see benchmarks/make_search_cases.py):\n"
            "  .venv/bin/pip download --no-deps toolz==1.2.0 humanize==4.17.0 inflection==0.5.1 -d /tmp/heldout_search_dl\n"
            "  for w in /tmp/heldout_search_dl/*.whl; do .venv/bin/python -m zipfile -e $w /tmp/heldout_search; done\n"
            "  .venv/bin/python benchmarks/make_search_cases.py --source /tmp/heldout_search"
        )
    return repo
_DEFINITION_NODES = {"function_definition", "class_definition"}


def docstring_ranges(text: str) -> list[tuple[int, int, bool]]:
    """(start_byte, end_byte, body_would_be_empty) of every definition's and the module's docstring
    statement, found with tree-sitter: the first statement of a body that is a string."""
    from codemlm.languages import parser_for

    data = text.encode("utf-8")
    tree = parser_for("python").parse(data)
    ranges = []

    def first_string(block) -> None:  # type: ignore[no-untyped-def]
        statements = [c for c in block.named_children if c.type != "comment"]
        if statements and statements[0].type == "expression_statement":
            expr = statements[0].named_children
            if len(expr) == 1 and expr[0].type in ("string", "concatenated_string"):
                ranges.append((statements[0].start_byte, statements[0].end_byte, len(statements) == 1))

    first_string(tree.root_node)
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type in _DEFINITION_NODES:
            body = node.child_by_field_name("body")
            if body is not None:
                first_string(body)
        stack.extend(node.named_children)
    return sorted(ranges)


def strip_docstrings(text: str) -> str:
    """The file without docstrings: each docstring statement (and its line, when alone on it)
    removed; a body that held only a docstring gets ``pass`` so the code still parses."""
    data = text.encode("utf-8")
    out = bytearray()
    cursor = 0
    for start, end, only_statement in docstring_ranges(text):
        line_start = data.rfind(b"\n", 0, start) + 1
        line_end = data.find(b"\n", end)
        line_end = len(data) if line_end < 0 else line_end + 1
        alone = not data[line_start:start].strip() and not data[end:line_end].strip()
        if alone:
            out += data[cursor:line_start]
            if only_statement:
                out += data[line_start:start] + b"pass\n"
            cursor = line_end
        else:
            out += data[cursor:start] + (b"pass" if only_statement else b"None")
            cursor = end
    out += data[cursor:]
    return out.decode("utf-8")


def first_sentence(doc: str) -> str | None:
    paragraph = re.sub(r"\s+", " ", doc.strip().split("\n\n", 1)[0]).strip()
    if not paragraph or paragraph.startswith((">>>", ":", "..")):
        return None
    sentence = re.split(r"(?<=[.!?])\s", paragraph, maxsplit=1)[0].strip()
    if len(sentence.split()) < 3:
        return None
    return sentence


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="folder with the unpacked wheels (toolz/, humanize/, inflection.py)")
    parser.add_argument("--out-repo", default=str(default_heldout_repo()))
    parser.add_argument("--cases", default=str(ROOT / "benchmarks/data/search_cases.jsonl"))
    parser.add_argument("--packages", nargs="+", default=list(PACKAGES))
    args = parser.parse_args(argv)

    source = Path(args.source)
    out_repo = Path(args.out_repo)
    if out_repo.exists():
        shutil.rmtree(out_repo)
    files: list[Path] = []
    for package in args.packages:
        if (source / package).is_dir():
            files.extend(sorted((source / package).rglob("*.py")))
        elif (source / f"{package}.py").is_file():  # a single-module package (a package dir wins, as on import)
            files.append(source / f"{package}.py")
    if not files:
        raise SystemExit(f"no package sources under {source} for {args.packages}")

    candidates = []
    for path in files:
        rel = path.relative_to(source).as_posix()
        text = path.read_text(encoding="utf-8")
        stripped = strip_docstrings(text)
        target = out_repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(stripped, encoding="utf-8")
        if "/tests/" in f"/{rel}":
            continue  # tests stay in the repository as distractors, but nobody searches for them
        documented = [d for d in definitions(text, "python") if d.docstring]
        after = definitions(stripped, "python")
        # Match each documented definition to its stripped twin by (name, parent, occurrence).
        seen: Counter[tuple[str, str | None]] = Counter()
        positions: dict[tuple[str, str | None, int], int] = {}
        for d in after:
            key = (d.name, d.parent)
            positions[(d.name, d.parent, seen[key])] = d.start_line
            seen[key] += 1
        seen_before: Counter[tuple[str, str | None]] = Counter()
        occurrence: dict[int, int] = {}
        for d in definitions(text, "python"):
            key = (d.name, d.parent)
            occurrence[d.start_byte] = seen_before[key]
            seen_before[key] += 1
        for d in documented:
            query = first_sentence(d.docstring or "")
            line = positions.get((d.name, d.parent, occurrence[d.start_byte]))
            if query is None or line is None:
                continue
            qualified = f"{d.parent}.{d.name}" if d.parent else d.name
            candidates.append({"id": f"{rel}:{qualified}", "query": query, "language": "python", "path": rel, "line": line + 1})

    counts = Counter(c["query"].lower() for c in candidates)
    cases = [c for c in candidates if counts[c["query"].lower()] == 1]
    ids = Counter(c["id"] for c in cases)
    cases = [c for c in cases if ids[c["id"]] == 1]
    cases_path = Path(args.cases)
    cases_path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    size = sum(p.stat().st_size for p in out_repo.rglob("*") if p.is_file())
    manifest = {
        "packages": args.packages,
        "files": len(files),
        "repo_bytes": size,
        "cases": len(cases),
        "dropped_duplicate_queries": len(candidates) - len(cases),
        "by_package": dict(Counter(c["path"].split("/")[0].removesuffix(".py") for c in cases)),
        "cases_sha256": hashlib.sha256(cases_path.read_bytes()).hexdigest(),
    }
    cases_path.with_suffix(".manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
