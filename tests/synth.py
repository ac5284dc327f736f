"""The training generators (tools/synth_plates.py, tools/synth_tworow.py, owned by the model's
trainer) for the tests that must render the plates the model is trained on. The one place a test
reaches into tools/; every other test draws its own pictures (tests/scenes.py)."""

import importlib
import sys
from pathlib import Path
from types import ModuleType

_TOOLS = str(Path(__file__).resolve().parents[1] / "tools")


def _load(name: str) -> ModuleType:
    if _TOOLS not in sys.path:
        sys.path.append(_TOOLS)  # appended: a tools/ module never shadows a package one
    return importlib.import_module(name)


synth_plates = _load("synth_plates")
synth_tworow = _load("synth_tworow")
