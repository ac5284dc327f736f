"""What a benchmark ran on: the CPU, the versions that matter, and (``LoadMeter``) how busy the
machine was while it ran, so a report states the load it measured instead of assuming one."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "asimddp") if f" {f}" in text)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "arch": platform.machine(), "cpu_flags": flags,
            "python": platform.python_version(), "onnxruntime": ort.__version__, "numpy": np.__version__,
            "opencv": cv2.__version__}


def _busy_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _process_ticks() -> dict[int, tuple[str, int]]:
    """pid -> (command name, user + system ticks) of every process readable in /proc."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue  # gone, or not ours to read
        name = stat[stat.index("(") + 1: stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2:].split()
        out[int(d.name)] = (name, int(rest[11]) + int(rest[12]))  # utime, stime
    return out


def _own_ticks() -> float:
    t = os.times()  # this process and the children it has waited for (the daemons it ran)
    return (t.user + t.system + t.children_user + t.children_system) * os.sysconf("SC_CLK_TCK")


class LoadMeter:
    """How busy the machine was while a benchmark ran, measured rather than assumed: the 1-minute
    load average at the start and end, and the CPU that processes other than this one and its
    children used, from /proc (in cores: 1.0 = one core busy throughout), with the busiest of
    them by name. Linux only."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.load0 = os.getloadavg()[0]
        self.busy0, _ = _busy_ticks()
        self.own0 = _own_ticks()
        self.procs0 = _process_ticks()

    def stop(self, top: int = 3) -> dict:
        """The measurement so far: seconds, load average start/end, other processes' cores
        (all of them, and the ``top`` busiest that ran throughout, with their names)."""
        seconds = max(time.monotonic() - self.t0, 1e-6)
        tck = os.sysconf("SC_CLK_TCK")
        busy1, _ = _busy_ticks()
        own = _own_ticks() - self.own0
        others = max(0.0, (busy1 - self.busy0) - own) / tck / seconds
        me = os.getpid()
        deltas = [(name, (ticks - self.procs0[pid][1]) / tck / seconds, pid)
                  for pid, (name, ticks) in _process_ticks().items()
                  if pid in self.procs0 and pid != me and ticks > self.procs0[pid][1]]
        deltas.sort(key=lambda d: -d[1])
        return {"seconds": round(seconds, 1), "load_start": round(self.load0, 2),
                "load_end": round(os.getloadavg()[0], 2), "other_cores": round(others, 2),
                "busiest": [{"name": n, "pid": p, "cores": round(c, 2)} for n, c, p in deltas[:top]]}


def load_sentence(load: dict) -> str:
    """One sentence for a report, saying only what ``LoadMeter`` measured."""
    busiest = ", ".join(f"{b['name']} {b['cores']:.2f}" for b in load.get("busiest", []) if b["cores"] >= 0.05)
    return (f"Load during the runs ({load['seconds']:g} s, measured): load average {load['load_start']:.1f} at the "
            f"start, {load['load_end']:.1f} at the end; processes other than the benchmark used "
            f"{load['other_cores']:.2f} cores on average" + (f" (busiest: {busiest})" if busiest else "") + ".")
