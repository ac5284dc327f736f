"""BENCHMARKS.md is written by three commands; each must leave the others' sections alone."""

from pathlib import Path

from bench import daemon_rss
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
