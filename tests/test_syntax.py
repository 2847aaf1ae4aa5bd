from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codemlm.errors import UnsupportedLanguageError
from codemlm.kinds import SpanKind
from codemlm.languages import LANGUAGES, get_language
from codemlm.syntax import Definition, Span, definitions, doc_code_pairs, error_count, parse, parse_tree

FIXTURE = Path(__file__).parent / "fixtures" / "multilang_repo"
CLEAN_FILES = {
    "python": "src/geometry/shapes.py",
    "javascript": "web/cart.js",
    "typescript": "web/api.ts",
    "tsx": "web/Button.tsx",
    "go": "server/handler.go",
    "rust": "core/src/lib.rs",
    "java": "java/src/main/java/com/example/Inventory.java",
    "c": "native/ring_buffer.c",
    "cpp": "native/matrix.cpp",
}
BROKEN_FILES = {"python": "src/broken_draft.py", "javascript": "web/partial.js"}
ALL_KINDS = set(SpanKind) - {SpanKind.NONE}


def _read(rel: str) -> str:
    return (FIXTURE / rel).read_text(encoding="utf-8")


def _span_text(text: str, span: Span) -> str:
    return text.encode("utf-8")[span.start : span.end].decode("utf-8")


def _node_ranges(text: str, language: str) -> dict[tuple[int, int], set[str]]:
    ranges: dict[tuple[int, int], set[str]] = {}
    stack = [parse_tree(text, language).root_node]
    while stack:
        node = stack.pop()
        ranges.setdefault((node.start_byte, node.end_byte), set()).add(node.type)
        stack.extend(node.children)
    return ranges


def _assert_well_formed(text: str, result) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    previous = (-1, 0)
    open_spans: list[Span] = []
    for span in result.spans:
        assert 0 <= span.start < span.end <= size
        assert span.kind in ALL_KINDS
        key = (span.start, -span.end)
        assert key > previous, "spans sorted by (start, -end), one kind per range"
        previous = key
        # Properly nested: a span lies inside every open span it starts in.
        while open_spans and open_spans[-1].end <= span.start:
            open_spans.pop()
        if open_spans:
            assert span.end <= open_spans[-1].end
        open_spans.append(span)
    assert result.boundaries == sorted(set(result.boundaries))
    assert all(0 < b <= size for b in result.boundaries)
    # The parse's own count and the standalone checker (what completion ranks by) must agree.
    assert result.error_count == error_count(text, result.language)


@pytest.mark.parametrize("language", sorted(CLEAN_FILES))
def test_fixture_parses_into_every_kind_class(language):
    text = _read(CLEAN_FILES[language])
    result = parse(text, language)
    assert result.language == language
    assert result.error_count == 0
    assert {span.kind for span in result.spans} == ALL_KINDS
    _assert_well_formed(text, result)


@pytest.mark.parametrize("language", sorted(CLEAN_FILES))
def test_spans_lie_on_node_boundaries_of_their_kind(language):
    text = _read(CLEAN_FILES[language])
    lang = get_language(language)
    ranges = _node_ranges(text, language)
    for span in parse(text, language).spans:
        types = ranges.get((span.start, span.end), set())
        assert any(lang.kind_of(t) is span.kind for t in types), (span, types)
        _span_text(text, span)  # starts and ends on UTF-8 character boundaries


@pytest.mark.parametrize("language", sorted(CLEAN_FILES))
def test_boundaries_end_top_level_items(language):
    text = _read(CLEAN_FILES[language])
    data = text.encode("utf-8")
    result = parse(text, language)
    root = parse_tree(text, language).root_node
    assert len(result.boundaries) >= 3
    # Every top-level item's end is a cut point (moved past the newline that follows it).
    for child in root.named_children:
        end = child.end_byte
        after_newline = data.find(b"\n", end) + 1
        assert end in result.boundaries or after_newline in result.boundaries, child.type
    for boundary in result.boundaries:  # and every cut lies at a line start or a node end
        assert (
            boundary == len(data)
            or data[boundary - 1 : boundary] == b"\n"
            or any(e == boundary for (_s, e) in _node_ranges(text, language))
        )


def test_python_spans_have_the_expected_kinds():
    text = _read(CLEAN_FILES["python"])
    by_text: dict[str, set[SpanKind]] = {}
    for span in parse(text, "python").spans:
        by_text.setdefault(_span_text(text, span), set()).add(span.kind)
    assert SpanKind.IDENTIFIER in by_text["distance"]
    assert SpanKind.ARGUMENTS in by_text["(x2 - x1, y2 - y1)"]
    assert SpanKind.EXPRESSION in by_text["math.hypot(x2 - x1, y2 - y1)"]
    assert SpanKind.STATEMENT in by_text["return math.hypot(x2 - x1, y2 - y1)"]
    # A docstring's range is both an expression statement and a string: the innermost wins.
    assert by_text['"""Return the Euclidean distance between two points."""'] == {SpanKind.STRING_COMMENT}
    assert SpanKind.STRING_COMMENT in by_text["# A point on the boundary counts as inside."]
    defs = [t for t, kinds in by_text.items() if SpanKind.DEFINITION in kinds]
    assert any(t.startswith("def distance(") for t in defs)
    assert any(t.startswith("@dataclass\nclass Circle:") for t in defs)  # decorators included
    assert any(SpanKind.BLOCK in kinds and t.startswith('"""A circle given') for t, kinds in by_text.items())


def test_byte_offsets_with_non_ascii_text():
    text = 'greeting = "héllo wörld ✓"\n\ndef grüße(name):\n    return greeting + name\n'
    result = parse(text, "python")
    identifiers = [_span_text(text, s) for s in result.spans if s.kind is SpanKind.IDENTIFIER]
    assert "grüße" in identifiers and "name" in identifiers
    (definition,) = definitions(text, "python")
    assert definition.name == "grüße"
    assert (
        text.encode("utf-8")[definition.start_byte : definition.end_byte].decode("utf-8") == definition.text
    )


@pytest.mark.parametrize("language", sorted(BROKEN_FILES))
def test_broken_code_still_yields_spans_and_counts_errors(language):
    text = _read(BROKEN_FILES[language])
    result = parse(text, language)
    assert result.error_count > 0
    assert error_count(text, language) == result.error_count
    kinds = {span.kind for span in result.spans}
    assert {SpanKind.IDENTIFIER, SpanKind.ARGUMENTS, SpanKind.EXPRESSION} <= kinds
    _assert_well_formed(text, result)
    if language == "python":  # the function before the damage is still a definition
        assert [d.name for d in definitions(text, language)] == ["parse_header"]


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("python", "def f(x:\n    return x +\n"),
        ("go", 'func main() {\n\tfmt.Println("hi"\n'),
        ("rust", "fn main() { let x = ; }"),
        ("java", "class A { void f( { } }"),
        ("c", "int main( { return 0 }"),
        ("cpp", "class A { public: int f() { return ; } "),
        ("typescript", "function f(a: number, { return a }"),
        ("tsx", "const x = <div>{a</div>;"),
    ],
)
def test_half_typed_code_in_every_language(language, text):
    result = parse(text, language)
    assert result.error_count > 0
    assert any(span.kind is SpanKind.IDENTIFIER for span in result.spans)
    _assert_well_formed(text, result)


@pytest.mark.parametrize("language", sorted(CLEAN_FILES))
def test_clean_code_has_no_errors(language):
    assert error_count(_read(CLEAN_FILES[language]), language) == 0


def test_unknown_language_raises():
    with pytest.raises(UnsupportedLanguageError):
        parse("x = 1", "cobol")


def test_empty_text():
    for language in LANGUAGES:
        result = parse("", language)
        assert result.spans == [] and result.boundaries == [] and result.error_count == 0
        assert definitions("", language) == [] and doc_code_pairs("", language) == []


# --- definitions and doc pairs ------------------------------------------------------------------


def _defs(language: str) -> dict[str, Definition]:
    text = _read(CLEAN_FILES[language])
    found = definitions(text, language)
    data = text.encode("utf-8")
    for d in found:
        assert data[d.start_byte : d.end_byte].decode("utf-8") == d.text
        assert d.start_line == data[: d.start_byte].count(b"\n")
        assert d.end_line == data[: d.end_byte].rstrip(b"\n").count(b"\n")
    return {f"{d.parent}.{d.name}" if d.parent else d.name: d for d in found}


def test_python_definitions():
    defs = _defs("python")
    assert set(defs) == {
        "distance",
        "Circle",
        "Circle.area",
        "Circle.contains",
        "Polygon",
        "Polygon.__init__",
        "Polygon.perimeter",
        "Polygon.area",
    }
    assert defs["distance"].kind == "function"
    assert defs["Circle"].kind == "class" and defs["Circle.area"].kind == "method"
    assert defs["distance"].docstring == "Return the Euclidean distance between two points."
    assert defs["Circle.contains"].docstring is None  # a comment inside the body is not a docstring
    assert defs["Circle"].start_line == 13 and defs["Circle"].text.startswith("@dataclass")  # 0-based
    assert (defs["distance"].start_line, defs["distance"].end_line) == (8, 10)


def test_python_doc_pairs_cut_the_docstring_out():
    pairs = {p.name: p for p in doc_code_pairs(_read(CLEAN_FILES["python"]), "python")}
    assert "contains" not in pairs and "__init__" not in pairs
    distance = pairs["distance"]
    assert distance.doc == "Return the Euclidean distance between two points."
    assert distance.code == (
        "def distance(x1: float, y1: float, x2: float, y2: float) -> float:\n"
        "    return math.hypot(x2 - x1, y2 - y1)"
    )
    circle = pairs["Circle"]
    assert "A circle given" not in circle.code and circle.code.startswith(
        "@dataclass\nclass Circle:\n    x: float"
    )
    assert '"""Area enclosed by the circle."""' in circle.code  # only the class's own docstring goes


def test_python_multiline_docstring_is_cleaned():
    text = 'def f():\n    """Summary line.\n\n    More detail\n      indented.\n    """\n    return 1\n'
    (pair,) = doc_code_pairs(text, "python")
    assert pair.doc == "Summary line.\n\nMore detail\n  indented."
    assert pair.code == "def f():\n    return 1"


def test_javascript_definitions_and_jsdoc():
    defs = _defs("javascript")
    assert {
        "subtotal",
        "withTax",
        "Cart",
        "Cart.constructor",
        "Cart.add",
        "Cart.total",
        "Cart.summary",
    } <= set(defs)
    assert defs["Cart.add"].kind == "method" and defs["Cart"].kind == "class"
    assert defs["subtotal"].text.startswith("export function subtotal")  # the export wrapper is included
    assert defs["subtotal"].docstring == (
        "Sum the price of every line in the cart, quantity included.\n"
        "@param {Array<{price: number, quantity: number}>} lines\n"
        "@returns {number}"
    )
    assert defs["withTax"].docstring == "Apply the tax rate to an amount and round to cents."
    assert defs["withTax"].text.startswith("const withTax =")
    assert defs["Cart.total"].docstring is None


def test_typescript_and_tsx_definitions():
    ts = _defs("typescript")
    assert (ts["getItem"].docstring or "").startswith("Fetch one item by id")
    assert ts["ItemCache.get"].kind == "method"
    assert ts["ItemCache.get"].docstring == "Return the cached item if it is still fresh."
    assert ts["Item"].kind == "class"  # interfaces are type definitions
    tsx = _defs("tsx")
    assert tsx["CounterButton"].docstring == "A button that counts how often it was pressed."
    assert tsx["CounterButton.handleClick"].kind == "function"  # nested, not a method


def test_go_definitions_with_receivers():
    defs = _defs("go")
    assert (
        defs["NewStore"].kind == "function"
        and defs["NewStore"].docstring == "NewStore returns an empty store."
    )
    assert defs["Store.Get"].kind == "method" and defs["Store.Get"].docstring == "Get looks an item up by id."
    assert defs["Store"].kind == "class" and defs["Store"].text.startswith("type Store struct")
    assert defs["Item"].docstring == "Item is one product in the inventory."


def test_rust_definitions_doc_comments_and_attributes():
    defs = _defs("rust")
    # `///` above `#[derive(...)]`: attributes between the doc and the item are skipped over.
    assert defs["RingBuffer"].docstring == "A queue that overwrites its oldest element when full."
    assert defs["RingBuffer.new"].kind == "method"  # inside `impl<T: Clone> RingBuffer<T>`
    assert defs["RingBuffer.new"].docstring == "Create an empty buffer that holds at most `capacity` items."
    assert defs["RingBuffer.pop"].docstring == "Remove and return the oldest item."  # plain `//` too
    assert defs["RingBuffer.fmt"].docstring is None
    assert defs["total"].kind == "function"


def test_java_definitions():
    defs = _defs("java")
    assert defs["Inventory"].docstring == "Tracks stock levels for products by id."
    assert defs["Inventory.add"].kind == "method"
    assert defs["Inventory.add"].docstring == "Add units of a product; the count may not become negative."
    assert defs["Inventory.unitsOf"].docstring == "Units on hand, if the product is known."


def test_c_and_cpp_definitions():
    c = _defs("c")
    assert set(c) == {"rb_init", "rb_push", "rb_pop"}
    assert c["rb_init"].docstring == "Prepare an empty buffer over the given storage."
    header = (FIXTURE / "native/ring_buffer.h").read_text()
    (struct,) = definitions(header, "c")  # prototypes and `struct x *p` are not definitions
    assert (struct.name, struct.kind) == ("ring_buffer", "class")
    cpp = _defs("cpp")
    assert cpp["Matrix"].kind == "class"
    assert (
        cpp["Matrix.at"].kind == "method"
        and cpp["Matrix.at"].docstring == "Element access with bounds checking."
    )
    # Defined out of class as `Matrix::multiply`: the qualifier is the parent.
    assert cpp["Matrix.multiply"].kind == "method"
    assert (cpp["Matrix.multiply"].docstring or "").startswith("Naive triple-loop product")


@pytest.mark.parametrize("language", ["javascript", "go", "rust", "java", "c"])
def test_comment_style_doc_pairs(language):
    pairs = doc_code_pairs(_read(CLEAN_FILES[language]), language)
    assert len(pairs) >= 3
    for pair in pairs:
        assert pair.doc and pair.code
        assert pair.doc not in pair.code
        assert not pair.doc.startswith(("/", "*", "#"))  # comment markers are stripped


@pytest.mark.parametrize(
    "source",
    [
        "// header comment\n\nfunction f() {}\n",  # a blank line separates them
        "let x = 1; // trailing comment of the line before\nfunction f() {}\n",
    ],
)
def test_detached_comments_are_not_documentation(source):
    (definition,) = definitions(source, "javascript")
    assert definition.docstring is None


def test_rust_inner_doc_is_not_an_item_doc():
    (definition,) = definitions("//! crate docs\nfn f() {}\n", "rust")
    assert definition.docstring is None


# --- arbitrary input ----------------------------------------------------------------------------

_CODEISH = st.text(
    alphabet=st.sampled_from([*"abcxyz_019 \t\n(){}[]<>;:,.'\"`#/*\\=+-!&|?@$%^~", "é", "✓", "\x00"]),
    max_size=300,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(max_size=300), _CODEISH), language=st.sampled_from(sorted(LANGUAGES)))
def test_arbitrary_text_never_raises_and_spans_stay_in_bounds(text, language):
    result = parse(text, language)
    _assert_well_formed(text, result)
    size = len(text.encode("utf-8", "surrogatepass"))
    for definition in definitions(text, language):
        assert 0 <= definition.start_byte < definition.end_byte <= size
        assert 0 <= definition.start_line <= definition.end_line
    doc_code_pairs(text, language)
    assert error_count(text, language) == result.error_count


EDGE_CASES = {
    "cpp": (
        "/// Larger of two.\ntemplate <typename T>\nT biggest(T a, T b) { return a > b ? a : b; }\n\n"
        "namespace a { namespace b {\n// Deep.\nint deep() { return 1; }\n} }\n\n"
        "int a::b::C::qualified() { return 2; }\n\n"
        "struct V {\n  ~V() {}\n  V& operator+=(const V& o) { return *this; }\n};\n",
        [
            ("function", "biggest", None, "Larger of two.", 1),  # the doc sits above `template<...>`
            ("function", "deep", None, "Deep.", 6),  # namespaces are not classes
            ("method", "qualified", "C", None, 9),
            ("class", "V", None, None, 11),
            ("method", "~V", "V", None, 12),
            ("method", "operator+=", "V", None, 13),
        ],
    ),
    "python": (
        'class A:\n    async def run(self):\n        """Run it."""\n        def inner():\n            pass\n'
        '        return inner\n\n    @property\n    def name(self):\n        return "a"\n',
        [
            ("class", "A", None, None, 0),
            ("method", "run", "A", "Run it.", 1),
            ("function", "inner", "run", None, 3),  # nested in a method: a function
            ("method", "name", "A", None, 7),  # the decorator line starts it
        ],
    ),
    "javascript": (
        "class Store {\n  // Arrow field.\n  handle = () => { return 1; };\n  count = 0;\n"
        "  static create() { return new Store(); }\n}\n/** Generator. */\nfunction* gen() { yield 1; }\n",
        [
            ("class", "Store", None, None, 0),
            ("method", "handle", "Store", "Arrow field.", 2),  # `count = 0` is no definition
            ("method", "create", "Store", None, 4),
            ("function", "gen", None, "Generator.", 7),
        ],
    ),
    "typescript": (
        "class C {\n  /** Handle it. */\n  private handle = (e: Event): void => { this.x = 1; };\n"
        "  count: number = 0;\n}\n",
        [("class", "C", None, None, 0), ("method", "handle", "C", "Handle it.", 2)],
    ),
    "rust": (
        "/// A trait.\npub trait Shape {\n    /// Area.\n    fn area(&self) -> f64;\n"
        '    fn name(&self) -> String { "shape".to_string() }\n}\nmod inner {\n    pub fn helper() {}\n}\n',
        [
            ("class", "Shape", None, "A trait.", 1),
            ("method", "name", "Shape", None, 4),
            ("function", "helper", None, None, 7),
        ],
    ),
    "go": (
        "// Max returns the max.\nfunc Max[T int | float64](a, b T) T { if a > b { return a }; return b }\n\n"
        "type (\n\t// A is a.\n\tA int\n\tB string\n)\n",
        [
            ("function", "Max", None, "Max returns the max.", 1),
            ("class", "A", None, "A is a.", 5),
            ("class", "B", None, None, 6),
        ],
    ),
    "c": (
        "/* Returns a buffer. */\nstatic char *make_buf(size_t n) { return malloc(n); }\n"
        "enum color { RED, GREEN };\nstruct color_pair *make_pair(void);\n",
        [("function", "make_buf", None, "Returns a buffer.", 1), ("class", "color", None, None, 2)],
    ),
}


@pytest.mark.parametrize("language", sorted(EDGE_CASES))
def test_definition_edge_cases(language):
    text, expected = EDGE_CASES[language]
    found = [(d.kind, d.name, d.parent, d.docstring, d.start_line) for d in definitions(text, language)]
    assert found == expected
