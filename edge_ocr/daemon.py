"""Wiring: source -> motion -> ROI/localiser -> recogniser -> formats -> voting -> sink.

The only module that imports every stage. ``Pipeline`` turns frames into plate events and is
tested on its own; ``run_daemon`` adds the source thread, MQTT, sd_notify, signals and stats.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from . import __version__
from .config import Config, ConfigError, load_config
from .formats import FormatRules
from .localize import Localizer, fixed_candidates
from .motion import MotionGate
from .mqtt_contract import utc_iso
from .overlay import annotate
from .recognizer import ModelError, Recognizer
from .roi import Roi
from .sdnotify import Notifier
from .types import Box, Frame, PlateEvent, Reading
from .voting import Observation, Voter, VoteResult

log = logging.getLogger(__name__)
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class Sink(Protocol):
    def publish_event(self, event: PlateEvent) -> object: ...


class LogSink:
    """Sink used when MQTT is off: one log line per event."""

    def publish_event(self, event: PlateEvent) -> None:
        log.info("plate %s conf=%.3f votes=%d camera=%s", event.text, event.confidence, event.votes, event.camera)


def resolve_model(path: str) -> Path:
    """A relative model path is tried from the working directory, then the project root."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    return PACKAGE_ROOT / p


MIN_SIDE, MAX_SIDE = 16, 16384


def usable_image(image: Any) -> npt.NDArray[np.uint8] | None:
    """A frame as 8-bit BGR, or None if it is not an image worth reading: empty, a side under
    16 or over 16384 px, an odd channel count, or a float frame that is not all finite.
    Grey, BGRA and 16-bit frames are converted."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        return None
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE or max(h, w) > MAX_SIDE:
        return None
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels not in (1, 3, 4):
        return None
    img = image
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype.kind == "f":
        if not np.isfinite(img).all():
            return None
        img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        return None
    if channels == 1:
        return cv2.cvtColor(img.reshape(h, w), cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img if img.flags.c_contiguous else np.ascontiguousarray(img)


class Pipeline:
    """Frames in, plate events out. Holds no threads; the clock comes with each frame."""

    def __init__(self, cfg: Config, recognizer: Recognizer, sink: Sink) -> None:
        self.cfg = cfg
        self.rec = recognizer
        self.sink = sink
        self.roi: Roi | None = None
        self.motion: MotionGate | None = None
        self.localizer = Localizer.from_config(cfg.localizer)
        self.formats = FormatRules.from_config(cfg.formats)
        self.patterns = self.formats.decoder_patterns(strict_only=True) if cfg.recognizer.decoder == "beam" else None
        self.retry_below = cfg.recognizer.retry_below if cfg.recognizer.retry_live else 0.0
        self.voter = Voter.from_config(cfg.voting)
        self.counters = {"frames": 0, "gated": 0, "candidates": 0, "readings": 0, "rejected": 0, "events": 0,
                         "bad_frames": 0}
        self._size: tuple[int, int] = (0, 0)
        self.latencies: deque[float] = deque(maxlen=500)
        # for the live view: references only, drawn on request by whoever asks
        self.last_view: tuple[Frame, list[tuple[Box, Reading]]] | None = None
        self.recent: deque[dict[str, Any]] = deque(maxlen=20)

    def _setup(self, frame: Frame) -> None:
        h, w = frame.image.shape[:2]
        if self.roi is not None:
            log.info("frame size changed to %dx%d: ROI and motion reset", w, h)
        self.roi = Roi.from_config(self.cfg.roi, (w, h))
        self.motion = MotionGate.from_config(self.cfg.motion, self.roi)
        self._size = (h, w)

    def process(self, frame: Frame) -> list[PlateEvent]:
        """Read one frame; returns (and sends to the sink) the events it completes.

        A frame that is not a usable image (empty, NaN, absurd shape) is skipped and counted in
        ``bad_frames``; a new frame size (a camera reconfigured mid-stream) rebuilds ROI and motion.
        """
        image = usable_image(frame.image)
        if image is None:
            self.counters["bad_frames"] += 1
            if self.counters["bad_frames"] in (1, 10, 100) or self.counters["bad_frames"] % 1000 == 0:
                shape = getattr(frame.image, "shape", None)
                log.warning("bad frame skipped (shape %s, dtype %s); %d so far", shape,
                            getattr(frame.image, "dtype", type(frame.image).__name__), self.counters["bad_frames"])
            return self._emit(self.voter.tick(frame.ts), None)
        if image is not frame.image:
            frame = Frame(frame.ts, frame.wall, image, frame.index)
        if self.roi is None or image.shape[:2] != self._size:
            self._setup(frame)
        assert self.roi is not None and self.motion is not None
        t0 = time.perf_counter()
        self.counters["frames"] += 1
        if not self.motion.update(frame.image, frame.ts):
            self.counters["gated"] += 1
            self.last_view = (frame, [])
            return self._emit(self.voter.tick(frame.ts), frame)
        if self.cfg.roi.fixed_box:
            cands = fixed_candidates(frame.image, self.roi)
        else:
            cands = self.localizer.find(frame.image, self.roi)
        if not self.cfg.roi.fixed_box:
            # a plate cut by the frame edge reads as a plausible shorter plate ("5AN" for
            # "RK115AN"); wait for the frames where it is whole
            fh, fw = frame.image.shape[:2]
            cands = [c for c in cands if c.box[0] > 1 and c.box[1] > 1
                     and c.box[0] + c.box[2] < fw - 1 and c.box[1] + c.box[3] < fh - 1]
        self.counters["candidates"] += len(cands)
        obs = []
        seen: list[tuple[Box, Reading]] = []
        if cands:
            # only characters the enabled regions' plates can hold (no Hanzi on a gate set to [br])
            readings = self.rec.recognize([c.crop for c in cands], self.patterns, self.retry_below,
                                          allowed=self.formats.charset())
            seen = [(c.box, r) for c, r in zip(cands, readings)]
            for cand, rd in zip(cands, readings):
                if not rd.text or rd.confidence < self.cfg.recognizer.min_confidence:
                    continue
                text = self.formats.normalize(rd.text)
                if text is None:
                    self.counters["rejected"] += 1
                    continue
                if text != rd.text and len(text) == len(rd.text):
                    rd = type(rd)(text, rd.confidence, rd.char_confidences)
                self.counters["readings"] += 1
                obs.append(Observation(rd, cand.box, (cand.crop, frame)))
        self.last_view = (frame, seen)
        results = self.voter.update(frame.ts, obs) if obs else self.voter.tick(frame.ts)
        self.latencies.append((time.perf_counter() - t0) * 1000)
        return self._emit(results, frame)

    def flush(self, now: float, frame: Frame | None = None) -> list[PlateEvent]:
        return self._emit(self.voter.flush(now), frame)

    def _emit(self, results: list[VoteResult], frame: Frame | None) -> list[PlateEvent]:
        events = []
        for r in results:
            crop, src = r.payload if r.payload else (None, frame)
            h, w = src.image.shape[:2] if src is not None else (0, 0)
            crop_jpeg = None
            if self.cfg.mqtt.include_crop != "off" and crop is not None:
                ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
                crop_jpeg = buf.tobytes() if ok else None
            wall = src.wall if src is not None else time.time()
            ev = PlateEvent(
                event_id=uuid.uuid4().hex,
                text=r.text,
                confidence=round(float(r.confidence), 4),
                char_confidences=tuple(round(float(c), 4) for c in r.char_confidences),
                camera=self.cfg.camera.name,
                time_utc=utc_iso(wall),
                frame_size=(w, h),
                box=tuple(int(v) for v in (r.box or (0, 0, 0, 0))),  # type: ignore[arg-type]
                model=self.rec.info.name,
                model_version=self.rec.info.version,
                votes=r.votes,
                region=self.formats.region_of(r.text, _aspect(r.box)),
                crop_jpeg=crop_jpeg,
            )
            # Stored first (the MQTT sink commits to its outbox before returning): an event that is
            # logged or counted survives a SIGKILL right after the log line.
            self.sink.publish_event(ev)
            self.counters["events"] += 1
            self.recent.appendleft({"text": ev.text, "confidence": ev.confidence, "time_utc": ev.time_utc,
                                    "votes": ev.votes, "region": ev.region, "box": list(ev.box)})
            log.info("event %s conf=%.3f votes=%d reason=%s", ev.text, ev.confidence, ev.votes, r.reason)
            events.append(ev)
        return events

    def tick(self, now: float) -> list[PlateEvent]:
        """No frame this time: emit the tracks whose voting window has closed."""
        return self._emit(self.voter.tick(now), None)

    def snapshot_jpeg(self, quality: int = 80) -> bytes | None:
        """The last frame with ROI, motion and this frame's readings drawn, as JPEG."""
        view, roi, motion = self.last_view, self.roi, self.motion
        if view is None or roi is None:
            return None
        frame, seen = view
        drawn = [(box, f"{r.text} {r.confidence:.2f}" if r.text else "") for box, r in seen]
        h, w = frame.image.shape[:2]
        img = annotate(frame.image, roi.polygons(w, h), drawn, motion.last_mask if motion else None)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        return buf.tobytes() if ok else None

    def stats(self) -> dict[str, Any]:
        """Counters and latency percentiles; latency is None until a frame was read (not 0.0)."""
        if not self.latencies:
            return {**self.counters, "latency_p50_ms": None, "latency_p95_ms": None}
        lat = np.array(self.latencies)
        return {**self.counters, "latency_p50_ms": round(float(np.percentile(lat, 50)), 2),
                "latency_p95_ms": round(float(np.percentile(lat, 95)), 2)}


def _aspect(box: Box | None) -> float | None:
    """Width/height of a plate box: the evidence ``FormatRules.region_of`` weighs when several
    regions share the reading's layout."""
    return box[2] / box[3] if box is not None and box[3] > 0 else None


def _cpu_temp() -> float | None:
    try:
        return int(Path("/sys/class/thermal/thermal_zone0/temp").read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None


def _start_http(cfg: Config, rec: Recognizer, pipeline: Pipeline, stats) -> Any:
    """The HTTP API on its own thread, or None (logged) if it cannot bind."""
    from .http_api import HttpApi
    from .still import StillReader

    reader = StillReader(rec, Localizer.from_config(cfg.localizer), FormatRules.from_config(cfg.formats),
                         cfg.recognizer.min_confidence, cfg.recognizer.retry_below)
    api = HttpApi(cfg.http.host, cfg.http.port, cfg.http.token, int(cfg.http.max_body_mb * 1024 * 1024),
                  read=reader.read, status=stats, snapshot=pipeline.snapshot_jpeg,
                  events=lambda: list(pipeline.recent), max_reads=cfg.http.max_concurrent_reads)
    try:
        api.start()
    except OSError as exc:
        log.error("http.port: cannot listen on %s:%d: %s", cfg.http.host, cfg.http.port, exc.strerror or exc)
        api.server.server_close()
        return None
    return api


def run_daemon(config_path: str, stop_event: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop_event``), a finished file source, or a fatal error.

    Exit codes: 0 clean stop, 2 bad config or model (systemd should not restart on these).
    """
    from .publish import MqttPublisher
    from .sources import open_source

    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        for p in exc.problems:
            log.error("%s: %s", exc.source, p)
        return 2
    logging.getLogger().setLevel(cfg.log_level)
    notifier = Notifier()
    stop = stop_event or threading.Event()
    reload_requested = threading.Event()
    started = time.monotonic()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGHUP, lambda *_: reload_requested.set())

    try:
        rec = Recognizer(resolve_model(cfg.recognizer.model), cfg.recognizer.threads, cfg.recognizer.graph_optimization,
                         cfg.recognizer.decoder, cfg.recognizer.beam_width, cfg.recognizer.batch_size,
                         format_margin=cfg.recognizer.format_margin)
    except ModelError as exc:
        log.error("%s", exc)
        return 2

    source = open_source(cfg.camera)
    pipeline_box: list[Pipeline] = []

    def stats() -> dict[str, Any]:
        s = pipeline_box[0].stats() if pipeline_box else {}
        src = source.stats()
        return {**s, "dropped_frames": src.dropped, "skipped_frames": src.skipped,
                "uptime_s": round(time.monotonic() - started, 1), "cpu_temp_c": _cpu_temp()}

    publisher = None
    sink: Sink = LogSink()
    if cfg.mqtt.enabled:
        publisher = MqttPublisher.from_config(cfg, __version__, stats_fn=stats,
                                              reconnect_min_s=cfg.camera.reconnect_min_s)
        publisher.start()
        sink = publisher
    pipeline = Pipeline(cfg, rec, sink)
    pipeline_box.append(pipeline)
    http = None
    if cfg.http.enabled:
        http = _start_http(cfg, rec, pipeline, stats)
        if http is None:
            if publisher is not None:
                publisher.stop(timeout=2.0)
            return 2
    source.start()
    notifier.ready(f"reading {cfg.camera.type} {cfg.camera.uri or ''}")
    log.info("ready: camera=%s model=%s v%s mqtt=%s", cfg.camera.name, rec.info.name, rec.info.version,
             f"{cfg.mqtt.host}:{cfg.mqtt.port}" if cfg.mqtt.enabled else "off")
    last_ping = last_status = 0.0
    ping_every = notifier.watchdog_s / 2 if notifier.watchdog_s else 5.0
    try:
        while not stop.is_set():
            frame = source.get(timeout=0.5)
            now = time.monotonic()
            if frame is not None:
                pipeline.process(frame)
            else:
                pipeline.tick(now)
                if source.ended:
                    log.info("source ended; stopping")
                    break
            if now - last_ping >= ping_every:
                notifier.watchdog()  # only from this loop: a hung pipeline stops the pings
                last_ping = now
            if now - last_status >= 10:
                s = stats()
                notifier.status(f"frames={s.get('frames', 0)} events={s.get('events', 0)} "
                                f"drops={s['dropped_frames']} p50={s.get('latency_p50_ms', 0)}ms")
                last_status = now
            if reload_requested.is_set():
                reload_requested.clear()
                notifier.reloading()
                try:
                    new = load_config(config_path)
                    pipeline.cfg = cfg = new  # thresholds, voting, formats take effect now
                    pipeline.voter = Voter.from_config(new.voting)
                    pipeline.formats = FormatRules.from_config(new.formats)
                    pipeline.roi = None
                    log.info("config reloaded from %s (camera/MQTT changes need a restart)", config_path)
                except ConfigError as exc:
                    for p in exc.problems:
                        log.error("reload rejected, keeping old config: %s: %s", exc.source, p)
                notifier.ready()
    finally:
        notifier.stopping()
        pipeline.flush(time.monotonic())
        source.stop()
        if http is not None:
            http.stop()
        if publisher is not None:
            publisher.stop(timeout=5.0)
        log.info("stopped: %s", json.dumps(stats()))
    return 0
