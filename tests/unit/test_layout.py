"""The package's layout (docs/architecture.md): rooms by concern, imports one way, no cycles,
small modules.  Imports are read with ``ast``, all of them: module level, inside functions
and under ``TYPE_CHECKING`` (a type-only import is still a dependency a reader follows)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mockserver"

#: the rooms from the bottom up; a module may import its own room and the rooms before it
ROOMS = (
    "wire",
    "contract",
    "profile",
    "shared",
    "config",
    "accounting",
    "cassettes",
    "sources",
    "server",
    "testing",
    "top",  # cli, __init__, __main__ and the re-exports of old public paths
)
MAX_LINES = 450
MAX_MODULES_PER_ROOM = 15


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def room(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "top"
    if parts[1] in ROOMS:
        return parts[1]
    return "top"


def _imports(name: str, path: Path) -> Iterator[str]:
    """The package's modules that ``name`` imports (any place in the file)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        for target in targets:
            parts = target.split(".")
            while parts and ".".join(parts) not in MODULES:
                parts.pop()
            found = ".".join(parts)
            # a package's own __init__ is imported with any of its modules: not an edge
            if found and found != name and not name.startswith(found + "."):
                yield found


GRAPH = {name: sorted(set(_imports(name, path))) for name, path in MODULES.items()}


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that ends where it starts), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def test_the_walk_sees_the_imports() -> None:
    # (guards the test itself: a walk that found nothing would pass everything below)
    assert "mockserver.wire.protocol" in GRAPH["mockserver.server.app"]
    assert "mockserver.server.state" in GRAPH["mockserver.server.app"]
    assert len(MODULES) > 50


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None


def test_no_import_cycles() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_imports_go_one_way() -> None:
    wrong = [
        f"{name} ({room(name)}) imports {target} ({room(target)})"
        for name, targets in GRAPH.items()
        for target in targets
        if ROOMS.index(room(target)) > ROOMS.index(room(name))
    ]
    assert not wrong, (
        "imports against the direction " + " < ".join(ROOMS) + ":\n" + "\n".join(wrong)
    )


def test_wire_imports_nothing_else_of_ours() -> None:
    for name, targets in GRAPH.items():
        if room(name) == "wire":
            assert all(room(t) == "wire" for t in targets), (name, targets)


def test_sources_do_not_import_the_server() -> None:
    # what a source needs is handed to it (sources.host), never taken from server/
    for name, targets in GRAPH.items():
        if room(name) == "sources":
            assert not [t for t in targets if room(t) in ("server", "testing", "top")], name


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_are_small(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES}): split it"


def test_rooms_hold_at_most_15_modules() -> None:
    folders: dict[Path, int] = {}
    for path in MODULES.values():
        folders[path.parent] = folders.get(path.parent, 0) + 1
    big = {
        str(d.relative_to(PACKAGE.parent)): n
        for d, n in folders.items()
        if n > MAX_MODULES_PER_ROOM
    }
    assert not big, f"rooms past {MAX_MODULES_PER_ROOM} modules: {big}"


def test_public_names_and_old_import_paths_still_work() -> None:
    import mockserver
    from mockserver import conformance, pytest_plugin, strategies
    from mockserver.contract import conformance as new_conformance, strategies as new_strategies
    from mockserver.testing import plugin

    assert callable(mockserver.create_app) and callable(mockserver.serve_in_thread)
    assert mockserver.Settings().mode == "auto"
    assert conformance.check_message is new_conformance.check_message
    assert set(conformance.__all__) == set(new_conformance.__all__)
    assert strategies.message_requests is new_strategies.message_requests
    assert set(strategies.__all__) >= {"messages", "stream_events", "chunked_streams"}
    # pytest loads mockserver.pytest_plugin (entry point ``mockserver``): same hooks, fixture
    assert pytest_plugin.pytest_addoption is plugin.pytest_addoption
    assert pytest_plugin.mockserver is plugin.mockserver
    assert pytest_plugin.MockServer is plugin.MockServer


def test_the_entry_point_and_console_script_are_unchanged() -> None:
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"mockserver": "mockserver.cli:main"}
    assert project["entry-points"]["pytest11"] == {"mockserver": "mockserver.pytest_plugin"}
