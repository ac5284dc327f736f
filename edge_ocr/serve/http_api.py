"""Local HTTP API and web page (off by default; ``http.enabled``).

Standard library only (``http.server.ThreadingHTTPServer``): a Pi should not carry a web
framework for five routes. The server knows nothing of the pipeline; it is given callables:

- ``read(image, crop) -> dict``  one still image -> plates (``still.StillReader.read``)
- ``status() -> dict``           the same facts as the MQTT stats
- ``snapshot() -> bytes | None`` the last frame as JPEG with ROI, boxes and readings drawn
- ``events() -> list[dict]``     the last published events

Routes: ``GET /`` (the page), ``GET /healthz``, ``GET /api/status``, ``GET /api/snapshot.jpg``,
``GET /api/events``, ``POST /api/ocr`` (JSON ``{"image": "<base64>"}`` or multipart file upload;
``?crop=1`` reads the image as one plate). Every error is JSON ``{"error": "..."}`` with a 4xx
status (503 while ``max_reads`` images are already being read); nothing a client sends can stop
the daemon.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import threading
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..capture.image_io import ImageError, ImageTooLarge, decode_image

log = logging.getLogger(__name__)


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _page() -> bytes:
    return resources.files("edge_ocr").joinpath("web/index.html").read_bytes()


def parse_upload(content_type: str, body: bytes) -> bytes:
    """The image bytes of a POST /api/ocr body. Raises HttpError(4xx) naming the problem."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/json" or (not ctype and body[:1] == b"{"):
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HttpError(400, f"body is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("image"), str):
            raise HttpError(400, 'JSON body must be an object with "image": "<base64>"')
        b64 = doc["image"]
        if b64.startswith("data:") and "," in b64:  # a data: URL straight from a browser
            b64 = b64.split(",", 1)[1]
        try:
            return base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise HttpError(400, '"image" is not valid base64') from None
    if ctype == "multipart/form-data":
        msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
                                                  + body)
        if not msg.is_multipart():
            raise HttpError(400, "multipart body could not be parsed (boundary missing?)")
        parts = list(msg.iter_parts())
        for part in parts:
            if part.get_filename() or part.get_param("name", header="content-disposition") in ("image", "file"):
                data = part.get_payload(decode=True)
                if data:
                    return data
        raise HttpError(400, 'multipart body has no non-empty file field (use "image" or "file")')
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        return body
    raise HttpError(415, f"unsupported Content-Type {content_type!r}: send application/json, "
                         "multipart/form-data or image/*")


class HttpApi:
    """The server and its thread. ``start()`` binds (raising OSError if it cannot)."""

    def __init__(self, host: str, port: int, token: str | None, max_body_bytes: int,
                 read: Callable[[Any, bool], dict], status: Callable[[], dict],
                 snapshot: Callable[[], bytes | None], events: Callable[[], list[dict]],
                 client_timeout_s: float = 10.0, *, max_reads: int) -> None:
        # plain values: a token for a non-loopback host is the ``http`` section's check (config.py)
        self.token = token
        self.max_body = max_body_bytes
        self.read, self.status, self.snapshot, self.events = read, status, snapshot, events
        self.counters = {"requests": 0, "errors": 0, "ocr": 0}
        self._lock = threading.Lock()
        # one thread per connection, so this bounds the memory of uploads in flight: each holds
        # its body and a decoded image of up to image_io.MAX_PIXELS
        self.max_reads = max_reads
        self._reads = threading.BoundedSemaphore(max_reads)
        api = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "edge-ocr"
            timeout = client_timeout_s  # a client that stalls mid-request loses its thread
            protocol_version = "HTTP/1.1"
            # errors http.server answers itself (a malformed request line, a header flood) are JSON too
            error_content_type = "application/json"
            error_message_format = '{"error": "%(code)d %(message)s"}'

            def log_message(self, fmt: str, *args: Any) -> None:  # one line per request at DEBUG
                log.debug("http %s %s", self.address_string(), fmt % args)

            def do_GET(self) -> None:  # http.server names the handlers do_<METHOD>
                api._handle(self, "GET")

            def do_POST(self) -> None:
                api._handle(self, "POST")

            def do_PUT(self) -> None:
                api._handle(self, "PUT")

            def do_DELETE(self) -> None:
                api._handle(self, "DELETE")

        self.server = ThreadingHTTPServer((host, port), Handler, bind_and_activate=False)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> None:
        self.server.server_bind()
        self.server.server_activate()
        self._thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)
        self._thread.start()
        log.info("http: serving on http://%s:%d/ (token %s)", self.server.server_address[0], self.port,
                 "required" if self.token else "off")

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=5)
        self.server.server_close()

    # ------------------------------------------------------------------ request handling

    def _authorised(self, h: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> bool:
        if not self.token:
            return True
        got = h.headers.get("Authorization", "")
        given = got[7:].strip() if got.lower().startswith("bearer ") else (query.get("token") or [""])[0]
        return hmac.compare_digest(given.encode(), self.token.encode())

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str, close: bool = False,
              headers: dict[str, str] | None = None) -> None:
        h.send_response(status)
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Cache-Control", "no-store")
        if close:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _json(self, h: BaseHTTPRequestHandler, status: int, doc: Any, close: bool = False,
              headers: dict[str, str] | None = None) -> None:
        self._send(h, status, json.dumps(doc, ensure_ascii=False).encode(), "application/json; charset=utf-8", close,
                   headers)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        with self._lock:
            self.counters["requests"] += 1
        url = urlsplit(h.path)
        query = parse_qs(url.query)
        try:
            self._route(h, method, url.path, query)
        except HttpError as exc:
            with self._lock:
                self.counters["errors"] += 1
            log.info("http %s %s -> %d %s", method, url.path, exc.status, exc.message)
            # after an error the rest of a body may still be on the wire: close rather than misparse it
            self._json(h, exc.status, {"error": exc.message}, close=True, headers=exc.headers)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            h.close_connection = True
        except Exception:  # a bug in a handler must not take the daemon down
            log.exception("http %s %s failed", method, url.path)
            with self._lock:
                self.counters["errors"] += 1
            self._json(h, 500, {"error": "internal error (see the daemon log)"}, close=True)

    def _route(self, h: BaseHTTPRequestHandler, method: str, path: str, query: dict[str, list[str]]) -> None:
        if path in ("/", "/index.html"):
            self._need(method, "GET")
            self._send(h, 200, _page(), "text/html; charset=utf-8")
            return
        if path == "/healthz":
            self._need(method, "GET")
            self._json(h, 200, {"ok": True})
            return
        if not path.startswith("/api/"):
            raise HttpError(404, f"no such path {path}")
        if not self._authorised(h, query):
            raise HttpError(401, "missing or wrong bearer token (Authorization: Bearer <http.token>)")
        if path == "/api/status":
            self._need(method, "GET")
            self._json(h, 200, {**self.status(), "http": dict(self.counters)})
        elif path == "/api/events":
            self._need(method, "GET")
            self._json(h, 200, self.events())
        elif path == "/api/snapshot.jpg":
            self._need(method, "GET")
            jpeg = self.snapshot()
            if jpeg is None:
                raise HttpError(404, "no frame captured yet")
            self._send(h, 200, jpeg, "image/jpeg")
        elif path == "/api/ocr":
            self._need(method, "POST")
            self._ocr(h, query)
        else:
            raise HttpError(404, f"no such path {path}")

    @staticmethod
    def _need(method: str, allowed: str) -> None:
        if method != allowed:
            raise HttpError(405, f"method {method} not allowed here (use {allowed})")

    def _ocr(self, h: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> None:
        length = h.headers.get("Content-Length")
        if length is None:
            raise HttpError(411, "Content-Length required")
        try:
            n = int(length)
        except ValueError:
            raise HttpError(400, f"bad Content-Length {length!r}") from None
        if n > self.max_body:
            raise HttpError(413, f"body of {n:,} bytes exceeds http.max_body_mb ({self.max_body:,} bytes)")
        if n <= 0:
            raise HttpError(400, "empty body: send an image")
        if not self._reads.acquire(blocking=False):
            # read the body away (kept nowhere) before answering: closing a socket with unread
            # data resets the connection and the client would never see the 503
            while n > 0:
                chunk = h.rfile.read(min(n, 65536))
                if not chunk:
                    break
                n -= len(chunk)
            raise HttpError(503, f"busy: {self.max_reads} images are being read already "
                                 "(http.max_concurrent_reads); try again", {"Retry-After": "1"})
        try:
            size, crop, result = self._read_upload(h, n, query)
        finally:
            self._reads.release()
        with self._lock:
            self.counters["ocr"] += 1
        log.info("http ocr %dx%d crop=%s -> %r conf=%.3f %.1f ms", *size, crop,
                 result["text"], result["confidence"], result["ms"])
        self._json(h, 200, result)

    def _read_upload(self, h: BaseHTTPRequestHandler, n: int, query: dict[str, list[str]]
                     ) -> tuple[tuple[int, int], bool, dict]:
        """Body -> image -> reading, all inside the caller's read slot; nothing of it outlives the call."""
        body = h.rfile.read(n)
        if len(body) < n:
            raise HttpError(400, f"body ended after {len(body):,} of {n:,} bytes")
        data = parse_upload(h.headers.get("Content-Type", ""), body)
        del body  # a multipart or base64 body and the image bytes in it would both stay alive
        try:
            image = decode_image(data)
        except ImageTooLarge as exc:
            raise HttpError(413, str(exc)) from None
        except ImageError as exc:
            raise HttpError(422, str(exc)) from None
        del data
        crop = (query.get("crop") or ["0"])[0].lower() in ("1", "true", "yes")
        return (image.shape[1], image.shape[0]), crop, self.read(image, crop)
