"""Wiring: source -> frame record -> motion -> reading core -> voting -> sink.

The only module that imports every stage. ``Pipeline`` turns frames into plate events and is
tested on its own (its clock is injectable); ``Daemon`` is the supervisor around it: it builds
the stages once (``stages.Stages``), runs the source, MQTT, the HTTP API, sd_notify and the
signals, and on SIGHUP swaps in a complete new set of stages.
"""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from . import __version__
from .capture.frames import frame_record, usable_image
from .capture.motion import MotionGate
from .capture.roi import Roi
from .config import Config, ConfigError, load_config
from .decide.tracks import Observation
from .decide.voting import VoteResult
from .publish.mqtt_contract import event_payload
from .read.reading import verdict, view_sharpness
from .sdnotify import Notifier
from .serve.overlay import annotate
from .stages import FrameReader, Stages, StartupError, check_startup, publisher, resolve_model
from .types import Box, EventSource, Frame, FrameRecord, PlateEvent, Reading

__all__ = ["Daemon", "LogSink", "Pipeline", "resolve_model", "run_daemon", "usable_image"]

log = logging.getLogger(__name__)


class Sink(Protocol):
    def publish_event(self, event: PlateEvent) -> object: ...


class LogSink:
    """Sink used when MQTT is off: one log line per event."""

    def publish_event(self, event: PlateEvent) -> None:
        log.info("plate %s conf=%.3f votes=%d camera=%s", event.text, event.confidence, event.votes, event.camera)


class Pipeline:
    """Frames in, plate events out. Holds no threads.

    Args:
        stages: the reading stages (``Stages.from_config``); replaced by ``reload``.
        sink: where events go.
        clock: monotonic time, s, for ``tick``/``flush`` when no frame brings its own (frames
            carry ``Frame.ts``); tests pass a fake one so videos need not play in real time.
        wall_clock: Unix time, s, for events whose frame time is unknown.
    """

    def __init__(self, stages: Stages, sink: Sink, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.stages = stages
        self.sink = sink
        self.clock = clock
        self.wall_clock = wall_clock
        self.frames = FrameReader(stages)
        self.counters = {"frames": 0, "gated": 0, "candidates": 0, "readings": 0, "rejected": 0, "events": 0,
                         "bad_frames": 0}
        self.latencies: deque[float] = deque(maxlen=500)
        # for the live view: the last frame only, drawn on request by whoever asks
        self.last_view: tuple[FrameRecord, list[tuple[Box, Reading]]] | None = None
        self.recent: deque[dict[str, Any]] = deque(maxlen=20)  # event payloads for /api/events

    @property
    def cfg(self) -> Config:
        return self.stages.cfg

    @property
    def roi(self) -> Roi | None:
        """The ROI of the current frame size (None before the first frame)."""
        return self.frames.roi

    @property
    def motion(self) -> MotionGate | None:
        return self.frames.motion

    def reload(self, stages: Stages) -> list[PlateEvent]:
        """Swap in a new set of stages. The old voter is flushed first (its pending plates become
        events now, once) and the new one takes over its memory of published plates, so a car
        in view during the reload is neither lost nor published twice. Returns the flushed
        events (also sent to the sink)."""
        old = self.stages
        events = self._emit(old.voter.flush(self.clock()))
        stages.voter.carry_over(old.voter)
        self.stages = stages
        self.frames = FrameReader(stages)  # ROI and motion gate from the new config, on the next frame
        return events

    def process(self, frame: Frame) -> list[PlateEvent]:
        """Read one frame; returns (and sends to the sink) the events it completes.

        A frame that is not a usable image (empty, NaN, absurd shape) is skipped and counted in
        ``bad_frames``; a new frame size (a camera reconfigured mid-stream) rebuilds ROI and motion.
        """
        voter = self.stages.voter
        rec = frame_record(frame)
        if rec is None:
            self.counters["bad_frames"] += 1
            if self.counters["bad_frames"] in (1, 10, 100) or self.counters["bad_frames"] % 1000 == 0:
                shape = getattr(frame.image, "shape", None)
                log.warning("bad frame skipped (shape %s, dtype %s); %d so far", shape,
                            getattr(frame.image, "dtype", type(frame.image).__name__), self.counters["bad_frames"])
            return self._emit(voter.tick(frame.ts))
        t0 = time.perf_counter()
        self.counters["frames"] += 1
        if not self.frames.moved(rec):
            self.counters["gated"] += 1
            self.last_view = (rec, [])
            return self._emit(voter.tick(rec.ts))
        reads = self.frames.read(rec)
        self.counters["candidates"] += len(reads)
        obs = []
        for p in reads:
            v = verdict(p, self.cfg.recognizer.min_confidence)
            self.counters["rejected"] += int(v == "no format")
            if v != "accept":
                continue
            self.counters["readings"] += 1
            # the crop, never the frame: an undecided track keeps up to 100 of these
            obs.append(Observation(p.reading, p.box, EventSource(p.crop, rec.wall, rec.size), p.score,
                                   view_sharpness(p.crop), p.region))
        self.last_view = (rec, [(p.box, p.reading) for p in reads])
        results = voter.update(rec.ts, obs) if obs else voter.tick(rec.ts)
        self.latencies.append((time.perf_counter() - t0) * 1000)
        return self._emit(results)

    def tick(self, now: float | None = None) -> list[PlateEvent]:
        """No frame this time: emit the tracks whose voting window has closed."""
        return self._emit(self.stages.voter.tick(self.clock() if now is None else now))

    def flush(self, now: float | None = None) -> list[PlateEvent]:
        """End every track (shutdown): emit the ones that qualify."""
        return self._emit(self.stages.voter.flush(self.clock() if now is None else now))

    def _emit(self, results: list[VoteResult]) -> list[PlateEvent]:
        events = []
        for r in results:
            ev = self.stages.events.event(r, self.wall_clock)
            # Stored first (the MQTT sink commits to its outbox before returning): an event that is
            # logged or counted survives a SIGKILL right after the log line. One the disk refused
            # waits in the sink's memory; the sink logs it as produced once it is stored.
            if self.sink.publish_event(ev) is False:
                log.warning("plate %s not stored yet (event_id %s): held in memory until the outbox takes it",
                            ev.text, ev.event_id)
                continue
            self.counters["events"] += 1
            self.recent.appendleft(event_payload(ev, self.cfg.device_id))
            log.info("event %s conf=%.3f votes=%d reason=%s known=%s", ev.text, ev.confidence, ev.votes, r.reason,
                     f"{ev.known.name!r}/{ev.known.kind}/{ev.known.distance}" if ev.known else "-")
            events.append(ev)
        return events

    def snapshot_jpeg(self, quality: int = 80) -> bytes | None:
        """The last frame with ROI, motion and this frame's readings drawn, as JPEG."""
        view, roi, motion = self.last_view, self.roi, self.motion
        if view is None or roi is None:
            return None
        rec, seen = view
        drawn = [(box, f"{r.text} {r.confidence:.2f}" if r.text else "") for box, r in seen]
        w, h = rec.size
        img = annotate(rec.image, roi.polygons(w, h), drawn, motion.last_mask if motion else None)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        return buf.tobytes() if ok else None

    def stats(self) -> dict[str, Any]:
        """Counters and latency percentiles; latency is None until a frame was read (not 0.0)."""
        if not self.latencies:
            return {**self.counters, "latency_p50_ms": None, "latency_p95_ms": None}
        lat = np.array(self.latencies)
        return {**self.counters, "latency_p50_ms": round(float(np.percentile(lat, 50)), 2),
                "latency_p95_ms": round(float(np.percentile(lat, 95)), 2)}


def _cpu_temp() -> float | None:
    try:
        return int(Path("/sys/class/thermal/thermal_zone0/temp").read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None


def _load(config_path: str) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise StartupError(*(f"{exc.source}: {p}" for p in exc.problems)) from None


class Daemon:
    """The supervisor: one source, the sinks, the HTTP API and the loop around one ``Pipeline``.

    ``open`` builds everything or raises StartupError (nothing left running); ``run`` loops
    until ``stop`` is set or a finite source ends; ``request_reload`` (SIGHUP) makes the loop
    build a new set of stages and swap it in.
    """

    def __init__(self, config_path: str, stop: threading.Event,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config_path = config_path
        self.clock = clock
        self.stop = stop
        self.reload_requested = threading.Event()
        self.notifier = Notifier()
        self.started = time.monotonic()
        self.source: Any = None
        self.publisher: Any = None
        self.http: Any = None
        self.pipeline: Pipeline | None = None

    @classmethod
    def open(cls, config_path: str, stop: threading.Event, clock: Callable[[], float] = time.monotonic) -> Daemon:
        """Load and check the config, load the model, open MQTT and the HTTP API (the camera is
        started by ``run``). ``clock`` is the pipeline's (tests). Raises StartupError."""
        from .capture.sources import SourceUnavailable
        from .stages import open_source

        d = cls(config_path, stop, clock)
        cfg = _load(config_path)
        logging.getLogger().setLevel(cfg.log_level)
        stages = check_startup(cfg)
        try:
            d.source = open_source(cfg.camera)
        except SourceUnavailable as exc:
            raise StartupError(f"camera.type: {exc}") from None
        try:
            sink = d._open_mqtt(cfg)
            d.pipeline = Pipeline(stages, sink, clock)
            if cfg.http.enabled:
                d._open_http(cfg)
        except BaseException:
            d.close()
            raise
        return d

    def _open_mqtt(self, cfg: Config) -> Sink:
        if not cfg.mqtt.enabled:
            return LogSink()
        from .publish.outbox import storage_problem

        try:
            self.publisher = publisher(cfg, __version__, stats_fn=self.stats)
        except ssl.SSLError as exc:
            raise StartupError(f"mqtt.tls: {exc}") from None
        except (OSError, sqlite3.Error) as exc:
            kind, line = storage_problem(exc, cfg.outbox.path)
            error = TransientStartupError if kind in ("full", "read-only") else StartupError
            raise error(f"outbox.path: cannot open {cfg.outbox.path}: {line}") from None
        self.publisher.start()
        return self.publisher  # type: ignore[no-any-return]

    def _open_http(self, cfg: Config) -> None:
        from .serve.http_api import HttpApi

        pipeline = self.pipeline
        assert pipeline is not None
        # the reader of whatever stage set is current: a reload reaches uploads too
        api = HttpApi(cfg.http.host, cfg.http.port, cfg.http.token, int(cfg.http.max_body_mb * 1024 * 1024),
                      read=lambda image, crop: pipeline.stages.still.read(image, crop), status=self.stats,
                      snapshot=pipeline.snapshot_jpeg, events=lambda: list(pipeline.recent),
                      max_reads=cfg.http.max_concurrent_reads)
        try:
            api.start()
        except OSError as exc:
            api.server.server_close()
            raise StartupError(f"http.port: cannot listen on {cfg.http.host}:{cfg.http.port}: "
                               f"{exc.strerror or exc}") from None
        self.http = api

    def stats(self) -> dict[str, Any]:
        s = self.pipeline.stats() if self.pipeline is not None else {}
        if self.publisher is not None and "events" in s:  # events the disk took late are produced too
            s["events"] += self.publisher.stats()["stored_late"]
        src = self.source.stats() if self.source is not None else None
        return {**s, "dropped_frames": src.dropped if src else 0, "skipped_frames": src.skipped if src else 0,
                "uptime_s": round(time.monotonic() - self.started, 1), "cpu_temp_c": _cpu_temp()}

    def request_reload(self) -> None:
        self.reload_requested.set()

    def reload(self) -> bool:
        """Build a complete new set of stages from the config file and swap it in; on any
        problem log it and keep the running set. True if swapped."""
        assert self.pipeline is not None
        old = self.pipeline.stages
        try:
            cfg = _load(self.config_path)
            stages = check_startup(cfg, old.recognizer, old.cfg.recognizer)
        except StartupError as exc:
            for line in exc.lines:
                log.error("reload rejected, keeping old config: %s", line)
            return False
        logging.getLogger().setLevel(cfg.log_level)
        self.pipeline.reload(stages)
        restart = _changed_keys(old.cfg, cfg, ("camera", "mqtt", "outbox", "http", "device_id"))
        log.info("config reloaded from %s", self.config_path)
        if restart:
            log.warning("config: %s changed; these take effect only after a restart (systemctl restart edge-ocr)",
                        ", ".join(restart))
        return True

    def run(self) -> int:
        """The loop; returns the exit code (0)."""
        assert self.pipeline is not None and self.source is not None
        pipeline, notifier, cfg = self.pipeline, self.notifier, self.pipeline.cfg
        self.source.start()
        notifier.ready(f"reading {cfg.camera.type} {cfg.camera.uri or ''}")
        info = pipeline.stages.recognizer.info
        log.info("ready: camera=%s model=%s v%s mqtt=%s", cfg.camera.name, info.name, info.version,
                 f"{cfg.mqtt.host}:{cfg.mqtt.port}" if cfg.mqtt.enabled else "off")
        last_ping = last_status = 0.0
        ping_every = notifier.watchdog_s / 2 if notifier.watchdog_s else 5.0
        try:
            while not self.stop.is_set():
                frame = self.source.get(timeout=0.5)
                now = pipeline.clock()
                if frame is not None:
                    pipeline.process(frame)
                else:
                    pipeline.tick(now)
                    if self.source.ended:
                        log.info("source ended; stopping")
                        break
                if now - last_ping >= ping_every:
                    notifier.watchdog()  # only from this loop: a hung pipeline stops the pings
                    last_ping = now
                if now - last_status >= 10:
                    s = self.stats()
                    notifier.status(f"frames={s.get('frames', 0)} events={s.get('events', 0)} "
                                    f"drops={s['dropped_frames']} p50={s.get('latency_p50_ms', 0)}ms")
                    last_status = now
                if self.reload_requested.is_set():
                    self.reload_requested.clear()
                    notifier.reloading()
                    self.reload()
                    notifier.ready()
        finally:
            notifier.stopping()
            pipeline.flush()
            self.close()
            log.info("stopped: %s", json.dumps(self.stats()))
        return 0

    def close(self) -> None:
        """Stop whatever was opened (safe to call on a half-opened daemon)."""
        if self.source is not None:
            self.source.stop()
        if self.http is not None:
            self.http.stop()
        if self.publisher is not None:
            self.publisher.stop(timeout=5.0)


EX_CONFIG = 2
EX_TEMPFAIL = 75  # sysexits.h: "try again later"


class TransientStartupError(StartupError):
    """The machine, not the config, stops the start (a full or read-only disk): it may pass."""


def _changed_keys(old: Config, new: Config, sections: tuple[str, ...]) -> list[str]:
    """The dotted keys under ``sections`` whose values differ (names only: values may be secrets)."""
    def flat(value: Any, prefix: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            return {prefix: value}
        return {k: v for key, sub in value.items() for k, v in flat(sub, f"{prefix}.{key}").items()}

    a = flat(old.model_dump(include=set(sections)), "")
    b = flat(new.model_dump(include=set(sections)), "")
    return sorted(k[1:] for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def run_daemon(config_path: str, stop_event: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop_event``), a finished file source, or a fatal error.

    Exit codes: 0 clean stop; 2 (``EX_CONFIG``) anything in the config or the files it names
    that stops it starting (config, model, camera backend, MQTT files, HTTP port), logged as one
    line naming the key or file, not restarted by systemd (``RestartPreventExitStatus=2``); 75
    (``EX_TEMPFAIL``) a machine problem that may pass (the outbox's disk full or read-only),
    restarted by systemd after ``RestartSec=``. A broker that is down is no exit: the daemon
    starts and reconnects.
    """
    stop = stop_event or threading.Event()
    try:
        daemon = Daemon.open(config_path, stop)
    except StartupError as exc:
        for line in exc.lines:
            log.error("%s", line)
        return EX_TEMPFAIL if isinstance(exc, TransientStartupError) else EX_CONFIG
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGHUP, lambda *_: daemon.request_reload())
    return daemon.run()
