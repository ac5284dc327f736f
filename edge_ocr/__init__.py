"""edge-ocr: read licence plates from a camera on a small ARM computer and publish them over MQTT."""

import os
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edge-ocr")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.1.0"

# Largest image any input (upload, folder frame, CLI file) may decode to: 4096 x 4096, 48 MB as
# BGR, which a 1 GB Pi can afford twice over next to the daemon. OpenCV enforces it inside every
# decoder from the decoder's own reading of the header (no container trick gets past it), but reads
# the variable only once, when cv2 loads: so it is set here, before any edge_ocr module imports
# cv2. An operator may set another value in the environment (systemd: Environment=).
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
_limit = os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(DEFAULT_MAX_IMAGE_PIXELS))
if not (_limit.isascii() and _limit.isdigit() and int(_limit) > 0):
    # OpenCV would abort the whole process (std::terminate) on this value when cv2 loads
    raise ValueError(f"environment OPENCV_IO_MAX_IMAGE_PIXELS={_limit!r}: must be a whole number of pixels > 0")
