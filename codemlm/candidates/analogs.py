"""Analogous spans by syntax role (tree-sitter): what fills the same role elsewhere.

A hole right after ``f`` is most likely ``f``'s argument list, so the argument lists of other
calls to ``f`` and the parameter names of ``f``'s definition are candidates; after ``x =``
the other values given to ``x`` (assignments, keyword arguments, defaults); after
``return`` / ``if`` / ``raise`` the other return values, conditions, raised values. Every
candidate is a whole syntax node, so it brings its own length.

The role table is keyed by ``(role, key)``; the holed file is parsed in its holed form and a
node that touches the hole is skipped (it is a half-parsed junction, not an analogue).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from codemlm.candidates.context import HoleContext, ProposalSet
from codemlm.candidates.lexical import is_name
from codemlm.candidates.variants import argument_variants

if TYPE_CHECKING:
    import tree_sitter

__all__ = ["RoleTable", "analogs", "hole_roles", "hole_shape"]

_LAST_NAME = re.compile(r"([^\W\d]\w*)\W*\Z")
_MAX_NODE_CHARS = 200
_CALLS = {"call": ("function", "arguments"), "call_expression": ("function", "arguments"),
          "new_expression": ("constructor", "arguments")}
_DEFS = frozenset({"function_definition", "function_declaration", "method_definition", "function_expression",
                   "generator_function_declaration"})
_VALUES = {"assignment": ("left", "right"), "keyword_argument": ("name", "value"),
           "default_parameter": ("name", "value"), "typed_default_parameter": ("name", "value"),
           "variable_declarator": ("name", "value"), "assignment_expression": ("left", "right"),
           "pair": ("key", "value"), "required_parameter": ("pattern", "value"),
           "optional_parameter": ("pattern", "value")}
_FIRST_CHILD = {"return_statement": "return", "raise_statement": "raise", "throw_statement": "raise"}
_CONDITIONS = frozenset({"if_statement", "elif_clause", "while_statement"})
_RECEIVERS = frozenset({"self", "cls", "this"})
# What a function most often gives back without computing it: a fallback, a flag, itself.
# Proposed for every return hole, because a file's other returns need not include the one wanted
# (``return True`` above does not put ``False`` among the analogues).
_RETURN_CONSTANTS = {
    "python": ("None", "True", "False", "self", "NotImplemented"),
    "javascript": ("null", "true", "false", "undefined", "this"),
}
_RETURN_CONSTANTS["typescript"] = _RETURN_CONSTANTS["tsx"] = _RETURN_CONSTANTS["javascript"]
_ARROW = re.compile(r"[ \t]*=>")


class RoleTable:
    """``(role, key) -> {text: [count, nearest distance]}`` over the files added to it."""

    def __init__(self) -> None:
        self.table: dict[tuple[str, str], dict[str, list[float]]] = {}

    def add_text(self, text: str, language: str | None, side: str, hole: int | None = None) -> None:
        """Add every role node of ``text``; ``hole`` (a byte offset) marks the holed file's hole."""
        tree = _parse(text, language)
        if tree is None:
            return
        data = text.encode("utf-8", "surrogatepass")
        for role, key, node in _role_nodes(tree.root_node, data):
            if hole is not None and node.start_byte <= hole <= node.end_byte:
                continue
            value = data[node.start_byte : node.end_byte].decode("utf-8", "replace")
            if len(value) > _MAX_NODE_CHARS:
                continue
            distance = math.inf if hole is None else float(abs(node.start_byte - hole))
            entry = self.table.setdefault((role, key), {}).setdefault(value, [0, math.inf])
            entry[0] += 1
            entry[1] = min(entry[1], distance)
            if role == "params":
                call = _params_as_arguments(node, data)
                if call:
                    args = self.table.setdefault(("args", key), {}).setdefault(call, [0, math.inf])
                    args[0] += 1
                    args[1] = min(args[1], distance)
            elif role == "args" and language in (None, "python"):
                # A call is also evidence for the definition it calls: ``f(a, b=1)`` -> ``def f(a, b=1)``.
                for params in _arguments_as_params(node, data, method=_is_method_call(node, data)):
                    entry = self.table.setdefault(("call_params", key), {}).setdefault(params, [0, math.inf])
                    entry[0] += 1
                    entry[1] = min(entry[1], distance)

    def lookup(self, role: str, key: str) -> dict[str, list[float]]:
        return self.table.get((role, key), {})


def hole_roles(context: HoleContext) -> list[tuple[str, str]]:
    """The syntax roles the hole can play, read from the tokens just before it."""
    toks = context.left.toks
    if not toks or context.after_dot:
        return []
    if _ARROW.match(context.right.text):
        # "(a, b) => ...": an arrow function's parameters, like the file's other arrows'.
        return [("params", "=>")]
    last = toks[-1]
    before = toks[-2].text if len(toks) >= 2 else ""
    adjacent = last.end == len(context.left.text)
    # "function name (a, b)": a space before a definition's parameters is common JavaScript style.
    spaced = before == "function" and context.left.text[last.end :] == " "
    if is_name(last.text) and (adjacent or spaced):
        if before in ("def", "function"):
            return [("params", last.text)]
        if before == "class":
            # A class's bases are like other classes' bases, not like the calls to the class.
            return [("bases", "")]
        return [("args", last.text)]
    if last.text in ("=", ":") and is_name(before):
        return [("value", before)]
    if last.text in ("return", "raise", "throw"):
        return [("return" if last.text == "return" else "raise", "")]
    if last.text in ("if", "elif", "while", "and", "or", "&&", "||"):
        return [("cond", "")]
    return []


def hole_shape(context: HoleContext) -> str:
    """One word for the ranker: ``member`` (after ``obj.``), ``args`` (after a callee, a def or a
    class name), ``line`` (a statement at a line start), ``value`` (after ``=``, ``return``, ``if``...)
    or ``other``."""
    if context.after_dot:
        return "member"
    roles = {role for role, _key in hole_roles(context)}
    if roles & {"args", "params", "bases"}:
        return "args"
    if context.at_line_start:
        return "line"
    return "value" if roles else "other"


class HasRoles(Protocol):
    """What analogs need of a repository (candidates.repository.Repository): its role table.

    A protocol, not an import: the repository builds its table from this module.
    """

    roles: RoleTable


def analogs(context: HoleContext, found: ProposalSet, repository: HasRoles | None = None) -> None:
    roles = hole_roles(context)
    if not roles:
        return
    local = RoleTable()
    prefix = context.left.text
    local.add_text(prefix + context.right.text, context.language, "file",
                   hole=len(prefix.encode("utf-8", "surrogatepass")))
    for role, key in roles:
        same: dict[str, tuple[int, float]] = {}
        for table in (local, repository.roles if repository is not None else None):
            if table is None:
                continue
            for text, (count, distance) in table.lookup(role, key).items():
                found.add(text, "analog", distance=distance, count=int(count))
                was = same.get(text, (0, math.inf))
                same[text] = (was[0] + int(count), min(was[1], distance))
            if role == "params":
                # A definition's parameters from the calls to it (``self.f(a)`` -> ``(self, a)``).
                for text, (count, distance) in table.lookup("call_params", key).items():
                    for params in dict.fromkeys((text, _with_receiver(text, context))):
                        found.add(params, "analog", distance=distance, count=int(count))
        if role == "params" and context.language in (None, "python"):
            for text in _DATA_MODEL.get(key, ()):
                found.add(text, "analog")
        if role == "return":
            for text in _RETURN_CONSTANTS.get(context.language or "python", ()):
                found.add(text, "role")
        if role == "args" and same:
            argument_variants(context, found, same)
        if role in ("args", "params"):
            # The same role for another callee: argument lists repeat across calls ("(self)").
            for (other_role, other_key), texts in local.table.items():
                if other_role == role and other_key != key:
                    for text, (count, distance) in texts.items():
                        found.add(text, "role", distance=distance, count=int(count))


def _parse(text: str, language: str | None) -> tree_sitter.Tree | None:
    if not language:
        return None
    from codemlm.errors import UnsupportedLanguageError
    from codemlm.syntax import parse_tree

    try:
        return parse_tree(text, language)
    except UnsupportedLanguageError:
        return None


def _key(node: tree_sitter.Node | None, data: bytes) -> str:
    if node is None:
        return ""
    m = _LAST_NAME.search(data[node.start_byte : node.end_byte].decode("utf-8", "replace"))
    return m.group(1) if m else ""


def _role_nodes(root: tree_sitter.Node, data: bytes) -> Iterator[tuple[str, str, tree_sitter.Node]]:
    stack = [root]
    while stack:
        node = stack.pop()
        stack.extend(node.named_children)
        kind = node.type
        if kind in _CALLS:
            fn, args = _CALLS[kind]
            value = node.child_by_field_name(args)
            if value is not None:
                yield "args", _key(node.child_by_field_name(fn), data), value
        elif kind in _DEFS:
            params = node.child_by_field_name("parameters")
            if params is not None:
                yield "params", _key(node.child_by_field_name("name"), data), params
        elif kind == "arrow_function":
            params = node.child_by_field_name("parameters")
            if params is not None:
                yield "params", "=>", params
        elif kind == "class_definition":
            bases = node.child_by_field_name("superclasses")
            if bases is not None:
                yield "bases", "", bases
        elif kind in _FIRST_CHILD and node.named_children:
            yield _FIRST_CHILD[kind], "", node.named_children[0]
        elif kind in _CONDITIONS:
            condition = node.child_by_field_name("condition")
            if condition is not None:
                yield "cond", "", condition
        if kind in _VALUES:
            name, val = _VALUES[kind]
            value = node.child_by_field_name(val)
            if value is not None:
                yield "value", _key(node.child_by_field_name(name), data), value


# Python's data-model methods take the same parameters everywhere (the language reference's
# signatures, with the parameter names most code uses).
_BINARY = ("(self, other)",)
_DATA_MODEL: dict[str, tuple[str, ...]] = {
    **{name: ("(self)",) for name in ("__len__", "__iter__", "__repr__", "__str__", "__hash__", "__bool__",
                                       "__enter__", "__reduce__", "__next__", "__aenter__", "__aiter__",
                                       "__anext__", "__await__", "__index__", "__int__", "__float__",
                                       "__copy__", "__getstate__", "__neg__", "__pos__", "__abs__",
                                       "__invert__", "__reversed__", "__sizeof__", "__del__")},
    **{name: _BINARY for name in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__add__", "__sub__",
                                  "__mul__", "__truediv__", "__floordiv__", "__mod__", "__pow__", "__and__", "__or__",
                                  "__xor__", "__radd__", "__rsub__", "__rmul__", "__iadd__", "__isub__", "__ior__",
                                  "__iand__", "__lshift__", "__rshift__", "__matmul__", "__rtruediv__",
                                  "__divmod__", "__rand__", "__ror__", "__rxor__")},
    "__getitem__": ("(self, key)", "(self, index)", "(self, item)", "(self, name)"),
    "__delitem__": ("(self, key)", "(self, index)"),
    "__setitem__": ("(self, key, value)", "(self, index, value)"),
    "__contains__": ("(self, item)", "(self, key)", "(self, value)"),
    "__getattr__": ("(self, name)", "(self, attr)"),
    "__getattribute__": ("(self, name)",),
    "__delattr__": ("(self, name)",),
    "__setattr__": ("(self, name, value)",),
    "__exit__": ("(self, *args)", "(self, exc_type, exc_value, traceback)", "(self, *exc_info)",
                 "(self, exc_type, exc_val, exc_tb)", "(self, type, value, traceback)"),
    "__aexit__": ("(self, *args)", "(self, exc_type, exc_value, traceback)", "(self, *exc_info)"),
    "__call__": ("(self, *args, **kwargs)",),
    "__new__": ("(cls, *args, **kwargs)",),
    "__init_subclass__": ("(cls, **kwargs)",),
    "__class_getitem__": ("(cls, item)", "(cls, params)"),
    "__format__": ("(self, format_spec)",),
    "__get__": ("(self, instance, owner)", "(self, obj, objtype=None)", "(self, instance, owner=None)"),
    "__set__": ("(self, instance, value)", "(self, obj, value)"),
    "__delete__": ("(self, instance)",),
    "__set_name__": ("(self, owner, name)",),
    "__deepcopy__": ("(self, memo)",),
    "__setstate__": ("(self, state)",),
    "__reduce_ex__": ("(self, protocol)",),
    "__round__": ("(self, ndigits=None)",),
    "__missing__": ("(self, key)",),
    "__dir__": ("(self)",),
    "__instancecheck__": ("(cls, instance)",),
    "__subclasscheck__": ("(cls, subclass)",),
    "__subclasshook__": ("(cls, C)",),
}


def _is_method_call(args: tree_sitter.Node, data: bytes) -> bool:
    """``obj.f(...)``: the definition called takes a receiver first."""
    call = args.parent
    fn = call.child_by_field_name("function") if call is not None else None
    return fn is not None and fn.type == "attribute"


def _arguments_as_params(args: tree_sitter.Node, data: bytes, *, method: bool) -> list[str]:
    """``(a, b, key=k)`` as the parameter lists a definition taking it may have: ``(a, b, key=None)``
    and ``(a, b, key=k)``, with ``self`` first for a method call. Nothing when a positional
    argument is not a plain name (a literal or an expression names no parameter)."""
    names, keywords = [], []
    for child in args.named_children:
        text = data[child.start_byte : child.end_byte].decode("utf-8", "replace")
        if child.type == "keyword_argument":
            name = child.child_by_field_name("name")
            if name is None:
                return []
            keywords.append((data[name.start_byte : name.end_byte].decode("utf-8", "replace"), text))
        elif (child.type == "identifier" and not keywords) or (
                child.type in ("list_splat", "dictionary_splat") and text.lstrip("*").isidentifier()):
            names.append(text)
        else:
            return []
    receiver = ["self"] if method else []
    out = []
    if keywords:
        out.append(receiver + names + [f"{k}=None" for k, _ in keywords])
        out.append(receiver + names + [text for _, text in keywords])
    else:
        out.append(receiver + names)
    return ["(" + ", ".join(p) + ")" for p in out if p]


def _with_receiver(params: str, context: HoleContext) -> str:
    """A method's parameters start with ``self``: in a class body (an indented ``def``), add it."""
    indented = context.left.text.rsplit("\n", 1)[-1][:1] in (" ", "\t")
    if not indented or params.startswith(("(self", "(cls")):
        return params
    return "(self)" if params == "()" else "(self, " + params[1:]


def _params_as_arguments(params: tree_sitter.Node, data: bytes) -> str:
    """``(self, a, b=1, *rest)`` as the argument list a call would pass: ``(a, b, *rest)``."""
    names = []
    for child in params.named_children:
        text = data[child.start_byte : child.end_byte].decode("utf-8", "replace")
        name = re.split(r"[=:]", text, maxsplit=1)[0].strip()
        if not name or name in _RECEIVERS or name in ("*", "/"):
            continue
        names.append(name)
    return "(" + ", ".join(names) + ")" if names else ""
