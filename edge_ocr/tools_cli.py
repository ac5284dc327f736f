"""``edge-ocr listen`` (the reference MQTT consumer) and ``edge-ocr tune`` (what the camera sees)."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path

from .config import Config

log = logging.getLogger(__name__)


def listen(cfg: Config, device: str | None, count: int = 0, timeout_s: float = 0.0, out=None) -> int:
    """Print plate events and status of one device (or all under the prefix), one line each.

    Stops after ``count`` plate events or ``timeout_s`` seconds when given (0 = forever).
    Returns the number of plate events printed.
    """
    import paho.mqtt.client as mqtt

    from .stages import broker

    out = out or sys.stdout
    done = threading.Event()
    seen = [0]
    prefix = cfg.mqtt.topic_prefix
    dev = device or "+"

    def on_connect(client, _u, _f, reason, _p):
        if reason.is_failure:
            print(f"# broker refused the connection: {reason}", file=sys.stderr)
            return
        client.subscribe([(f"{prefix}/{dev}/plate", 1), (f"{prefix}/{dev}/status", 1)])

    def on_message(_c, _u, msg):
        kind = msg.topic.rsplit("/", 1)[-1]
        device_id = msg.topic.split("/")[-2]
        if kind == "status":
            print(f"{device_id} status {msg.payload.decode(errors='replace')}", file=out, flush=True)
            return
        try:
            ev = json.loads(msg.payload)
        except ValueError:
            print(f"{device_id} bad payload on {msg.topic}", file=out, flush=True)
            return
        print(f"{ev.get('time_utc')} {device_id} {ev.get('camera')} {ev.get('text')} "
              f"conf={ev.get('confidence')} votes={ev.get('votes')}", file=out, flush=True)
        seen[0] += 1
        if count and seen[0] >= count:
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    if cfg.mqtt.username:
        client.username_pw_set(cfg.mqtt.username, broker(cfg.mqtt, cfg.device_id).password_now())
    if cfg.mqtt.tls.enabled:
        client.tls_set(ca_certs=cfg.mqtt.tls.ca_file, certfile=cfg.mqtt.tls.cert_file, keyfile=cfg.mqtt.tls.key_file)
        client.tls_insecure_set(cfg.mqtt.tls.insecure)
    client.on_connect = on_connect
    client.on_message = on_message
    client.connect_async(cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.keepalive_s)
    client.loop_start()
    try:
        done.wait(timeout_s if timeout_s > 0 else None)
    except KeyboardInterrupt:
        pass
    finally:
        client.loop_stop()
        client.disconnect()
    return seen[0]


def tune(cfg: Config, out: Path, frames: int = 5) -> dict:
    """Grab a few frames from the configured source, draw the ROI, motion mask, candidates and
    their readings on the last one, and write it to ``out``. The frames are read exactly as the
    daemon reads them (``Stages.read_frame``). Returns what was drawn.

    Raises:
        StartupError: the config cannot run (model, camera backend...).
        RuntimeError: no frame came, or ``out`` cannot be written.
    """
    import cv2

    from .capture.frames import frame_record
    from .publish.mqtt_contract import plate_payload
    from .serve.overlay import annotate
    from .stages import FrameReader, check_startup, open_source

    stages = check_startup(cfg)
    src = open_source(cfg.camera)
    src.start()
    grabbed = []
    deadline = time.monotonic() + 15
    try:
        while len(grabbed) < frames and time.monotonic() < deadline:
            f = src.get(timeout=1.0)
            rec = frame_record(f) if f is not None else None
            if rec is not None:
                grabbed.append(rec)
            elif f is None and src.ended:
                break
    finally:
        src.stop()
    if not grabbed:
        raise RuntimeError(f"no frame from camera {cfg.camera.name} ({cfg.camera.type} {cfg.camera.uri})")
    rec = grabbed[-1]
    w, h = rec.size
    look = FrameReader(stages)
    for r in grabbed:
        look.moved(r)
    reads = look.read(rec)
    roi, gate = look.roi, look.motion
    assert roi is not None and gate is not None
    drawn = [{**plate_payload(p.reading, p.box, p.format_ok, p.region), "score": round(p.score, 3)} for p in reads]
    img = annotate(rec.image, roi.polygons(w, h),
                   [(p.box, f"{p.text} {p.confidence:.2f} s={p.score:.2f}") for p in reads], gate.last_mask)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), img):
        raise RuntimeError(f"cannot write {out}")
    return {"frame": [w, h], "motion_fraction": round(float(gate.last_fraction or 0.0), 4), "candidates": drawn}
