"""Build held-out infill cases by cutting tree-sitter nodes out of code the model never saw.

The source is a pure-Python package installed into its own folder, outside every training
corpus (the list lives in benchmarks/data/HELDOUT.md and the default model's training must
exclude it)::

    .venv/bin/pip download --no-deps boltons==25.0.0 -d /tmp/heldout_dl
    .venv/bin/python -m zipfile -e /tmp/heldout_dl/boltons-25.0.0-py3-none-any.whl /tmp/heldout
    .venv/bin/python benchmarks/make_infill_cases.py --source /tmp/heldout/boltons \\
        --package boltons==25.0.0 --wheel /tmp/heldout_dl/boltons-25.0.0-py3-none-any.whl

Kinds: ``identifier`` (a name), ``arguments`` (a call's argument list), ``expression``
(an expression that is more than a bare name or literal), ``statement`` (a simple statement);
with ``--kinds return``, ``return`` (the whole value of a ``return`` statement, bare names and
literals included, as code returns them).
Every target is one line, because a cursor hole is a single-line hole for the engine (see
codemlm/infill.py). Each case keeps ``--before`` lines above and ``--after`` lines below the
hole, cut at line boundaries, so the committed file stays small. Writes the cases (JSON Lines,
the docs/INTERFACES.md format) and a manifest next to them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections import Counter, defaultdict
from pathlib import Path

from codemlm.kinds import SpanKind
from codemlm.syntax import parse, parse_tree

KINDS = {
    SpanKind.IDENTIFIER: "identifier",
    SpanKind.ARGUMENTS: "arguments",
    SpanKind.EXPRESSION: "expression",
    SpanKind.STATEMENT: "statement",
}
_MIN_CHARS = {"identifier": 2, "arguments": 3, "expression": 4, "statement": 6, "return": 2}
ALL_KINDS = (*KINDS.values(), "return")
_MAX_CHARS = 80


def _is_bare(text: str) -> bool:
    """A name or a literal alone: not an interesting *expression* (identifiers cover names)."""
    stripped = text.strip()
    return stripped.isidentifier() or stripped.replace(".", "").replace("-", "").isdigit() or (
        stripped[:1] in "'\"" and stripped[-1:] == stripped[:1]
    )


def candidate_spans(text: str, language: str = "python", *, returns: bool = False) -> list[tuple[str, int, int]]:
    """(kind, start byte, end byte) of every node worth cutting out of one file; the ``return``
    kind only with ``returns`` (so the four-kind cuts, and the ranker's holes, stay as they were)."""
    result = parse(text, language)
    data = text.encode("utf-8")
    strings = [(s.start, s.end) for s in result.spans if s.kind == SpanKind.STRING_COMMENT]

    def in_a_string(start: int, end: int) -> bool:  # inside a docstring or comment
        return any(s <= start and end <= e for s, e in strings)

    out = []
    for span in result.spans:
        kind = KINDS.get(span.kind)
        if kind is None:
            continue
        target = data[span.start : span.end].decode("utf-8", "replace")
        if "\n" in target or not _MIN_CHARS[kind] <= len(target.strip()) <= _MAX_CHARS:
            continue
        if kind == "expression" and _is_bare(target):
            continue
        if in_a_string(span.start, span.end):
            continue
        out.append((kind, span.start, span.end))
    if returns:
        out.extend(("return", start, end) for start, end in _return_values(text, language)
                   if not in_a_string(start, end))
    return out


def _return_values(text: str, language: str) -> list[tuple[int, int]]:
    """(start, end) bytes of every one-line value of a ``return`` statement."""
    data = text.encode("utf-8")
    out = []
    stack = [parse_tree(text, language).root_node]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.type != "return_statement":
            continue
        values = [c for c in node.named_children if c.type != "comment"]
        if len(values) != 1:
            continue
        value = data[values[0].start_byte : values[0].end_byte].decode("utf-8", "replace")
        if "\n" not in value and _MIN_CHARS["return"] <= len(value.strip()) <= _MAX_CHARS:
            out.append((values[0].start_byte, values[0].end_byte))
    return sorted(out)


def make_case(text: str, start: int, end: int, before: int, after: int) -> tuple[str, str, str]:
    """(prefix, suffix, target) with ``before``/``after`` whole lines of context."""
    data = text.encode("utf-8")
    line_start = data.rfind(b"\n", 0, start) + 1
    cut_left = line_start
    for _ in range(before):
        if cut_left == 0:
            break
        cut_left = data.rfind(b"\n", 0, cut_left - 1) + 1
    cut_right = end
    for _ in range(after + 1):
        nxt = data.find(b"\n", cut_right)
        if nxt < 0:
            cut_right = len(data)
            break
        cut_right = nxt + 1
    return (
        data[cut_left:start].decode("utf-8"),
        data[end:cut_right].decode("utf-8"),
        data[start:end].decode("utf-8"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="folder of the held-out package's source")
    parser.add_argument("--package", required=True, help="name==version, recorded in the manifest")
    parser.add_argument("--wheel", help="the downloaded wheel, to record its sha256")
    parser.add_argument("--out", default="benchmarks/data/infill_cases.jsonl")
    parser.add_argument("--per-kind", type=int, default=75)
    parser.add_argument("--per-file", type=int, default=6, help="at most this many cases of a kind per file")
    parser.add_argument("--before", type=int, default=40, help="context lines above the hole")
    parser.add_argument("--after", type=int, default=20, help="context lines below the hole")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--language", default="python", help="language of the files cut (default python)")
    parser.add_argument("--license", help="the package's license file (default: from a wheel's dist-info)")
    parser.add_argument("--kinds", default=",".join(KINDS.values()),
                        help=f"comma-separated kinds to cut, of {', '.join(ALL_KINDS)} (default: the first four)")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or any(k not in ALL_KINDS for k in kinds):
        print(f"make_infill_cases: --kinds takes {', '.join(ALL_KINDS)}", file=sys.stderr)
        return 2

    from codemlm.languages import get_language

    language = get_language(args.language)
    source = Path(args.source)
    files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix in language.extensions)
    if not files:
        print(f"make_infill_cases: no {language.name} files under {source}", file=sys.stderr)
        return 1
    rng = random.Random(args.seed)
    pool: dict[str, list[tuple[Path, int, int]]] = defaultdict(list)
    texts: dict[Path, str] = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        texts[path] = text
        by_kind: dict[str, list[tuple[Path, int, int]]] = defaultdict(list)
        for kind, start, end in candidate_spans(text, language.name, returns="return" in kinds):
            if kind in kinds:
                by_kind[kind].append((path, start, end))
        for kind, spans in by_kind.items():
            rng.shuffle(spans)
            pool[kind].extend(spans[: args.per_file])  # spread cases over many files
    cases = []
    for kind in kinds:
        spans = pool[kind]
        rng.shuffle(spans)
        for n, (path, start, end) in enumerate(sorted(spans[: args.per_kind], key=lambda s: (str(s[0]), s[1]))):
            prefix, suffix, target = make_case(texts[path], start, end, args.before, args.after)
            rel = path.relative_to(source.parent).as_posix()
            cases.append({"id": f"{kind}-{n:03d}", "language": language.name, "path": rel, "kind": kind,
                          "prefix": prefix, "suffix": suffix, "target": target})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8")
    manifest = {
        "cases_file": out.name,
        "cases": len(cases),
        "by_kind": dict(Counter(c["kind"] for c in cases)),
        "source_package": args.package,
        "language": language.name,
        "wheel_sha256": hashlib.sha256(Path(args.wheel).read_bytes()).hexdigest() if args.wheel else None,
        "files": len({c["path"] for c in cases}),
        "seed": args.seed,
        "context_lines": {"before": args.before, "after": args.after},
        "command": "python benchmarks/make_infill_cases.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    # The cases hold excerpts of the package's source: its license travels with them.
    licenses = [Path(args.license)] if args.license else sorted(source.parent.glob("*.dist-info/LICENSE*")) + sorted(
        source.parent.glob("*.dist-info/licenses/*"))
    if licenses:
        license_path = out.with_name(out.stem + ".LICENSE")
        license_path.write_text(f"The cases in {out.name} are excerpts of {args.package}, under its license:\n\n"
                                + licenses[0].read_text(encoding="utf-8"), encoding="utf-8")
        manifest["license_file"] = license_path.name
    manifest_path = out.with_name(out.stem + ".manifest.json")
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
