"""``config.yaml`` -> frozen, typed settings.

Knows nothing of cv2, onnxruntime or paho. Unknown keys are rejected, ranges are checked, and
every problem is reported as one line naming the dotted key (``mqtt.port: must be 1..65535,
got 70000``). Secrets may come from the environment or systemd credentials instead of the YAML.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(Exception):
    """A config that cannot be used. ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraConfig(_Section):
    name: str = Field("camera", min_length=1, max_length=64, description="Name published with every reading.")
    type: Literal["picamera2", "usb", "rtsp", "file", "folder"] = Field("file", description="Kind of frame source.")
    uri: str = Field("", description="USB index, RTSP/HTTP URL, video file or image folder.")
    width: int = Field(1280, ge=64, le=8192, description="Requested frame width, px (picamera2, usb).")
    height: int = Field(720, ge=48, le=8192, description="Requested frame height, px (picamera2, usb).")
    fps: float = Field(10.0, gt=0, le=120, description="Frames per second to read (folder, file pacing).")
    loop: bool = Field(False, description="Start a video file or folder again at its end.")
    reconnect_min_s: float = Field(1.0, gt=0, le=600, description="First reconnect delay, s.")
    reconnect_max_s: float = Field(60.0, gt=0, le=3600, description="Longest reconnect delay, s.")

    @model_validator(mode="after")
    def _check(self) -> CameraConfig:
        if self.type != "picamera2" and not self.uri:
            raise ValueError(f"camera.uri: required for camera.type {self.type!r}")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("camera.reconnect_max_s: must be >= camera.reconnect_min_s")
        return self


class RoiConfig(_Section):
    units: Literal["relative", "pixels"] = Field("relative", description="Polygon coordinates: 0..1 or pixels.")
    polygons: list[list[tuple[float, float]]] = Field(
        default_factory=lambda: [[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]],
        description="Regions of interest; each a list of [x, y] points (3 or more).",
    )
    fixed_box: bool = Field(False, description="The ROI is the plate (gate camera): skip localisation.")

    @field_validator("polygons")
    @classmethod
    def _polys(cls, v: list[list[tuple[float, float]]]) -> list[list[tuple[float, float]]]:
        if not v:
            raise ValueError("needs at least one polygon")
        for i, poly in enumerate(v):
            if len(poly) < 3:
                raise ValueError(f"polygon {i} has {len(poly)} points, needs 3 or more")
        return v

    @model_validator(mode="after")
    def _relative_range(self) -> RoiConfig:
        if self.units == "relative":
            for poly in self.polygons:
                for x, y in poly:
                    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                        raise ValueError(f"roi.polygons: relative point ({x}, {y}) outside 0..1")
        return self


class MotionConfig(_Section):
    enabled: bool = Field(True, description="Run the recogniser only when something moves in the ROI.")
    pixel_delta: int = Field(25, ge=1, le=255, description="Grey-level change that counts a pixel as moving.")
    min_area: float = Field(0.01, ge=0.0, le=1.0, description="Fraction of ROI pixels that must move.")
    width: int = Field(320, ge=32, le=1920, description="Width the frame is scaled to for the check, px.")
    hold_s: float = Field(2.0, ge=0, le=60, description="Keep reading this long after motion stops, s.")


# what each localiser reads with when the config does not say: the learnt detector's score is a
# plate probability (threshold chosen on the dev frames and no-plate scenes, models/DETECTOR_CARD.md);
# the classic one's is a hand-made 0..1 plate-likeness
LOCALIZER_DEFAULTS = {"learnt": {"min_score": 0.4, "work_width": 640}, "classic": {"min_score": 0.3, "work_width": 960}}


class LocalizerConfig(_Section):
    type: Literal["learnt", "classic"] = Field(
        "learnt", description="learnt: the plate detector network; classic: the OpenCV character-chain search.")
    model: str = Field("models/plate_det_int8.onnx", description="Learnt: the detector's ONNX file.")
    work_width: int | None = Field(
        None, ge=64, le=4096, description="The frame is searched at most this wide, px (learnt 640, classic 960).")
    max_candidates: int = Field(5, ge=1, le=50, description="Most plate candidates read per frame.")
    min_height: int = Field(12, ge=4, le=1000, description="Classic: smallest plate height considered, px.")
    min_aspect: float = Field(1.5, gt=0, le=20, description="Classic: narrowest width/height of a plate box.")
    max_aspect: float = Field(7.0, gt=0, le=30, description="Classic: widest width/height of a plate box.")
    min_score: float | None = Field(
        None, ge=0, le=1, description="Candidates scoring below are not read (learnt 0.4, classic 0.3).")

    def setting(self, key: str) -> Any:
        """``min_score`` or ``work_width`` as given, else the default of this localiser type."""
        value = getattr(self, key)
        return LOCALIZER_DEFAULTS[self.type][key] if value is None else value

    @model_validator(mode="after")
    def _aspects(self) -> LocalizerConfig:
        # the localiser cannot be built otherwise; checked here so check-config refuses it too
        if self.min_aspect >= self.max_aspect:
            raise ValueError(f"localizer.min_aspect: must be below localizer.max_aspect ({self.max_aspect}), "
                             f"got {self.min_aspect}")
        return self


class RecognizerConfig(_Section):
    model: str = Field("models/plate_crnn_int8.onnx", description="ONNX model file (INT8 or FP32).")
    threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads.")
    graph_optimization: Literal["disable", "basic", "extended", "all"] = Field("all")
    decoder: Literal["greedy", "beam"] = Field("greedy", description="CTC decoding.")
    beam_width: int = Field(8, ge=1, le=64, description="Beams kept by the beam decoder.")
    format_margin: float = Field(2.0, ge=0, le=50, description="Beam: log-likelihood a format-fitting reading may lose.")
    batch_size: int = Field(8, ge=1, le=256, description="Most crops per session call.")
    min_confidence: float = Field(0.6, ge=0, le=1, description="Readings below this are not published.")
    retry_below: float = Field(
        0.6, ge=0, le=1, description="Still images: re-read less confident crops from 5 re-cut copies (0 = off).")
    retry_live: bool = Field(False, description="Also retry in the live pipeline (costs CPU; frames vote anyway).")


class FormatsConfig(_Section):
    enabled: bool = Field(True, description="Reject readings that match no accepted plate format.")
    regions: list[Literal["us", "eu", "br", "cn", "generic"]] = Field(["us", "eu", "br", "cn"])
    extra: list[str] = Field(
        default_factory=list,
        description="Extra accepted patterns: L letter, D digit, A either, H province; other chars literal.",
    )
    # 0.7: on the dev crops' train split every gate from 0.7 down reads best (98.3 % against 96.6 %
    # ungated); ungated, the strict layouts "mended" right US readings (1365847 -> I365847)
    mend_below: float = Field(0.7, ge=0, le=1, description=(
        "A reading that already fits an accepted format keeps the characters the model read at least "
        "this sure of; only less sure ones are swapped for a look-alike to fit a strict layout. 1 swaps any."))

    @field_validator("extra")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for p in v:
            if not p or not re.fullmatch(r"[A-Z0-9LDAH]+", p):
                raise ValueError(f"bad pattern {p!r}: use L, D, A, H and literal A-Z0-9")
        return v


class VotingConfig(_Section):
    window_s: float = Field(3.0, gt=0, le=120, description="A plate track ends after this long unseen, s.")
    min_votes: int = Field(2, ge=1, le=100, description="Frames that must agree before publishing.")
    min_confidence: float = Field(0.7, ge=0, le=1, description="Fused confidence needed to publish.")
    repeat_after_s: float = Field(30.0, ge=0, le=86400, description="Same plate again only after this, s.")
    min_seen: int = Field(2, ge=1, le=100, description="A plate read in fewer frames is never published.")


class TlsConfig(_Section):
    enabled: bool = False
    ca_file: str | None = Field(None, description="CA bundle; system CAs when unset.")
    cert_file: str | None = Field(None, description="Client certificate (mutual TLS).")
    key_file: str | None = Field(None, description="Client key (mutual TLS).")
    insecure: bool = Field(False, description="Skip hostname check (testing only).")

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("mqtt.tls: cert_file and key_file go together")
        return self


class DiscoveryConfig(_Section):
    enabled: bool = Field(True, description="Publish Home Assistant MQTT discovery.")
    prefix: str = Field("homeassistant", min_length=1, description="Home Assistant discovery prefix.")
    device_name: str | None = Field(
        None, min_length=1, max_length=64,
        description="Device name in Home Assistant; default <device_id>, or 'edge-ocr <device_id>'.")
    configuration_url: str | None = Field(
        None, description="Link on Home Assistant's device page; default the web page when http is on.")

    @field_validator("configuration_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {v!r}")
        return v


class MqttConfig(_Section):
    enabled: bool = Field(True, description="Publish readings over MQTT.")
    host: str = Field("localhost", min_length=1, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 is usual for TLS).")
    username: str | None = Field(None, description="Broker user name.")
    password: str | None = Field(None, description="Prefer password_file or $EDGE_OCR_MQTT_PASSWORD.")
    password_file: str | None = Field(None, description="File holding the broker password.")
    client_id: str | None = Field(None, description="MQTT client id; default edge-ocr-<device_id>.")
    topic_prefix: str = Field("edge-ocr", min_length=1, description="Topics are <prefix>/<device_id>/...")
    qos: int = Field(1, ge=0, le=2, description="QoS of plate events.")
    keepalive_s: int = Field(60, ge=5, le=3600, description="MQTT keep-alive, s.")
    stats_interval_s: float = Field(60.0, ge=1, le=86400, description="Period of the stats message, s.")
    include_crop: Literal["off", "base64", "raw"] = Field("off", description="Plate crop JPEG in events.")
    reconnect_min_s: float = Field(0.5, gt=0, le=600, description="First delay before reconnecting to the broker, s.")
    reconnect_max_s: float = Field(10.0, gt=0, le=3600, description="Longest delay between reconnects, s.")
    max_refusals: int = Field(
        5, ge=1, le=1000, description="Refusals by the broker before a message goes to the dead-letter table.")
    tls: TlsConfig = TlsConfig()
    discovery: DiscoveryConfig = DiscoveryConfig()

    @field_validator("topic_prefix")
    @classmethod
    def _topic(cls, v: str) -> str:
        if any(c in v for c in "#+") or v.startswith("/") or v.endswith("/"):
            raise ValueError(f"must not contain # or + or start/end with /, got {v!r}")
        return v

    @model_validator(mode="after")
    def _password(self) -> MqttConfig:
        if self.password and self.password_file:
            raise ValueError("mqtt.password: set password or password_file, not both")
        if (self.password or self.password_file) and not self.username:
            raise ValueError("mqtt.username: required when a password is set")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("mqtt.reconnect_max_s: must be >= mqtt.reconnect_min_s")
        return self


class OutboxConfig(_Section):
    path: str = Field("/var/lib/edge-ocr/outbox.sqlite", description="SQLite outbox file.")
    max_events: int = Field(10000, ge=10, le=10_000_000, description="Oldest events dropped beyond this.")
    max_age_h: float = Field(168.0, gt=0, le=8760, description="Events older than this are dropped, h.")
    max_held: int = Field(
        1000, ge=1, le=100_000,
        description="Events kept in memory while the disk refuses them (full, read-only); oldest dropped beyond.")


class HttpConfig(_Section):
    enabled: bool = Field(False, description="Serve the web page, /api/ocr, /api/status, /api/snapshot.jpg.")
    host: str = Field("127.0.0.1", description="Bind address.")
    port: int = Field(8080, ge=0, le=65535, description="Bind port (0: any free port).")
    token: str | None = Field(None, description="Bearer token; required for a non-loopback host.")
    max_body_mb: float = Field(8.0, gt=0, le=200, description="Largest accepted upload, MiB.")
    max_concurrent_reads: int = Field(2, ge=1, le=16, description="Uploads read at once (each holds its decoded "
                                      "image); more get 503 at once.")

    @model_validator(mode="after")
    def _token(self) -> HttpConfig:
        if self.enabled and self.host not in ("127.0.0.1", "::1", "localhost") and not self.token:
            raise ValueError(f"http.token: required when binding a non-loopback address ({self.host})")
        return self


class KnownPlateEntry(_Section):
    name: str = Field(min_length=1, max_length=64, description="What Home Assistant shows: 'our car'.")
    plates: list[str] = Field(min_length=1, description="Plates, or patterns with * (any run) and ? (one char).")

    @field_validator("plates")
    @classmethod
    def _plates(cls, v: list[str]) -> list[str]:
        for p in v:
            # a plate's own spaces and dashes are not read by the recogniser; a [ would be a
            # character class to fnmatch, which look-alike folding would break
            bare = re.sub(r"[\s\-.]", "", p)
            if not bare or "[" in bare or not all(c.isalnum() or c in "*?" for c in bare):
                raise ValueError(f"bad plate {p!r}: use letters, digits, * and ?")
        return v


class KnownPlatesConfig(_Section):
    max_edits: int = Field(1, ge=0, le=2, description="Misread characters (edit distance) still matched.")
    lookalikes: bool = Field(True, description="0/O/Q/D, 1/I, 2/Z, 5/S, 6/G, 8/B count as the same character.")
    entries: list[KnownPlateEntry] = Field(default_factory=list, description="Named known plates.")


class Config(_Section):
    device_id: str = Field("edge-ocr", description="Unique per device; part of every topic.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO")
    camera: CameraConfig = CameraConfig(uri="samples/demo.mp4")
    roi: RoiConfig = RoiConfig()
    motion: MotionConfig = MotionConfig()
    localizer: LocalizerConfig = LocalizerConfig()
    recognizer: RecognizerConfig = RecognizerConfig()
    formats: FormatsConfig = FormatsConfig()
    voting: VotingConfig = VotingConfig()
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig = OutboxConfig()
    http: HttpConfig = HttpConfig()
    known_plates: KnownPlatesConfig = KnownPlatesConfig()

    @field_validator("device_id")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", v):
            raise ValueError(f"must be 1..64 of A-Z a-z 0-9 _ -, got {v!r}")
        return v


# ----------------------------------------------------------------------------- loading

def _describe(err: dict[str, Any]) -> str:
    """One pydantic error -> 'dotted.key: what is wrong'."""
    loc = ".".join(str(p) for p in err["loc"])
    kind, got = err["type"], err.get("input")
    if kind == "extra_forbidden":
        return f"{loc}: unknown key"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        field_info = _field_bounds(err["loc"])
        if field_info:
            return f"{loc}: must be {field_info}, got {_short(got)}"
    if kind == "missing":
        return f"{loc}: required"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
        # validators that already name their key
        if re.match(r"^[a-z_]+\.[a-z_.]+:", msg):
            return msg
        return f"{loc}: {msg}" if loc else msg
    return f"{loc}: {msg[0].lower() + msg[1:]}, got {_short(got)}"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _field_bounds(loc: tuple) -> str | None:
    model: Any = Config
    info = None
    for part in loc:
        if not isinstance(part, str) or not hasattr(model, "model_fields") or part not in model.model_fields:
            return None
        info = model.model_fields[part]
        model = info.annotation
    if info is None:
        return None
    lo = hi = None
    for m in info.metadata:
        lo = getattr(m, "ge", None) if getattr(m, "ge", None) is not None else lo
        lo = getattr(m, "gt", None) if getattr(m, "gt", None) is not None else lo
        hi = getattr(m, "le", None) if getattr(m, "le", None) is not None else hi
    if lo is None and hi is None:
        return None
    return f"{lo if lo is not None else ''}..{hi if hi is not None else ''}"


MAX_CONFIG_BYTES = 256 * 1024
MAX_ALIASES = 16  # each alias can repeat a subtree: few aliases, bounded expansion
MAX_DEPTH = 16


def _shape_problem(text: str) -> str | None:
    """Refuse documents no config needs and that would hang or exhaust the parser: huge files,
    alias bombs (a 1 kB file can expand to 10^9 nodes), deep nesting."""
    if len(text) > MAX_CONFIG_BYTES:
        return f"config is {len(text):,} bytes; more than {MAX_CONFIG_BYTES:,} is not a config file"
    aliases = depth = 0
    try:
        for ev in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(ev, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    return f"more than {MAX_ALIASES} YAML aliases (*name); a config needs none"
            elif isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = ev.start_mark
                    return f"nesting deeper than {MAX_DEPTH} levels at line {mark.line + 1}"
            elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        return None  # safe_load reports syntax errors with their position
    return None


def parse_config(text: str, source: str = "<string>") -> Config:
    """YAML text -> Config. Raises ConfigError with one line per problem."""
    problem = _shape_problem(text)
    if problem:
        raise ConfigError(source, [problem])
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [f"YAML syntax error at {where}: {problem}"]) from None
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. a 5000-digit integer
        raise ConfigError(source, [f"a YAML value cannot be read: {_short(str(exc), 160)}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [f"top level must be a mapping of keys, got {type(data).__name__}"])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(e) for e in exc.errors()]) from None


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file. Raises ConfigError (also for a missing file)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [f"cannot read config file: {exc.strerror}"]) from None
    return parse_config(text, str(p))


def override(cfg: Config, source: str, **sections: dict[str, Any]) -> Config:
    """``cfg`` with some keys of some sections replaced (command-line flags over a config file),
    checked by the same schema. Raises ConfigError naming ``source`` and each bad key."""
    data = cfg.model_dump()
    for name, values in sections.items():
        data[name].update(values)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(e) for e in exc.errors()]) from None


def dump_config(cfg: Config) -> str:
    """The effective config as YAML, with the password masked."""
    data = cfg.model_dump(mode="json")
    if data["mqtt"].get("password"):
        data["mqtt"]["password"] = "***"
    if data["http"].get("token"):
        data["http"]["token"] = "***"
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
