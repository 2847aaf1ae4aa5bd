"""The supported languages: one table entry each.

An entry names the file extensions, how to load the tree-sitter grammar (one wheel per
language, nothing downloaded at run time), which node types are spans of which
:class:`~codemlm.kinds.SpanKind`, and how definitions (functions, methods, classes) and their
documentation are found. :mod:`codemlm.syntax` is generic over these entries, so adding a
language is adding one entry to :data:`LANGUAGES`; ``tests/test_languages.py`` checks every node
type named here against the grammar, so a typo fails a test instead of silently dropping spans.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePath
from types import MappingProxyType
from typing import Any

import tree_sitter

from codemlm.errors import UnsupportedLanguageError
from codemlm.kinds import SpanKind

__all__ = [
    "LANGUAGES",
    "Language",
    "get_language",
    "language_for_path",
    "parser_for",
    "supported_extensions",
]


@dataclass(frozen=True, eq=False)
class Language:
    """Everything syntax.py needs to know about one language.

    ``definitions`` maps a node type to ``"function"`` or ``"class"``; a function whose
    nearest enclosing definition is a class (or a ``containers`` node such as a Rust ``impl``)
    is reported as a ``"method"``. ``requires`` keeps a definition node type only when a field
    is present (and, if a set of types is given, of one of those types): a C ``struct`` counts
    only with a body, a JavaScript ``const f = ...`` only when the value is a function.
    ``wrappers`` are nodes around a definition (``export``, decorators, ``template<...>``):
    the definition's range grows to them and its leading comment is looked for above them.
    """

    name: str
    extensions: tuple[str, ...]
    load: Callable[[], Any]  # returns the grammar capsule from the language wheel
    node_kinds: Mapping[str, SpanKind]
    definitions: Mapping[str, str]
    comments: frozenset[str]
    doc_style: str = "comment"  # "docstring": first string statement of the body (Python)
    requires: Mapping[str, tuple[str, frozenset[str]]] = field(default_factory=dict)
    wrappers: frozenset[str] = frozenset()
    containers: Mapping[str, str] = field(default_factory=dict)  # node type -> field naming it
    between_doc_and_definition: frozenset[str] = frozenset()  # e.g. Rust #[attributes]

    @cached_property
    def ts_language(self) -> tree_sitter.Language:
        return tree_sitter.Language(self.load())

    def kind_of(self, node_type: str) -> SpanKind:
        return self.node_kinds.get(node_type, SpanKind.NONE)

    def node_types(self) -> set[str]:
        """Every node type this entry names (checked against the grammar by the tests)."""
        names = set(self.node_kinds) | set(self.definitions) | set(self.comments)
        names |= set(self.wrappers) | set(self.containers) | set(self.between_doc_and_definition)
        for node_type, (_field, allowed) in self.requires.items():
            names.add(node_type)
            names |= set(allowed)
        return names

    def __repr__(self) -> str:
        return f"Language({self.name!r})"


def _kinds(
    *,
    identifiers: str = "",
    arguments: str = "",
    expressions: str = "",
    statements: str = "",
    blocks: str = "",
    definitions: str = "",
    strings_comments: str = "",
) -> Mapping[str, SpanKind]:
    """Build a node-type -> SpanKind map from whitespace-separated node type lists."""
    table: dict[str, SpanKind] = {}
    groups = (
        (SpanKind.IDENTIFIER, identifiers),
        (SpanKind.ARGUMENTS, arguments),
        (SpanKind.EXPRESSION, expressions),
        (SpanKind.STATEMENT, statements),
        (SpanKind.BLOCK, blocks),
        (SpanKind.DEFINITION, definitions),
        (SpanKind.STRING_COMMENT, strings_comments),
    )
    for kind, names in groups:
        for name in names.split():
            if name in table:
                raise ValueError(f"node type {name!r} listed as both {table[name].label} and {kind.label}")
            table[name] = kind
    return MappingProxyType(table)


def _set(names: str) -> frozenset[str]:
    return frozenset(names.split())


# --- Python -----------------------------------------------------------------------------------


def _load_python() -> Any:
    import tree_sitter_python

    return tree_sitter_python.language()


PYTHON = Language(
    name="python",
    extensions=(".py", ".pyi"),
    load=_load_python,
    node_kinds=_kinds(
        identifiers="identifier",
        # Parameter lists are argument-shaped too: worth masking as one unit.
        arguments="argument_list parameters lambda_parameters",
        expressions="""call attribute subscript binary_operator boolean_operator comparison_operator
            unary_operator not_operator conditional_expression lambda list dictionary set tuple
            list_comprehension dictionary_comprehension set_comprehension generator_expression
            parenthesized_expression await named_expression keyword_argument pair assignment
            augmented_assignment integer float true false none list_splat dictionary_splat slice""",
        statements="""expression_statement return_statement pass_statement break_statement
            continue_statement raise_statement assert_statement import_statement
            import_from_statement future_import_statement global_statement nonlocal_statement
            delete_statement type_alias_statement if_statement for_statement while_statement
            try_statement with_statement match_statement""",
        blocks="block",
        definitions="function_definition class_definition decorated_definition",
        strings_comments="string concatenated_string comment",
    ),
    definitions={"function_definition": "function", "class_definition": "class"},
    comments=_set("comment"),
    doc_style="docstring",
    wrappers=_set("decorated_definition"),
)


# --- JavaScript / TypeScript / TSX ------------------------------------------------------------

_JS_IDENTIFIERS = """identifier property_identifier shorthand_property_identifier
    shorthand_property_identifier_pattern private_property_identifier statement_identifier"""
_JS_EXPRESSIONS = """call_expression member_expression subscript_expression binary_expression
    unary_expression update_expression assignment_expression augmented_assignment_expression
    ternary_expression arrow_function function_expression generator_function object array
    new_expression await_expression parenthesized_expression yield_expression spread_element
    sequence_expression pair number true false null undefined this regex jsx_element
    jsx_self_closing_element"""
_JS_STATEMENTS = """expression_statement lexical_declaration variable_declaration return_statement
    if_statement for_statement for_in_statement while_statement do_statement try_statement
    throw_statement switch_statement break_statement continue_statement import_statement
    export_statement labeled_statement debugger_statement"""
_JS_BLOCKS = "statement_block class_body switch_body"
_JS_DEFINITIONS = (
    "function_declaration generator_function_declaration class_declaration class method_definition"
)
_JS_STRINGS = "string template_string comment"
_JS_FUNCTION_VALUES = _set("arrow_function function_expression generator_function")
_JS_DEFINITION_TYPES = {
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "class_declaration": "class",
    "method_definition": "function",
    # `const name = (...) => {...}` (and class fields holding arrows, per grammar below): a
    # function definition in all but syntax; `requires` keeps only those with function values.
    "variable_declarator": "function",
}


def _load_javascript() -> Any:
    import tree_sitter_javascript

    return tree_sitter_javascript.language()


def _load_typescript() -> Any:
    import tree_sitter_typescript

    return tree_sitter_typescript.language_typescript()


def _load_tsx() -> Any:
    import tree_sitter_typescript

    return tree_sitter_typescript.language_tsx()


JAVASCRIPT = Language(
    name="javascript",
    extensions=(".js", ".mjs", ".cjs", ".jsx"),
    load=_load_javascript,
    node_kinds=_kinds(
        identifiers=_JS_IDENTIFIERS,
        arguments="arguments formal_parameters",
        expressions=_JS_EXPRESSIONS,
        statements=_JS_STATEMENTS + " field_definition",
        blocks=_JS_BLOCKS,
        definitions=_JS_DEFINITIONS,
        strings_comments=_JS_STRINGS,
    ),
    definitions={**_JS_DEFINITION_TYPES, "field_definition": "function"},
    comments=_set("comment"),
    requires={
        "variable_declarator": ("value", _JS_FUNCTION_VALUES),
        "field_definition": ("value", _JS_FUNCTION_VALUES),
    },
    wrappers=_set("export_statement lexical_declaration variable_declaration"),
)


def _typescript_entry(name: str, extensions: tuple[str, ...], load: Callable[[], Any], jsx: bool) -> Language:
    jsx_nodes = " jsx_element jsx_self_closing_element" if jsx else ""
    ts_expressions = _JS_EXPRESSIONS.replace(" jsx_element", "").replace(" jsx_self_closing_element", "")
    return Language(
        name=name,
        extensions=extensions,
        load=load,
        node_kinds=_kinds(
            identifiers=_JS_IDENTIFIERS + " type_identifier",
            arguments="arguments formal_parameters type_arguments",
            expressions=ts_expressions
            + " as_expression satisfies_expression non_null_expression"
            + jsx_nodes,
            statements=_JS_STATEMENTS + " type_alias_declaration public_field_definition",
            blocks=_JS_BLOCKS + " interface_body enum_body",
            definitions=_JS_DEFINITIONS
            + " abstract_class_declaration interface_declaration enum_declaration function_signature"
            + " internal_module",
            strings_comments=_JS_STRINGS,
        ),
        definitions={
            **_JS_DEFINITION_TYPES,
            "abstract_class_declaration": "class",
            "interface_declaration": "class",
            "enum_declaration": "class",
            "public_field_definition": "function",
        },
        comments=_set("comment"),
        requires={
            "variable_declarator": ("value", _JS_FUNCTION_VALUES),
            "public_field_definition": ("value", _JS_FUNCTION_VALUES),
        },
        wrappers=_set("export_statement lexical_declaration variable_declaration ambient_declaration"),
    )


TYPESCRIPT = _typescript_entry("typescript", (".ts", ".mts", ".cts"), _load_typescript, jsx=False)
TSX = _typescript_entry("tsx", (".tsx",), _load_tsx, jsx=True)


# --- Go -----------------------------------------------------------------------------------------


def _load_go() -> Any:
    import tree_sitter_go

    return tree_sitter_go.language()


GO = Language(
    name="go",
    extensions=(".go",),
    load=_load_go,
    node_kinds=_kinds(
        identifiers="identifier field_identifier type_identifier package_identifier label_name",
        arguments="argument_list parameter_list",
        expressions="""call_expression selector_expression index_expression slice_expression
            binary_expression unary_expression composite_literal func_literal
            type_assertion_expression type_conversion_expression parenthesized_expression
            int_literal float_literal imaginary_literal true false nil iota keyed_element""",
        statements="""expression_statement short_var_declaration assignment_statement inc_statement
            dec_statement return_statement if_statement for_statement expression_switch_statement
            type_switch_statement select_statement go_statement defer_statement break_statement
            continue_statement goto_statement fallthrough_statement labeled_statement send_statement
            var_declaration const_declaration type_declaration import_declaration package_clause""",
        blocks="block field_declaration_list",
        definitions="function_declaration method_declaration type_spec",
        strings_comments="interpreted_string_literal raw_string_literal rune_literal comment",
    ),
    definitions={"function_declaration": "function", "method_declaration": "function", "type_spec": "class"},
    comments=_set("comment"),
    wrappers=_set("type_declaration"),
)


# --- Rust ---------------------------------------------------------------------------------------


def _load_rust() -> Any:
    import tree_sitter_rust

    return tree_sitter_rust.language()


RUST = Language(
    name="rust",
    extensions=(".rs",),
    load=_load_rust,
    node_kinds=_kinds(
        identifiers="identifier field_identifier type_identifier shorthand_field_identifier",
        arguments="arguments parameters closure_parameters",
        expressions="""call_expression field_expression index_expression binary_expression
            unary_expression reference_expression try_expression await_expression
            closure_expression macro_invocation struct_expression tuple_expression array_expression
            range_expression assignment_expression compound_assignment_expr type_cast_expression
            parenthesized_expression scoped_identifier integer_literal float_literal boolean_literal
            unit_expression""",
        # Control flow is an expression in Rust's grammar but a statement to a reader.
        statements="""expression_statement let_declaration use_declaration const_item static_item
            if_expression match_expression for_expression while_expression loop_expression
            return_expression break_expression continue_expression type_item""",
        blocks="block declaration_list field_declaration_list match_block enum_variant_list",
        definitions="function_item struct_item enum_item trait_item union_item impl_item mod_item",
        strings_comments="string_literal raw_string_literal char_literal line_comment block_comment",
    ),
    definitions={
        "function_item": "function",
        "struct_item": "class",
        "enum_item": "class",
        "trait_item": "class",
        "union_item": "class",
    },
    comments=_set("line_comment block_comment"),
    containers={"impl_item": "type"},
    between_doc_and_definition=_set("attribute_item"),
)


# --- Java ---------------------------------------------------------------------------------------


def _load_java() -> Any:
    import tree_sitter_java

    return tree_sitter_java.language()


JAVA = Language(
    name="java",
    extensions=(".java",),
    load=_load_java,
    node_kinds=_kinds(
        identifiers="identifier type_identifier",
        arguments="argument_list formal_parameters",
        expressions="""method_invocation field_access array_access binary_expression unary_expression
            update_expression assignment_expression ternary_expression lambda_expression
            object_creation_expression array_creation_expression cast_expression
            instanceof_expression parenthesized_expression method_reference decimal_integer_literal
            hex_integer_literal decimal_floating_point_literal true false null_literal this
            array_initializer""",
        statements="""expression_statement local_variable_declaration return_statement if_statement
            for_statement enhanced_for_statement while_statement do_statement try_statement
            try_with_resources_statement throw_statement switch_expression break_statement
            continue_statement yield_statement import_declaration package_declaration
            field_declaration labeled_statement synchronized_statement assert_statement""",
        blocks="block class_body interface_body enum_body constructor_body switch_block",
        definitions="""method_declaration constructor_declaration class_declaration
            interface_declaration enum_declaration record_declaration""",
        strings_comments="string_literal character_literal line_comment block_comment",
    ),
    definitions={
        "method_declaration": "function",
        "constructor_declaration": "function",
        "class_declaration": "class",
        "interface_declaration": "class",
        "enum_declaration": "class",
        "record_declaration": "class",
    },
    comments=_set("line_comment block_comment"),
)


# --- C / C++ ------------------------------------------------------------------------------------

_C_IDENTIFIERS = "identifier field_identifier type_identifier statement_identifier"
_C_EXPRESSIONS = """call_expression field_expression subscript_expression binary_expression
    unary_expression update_expression assignment_expression conditional_expression cast_expression
    pointer_expression sizeof_expression parenthesized_expression compound_literal_expression
    initializer_list number_literal true false null"""
_C_STATEMENTS = """expression_statement declaration return_statement if_statement for_statement
    while_statement do_statement switch_statement case_statement break_statement continue_statement
    goto_statement labeled_statement preproc_include preproc_def preproc_function_def
    type_definition field_declaration"""
_C_BLOCKS = "compound_statement field_declaration_list enumerator_list"
_C_STRINGS = "string_literal char_literal concatenated_string system_lib_string comment"
_C_WITH_BODY = ("body", frozenset[str]())


def _load_c() -> Any:
    import tree_sitter_c

    return tree_sitter_c.language()


def _load_cpp() -> Any:
    import tree_sitter_cpp

    return tree_sitter_cpp.language()


C = Language(
    name="c",
    extensions=(".c", ".h"),
    load=_load_c,
    node_kinds=_kinds(
        identifiers=_C_IDENTIFIERS,
        arguments="argument_list parameter_list",
        expressions=_C_EXPRESSIONS,
        statements=_C_STATEMENTS,
        blocks=_C_BLOCKS,
        definitions="function_definition struct_specifier union_specifier enum_specifier",
        strings_comments=_C_STRINGS,
    ),
    definitions={
        "function_definition": "function",
        "struct_specifier": "class",
        "union_specifier": "class",
        "enum_specifier": "class",
    },
    comments=_set("comment"),
    # `struct point p;` mentions a struct; only `struct point { ... }` defines one.
    requires={
        "struct_specifier": _C_WITH_BODY,
        "union_specifier": _C_WITH_BODY,
        "enum_specifier": _C_WITH_BODY,
    },
)

CPP = Language(
    name="cpp",
    extensions=(".cc", ".cpp", ".cxx", ".c++", ".hh", ".hpp", ".hxx", ".h++", ".ipp"),
    load=_load_cpp,
    node_kinds=_kinds(
        identifiers=_C_IDENTIFIERS + " namespace_identifier",
        arguments="argument_list parameter_list template_argument_list",
        expressions=_C_EXPRESSIONS
        + " lambda_expression new_expression delete_expression this qualified_identifier",
        statements=_C_STATEMENTS
        + """ for_range_loop try_statement throw_statement using_declaration alias_declaration
            co_return_statement""",
        blocks=_C_BLOCKS + " declaration_list",
        definitions="""function_definition struct_specifier union_specifier enum_specifier
            class_specifier namespace_definition template_declaration""",
        strings_comments=_C_STRINGS + " raw_string_literal",
    ),
    definitions={
        "function_definition": "function",
        "class_specifier": "class",
        "struct_specifier": "class",
        "union_specifier": "class",
        "enum_specifier": "class",
    },
    comments=_set("comment"),
    requires={
        "class_specifier": _C_WITH_BODY,
        "struct_specifier": _C_WITH_BODY,
        "union_specifier": _C_WITH_BODY,
        "enum_specifier": _C_WITH_BODY,
    },
    wrappers=_set("template_declaration"),
)


def _table(entries: Iterable[Language]) -> dict[str, Language]:
    table: dict[str, Language] = {}
    owner: dict[str, str] = {}
    for entry in entries:
        for ext in entry.extensions:
            if ext in owner:
                raise ValueError(f"extension {ext} claimed by both {owner[ext]} and {entry.name}")
            owner[ext] = entry.name
        table[entry.name] = entry
    return table


LANGUAGES: dict[str, Language] = _table([PYTHON, JAVASCRIPT, TYPESCRIPT, TSX, GO, RUST, JAVA, C, CPP])
_BY_EXTENSION: dict[str, Language] = {ext: lang for lang in LANGUAGES.values() for ext in lang.extensions}


def get_language(name: str) -> Language:
    """The entry for a language name; raises UnsupportedLanguageError for an unknown one."""
    try:
        return LANGUAGES[name]
    except (KeyError, TypeError):
        raise UnsupportedLanguageError(
            f"unsupported language {name!r}; supported: {', '.join(LANGUAGES)}"
        ) from None


def language_for_path(path: str | PurePath) -> Language | None:
    """The language of a file by its extension (case-insensitive), or None."""
    return _BY_EXTENSION.get(PurePath(path).suffix.lower())


def supported_extensions() -> frozenset[str]:
    return frozenset(_BY_EXTENSION)


_PARSERS = threading.local()


def parser_for(name: str) -> tree_sitter.Parser:
    """A parser for the language, created once per thread (parsers are not thread-safe)."""
    cache: dict[str, tree_sitter.Parser] | None = getattr(_PARSERS, "cache", None)
    if cache is None:
        cache = _PARSERS.cache = {}
    parser = cache.get(name)
    if parser is None:
        parser = tree_sitter.Parser(get_language(name).ts_language)
        cache[name] = parser
    return parser
