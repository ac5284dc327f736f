"""An RTSP server on loopback for bench/many_cameras.py: ``--count`` H.264 streams
(rtsp://127.0.0.1:PORT/cam0, /cam1, ...), each a looping folder of JPEG frames encoded live, as
an IP camera serves them.

Runs with the system Python, which has GStreamer's bindings (Debian: ``apt-get install
python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly``):

    /usr/bin/python3 bench/rtsp_server.py --port 8554 --frames DIR --fps 10 --count 4
"""

from __future__ import annotations

import argparse

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--frames", required=True, help="folder of f0000.jpg, f0001.jpg, ...")
    ap.add_argument("--fps", type=int, default=10)
    ap.add_argument("--count", type=int, default=1)
    args = ap.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    for i in range(args.count):
        factory = GstRtspServer.RTSPMediaFactory()
        # multifilesrc stamps each frame from the caps' framerate, so the stream plays at camera pace;
        # one keyframe a second, as cameras send by default
        factory.set_launch(
            f"( multifilesrc location={args.frames}/f%04d.jpg loop=true caps=image/jpeg,framerate={args.fps}/1 "
            f"! jpegdec ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} "
            "bitrate=2000 ! rtph264pay name=pay0 pt=96 config-interval=1 )")
        factory.set_shared(True)  # one encoder per camera, whoever watches
        server.get_mount_points().add_factory(f"/cam{i}", factory)
    server.attach(None)
    print(f"rtsp://127.0.0.1:{args.port}/cam0..{args.count - 1}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
