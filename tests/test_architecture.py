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
TOP = {"__init__", "__main__", "stages", "daemon", "cli", "tools_cli"}
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


def test_the_module_graph_has_no_cycle() -> None:
    graph = {module_name(p): {t for _, t in imports_of(p) if t != module_name(p)} for p in python_files()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph or nxt == "edge_ocr":
                continue
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*trail[trail.index(nxt):], nxt]))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])


@pytest.mark.parametrize(("src", "dst", "ok"), [
    ("read", "capture", True), ("capture", "read", False), ("find", "read", False),
    ("publish", "read", False), ("serve", "publish", True), ("decide", "serve", False),
    ("daemon", "serve", True), ("read", "stages", False), ("config", "types", False),
])
def test_the_rules_themselves(src: str, dst: str, ok: bool) -> None:
    # the checker must be able to fail: a few arrows each way, as the architecture doc draws them
    assert allowed(src, dst) is ok


def test_a_wrong_import_is_found() -> None:
    source = "import numpy\nfrom ..read.recognizer import Recognizer\nfrom .roi import Roi\nfrom edge_ocr.capture import quad\n"
    found = imports_in(source, "edge_ocr.capture.motion", False)
    assert found == [(2, "edge_ocr.read.recognizer"), (3, "edge_ocr.capture.roi"), (4, "edge_ocr.capture.quad")]
    assert [t for _, t in found if not allowed("capture", room_of(t))] == ["edge_ocr.read.recognizer"]
