"""The core decides and the shell performs: nothing in `daemon/core` may reach for I/O, a clock
or the shell's modules, or the simulator and the unit tests could no longer drive it alone."""

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "daemon" / "core"
#: Top-level modules the core may import besides itself and the wire protocol: pure ones.
ALLOWED = {
    "collections",
    "dataclasses",
    "datetime",
    "hashlib",
    "math",
    "msgpack",
    "operator",
    "pydantic",
    "re",
    "typing",
    "urllib",
}


def imported(source: str) -> set[str]:
    """Every module a source file imports (absolute names)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "the core imports absolutely"
            names.add(node.module or "")
    return names


def forbidden(name: str) -> bool:
    top = name.split(".")[0]
    if top == "daemon":
        return not name.startswith("daemon.core")
    return top != "protocol" and top not in ALLOWED


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: p.name)
def test_a_core_module_imports_only_pure_modules(path: Path) -> None:
    assert sorted(filter(forbidden, imported(path.read_text()))) == []


def test_the_check_sees_a_shell_import() -> None:
    assert sorted(filter(forbidden, imported("from daemon.store.base import Store"))) == [
        "daemon.store.base"
    ]
    assert sorted(filter(forbidden, imported("import asyncio, time"))) == ["asyncio", "time"]
