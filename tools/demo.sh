#!/usr/bin/env bash
# The newcomer's demo: install what is needed, make sure a broker runs, read the bundled video,
# and print what an MQTT subscriber receives.   Usage: sudo tools/demo.sh
# Only apt needs root. Everything else (the venv, pip's egg-info, Python's bytecode caches, the
# broker and the daemon) runs as the clone's owner, so that `sudo tools/demo.sh` leaves nothing
# root-owned in the clone and the README's test command, run later as that user, can reuse .venv.
set -euo pipefail
SELF=$(readlink -f "$0")
cd "$(dirname "$SELF")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
for p in python3-venv mosquitto mosquitto-clients; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "demo: installing ${need[*]}"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
OWNER=$(stat -c %U .)
if [ "$(id -u)" -eq 0 ] && [ "$OWNER" != root ]; then
  # runuser (util-linux, on every Debian) rather than sudo: root may not have sudo installed
  # (it sets HOME, USER and LOGNAME to the owner's and keeps the rest, EDGE_OCR_DEMO_PORT included)
  exec runuser -u "$OWNER" -- "$SELF" "$@"
fi
if [ ! -x .venv/bin/edge-ocr ]; then
  echo "demo: installing edge-ocr and its runtime dependencies into .venv (about 100 MB to download)"
  python3 -m venv .venv && .venv/bin/pip install -q -e .
fi

PORT=${EDGE_OCR_DEMO_PORT:-1883}
BROKER_PID=""
if ! mosquitto_sub -h 127.0.0.1 -p "$PORT" -t '$SYS/#' -C 1 -W 2 >/dev/null 2>&1; then
  echo "demo: no broker on 127.0.0.1:$PORT, starting one"
  conf=$(mktemp); printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$PORT" > "$conf"
  mosquitto -c "$conf" >/dev/null 2>&1 & BROKER_PID=$!
  sleep 1
fi
WORK=$(mktemp -d)
cleanup() { [ -n "${SUB_PID:-}" ] && kill "$SUB_PID" 2>/dev/null; [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
cat > "$WORK/config.yaml" <<YAML
device_id: demo
camera: {name: demo-street, type: file, uri: '$PWD/samples/demo.mp4', fps: 10}
mqtt: {host: 127.0.0.1, port: $PORT, stats_interval_s: 5}
outbox: {path: '$WORK/outbox.sqlite'}
# read only the road, not the skyline
roi: {polygons: [[[0, 0.4], [1, 0.4], [1, 1], [0, 1]]]}
YAML
echo "demo: subscriber output (mosquitto_sub -v -t 'edge-ocr/#'):"
mosquitto_sub -h 127.0.0.1 -p "$PORT" -v -t 'edge-ocr/#' & SUB_PID=$!
sleep 0.5
.venv/bin/edge-ocr run --config "$WORK/config.yaml" 2> "$WORK/daemon.log" || { cat "$WORK/daemon.log"; exit 1; }
sleep 1
echo "demo: done. Daemon log:"; grep -E "ready|event|stopped" "$WORK/daemon.log" || true
