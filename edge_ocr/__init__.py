"""edge-ocr: read licence plates from a camera on a small ARM computer and publish them over MQTT."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edge-ocr")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.1.0"
