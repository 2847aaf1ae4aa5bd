"""Tree-sitter parses turned into what the rest of codemlm needs.

* :func:`parse`: typed byte spans (nested, outer before inner) for masking, the byte offsets
  where a training window may be cut, and the number of syntax errors;
* :func:`definitions`: functions, methods and classes with their range, text and docstring;
* :func:`doc_code_pairs`: (documentation, code) pairs for contrastive search training.

Everything here is generic over the entries of :mod:`codemlm.languages`. Tree-sitter recovers
from errors, so half-typed code still yields spans for the parts that parse; nothing here
raises on broken code (only on an unknown language name).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

import tree_sitter

from codemlm.kinds import SpanKind
from codemlm.languages import Language, get_language, parser_for

__all__ = [
    "Definition",
    "DocPair",
    "ParseResult",
    "Span",
    "definitions",
    "doc_code_pairs",
    "error_count",
    "parse",
    "parse_tree",
]


@dataclass(frozen=True)
class Span:
    """A syntax node's byte range ``[start, end)`` in the UTF-8 text, with its kind class."""

    start: int
    end: int
    kind: SpanKind


@dataclass(frozen=True)
class Definition:
    name: str
    kind: str  # "function" | "method" | "class" | "block"
    start_byte: int
    end_byte: int
    start_line: int  # 0-based
    end_line: int  # 0-based, inclusive
    text: str
    docstring: str | None
    parent: str | None


@dataclass(frozen=True)
class DocPair:
    name: str
    doc: str
    code: str  # the definition's code with the documentation removed


@dataclass(frozen=True)
class ParseResult:
    language: str
    spans: list[Span]  # sorted by (start, -end): a preorder of the span tree
    boundaries: list[int]  # sorted byte offsets where a window may be cut
    error_count: int


def _encode(text: str) -> bytes:
    # surrogatepass: arbitrary Python strings (lone surrogates) must not make parsing raise.
    return text.encode("utf-8", "surrogatepass")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def parse_tree(text: str, language: str) -> tree_sitter.Tree:
    """The raw tree-sitter tree of ``text`` (byte offsets index ``text``'s UTF-8 encoding)."""
    return parser_for(get_language(language).name).parse(_encode(text))


def parse(text: str, language: str) -> ParseResult:
    lang = get_language(language)
    data = _encode(text)
    tree = parser_for(lang.name).parse(data)
    kinds = lang.node_kinds
    # One kind per byte range; when nodes share a range the innermost (most specific) wins,
    # e.g. a Python docstring is a string, not the expression statement around it.
    by_range: dict[tuple[int, int], SpanKind] = {}
    ends: set[int] = set()
    errors = 0
    cursor = tree.walk()
    depth = 0
    while True:
        node = cursor.node
        assert node is not None
        if node.is_missing or node.is_error:
            errors += 1
        if node.is_named:
            start, end = node.start_byte, node.end_byte
            kind = kinds.get(node.type)
            if kind is not None and end > start:
                by_range[(start, end)] = kind
                if kind is SpanKind.STATEMENT or kind is SpanKind.DEFINITION:
                    ends.add(end)
            if depth == 1 and end > start:
                ends.add(end)  # any top-level node (statement, definition, comment)
        if cursor.goto_first_child():
            depth += 1
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                break
            depth -= 1
        else:
            continue
        break
    spans = [
        Span(s, e, k) for (s, e), k in sorted(by_range.items(), key=lambda item: (item[0][0], -item[0][1]))
    ]
    return ParseResult(
        language=lang.name,
        spans=spans,
        boundaries=_boundaries(ends, data),
        error_count=errors,
    )


def _boundaries(ends: set[int], data: bytes) -> list[int]:
    """Cut points: node ends, moved past the newline when only whitespace follows on the line,
    so the next window starts at the beginning of a line."""
    size = len(data)
    out: set[int] = set()
    for end in ends:
        newline = data.find(b"\n", end)
        stop = size if newline < 0 else newline
        if not data[end:stop].strip():
            end = size if newline < 0 else newline + 1
        if 0 < end <= size:
            out.add(end)
    return sorted(out)


def error_count(text: str, language: str) -> int:
    """Number of ERROR and MISSING nodes: 0 for code that parses cleanly."""
    tree = parse_tree(text, language)
    cursor = tree.walk()
    errors = 0
    while True:
        node = cursor.node
        assert node is not None
        if node.is_missing or node.is_error:
            errors += 1
        if node.has_error and cursor.goto_first_child():
            continue  # only subtrees that contain an error are worth entering
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return errors


# --- definitions ------------------------------------------------------------------------------

_NAME_LEAVES = frozenset(
    {
        "identifier",
        "field_identifier",
        "type_identifier",
        "property_identifier",
        "private_property_identifier",
        "destructor_name",
        "operator_name",
        "namespace_identifier",
        "constant",
    }
)


_QUALIFIED = frozenset({"qualified_identifier", "scoped_identifier"})


def definitions(text: str, language: str) -> list[Definition]:
    """Functions, methods and classes in source order (outer before nested)."""
    lang = get_language(language)
    data = _encode(text)
    tree = parser_for(lang.name).parse(data)
    return [definition for definition, _doc_node in _collect_definitions(tree.root_node, lang, data)]


def doc_code_pairs(text: str, language: str) -> list[DocPair]:
    """(documentation, code) for each documented definition; the code omits the documentation."""
    lang = get_language(language)
    data = _encode(text)
    tree = parser_for(lang.name).parse(data)
    pairs = []
    for definition, doc_node in _collect_definitions(tree.root_node, lang, data):
        if not definition.docstring:
            continue
        code = definition.text
        if doc_node is not None:  # a docstring inside the code (Python): cut it out
            code = _cut_statement(data, definition.start_byte, definition.end_byte, doc_node)
        pairs.append(DocPair(name=definition.name, doc=definition.docstring, code=code))
    return pairs


def _collect_definitions(
    root: tree_sitter.Node, lang: Language, data: bytes
) -> list[tuple[Definition, tree_sitter.Node | None]]:
    found: list[tuple[Definition, tree_sitter.Node | None]] = []
    # (node, enclosing) where enclosing = (name, "class" | "function" | "container") or None.
    stack: list[tuple[tree_sitter.Node, tuple[str, str] | None]] = [(root, None)]
    while stack:
        node, enclosing = stack.pop()
        inner = enclosing
        def_kind = lang.definitions.get(node.type)
        if def_kind is not None and _qualifies(node, lang):
            named = _definition_name(node, data)
            if named is not None:
                name, qualifier = named
                parent = enclosing[0] if enclosing else None
                kind = def_kind
                if kind == "function":
                    receiver = _receiver_type(node, data)
                    if enclosing is not None and enclosing[1] in ("class", "container"):
                        kind = "method"
                    elif qualifier or receiver:  # C++ `A::f`, Go `func (s *A) f`
                        kind, parent = "method", qualifier or receiver
                outer = _outermost(node, lang)
                docstring, doc_node = _documentation(node, outer, lang, data)
                start_line = outer.start_point.row
                end_point = outer.end_point
                end_line = (
                    end_point.row - 1
                    if end_point.column == 0 and end_point.row > start_line
                    else end_point.row
                )
                definition = Definition(
                    name=name,
                    kind=kind,
                    start_byte=outer.start_byte,
                    end_byte=outer.end_byte,
                    start_line=start_line,
                    end_line=end_line,
                    text=_decode(data[outer.start_byte : outer.end_byte]),
                    docstring=docstring,
                    parent=parent,
                )
                found.append((definition, doc_node))
                inner = (name, def_kind)
        elif node.type in lang.containers:
            target = node.child_by_field_name(lang.containers[node.type])
            if target is not None:
                inner = (_base_type_name(target, data), "container")
        for child in reversed(node.named_children):
            stack.append((child, inner))
    found.sort(key=lambda item: (item[0].start_byte, -item[0].end_byte))
    return found


def _qualifies(node: tree_sitter.Node, lang: Language) -> bool:
    rule = lang.requires.get(node.type)
    if rule is None:
        return True
    field_name, allowed = rule
    child = node.child_by_field_name(field_name)
    return child is not None and (not allowed or child.type in allowed)


def _text(node: tree_sitter.Node, data: bytes) -> str:
    return _decode(data[node.start_byte : node.end_byte])


def _definition_name(node: tree_sitter.Node, data: bytes) -> tuple[str, str | None] | None:
    """(name, qualifier) of a definition: its ``name`` field, or the innermost name of a C/C++
    declarator chain (``*f(...)``, ``A::f``)."""
    current = node
    for _ in range(16):  # declarator chains are short; the bound guards against odd trees
        named = current.child_by_field_name("name") or current.child_by_field_name("property")
        if named is None:
            named = current.child_by_field_name("declarator")
        if named is None and current.type.endswith("declarator") and current.named_child_count:
            named = current.named_children[-1]  # C++ `&f(...)`: reference_declarator has no field
        if named is None:
            return None
        if named.type in _QUALIFIED:
            # `a::b::C::f` nests to the right; the name is `f`, its qualifier the last scope `C`.
            scope = None
            while named.type in _QUALIFIED:
                scope = named.child_by_field_name("scope") or named.child_by_field_name("path") or scope
                leaf = named.child_by_field_name("name")
                if leaf is None:
                    return None
                named = leaf
            text = _text(named, data).strip()
            return (text, _text(scope, data) if scope is not None else None) if text else None
        if named.type in _NAME_LEAVES or named.named_child_count == 0:
            text = _text(named, data).strip()
            return (text, None) if text else None
        current = named
    return None


def _receiver_type(node: tree_sitter.Node, data: bytes) -> str | None:
    receiver = node.child_by_field_name("receiver")  # Go methods
    return _base_type_name(receiver, data) if receiver is not None else None


def _base_type_name(node: tree_sitter.Node, data: bytes) -> str:
    """`RingBuffer` for `RingBuffer<T>`, `Store` for `(s *Store)`: the first type name inside."""
    stack = [node]
    while stack:
        current = stack.pop()
        if current.type == "type_identifier":
            return _text(current, data)
        stack.extend(reversed(current.named_children))
    return _text(node, data)


def _outermost(node: tree_sitter.Node, lang: Language) -> tree_sitter.Node:
    """Grow a definition to the wrappers it is the only definition of (decorators, export)."""
    current = node
    while current.parent is not None and current.parent.type in lang.wrappers:
        wrapper = current.parent
        siblings = [c for c in wrapper.named_children if c.type not in lang.comments]
        if not siblings or siblings[-1] != current:
            break
        if any(c != current and (c.type in lang.definitions or c.type in lang.wrappers) for c in siblings):
            break
        current = wrapper
    return current


def _documentation(
    node: tree_sitter.Node, outer: tree_sitter.Node, lang: Language, data: bytes
) -> tuple[str | None, tree_sitter.Node | None]:
    if lang.doc_style == "docstring":
        return _python_docstring(node, data)
    return _leading_comment(outer, lang, data), None


def _python_docstring(node: tree_sitter.Node, data: bytes) -> tuple[str | None, tree_sitter.Node | None]:
    body = node.child_by_field_name("body")
    if body is None:
        return None, None
    for statement in body.named_children:
        if statement.type == "comment":
            continue
        if statement.type != "expression_statement" or statement.named_child_count != 1:
            return None, None
        value = statement.named_children[0]
        if value.type not in ("string", "concatenated_string"):
            return None, None
        parts = [value] if value.type == "string" else [c for c in value.named_children if c.type == "string"]
        raw = "".join(_string_contents(part, data) for part in parts)
        doc = inspect.cleandoc(raw).strip()
        return (doc or None), statement
    return None, None


def _string_contents(string: tree_sitter.Node, data: bytes) -> str:
    """The text between the quotes of a Python string node."""
    start = string.start_byte
    end = string.end_byte
    for child in string.children:
        if child.type == "string_start":
            start = child.end_byte
        elif child.type == "string_end":
            end = child.start_byte
    return _decode(data[start:end]) if end >= start else ""


def _effective_end_row(node: tree_sitter.Node) -> int:
    # Some grammars (Rust line comments) include the newline, ending at column 0 of the next row.
    point = node.end_point
    if point.column == 0 and point.row > node.start_point.row:
        return point.row - 1
    return point.row


def _leading_comment(outer: tree_sitter.Node, lang: Language, data: bytes) -> str | None:
    """The block of comments directly above a definition (no blank line between), if any."""
    anchor_row = outer.start_point.row
    previous = outer.prev_named_sibling
    while previous is not None and previous.type in lang.between_doc_and_definition:
        if _effective_end_row(previous) < anchor_row - 1:
            return None
        anchor_row = previous.start_point.row
        previous = previous.prev_named_sibling
    comments: list[tree_sitter.Node] = []
    while previous is not None and previous.type in lang.comments:
        if _effective_end_row(previous) != anchor_row - 1:
            break
        text = _text(previous, data).lstrip()
        if text.startswith(("//!", "/*!")):  # Rust inner docs describe the enclosing module
            break
        before = previous.prev_sibling
        if before is not None and _effective_end_row(before) == previous.start_point.row:
            break  # a trailing comment of the code before, not a comment of its own
        comments.append(previous)
        anchor_row = previous.start_point.row
        previous = previous.prev_named_sibling
    if not comments:
        return None
    doc = "\n".join(_clean_comment(_text(c, data)) for c in reversed(comments)).strip()
    return doc or None


_LINE_COMMENT_MARK = re.compile(r"^\s*(?://[/!]?|#)\s?")
_BLOCK_COMMENT_STAR = re.compile(r"^\s*\*(?!/) ?")


def _clean_comment(raw: str) -> str:
    """Comment text without its markers: `/** ... */`, leading `*`, `//`, `///`, `#`."""
    text = raw.strip()
    if text.startswith("/*"):
        text = text[2:]
        if text.endswith("*/"):
            text = text[:-2]
        text = text.lstrip("*!")
        lines = [_BLOCK_COMMENT_STAR.sub("", line) for line in text.splitlines()]
    else:
        lines = [_LINE_COMMENT_MARK.sub("", line) for line in text.splitlines()]
    return inspect.cleandoc("\n".join(lines)).strip()


def _cut_statement(data: bytes, start: int, end: int, statement: tree_sitter.Node) -> str:
    """The definition's text with one statement (a docstring) removed together with its lines."""
    cut_start, cut_end = statement.start_byte, statement.end_byte
    line_start = data.rfind(b"\n", start, cut_start) + 1
    if line_start > start and not data[line_start:cut_start].strip():
        cut_start = line_start
    line_end = data.find(b"\n", cut_end, end)
    if line_end >= 0 and not data[cut_end:line_end].strip():
        cut_end = line_end + 1
        next_end = data.find(b"\n", cut_end, end)
        if next_end >= 0 and not data[cut_end:next_end].strip():
            cut_end = next_end + 1  # the blank line that usually follows a docstring
    return _decode(data[start:cut_start] + data[cut_end:end])
