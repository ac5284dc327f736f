"""The package layout of docs/architecture.md, checked against the real imports.

Imports are read with ``ast`` from the source files (nothing is imported), so a module that
reaches against the data path fails here with the file, the line and the rule it breaks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "edge_ocr"

# The ground: shared records, the config schema and sd_notify; they import no other room.
GROUND = {"types", "config", "sdnotify"}
# Each room along the data path and the rooms it may import (besides itself and the ground).
# capture -> find -> read -> decide; publish knows nothing of OCR; serve sits beside publish.
ROOMS: dict[str, set[str]] = {
    "capture": set(),
    "find": {"capture"},
    "read": {"capture", "find"},
    "decide": {"capture", "read"},
    "publish": set(),
    "serve": {"capture", "find", "read", "publish"},
}
# The top: entry points and the stage set may import every room; nothing imports them but each other.
TOP = {"__init__", "__main__", "stages", "daemon", "cli", "tools_cli", "instances", "events"}
# config.py is read once, by the mapping in stages.py (and the entry points that load the file): the
# stages take plain values.
CONFIG_READERS = TOP
WEB_ONLY = {"web"}  # static files, no Python


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_in(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module) for every ``edge_ocr`` import in ``source``, relative ones resolved."""
    here = module.split(".") if is_package else module.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
            # `from edge_ocr.capture import roi` imports the module edge_ocr.capture.roi
            out += [(node.lineno, n if _is_module(n) else target) for n in names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return [(line, t) for line, t in out if t == "edge_ocr" or t.startswith("edge_ocr.")]


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT / rel).with_suffix(".py").exists() or (ROOT / rel / "__init__.py").exists()


def room_of(module: str) -> str:
    """``edge_ocr.read.recognizer`` -> ``read``; ``edge_ocr.daemon`` -> ``daemon``; ``edge_ocr`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def allowed(src: str, dst: str) -> bool:
    if src == dst or dst == "__init__":  # one's own room; the package root only sets cv2's limit
        return True
    if src in TOP:
        return True
    if dst in TOP:
        return False
    if src in GROUND:
        return False  # the ground imports nothing above it (config may not even import types)
    if dst == "config":
        return src in CONFIG_READERS
    if dst in GROUND:
        return True
    return dst in ROOMS[src]


def python_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_known_room() -> None:
    known = GROUND | set(ROOMS) | TOP | WEB_ONLY
    rooms = {room_of(module_name(p)) for p in python_files()}
    assert rooms <= known, f"modules outside the documented layout: {sorted(rooms - known)}"
    assert set(ROOMS) <= rooms  # the layout still has every room it documents


def test_no_import_runs_against_the_data_path() -> None:
    wrong = []
    for path in python_files():
        src = room_of(module_name(path))
        for line, target in imports_of(path):
            dst = room_of(target)
            if not allowed(src, dst):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {src} may not import {dst} ({target})")
    assert not wrong, "\n".join(wrong)


def all_imports(path: Path) -> set[str]:
    """Every module ``path`` imports (relative ones resolved), whatever its package."""
    mod = module_name(path)
    here = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            target = ".".join(here[: len(here) - (node.level - 1)] + ([node.module] if node.module else [])) \
                if node.level else node.module or ""
            out |= {f"{target}.{a.name}" if _is_module(f"{target}.{a.name}") else target for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return [*trail[trail.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt, [*trail, nxt])):
                return found
        state[node] = 2
        return None

    for mod in sorted(graph):
        if mod not in state and (found := visit(mod, [mod])):
            return found
    return None


SOURCE_DIRS = ("edge_ocr", "tools", "bench", "tests")


def source_files() -> list[Path]:
    return sorted(p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py"))


def test_no_import_cycle_in_the_package_the_tools_or_the_benchmarks() -> None:
    graph = {module_name(p): all_imports(p) - {module_name(p)} for p in source_files()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the finder finds one


def test_nothing_edits_sys_path() -> None:
    # tools/ and bench/ are packages, run as `python -m tools.NAME` from the repository root
    edits = [f"{p.relative_to(ROOT)}:{n.lineno}" for p in source_files()
             for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.Attribute) and n.attr == "path"
             and isinstance(n.value, ast.Name) and n.value.id == "sys"]
    assert not edits, f"sys.path used at {edits}"


def test_test_modules_import_no_other_test_module() -> None:
    # shared helpers live in tests/helpers.py (and fixtures in conftest.py), not in a test_*.py
    wrong = [f"{p.relative_to(ROOT)} imports {m}" for p in sorted((ROOT / "tests").glob("*.py"))
             for m in all_imports(p) if m.startswith("tests.test_") or m == "tests.conftest"]
    assert not wrong, wrong


@pytest.mark.parametrize(("src", "dst", "ok"), [
    ("read", "capture", True), ("capture", "read", False), ("find", "read", False),
    ("publish", "read", False), ("serve", "publish", True), ("decide", "serve", False),
    ("daemon", "serve", True), ("read", "stages", False), ("config", "types", False),
    ("stages", "config", True), ("read", "config", False), ("capture", "config", False), ("serve", "config", False),
    ("publish", "config", False), ("decide", "config", False),
])
def test_the_rules_themselves(src: str, dst: str, ok: bool) -> None:
    # the checker must be able to fail: a few arrows each way, as the architecture doc draws them
    assert allowed(src, dst) is ok


def test_a_wrong_import_is_found() -> None:
    source = "import numpy\nfrom ..read.recognizer import Recognizer\nfrom .roi import Roi\nfrom edge_ocr.capture import quad\n"
    found = imports_in(source, "edge_ocr.capture.motion", False)
    assert found == [(2, "edge_ocr.read.recognizer"), (3, "edge_ocr.capture.roi"), (4, "edge_ocr.capture.quad")]
    assert [t for _, t in found if not allowed("capture", room_of(t))] == ["edge_ocr.read.recognizer"]


def test_no_function_in_the_package_is_over_80_lines() -> None:
    long = [f"{p.relative_to(ROOT)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)" for p in python_files()
            for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            and n.end_lineno is not None and n.end_lineno - n.lineno + 1 > 80]
    assert not long, long
