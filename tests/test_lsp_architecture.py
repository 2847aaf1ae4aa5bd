"""The server's shape: imports that only point down, and pygls' private parts in one shim."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lsp_server
from lsp_server import pygls_shim

PACKAGE = Path(lsp_server.__file__).parent
FEATURE_MODULES = {"lifecycle", "sync", "completion", "commands", "symbols"}


def _modules() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(PACKAGE.glob("*.py"))}


def _imports(tree: ast.Module) -> set[str]:
    """Sibling modules imported anywhere in the file: top level, in functions, under TYPE_CHECKING."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "lsp_server":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("lsp_server."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("lsp_server."))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {target for target in _imports(tree) if target in modules and target != name} for name, tree in modules.items()}


def test_the_import_graph_has_no_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target] if target in path else [node, target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, f"import cycles in lsp_server: {cycles}"


def test_feature_modules_never_import_the_server() -> None:
    graph = _graph()
    assert set(graph) >= FEATURE_MODULES
    offenders = sorted(name for name in graph if name != "__main__" and "server" in graph[name] and name != "server")
    assert offenders == [], f"these import lsp_server.server: {offenders}"


def test_private_attributes_of_other_objects_are_reached_only_in_the_shim() -> None:
    """``obj._name`` where ``obj`` is not ``self``/``cls``: pygls internals, allowed only in
    pygls_shim.py (where PYGLS_PRIVATES lists them)."""
    found: list[str] = []
    for name, tree in _modules().items():
        if name == "pygls_shim":
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"})
                and not (isinstance(node.value, ast.Name) and node.value.id == "os" and node.attr == "_exit")
            ):
                found.append(f"{name}.py:{node.lineno} .{node.attr}")
    assert found == [], found


def test_the_shim_lists_every_private_name_it_uses() -> None:
    tree = ast.parse(Path(pygls_shim.__file__).read_text(encoding="utf-8"))
    listed = {name for _, name in pygls_shim.PYGLS_PRIVATES}
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    }
    assert used <= listed | _OWN, f"pygls privates used but not in PYGLS_PRIVATES: {sorted(used - listed - _OWN)}"


# Private names the shim defines on its own classes (not pygls').
_OWN = {"_in_turn", "_send_error", "_stream", "_thread", "_reader", "_report_server_error"}


def test_the_installed_pygls_still_has_what_the_shim_uses() -> None:
    pygls_shim.check_pygls()  # raises, naming each missing attribute, when pygls moved one


def test_the_guard_fails_loudly_when_pygls_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    from pygls.protocol import JsonRPCProtocol

    original = JsonRPCProtocol.__init__

    def without_futures(self: JsonRPCProtocol, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        del self._request_futures

    monkeypatch.setattr(JsonRPCProtocol, "__init__", without_futures)
    with pytest.raises(RuntimeError, match="_request_futures"):
        pygls_shim.check_pygls()
