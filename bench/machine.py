"""What a benchmark ran on: the CPU, the versions that matter, and (``LoadMeter``) how busy the
machine was while it ran, so a report states the load it measured instead of assuming one."""

from __future__ import annotations

import os
import platform
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
