"""A fleet box bridged to a central broker (bench/fleet.py, two real Mosquittos on loopback):
the central broker goes away, plate events keep coming, it comes back, and every event is at the
centre once, in order. The 2-minute outage of docs/mqtt.md is `python -m bench.fleet`; this one
is shorter."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fleet import Outage, run_outage

from .conftest import MOSQUITTO


def test_bridge_outage_loses_nothing_and_keeps_order(tmp_path: Path) -> None:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    r = run_outage(tmp_path, outage_s=6.0, rate_hz=2.0)
    assert len(r.produced) == 5 + 12 + 5
    assert r.received == r.produced  # every event once, in the order the box produced it
    assert (r.lost, r.duplicated, r.in_order) == (0, 0, True)
    assert r.catch_up_s is not None


def test_outage_figures_count_what_went_wrong() -> None:
    r = Outage(produced=["a", "b", "c", "d"], received=["a", "c", "b", "c"])
    assert (r.lost, r.duplicated, r.in_order) == (1, 1, False)
    assert Outage(produced=["a", "b"], received=["a", "b"]).in_order
