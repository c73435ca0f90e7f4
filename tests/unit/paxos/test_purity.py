"""paxdb/paxos does no I/O and reads no time or randomness: its imports prove it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PAXOS = Path(__file__).resolve().parents[3] / "paxdb" / "paxos"
ALLOWED_STDLIB = {"__future__", "bisect", "collections", "dataclasses", "enum", "typing", "zlib"}
ALLOWED_PAXDB = {"paxdb.ids", "paxdb.limits", "paxdb.errors"}
FORBIDDEN = {"asyncio", "socket", "os", "time", "random", "threading", "apsw", "msgpack"}


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: use absolute imports"
            module = node.module or ""
            if module == "paxdb":
                names.extend(f"paxdb.{alias.name}" for alias in node.names)
            else:
                names.append(module)
    return names


@pytest.mark.parametrize("path", sorted(PAXOS.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_only_pure_modules(path: Path) -> None:
    for name in imported_modules(path):
        root = name.split(".")[0]
        assert root not in FORBIDDEN, f"{path.name} imports {name}"
        if root == "paxdb":
            assert name.startswith("paxdb.paxos") or name in ALLOWED_PAXDB, (
                f"{path.name} imports {name}, outside the core"
            )
        else:
            assert root in ALLOWED_STDLIB, f"{path.name} imports {name}, not on the allow-list"


def test_the_check_sees_every_core_module() -> None:
    assert len(list(PAXOS.glob("*.py"))) >= 10
