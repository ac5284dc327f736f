"""The reading stages built from one config, in one place, and the start-up checks.

The one mapping from config sections to the stages' plain parameters (``format_rules``,
``plate_reader``, ``region_of_interest``, ``motion_gate``, ``voter``, ``known_plates``,
``load_localizer``, ``load_recognizer``, ``open_source``, and for MQTT ``broker``,
``publishing``, ``outbox_settings``, ``mqtt_publisher``, ``publisher``): no stage imports ``config.py``.
``Stages.from_config`` builds the whole set every entry point reads with (recogniser, localiser,
reading core with its re-read policy, voter, ROI, the HTTP API's still reader, the event maker
with the known plates); on a reload the daemon builds a new set and swaps it in, and if building
fails the old set keeps running. ``check_startup`` is everything ``run`` checks before it opens
the camera, and ``check-config`` calls the same function, so the two accept exactly the same
files. Every failure is a ``StartupError`` with one line naming the config key or file.
"""

from __future__ import annotations

import importlib.util
import logging
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .capture.motion import MotionGate
from .capture.roi import Roi
from .config import (
    CameraConfig,
    Config,
    FormatsConfig,
    HttpConfig,
    KnownPlatesConfig,
    LocalizerConfig,
    MotionConfig,
    MqttConfig,
    OutboxConfig,
    RecognizerConfig,
    RoiConfig,
    VotingConfig,
)
from .decide.known_plates import KnownPlates
from .decide.voting import Voter
from .events import EventMaker
from .find.detector import LearntLocalizer, PlateDetector
from .find.localize import Localizer
from .read.formats import FormatRules
from .read.reading import PlateRead, PlateReader
from .read.recognizer import Recognizer
from .read.session import ModelError
from .serve.still import StillReader
from .types import FrameRecord

if TYPE_CHECKING:  # the sources (and their image decoder) load only when a camera is opened, paho with MQTT
    from .capture.sources import FrameSource
    from .publish.mqtt_client import Broker
    from .publish.outbox import OutboxSettings
    from .publish.publish import MqttPublisher, Publishing

log = logging.getLogger(__name__)
PACKAGE_ROOT = Path(__file__).resolve().parent.parent

# what building a Recognizer depends on; the other recognizer keys are read per call
_MODEL_KEYS = ("model", "threads", "graph_optimization", "decoder", "beam_width", "batch_size", "format_margin")
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class StartupError(Exception):
    """The daemon cannot start (or reload) with this config. ``lines`` holds one line per
    problem, each naming the config key or file."""

    def __init__(self, *lines: str) -> None:
        self.lines = list(lines)
        super().__init__("; ".join(lines))


def resolve_model(path: str) -> Path:
    """A relative model path is tried from the working directory, then the project root."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    return PACKAGE_ROOT / p


def load_recognizer(cfg: RecognizerConfig) -> Recognizer:
    """The recogniser the ``recognizer`` section describes. Raises StartupError."""
    try:
        return Recognizer(resolve_model(cfg.model), cfg.threads, cfg.graph_optimization, cfg.decoder,
                          cfg.beam_width, cfg.batch_size, format_margin=cfg.format_margin)
    except ModelError as exc:
        raise StartupError(f"recognizer.model: {exc}") from None


def load_localizer(cfg: LocalizerConfig) -> Localizer | LearntLocalizer:
    """The localiser the ``localizer`` section describes. Raises StartupError."""
    if cfg.type == "classic":
        return Localizer(cfg.max_candidates, cfg.min_height, cfg.min_aspect, cfg.max_aspect, cfg.setting("min_score"),
                         cfg.setting("work_width"))
    path = resolve_model(cfg.model)
    if not path.is_file():
        raise StartupError(f"localizer.model: {path}: no such file")
    try:
        det = PlateDetector(path, cfg.setting("work_width"), cfg.setting("min_score"), cfg.max_candidates)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises several private exception types
        raise StartupError(f"localizer.model: {path}: cannot load ({type(exc).__name__}: {exc})") from None
    return LearntLocalizer(det)


# ----------------------------------------------------------------------------- config -> stages
# The one mapping from config sections to the stages' plain parameters: the stages themselves
# know nothing of config.py, and every range and default is the schema's alone.

def format_rules(cfg: FormatsConfig) -> FormatRules:
    """The plate formats the ``formats`` section enables."""
    return FormatRules(cfg.regions, cfg.extra, cfg.enabled, cfg.mend_below)


def plate_reader(cfg: Config, recognizer: Recognizer, localizer: Localizer | LearntLocalizer) -> PlateReader:
    """The reading core from the ``formats`` and ``recognizer`` sections, with the loaded model
    and localiser (``load_localizer``): the re-read policy is decided here, once."""
    return PlateReader(recognizer, localizer, format_rules(cfg.formats), use_patterns=cfg.recognizer.decoder == "beam",
                       retry_below=cfg.recognizer.retry_below)


def region_of_interest(cfg: RoiConfig) -> Roi:
    """The ``roi`` section's polygons, not yet tied to a frame size."""
    return Roi(cfg.polygons, cfg.units, fixed_box=cfg.fixed_box)


def motion_gate(cfg: MotionConfig, roi: Roi | None = None) -> MotionGate:
    """The ``motion`` section's gate over ``roi``."""
    return MotionGate(cfg.enabled, cfg.pixel_delta, cfg.min_area, cfg.width, cfg.hold_s, roi)


def known_plates(cfg: KnownPlatesConfig) -> KnownPlates:
    """The ``known_plates`` section's entries, ready to match published plates against."""
    return KnownPlates([(e.name, e.plates) for e in cfg.entries], cfg.max_edits, cfg.lookalikes)


def voter(cfg: VotingConfig) -> Voter:
    """The ``voting`` section's voter."""
    return Voter(cfg.window_s, cfg.min_votes, cfg.min_confidence, cfg.repeat_after_s, min_seen=cfg.min_seen)


def open_source(cfg: CameraConfig, rng: random.Random | None = None,
                picamera2_factory: Callable[[], Any] | None = None) -> FrameSource:
    """Build (not start) the source the ``camera`` section describes.

    Args:
        cfg: the camera section.
        rng: random source for back-off jitter (tests).
        picamera2_factory: makes the ``Picamera2`` object (tests); default imports picamera2.

    Raises:
        SourceUnavailable: picamera2 configured but not installed.
    """
    from .capture.sources import FolderSource, Picamera2Source, VideoCaptureSource

    common: dict[str, Any] = {"name": cfg.name, "reconnect_min_s": cfg.reconnect_min_s,
                              "reconnect_max_s": cfg.reconnect_max_s, "rng": rng}
    if cfg.type == "picamera2":
        return Picamera2Source(cfg.width, cfg.height, cfg.fps, factory=picamera2_factory, **common)
    if cfg.type == "folder":
        return FolderSource(cfg.uri, cfg.fps, cfg.loop, **common)
    return VideoCaptureSource(cfg.uri, cfg.type, cfg.width, cfg.height, cfg.fps, cfg.loop, **common)


def broker(cfg: MqttConfig, device_id: str) -> Broker:
    """The broker the ``mqtt`` section names, and how to log in (the password file's path: it is
    read again before every connection attempt)."""
    from .publish.mqtt_client import Broker

    tls = cfg.tls
    return Broker(cfg.host, cfg.port, cfg.client_id or f"edge-ocr-{device_id}", cfg.keepalive_s, cfg.reconnect_min_s,
                  cfg.reconnect_max_s, cfg.username, cfg.password, cfg.password_file, tls.enabled, tls.ca_file,
                  tls.cert_file, tls.key_file, tls.insecure)


def publishing(cfg: MqttConfig, device_id: str, configuration_url: str | None = None) -> Publishing:
    """What the ``mqtt`` section publishes, under ``device_id``; ``configuration_url`` (see
    :func:`configuration_url`) is linked from Home Assistant's device page."""
    from .publish.publish import Publishing

    return Publishing(device_id, cfg.topic_prefix, cfg.qos, cfg.include_crop, cfg.stats_interval_s, cfg.max_refusals,
                      cfg.discovery.enabled, cfg.discovery.prefix, cfg.discovery.device_name, configuration_url)


def outbox_settings(cfg: OutboxConfig) -> OutboxSettings:
    """The ``outbox`` section's file and bounds."""
    from .publish.outbox import OutboxSettings

    return OutboxSettings(cfg.path, cfg.max_events, cfg.max_age_h, cfg.max_held)


def configuration_url(http: HttpConfig, override: str | None = None) -> str | None:
    """The web page's address for Home Assistant's device page: ``override`` if given, else
    ``http://<host>:<port>/`` when the HTTP API is on (this machine's name for a wildcard bind),
    else None. None too for ``http.port: 0``, whose port is only known once bound."""
    if override:
        return override
    if not http.enabled or http.port == 0:
        return None
    host = socket.gethostname() if http.host in _WILDCARD_HOSTS else http.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{http.port}/"


def mqtt_publisher(mqtt: MqttConfig, outbox: OutboxConfig, device_id: str, sw_version: str, *,
                   configuration_url: str | None = None, **kwargs: Any) -> MqttPublisher:
    """A publisher (not started) for the ``mqtt`` and ``outbox`` sections; ``kwargs`` go to
    ``MqttPublisher`` (``stats_fn``, ``on_connection_change``).

    Raises:
        OSError: the outbox directory, password file or a TLS file cannot be read.
        ssl.SSLError: a TLS file is not a certificate or key.
    """
    from .publish.publish import MqttPublisher

    return MqttPublisher(broker(mqtt, device_id), outbox_settings(outbox),
                         publishing(mqtt, device_id, configuration_url), sw_version, **kwargs)


def publisher(cfg: Config, sw_version: str, **kwargs: Any) -> MqttPublisher:
    """The daemon's publisher for the whole config: ``mqtt``, ``outbox``, ``device_id``, and
    ``http`` for the device page's link (``enabled`` is the caller's business)."""
    url = configuration_url(cfg.http, cfg.mqtt.discovery.configuration_url)
    return mqtt_publisher(cfg.mqtt, cfg.outbox, cfg.device_id, sw_version, configuration_url=url, **kwargs)


def _readable(key: str, path: str | None) -> str | None:
    if not path:
        return None
    try:
        with open(path, "rb"):
            return None
    except OSError as exc:
        return f"{key}: cannot read {path}: {exc.strerror or exc}"


def check_environment(cfg: Config) -> None:
    """What the config needs of this machine beyond the model: the camera backend's package and
    the files MQTT reads (password, TLS). Raises StartupError listing every problem."""
    problems = []
    if cfg.camera.type == "picamera2" and importlib.util.find_spec("picamera2") is None:
        problems.append("camera.type: picamera2 needs the picamera2 package: on Raspberry Pi OS "
                        "`sudo apt install python3-picamera2` (or `pip install edge-ocr[pi]`)")
    if cfg.mqtt.enabled:
        problems += [p for p in (
            _readable("mqtt.password_file", cfg.mqtt.password_file),
            _readable("mqtt.tls.ca_file", cfg.mqtt.tls.ca_file if cfg.mqtt.tls.enabled else None),
            _readable("mqtt.tls.cert_file", cfg.mqtt.tls.cert_file if cfg.mqtt.tls.enabled else None),
            _readable("mqtt.tls.key_file", cfg.mqtt.tls.key_file if cfg.mqtt.tls.enabled else None),
        ) if p]
    if problems:
        raise StartupError(*problems)


@dataclass(frozen=True)
class Stages:
    """One complete set of reading stages for one config.

    ``reader`` reads stills (``still``, the HTTP API; ``recognize``), re-reading unsure crops;
    ``live_reader`` is the same reader with the live pipeline's re-read policy; ``roi`` is not yet tied to a frame size (the pipeline does that per frame
    size, with the motion gate); ``voter`` holds the tracks of the plates in view.
    """

    cfg: Config
    recognizer: Recognizer
    reader: PlateReader
    voter: Voter
    roi: Roi
    still: StillReader
    live_reader: PlateReader
    events: EventMaker

    @classmethod
    def from_config(cls, cfg: Config, recognizer: Recognizer | None = None,
                    recognizer_cfg: RecognizerConfig | None = None) -> Stages:
        """Build every stage. A given ``recognizer`` is used as it is, or, when
        ``recognizer_cfg`` (the settings it was built from) is given too, only if the model
        settings are unchanged; otherwise the model is loaded.

        Raises:
            StartupError: a model cannot be loaded.
        """
        same = recognizer_cfg is None or all(getattr(recognizer_cfg, k) == getattr(cfg.recognizer, k)
                                             for k in _MODEL_KEYS)
        rec = recognizer if recognizer is not None and same else load_recognizer(cfg.recognizer)
        reader = plate_reader(cfg, rec, load_localizer(cfg.localizer))
        known = known_plates(cfg.known_plates)
        return cls(
            cfg=cfg,
            recognizer=rec,
            reader=reader,
            voter=voter(cfg.voting),
            roi=region_of_interest(cfg.roi),
            still=StillReader(reader, cfg.recognizer.min_confidence),
            # frames vote, so the live pipeline re-reads unsure crops only when asked to
            live_reader=reader.with_retry(cfg.recognizer.retry_below if cfg.recognizer.retry_live else 0.0),
            events=EventMaker(cfg.camera.name, rec.info.name, rec.info.version, cfg.mqtt.include_crop != "off",
                              reader.formats, known),
        )

    def for_frame_size(self, size: tuple[int, int]) -> tuple[Roi, MotionGate]:
        """The ROI tied to frames of ``size`` (width, height) and a motion gate over it: what the
        daemon sets up per frame size, and ``tune`` for the frame it draws."""
        roi = self.roi.with_frame_size(size)
        return roi, motion_gate(self.cfg.motion, roi)

    def read_frame(self, rec: FrameRecord, roi: Roi) -> list[PlateRead]:
        """One camera frame through the reading core, as the daemon reads it (and ``tune`` shows
        it): the ROI's polygons as plates in fixed-box mode, else plates found on the frame's grey
        plane, those cut by the frame edge skipped; no re-reads unless ``recognizer.retry_live``."""
        fixed = self.cfg.roi.fixed_box
        return self.live_reader.read(rec.image, where="fixed" if fixed else "find", roi=roi, search=rec.grey,
                                     drop_edge_cut=not fixed)


class FrameReader:
    """A camera's frames as the daemon looks at them, for its ``Pipeline`` and for ``tune``: the
    stages' ROI and motion gate tied to the frames' size (set up again when the size changes, a
    camera reconfigured mid-stream), the gate's verdict per frame, the plates read on a frame."""

    def __init__(self, stages: Stages) -> None:
        self.stages = stages
        self.roi: Roi | None = None
        self.motion: MotionGate | None = None
        self._size: tuple[int, int] = (0, 0)

    def moved(self, rec: FrameRecord) -> bool:
        """Whether anything moved in the ROI since the previous frame (always, with motion off)."""
        _, gate = self._for(rec.size)
        return gate.update(rec.grey, rec.ts)

    def read(self, rec: FrameRecord) -> list[PlateRead]:
        """The plates of ``rec`` (``Stages.read_frame``, within the ROI of its size)."""
        roi, _ = self._for(rec.size)
        return self.stages.read_frame(rec, roi)

    def _for(self, size: tuple[int, int]) -> tuple[Roi, MotionGate]:
        if self.roi is None or self.motion is None or size != self._size:
            if self.roi is not None:
                log.info("frame size %dx%d: ROI and motion reset", *size)
            self.roi, self.motion = self.stages.for_frame_size(size)
            self._size = size
        return self.roi, self.motion


def check_startup(cfg: Config, recognizer: Recognizer | None = None,
                  recognizer_cfg: RecognizerConfig | None = None) -> Stages:
    """Everything ``run`` checks before opening the camera: the environment, then the stages.
    ``check-config`` calls this too. Raises StartupError."""
    check_environment(cfg)
    return Stages.from_config(cfg, recognizer, recognizer_cfg)
