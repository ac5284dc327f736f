"""``edge-ocr`` command line: recognize, check-config, run."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .config import Config, ConfigError, RecognizerConfig, dump_config, load_config, override

log = logging.getLogger("edge_ocr")


def _setup_logging(level: str) -> None:
    # one line per event on stderr; journald adds the time stamp under systemd
    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


def cmd_check_config(args: argparse.Namespace) -> int:
    from .instances import collisions
    from .stages import StartupError, check_startup

    paths = [*(args.config or []), *args.paths] or ["config.yaml"]
    checked = []
    for path in paths:
        cfg = _load_or_report(path)
        if cfg is None:
            return 2
        try:
            check_startup(cfg)  # what `run` checks before it opens the camera, so both accept the same files
        except StartupError as exc:
            for line in exc.lines:
                print(f"{path}: {line}", file=sys.stderr)
            return 2
        checked.append((path, cfg))
    # several files: the instances of one machine, which must not share a topic, port or file
    clashes = collisions(checked)
    for line in clashes:
        print(line, file=sys.stderr)
    if clashes:
        return 2
    sys.stdout.write(dump_config(checked[0][1]))
    print(f"# {', '.join(paths)}: OK", file=sys.stderr)
    return 0


def _read_image(path: str):
    from .capture.image_io import ImageError, read_image

    try:
        return read_image(path), None
    except ImageError as exc:
        return None, str(exc)


def _recognize_config(args: argparse.Namespace) -> Config:
    """The config ``recognize`` reads with: ``--config`` (or the defaults), the flags over it.
    Raises ConfigError (a bad ``--config`` or flag value) or ValueError (an unknown region)."""
    from .read.formats import KNOWN_REGIONS

    cfg = load_config(args.config) if args.config else Config()
    flags = {"model": args.model, "decoder": args.decoder, "retry_below": args.retry_below,
             "threads": args.threads, "batch_size": args.batch}
    formats = {}
    if args.regions:
        regions = [r.strip() for r in args.regions.split(",") if r.strip()]
        unknown = [r for r in regions if r not in KNOWN_REGIONS]
        if unknown:
            raise ValueError(f"--regions: unknown {', '.join(unknown)}; known: {', '.join(KNOWN_REGIONS)}")
        formats["regions"] = regions
    return override(cfg, "command line", recognizer={k: v for k, v in flags.items() if v is not None},
                    formats=formats)


def cmd_recognize(args: argparse.Namespace) -> int:
    from .publish.mqtt_contract import plate_payload
    from .stages import Stages, StartupError

    try:
        # the reader every entry point reads with (stages.Stages), so each image, one crop, reads as
        # the daemon and /api/ocr?crop=1 read it
        reader = Stages.from_config(_recognize_config(args)).reader
    except ConfigError as exc:
        for p in exc.problems:
            print(f"{exc.source}: {p}", file=sys.stderr)
        return 2
    except (ValueError, StartupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    batch = reader.recognizer.batch_size
    failed = 0
    # (name, image, error) in input order: output lines keep the order of the arguments
    pending: list[tuple[str, object, str | None]] = []

    def flush() -> None:
        imgs = [img for _, img, err in pending if err is None]
        t = time.perf_counter()
        reads = iter(reader.read_crops(imgs))  # type: ignore[arg-type]
        ms = (time.perf_counter() - t) * 1000 / max(len(imgs), 1)
        for name, _, err in pending:
            if err is not None:
                if args.json:
                    print(json.dumps({"file": name, "error": err}, ensure_ascii=False))
                else:
                    print(f"{name}\terror: {err}", file=sys.stderr)
                continue
            p = next(reads)
            if args.json:
                print(json.dumps({"file": name, **plate_payload(p.reading, None, p.format_ok, p.region),
                                  "ms": round(ms, 3)}, ensure_ascii=False))
            else:
                print(f"{name}\t{p.text}\t{p.confidence:.3f}\t{ms:.1f} ms")
        pending.clear()

    for name in args.images:
        img, err = _read_image(name)
        failed += err is not None
        pending.append((name, img, err))
        if len(pending) >= batch:
            flush()
    flush()
    return 1 if failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    from .daemon import run_daemon

    return run_daemon(args.config)


def _load_or_report(path: str):
    try:
        return load_config(path)
    except ConfigError as exc:
        for p in exc.problems:
            print(f"{exc.source}: {p}", file=sys.stderr)
        return None


def cmd_listen(args: argparse.Namespace) -> int:
    from .tools_cli import listen

    cfg = _load_or_report(args.config)
    if cfg is None:
        return 2
    listen(cfg, args.device, args.count, args.timeout)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from .stages import StartupError
    from .tools_cli import tune

    cfg = _load_or_report(args.config)
    if cfg is None:
        return 2
    try:
        info = tune(cfg, Path(args.out), args.frames)
    except StartupError as exc:
        for line in exc.lines:
            print(f"{args.config}: {line}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a tuning tool reports any failure in one line
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(info))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="edge-ocr", description="Read licence plates from a camera; publish over MQTT.")
    ap.add_argument("--version", action="version", version=f"edge-ocr {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("check-config", help="validate config files (several: the instances of one machine, "
                       "which must not share a topic, port or file) and print the first one's effective config")
    p.add_argument("paths", nargs="*", metavar="path", help="config files (default config.yaml), or --config")
    p.add_argument("--config", "-c", action="append", default=None, metavar="FILE",
                   help="a config file, as for run (may be given more than once)")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("recognize", help="read plate crops (each image is one plate)")
    p.add_argument("images", nargs="+")
    p.add_argument("--model", default=None, help="ONNX model (default: the shipped INT8 model)")
    p.add_argument("--json", action="store_true", help="one JSON object per line per image")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: recognizer.threads, 1)")
    p.add_argument("--batch", type=int, default=16, help="crops per session call (default 16)")
    p.add_argument("--config", "-c", default=None,
                   help="read with this config file's recognizer and formats sections (flags override them)")
    p.add_argument("--decoder", choices=["greedy", "beam"], default=None,
                   help="CTC decoder (default: recognizer.decoder, greedy); beam follows the formats' layouts")
    p.add_argument("--retry-below", type=float, default=None,
                   help="re-read crops less confident than this from 5 re-cut copies (0 = off; default "
                        f"recognizer.retry_below, {RecognizerConfig().retry_below})")
    p.add_argument("--regions", default=None,
                   help="comma-separated plate regions whose characters and formats apply (us,eu,br,cn,generic; "
                        "default: formats.regions of --config, else all)")
    p.set_defaults(func=cmd_recognize)

    p = sub.add_parser("listen", help="print plate events and status from the broker")
    p.add_argument("--config", "-c", default="/etc/edge-ocr/config.yaml")
    p.add_argument("--device", default=None, help="one device id (default: all)")
    p.add_argument("--count", type=int, default=0, help="stop after this many events")
    p.add_argument("--timeout", type=float, default=0.0, help="stop after this many seconds")
    p.set_defaults(func=cmd_listen)

    p = sub.add_parser("tune", help="draw what the daemon sees on one frame")
    p.add_argument("--config", "-c", default="/etc/edge-ocr/config.yaml")
    p.add_argument("--out", default="snapshot.png")
    p.add_argument("--frames", type=int, default=5, help="frames to grab (motion needs two)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("run", help="run the daemon")
    p.add_argument("--config", "-c", default="/etc/edge-ocr/config.yaml")
    p.set_defaults(func=cmd_run)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging("WARNING" if args.cmd != "run" else "INFO")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
