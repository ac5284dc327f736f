"""The training generators (tools/synth_plates.py, tools/synth_tworow.py and their mix,
tools/synth_mix.py, owned by the model's trainer) for the tests that must render the plates the
model is trained on. The one place a test reaches into tools/; every other test draws its own
pictures (tests/scenes.py)."""

from tools import synth_mix, synth_plates, synth_tworow

__all__ = ["synth_mix", "synth_plates", "synth_tworow"]
