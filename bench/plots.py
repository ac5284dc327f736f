"""PNG plots next to BENCHMARKS.md (matplotlib, from the ``bench`` extra; skipped with a note
when it is not installed)."""

from __future__ import annotations

from pathlib import Path


def write_plots(res: dict, out_dir: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    engines = [e for e in res.get("engines", []) if "latency_ms" in e]
    if engines:
        fig, ax = plt.subplots(figsize=(8, 0.7 + 0.6 * len(engines)))
        ax.boxplot([e["latency_ms"] for e in engines], vert=False, showfliers=False)
        ax.set_yticks(range(1, len(engines) + 1), [e["engine"] for e in engines])
        ax.set_xscale("log")
        ax.set_xlabel("ms per crop (batch 1, 1 thread; log scale)")
        ax.set_title("Recogniser latency on the same crops")
        fig.tight_layout()
        path = out_dir / "bench-latency.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path.name)
    curves = [(e["engine"], e["threshold_curve"]) for e in engines if e.get("threshold_curve")]
    if curves:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        for name, curve in curves:
            th = [c["threshold"] for c in curve]
            a1.plot(th, [100 * c["published"] for c in curve], label=name)
            a2.plot(th, [100 * c["exact_of_published"] if c["exact_of_published"] is not None else float("nan")
                         for c in curve], label=name)
        a1.set(xlabel="confidence threshold", ylabel="% of crops published", title="What gets published")
        a2.set(xlabel="confidence threshold", ylabel="% exact among published", title="How right it is")
        a2.legend(fontsize=8)
        for a in (a1, a2):
            a.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / "bench-threshold.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path.name)
    return written
