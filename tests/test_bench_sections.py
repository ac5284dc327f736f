"""BENCHMARKS.md is written by three commands; each must leave the others' sections alone."""

import subprocess
import sys
import time
from pathlib import Path

from bench import daemon_rss
from bench.machine import LoadMeter
from bench.video_eval import SECTION as VIDEO_SECTION
from bench.video_eval import keep_section


def _res(peak: float) -> dict:
    run = {"camera_fps": 25.0, "start_to_ready_s": 0.4, "run_s": 40.0, "frames": 1000, "dropped_frames": 0,
           "gated": 0, "events": 8, "fps": 25.0, "rss_peak_mb": peak, "rss_median_mb": 90.0, "vmhwm_mb": peak,
           "samples": 160, "exit_code": 0}
    return {"date": "2026-01-01", "video_fps": 25, "video_s": 40, "core": 1, "machine": "test cpu",
            "command": "python -m bench.daemon_rss", "versions": {"before abc": [run], "after def": [run]}}


def test_bench_rewrite_keeps_real_video_and_daemon_sections() -> None:
    old = (f"# Benchmarks\n\n## Pipeline\nold numbers\n\n{VIDEO_SECTION}\nvideo rows\n\n"
           f"{daemon_rss.SECTION}\n\ndaemon rows\n")
    new = "# Benchmarks\n\n## Pipeline\nnew numbers\n"
    md = keep_section(old, keep_section(old, new), daemon_rss.SECTION)
    assert "new numbers" in md and "old numbers" not in md
    assert f"{VIDEO_SECTION}\nvideo rows" in md and f"{daemon_rss.SECTION}\n\ndaemon rows" in md
    # the video section ends where the daemon section begins: neither is copied twice
    assert md.count(VIDEO_SECTION) == 1 and md.count(daemon_rss.SECTION) == 1


def test_daemon_rss_update_replaces_only_its_section(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    out.write_text(f"# Benchmarks\n\n## Pipeline\nrows\n\n{VIDEO_SECTION}\nvideo rows\n")
    daemon_rss.update(out, _res(120.5))
    daemon_rss.update(out, _res(99.5))
    md = out.read_text()
    assert md.count(daemon_rss.SECTION) == 1 and "| 99.5 |" in md and "| 120.5 |" not in md
    assert "## Pipeline\nrows" in md and f"{VIDEO_SECTION}\nvideo rows" in md
    assert "| before abc | 25 |" in md and "| after def | 25 |" in md
    # a section placed before another is replaced in place, the one after it kept
    out.write_text(f"# B\n\n{daemon_rss.SECTION}\nstale\n\n{VIDEO_SECTION}\nvideo rows\n")
    daemon_rss.update(out, _res(99.5))
    md = out.read_text()
    assert "stale" not in md and md.index(daemon_rss.SECTION) < md.index(VIDEO_SECTION) and "video rows" in md


def test_the_daemon_report_states_the_load_it_measured_and_nothing_else() -> None:
    res = _res(99.5)
    md = daemon_rss.render(res)
    assert "training" not in md and "Load during the runs" not in md  # nothing measured: nothing said
    res["load"] = {"seconds": 300.0, "load_start": 1.2, "load_end": 2.4, "other_cores": 0.93,
                   "busiest": [{"name": "python", "pid": 7, "cores": 0.9}, {"name": "sshd", "pid": 8, "cores": 0.01}]}
    md = daemon_rss.render(res)
    assert ("load average 1.2 at the start, 2.4 at the end; processes other than the benchmark used 0.93 cores "
            "on average (busiest: python 0.90).") in md
    assert "training" not in md


def test_the_load_meter_sees_a_busy_process_that_is_not_the_benchmark() -> None:
    # a spinning process that is not a waited-for child stands in for "a model training beside it"
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        meter = LoadMeter()
        stat = Path(f"/proc/{spin.pid}/stat")
        ticks = lambda: sum(int(x) for x in stat.read_text().rsplit(")", 1)[1].split()[11:13])
        start = ticks()
        while ticks() < start + 20:  # until it has had 20 clock ticks of CPU during the measurement
            time.sleep(0.05)
        load = meter.stop(top=1000)
    finally:
        spin.kill()
        spin.wait(30)
    assert load["other_cores"] > 0
    assert any(b["pid"] == spin.pid and b["name"] == Path(sys.executable).name[:15] and b["cores"] > 0
               for b in load["busiest"]), load
