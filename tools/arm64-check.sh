#!/usr/bin/env bash
# tools/arm64-check.sh: check that edge-ocr reads plates the same on arm64 (the Raspberry Pi's
# architecture) as on this x86 machine, without an arm64 board.
#
# What it does (issue #9), as root on a Debian/Ubuntu x86_64 host:
#   1. installs debootstrap + qemu-user-static if missing, mounts binfmt_misc and registers the
#      qemu-aarch64 handler (with the F flag where possible; otherwise copies qemu into the root);
#   2. builds an arm64 Debian bookworm root with debootstrap (cached: ${ARM64_ROOT});
#   3. inside it: apt python3, python3-venv, python3-pip (+ fonts for the test helpers), a venv at
#      /opt/venv with the [project] dependencies of pyproject.toml from aarch64 wheels on PyPI, plus
#      pytest, pillow, hypothesis, onnx and jinja2 (from the dev extra). By default every package is pinned to
#      the version installed on the host, so a difference means architecture, not a different release
#      (ARM64_PIN_HOST=0 installs the newest versions allowed by pyproject.toml instead);
#   4. copies the working tree (git ls-files: tracked + untracked, not ignored) to /src in the root;
#   5. makes a fixed crop set: python -m tools.synth_mix --count 30 --seed 7, plus the first 20 crops
#      of ../shared/data/plates-real-dev/crops/labels.csv when that exists;
#   6. runs `python -m edge_ocr recognize --json` with models/plate_crnn_int8.onnx and
#      models/plate_crnn_fp32.onnx on x86 (host python3) and in the arm64 root (qemu), and compares
#      every line: texts must be identical and |confidence difference| <= ARM64_CONF_TOL (0.02).
#      The "ms" field is never compared: emulated timings say nothing about arm64 speed.
#      When readings differ, a diagnosis replays each stage (resize, CLAHE, each model) on both
#      architectures with identical input and says which stage parts them;
#   7. runs the unit tests that need no broker and no browser inside the root.
# qemu-user emulates arm64 integer and IEEE float arithmetic exactly, so a difference found here
# is one a real arm64 board gives too (the CPU features, hence the kernels chosen, follow
# ARM64_QEMU_CPU).
# Exit status 0 only if all readings match and the tests pass.
#
# Duration, measured on a 2-core x86_64 Debian 12 host (qemu-user emulation, QEMU_CPU cortex-a72):
#   first run (debootstrap + apt ~7 min, pip ~3 min, checks):  about 14 minutes (14m00s)
#   cached run (root and venv reused):  about 2.5 minutes (2m22s); 3.5 minutes (3m31s) when the
#   readings differ, as the diagnosis adds about 1.5 minutes
# The venv is rebuilt automatically when the wanted package list changes (pyproject.toml or
# host versions); delete ${ARM64_ROOT} (or set ARM64_REBUILD=1) to start from scratch.
#
# Environment:
#   ARM64_ROOT      the cached arm64 root          (default /work/cache/arm64/root)
#   ARM64_WORK      crops and outputs of a run     (default: <dirname ARM64_ROOT>/run)
#   ARM64_CONF_TOL  tolerance on overall confidence (default 0.02, absolute)
#   ARM64_PIN_HOST  1: pin to host versions (default), 0: newest allowed by pyproject.toml
#   ARM64_FUZZ_EXAMPLES  hypothesis examples per property test in the root (default 50)
#   ARM64_TESTS     test files to run in the root (default: the broker-/browser-free ones below)
#   ARM64_REAL_CROPS  real crops dir with labels.csv (default <repo>/../shared/data/plates-real-dev/crops)
#   ARM64_QEMU_CPU  emulated CPU: cortex-a72 (Pi 4, default), cortex-a76 (Pi 5), max
#   ARM64_DIAGNOSE  1: run the stage-by-stage diagnosis even when the readings match
#   ARM64_REBUILD   1: delete the cached root first
#   DEBIAN_MIRROR   default http://deb.debian.org/debian
#
# Usage: sudo tools/arm64-check.sh        (from anywhere)

set -euo pipefail

START=$SECONDS
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=${ARM64_ROOT:-/work/cache/arm64/root}
WORK=${ARM64_WORK:-$(dirname "$ROOT")/run}
TOL=${ARM64_CONF_TOL:-0.02}
# The emulated CPU: cortex-a72 is the Raspberry Pi 4 (ARMv8.0: no dot product, so onnxruntime and
# OpenCV take the kernels a Pi 4 takes); cortex-a76 is the Pi 5; max enables every qemu feature.
export QEMU_CPU=${ARM64_QEMU_CPU:-cortex-a72}
PIN_HOST=${ARM64_PIN_HOST:-1}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
MODELS=(plate_crnn_int8.onnx plate_crnn_fp32.onnx)
# Everything else under tests/ needs mosquitto (test_daemon, test_publish, test_tools_cli), a
# browser (test_web_browser), torch (test_training_pipeline), systemd (test_systemd), the bench
# peers (test_bench), or runs the daemon with wall-clock expectations (test_http_api, test_sources,
# test_fuzz) that emulation makes meaningless. test_properties runs with ARM64_FUZZ_EXAMPLES (50).
DEFAULT_TESTS="tests/test_ctc.py tests/test_preprocess.py tests/test_config.py tests/test_formats.py
  tests/test_voting.py tests/test_recognizer.py tests/test_motion.py tests/test_localize.py
  tests/test_outbox.py tests/test_sdnotify.py tests/test_properties.py tests/test_detector.py
  tests/test_only_plates.py"
TESTS=${ARM64_TESTS:-$DEFAULT_TESTS}
ROOT_APT="python3 python3-venv python3-pip ca-certificates fonts-dejavu-core fonts-dejavu-extra fonts-wqy-zenhei"
STATE=$ROOT/.arm64-check          # markers: base.done (root + apt), venv.done (requirements list)
VENV=/opt/venv
STEP=0
NSTEPS=10

step() {
    STEP=$((STEP + 1))
    printf '\n==> [%d/%d] %s  (t=%dm%02ds)\n' "$STEP" "$NSTEPS" "$*" $(((SECONDS - START) / 60)) $(((SECONDS - START) % 60))
}
info() { printf '    %s\n' "$*"; }
die() { printf 'arm64-check: error: %s\n' "$*" >&2; exit 1; }
elapsed() { printf '%dm%02ds' $(((SECONDS - $1) / 60)) $(((SECONDS - $1) % 60)); }

# Run a command inside the arm64 root with a clean environment.
in_root() {
    chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 LC_ALL=C.UTF-8 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
        PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
        PYTHONDONTWRITEBYTECODE=1 QEMU_CPU="$QEMU_CPU" "$@"
}

MOUNTED=()
mount_root() {
    local d
    for d in proc dev; do
        mountpoint -q "$ROOT/$d" && continue
        mkdir -p "$ROOT/$d"
        if [ "$d" = proc ]; then mount -t proc proc "$ROOT/proc"; else mount --bind /dev "$ROOT/dev"; fi
        MOUNTED+=("$ROOT/$d")
    done
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
}
umount_root() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTED[i]}" 2>/dev/null || umount -l "${MOUNTED[i]}" 2>/dev/null || true
    done
    MOUNTED=()
}
trap umount_root EXIT
trap 'exit 130' INT TERM

# Delete the root, but never while something is mounted below it (a bound /dev, say).
remove_root() {
    [ -n "$ROOT" ] && [ "$ROOT" != / ] || die "refusing to delete ROOT='$ROOT'"
    umount_root
    if awk -v r="$ROOT/" 'index($2 "/", r) == 1 {found = 1} END {exit !found}' /proc/self/mounts; then
        die "something is still mounted under $ROOT; unmount it first"
    fi
    rm -rf --one-file-system "$ROOT"
}

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, binfmt_misc): run with sudo"
[ "$(uname -m)" = x86_64 ] || info "note: host is $(uname -m), not x86_64"
mkdir -p "$(dirname "$ROOT")" "$WORK"
echo "arm64-check: repo $REPO, root $ROOT, work $WORK, confidence tolerance $TOL, qemu cpu $QEMU_CPU"

# ----------------------------------------------------------------------------------------------
step "host tools: debootstrap, qemu-user-static, binfmt_misc"
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
[ -x /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
if [ ${#need[@]} -gt 0 ]; then
    info "apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
BINFMT=/proc/sys/fs/binfmt_misc
if [ ! -e "$BINFMT/register" ]; then
    info "mounting binfmt_misc"
    mount -t binfmt_misc binfmt_misc "$BINFMT"
fi
if [ ! -e "$BINFMT/qemu-aarch64" ]; then
    conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    if [ -f "$conf" ]; then
        info "registering qemu-aarch64 from $conf"
        grep -v '^[#;]' "$conf" | grep -m1 ':qemu-aarch64:' >"$BINFMT/register"
    elif command -v update-binfmts >/dev/null; then
        info "registering qemu-aarch64 with update-binfmts"
        update-binfmts --enable qemu-aarch64
    fi
fi
[ -e "$BINFMT/qemu-aarch64" ] || die "could not register the qemu-aarch64 binfmt handler"
grep -qx enabled "$BINFMT/qemu-aarch64" || echo 1 >"$BINFMT/qemu-aarch64"
QEMU_INTERP=$(awk '$1 == "interpreter" {print $2}' "$BINFMT/qemu-aarch64")
QEMU_FLAGS=$(awk '$1 == "flags:" {print $2}' "$BINFMT/qemu-aarch64")
info "qemu-aarch64 handler: $QEMU_INTERP, flags ${QEMU_FLAGS:-none}"
# Without F the kernel opens the interpreter inside the chroot: put a copy at that path.
copy_qemu() {
    case "$QEMU_FLAGS" in
    *F*) ;;
    *) mkdir -p "$ROOT$(dirname "$QEMU_INTERP")"
       cp /usr/bin/qemu-aarch64-static "$ROOT$QEMU_INTERP" ;;
    esac
}

# ----------------------------------------------------------------------------------------------
step "arm64 $SUITE root at $ROOT"
[ "${ARM64_REBUILD:-0}" = 1 ] && [ -d "$ROOT" ] && { info "ARM64_REBUILD=1: deleting the root"; remove_root; }
if [ -f "$STATE/base.done" ]; then
    info "cached (built $(cat "$STATE/base.done"))"
    copy_qemu
else
    [ -e "$ROOT" ] && { info "removing an unfinished root"; remove_root; }
    t=$SECONDS
    info "debootstrap --arch=arm64 --variant=minbase --foreign $SUITE ($MIRROR)"
    debootstrap --arch=arm64 --variant=minbase --foreign "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
        { tail -20 "$WORK/debootstrap.log"; die "debootstrap (first stage) failed, see $WORK/debootstrap.log"; }
    copy_qemu
    info "debootstrap --second-stage (emulated)"
    chroot "$ROOT" /debootstrap/debootstrap --second-stage >>"$WORK/debootstrap.log" 2>&1 ||
        { tail -20 "$WORK/debootstrap.log"; die "debootstrap (second stage) failed, see $WORK/debootstrap.log"; }
    mount_root
    echo "deb $MIRROR $SUITE main" >"$ROOT/etc/apt/sources.list"
    info "apt-get install $ROOT_APT"
    { in_root apt-get update -q && in_root apt-get install -y -q --no-install-recommends $ROOT_APT &&
        in_root apt-get clean; } >"$WORK/apt.log" 2>&1 ||
        { tail -20 "$WORK/apt.log"; die "apt-get in the root failed, see $WORK/apt.log"; }
    mkdir -p "$STATE"
    date -u +%FT%TZ >"$STATE/base.done"
    info "root built in $(elapsed "$t")"
fi
mount_root
[ "$(in_root uname -m)" = aarch64 ] || die "the root does not run as aarch64"
info "$(in_root python3 --version) in the root, $(in_root uname -m) via qemu"

# ----------------------------------------------------------------------------------------------
step "python venv $VENV in the root (aarch64 wheels from PyPI)"
# [project] dependencies from pyproject.toml, plus pytest, pillow, hypothesis, onnx (tests rewrite
# model metadata) and jinja2 (tests/conftest.py imports tests/helpers.py, which renders Home
# Assistant templates with it) from the dev extra; pinned to
# the host's versions when ARM64_PIN_HOST=1 and the host version satisfies the range.
REQS=$(PIN_HOST=$PIN_HOST python3 - "$REPO/pyproject.toml" <<'EOF'
import importlib.metadata as md, os, re, sys, tomllib
proj = tomllib.load(open(sys.argv[1], "rb"))["project"]
reqs = list(proj["dependencies"])
dev = proj.get("optional-dependencies", {}).get("dev", [])
for want in ("pytest", "pillow", "hypothesis", "onnx", "jinja2"):
    reqs += [r for r in dev if re.match(rf"{want}\b", r, re.I)] or [want]
try:
    from packaging.requirements import Requirement
except ImportError:
    Requirement = None
for r in reqs:
    name = re.match(r"[A-Za-z0-9._-]+", r).group(0)
    if os.environ["PIN_HOST"] == "1":
        try:
            v = md.version(name)
            if Requirement is None or Requirement(r).specifier.contains(v, prereleases=True):
                print(f"{name}=={v}")
                continue
            print(f"host {name} {v} does not satisfy {r}: using the range", file=sys.stderr)
        except md.PackageNotFoundError:
            print(f"{name} is not installed on the host: using the range", file=sys.stderr)
    print(r)
EOF
)
info "wanted: $(echo $REQS)"
# Trust the host's local CAs (/usr/local/share/ca-certificates, e.g. a TLS-inspecting proxy's) in
# the root too, or pip cannot reach PyPI from where the host can.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null &&
    ! diff -rq /usr/local/share/ca-certificates "$ROOT/usr/local/share/ca-certificates" >/dev/null 2>&1; then
    info "copying the host's local CA certificates into the root"
    rm -rf "$ROOT/usr/local/share/ca-certificates"
    cp -a /usr/local/share/ca-certificates "$ROOT/usr/local/share/ca-certificates"
    in_root update-ca-certificates >/dev/null 2>&1
fi
if [ -f "$STATE/venv.done" ] && [ "$(cat "$STATE/venv.done")" = "$REQS" ] && [ -x "$ROOT$VENV/bin/python" ]; then
    info "cached"
else
    t=$SECONDS
    rm -f "$STATE/venv.done"
    rm -rf "${ROOT:?}$VENV"
    printf '%s\n' "$REQS" >"$ROOT/tmp/arm64-requirements.txt"
    info "python3 -m venv $VENV; pip install --only-binary=:all: -r requirements (emulated, slow)"
    { in_root python3 -m venv "$VENV" &&
        in_root "$VENV/bin/pip" install -q --upgrade pip &&
        in_root "$VENV/bin/pip" install --only-binary=:all: -r /tmp/arm64-requirements.txt; } >"$WORK/pip.log" 2>&1 ||
        { tail -30 "$WORK/pip.log"; die "pip install in the root failed, see $WORK/pip.log"; }
    printf '%s\n' "$REQS" >"$STATE/venv.done"
    info "venv built in $(elapsed "$t")"
fi
VERSIONS_PY='import importlib.metadata as m, platform
print(platform.machine(), "python", platform.python_version(), " ".join(f"{n}={m.version(n)}" for n in
      ("onnxruntime", "numpy", "opencv-python-headless", "paho-mqtt", "PyYAML", "pydantic")))'
info "x86:   $(python3 -c "$VERSIONS_PY")"
info "arm64: $(in_root "$VENV/bin/python" -c "$VERSIONS_PY")"

# ----------------------------------------------------------------------------------------------
step "copy the working tree to $ROOT/src"
rm -rf "${ROOT:?}/src"
mkdir -p "$ROOT/src"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$REPO" && git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do
        [ -f "$f" ] && printf '%s\0' "$f"; done | tar --null -T - -cf -) | tar -xf - -C "$ROOT/src"
else
    tar -C "$REPO" --exclude=.git --exclude=.venv --exclude=__pycache__ --exclude=.pytest_cache \
        --exclude=.ruff_cache --exclude='*.egg-info' -cf - . | tar -xf - -C "$ROOT/src"
fi
info "$(find "$ROOT/src" -type f | wc -l) files, $(du -sh "$ROOT/src" | cut -f1)"

# ----------------------------------------------------------------------------------------------
step "fixed crop set"
CROPS=$WORK/crops
rm -rf "$CROPS"
mkdir -p "$CROPS/synth"
(cd "$REPO" && python3 -m tools.synth_mix "$CROPS/synth" --count 30 --seed 7) | sed 's/^/    /'
REAL=${ARM64_REAL_CROPS:-$REPO/../shared/data/plates-real-dev/crops}
if [ -f "$REAL/labels.csv" ]; then
    python3 - "$REAL" "$CROPS/real" <<'EOF'
import csv, shutil, sys
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
with open(src / "labels.csv", newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))[:20]
with open(dst.parent / "real-labels.csv", "w", newline="", encoding="utf-8") as out:
    w = csv.writer(out)
    for r in rows:
        (dst / r["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / r["file"], dst / r["file"])
        w.writerow([r["file"], r["text"]])
print(f"    copied the first {len(rows)} real crops from {src}")
EOF
else
    info "no $REAL/labels.csv: synthetic crops only"
fi
FILES=()
while IFS= read -r f; do FILES+=("$f"); done < <(cd "$CROPS" && find synth -name '*.png' | LC_ALL=C sort)
if [ -f "$CROPS/real-labels.csv" ]; then
    while IFS=, read -r f _; do FILES+=("real/$f"); done <"$CROPS/real-labels.csv"
fi
info "${#FILES[@]} crops"
rm -rf "${ROOT:?}/work"
mkdir -p "$ROOT/work"
cp -a "$CROPS" "$ROOT/work/crops"

# ----------------------------------------------------------------------------------------------
step "recognize on x86 (host python3) and arm64 (qemu), both models"
OUT=$WORK/out
rm -rf "$OUT"
mkdir -p "$OUT"
for m in "${MODELS[@]}"; do
    [ -f "$REPO/models/$m" ] || die "missing model models/$m"
    t=$SECONDS
    (cd "$CROPS" && PYTHONPATH="$REPO" python3 -m edge_ocr recognize --json --model "$REPO/models/$m" "${FILES[@]}") \
        >"$OUT/x86-$m.jsonl" 2>"$OUT/x86-$m.err" || { cat "$OUT/x86-$m.err"; die "x86 recognize failed ($m)"; }
    info "x86   $m: $(wc -l <"$OUT/x86-$m.jsonl") lines, $(elapsed "$t")"
    t=$SECONDS
    in_root /bin/sh -c 'cd /work/crops && PYTHONPATH=/src exec '"$VENV"'/bin/python -m edge_ocr recognize --json --model "$0" "$@"' \
        "/src/models/$m" "${FILES[@]}" >"$OUT/arm64-$m.jsonl" 2>"$OUT/arm64-$m.err" ||
        { cat "$OUT/arm64-$m.err"; die "arm64 recognize failed ($m)"; }
    info "arm64 $m: $(wc -l <"$OUT/arm64-$m.jsonl") lines, $(elapsed "$t") wall (emulated: not a speed figure)"
done

# ----------------------------------------------------------------------------------------------
step "compare readings (texts identical, |confidence diff| <= $TOL; 'ms' ignored)"
compare_ok=1
python3 - "$OUT" "$TOL" "${MODELS[@]}" <<'EOF' || compare_ok=0
import json, sys
from pathlib import Path
out, tol, models = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
bad = 0
summary = []
for m in models:
    x86 = [json.loads(line) for line in (out / f"x86-{m}.jsonl").read_text(encoding="utf-8").splitlines()]
    arm = [json.loads(line) for line in (out / f"arm64-{m}.jsonl").read_text(encoding="utf-8").splitlines()]
    print(f"\n  {m}")
    print(f"  {'file':<44} {'x86 text':<10} {'arm64 text':<10} {'x86 conf':>8} {'arm conf':>8} {'|dconf|':>8} {'|dchar|':>8}")
    diffs, max_conf, max_char, worst = [], 0.0, 0.0, "-"
    if len(x86) != len(arm):
        diffs.append(f"{len(x86)} x86 lines but {len(arm)} arm64 lines")
    for a, b in zip(x86, arm):
        name = a.get("file")
        problems = []
        if a.get("file") != b.get("file"):
            problems.append(f"file order differs ({b.get('file')})")
        if "error" in a or "error" in b:
            if a.get("error") != b.get("error"):
                problems.append(f"error differs: {a.get('error')!r} vs {b.get('error')!r}")
            print(f"  {name:<44} error: x86 {a.get('error')!r} arm64 {b.get('error')!r}")
        else:
            dc = abs(a["confidence"] - b["confidence"])
            dch = max((abs(p["confidence"] - q["confidence"]) for p, q in zip(a["chars"], b["chars"])), default=0.0)
            if dc > max_conf:
                max_conf, worst = dc, name
            max_char = max(max_char, dch)
            if a["text"] != b["text"]:
                problems.append(f"text {a['text']!r} vs {b['text']!r}")
            if dc > tol:
                problems.append(f"confidence {a['confidence']} vs {b['confidence']} (diff {dc:.4f} > {tol})")
            if len(a["chars"]) != len(b["chars"]):
                problems.append("char confidence count differs")
            flag = "" if not problems else "  <-- DIFF"
            print(f"  {name[-44:]:<44} {a['text']:<10} {b['text']:<10} {a['confidence']:8.4f} {b['confidence']:8.4f}"
                  f" {dc:8.4f} {dch:8.4f}{flag}")
        diffs += [f"{name}: {p}" for p in problems]
    n = min(len(x86), len(arm))
    summary.append(f"  {m}: {n} crops, {len(diffs)} differences, max |conf diff| {max_conf:.4f} ({worst}),"
                   f" max |char conf diff| {max_char:.4f}")
    for d in diffs:
        summary.append(f"    DIFF {d}")
    bad += len(diffs)
print("\nsummary (tolerance on overall confidence: %.4f absolute; 'ms' not compared):" % tol)
print("\n".join(summary))
print("readings: " + ("MATCH" if not bad else f"{bad} DIFFERENCES"))
sys.exit(1 if bad else 0)
EOF

# ----------------------------------------------------------------------------------------------
# Where do the readings part? Only when they differ (or ARM64_DIAGNOSE=1): replays each stage on
# the other architecture with identical input (x86's grey image, resized image, model tensor).
if [ $compare_ok = 0 ] || [ "${ARM64_DIAGNOSE:-0}" = 1 ]; then
    NSTEPS=$((NSTEPS + 1))
    step "diagnose: each stage on identical input"
    cat >"$WORK/arm64_diag.py" <<'EOF'
"""dump REF MODELDIR FILES (x86) | replay REF OUT MODELDIR (x86 and arm64) | report REF X86 ARM FLAGS"""
import sys
import numpy as np
CLAHE = (2.0, 4)


def session(path, **cfg):
    import onnxruntime as ort
    o = ort.SessionOptions()
    o.intra_op_num_threads, o.log_severity_level = 1, 3
    for k, v in cfg.items():
        o.add_session_config_entry(k, v)
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


mode = sys.argv[1]
if mode in ("dump", "replay"):
    import cv2
    from edge_ocr.read import preprocess as pp
    from edge_ocr.config import RecognizerConfig
    from edge_ocr.stages import load_recognizer
if mode == "dump":
    ref, mdir, files = sys.argv[2], sys.argv[3], sys.argv[4:]
    rec = load_recognizer(RecognizerConfig(model=f"{mdir}/plate_crnn_int8.onnx"))
    spec = rec.info.spec
    d = {"n": np.array(len(files)), "trim": np.array(rec.trim)}
    greys = [pp.to_grey(cv2.imread(f, cv2.IMREAD_UNCHANGED)) for f in files]
    for i, g in enumerate(greys):
        d[f"grey{i}"] = g
        d[f"resized{i}"] = pp.resize_keep_aspect(g, spec.height, spec.width)
    for s in range(0, len(greys), 16):
        d[f"x{s}"] = pp.preprocess_batch(greys[s:s + 16], spec, rec.trim)
    np.savez(ref, **d)
elif mode == "replay":
    ref, out, mdir = np.load(sys.argv[2]), sys.argv[3], sys.argv[4]
    n, trim = int(ref["n"]), int(ref["trim"])
    spec = load_recognizer(RecognizerConfig(model=f"{mdir}/plate_crnn_fp32.onnx")).info.spec
    clahe = cv2.createCLAHE(clipLimit=spec.clahe_clip, tileGridSize=(spec.clahe_tile,) * 2)
    d = {}
    for i in range(n):
        g = ref[f"grey{i}"]
        d[f"resized{i}"] = pp.resize_keep_aspect(g, spec.height, spec.width)
        w = max(1, min(spec.width, int(round(g.shape[1] * spec.height / max(g.shape[0], 1)))))
        d[f"exact{i}"] = cv2.resize(g, (w, spec.height), interpolation=cv2.INTER_LINEAR_EXACT)
        d[f"area{i}"] = np.array(g.shape[0] > spec.height)
        d[f"clahe{i}"] = clahe.apply(ref[f"resized{i}"])
    batches = range(0, n, 16)
    for s in batches:
        d[f"x{s}"] = pp.preprocess_batch([ref[f"grey{i}"] for i in range(s, min(n, s + 16))], spec, trim)
    for tag, path, cfg in (("fp32", "fp32", {}), ("int8", "int8", {}),
                           ("int8ref", "int8", {"session.disable_quant_qdq": "1"})):
        sess = session(f"{mdir}/plate_crnn_{path}.onnx", **cfg)
        name = sess.get_inputs()[0].name
        d[tag] = np.concatenate([sess.run(None, {name: ref[f"x{s}"]})[0] for s in batches])
    np.savez(out, **d)
else:
    ref, a, b, flags = np.load(sys.argv[2]), np.load(sys.argv[3]), np.load(sys.argv[4]), sys.argv[5]
    n = int(ref["n"])

    def images(key, other=None):
        other = other or a
        bad = [i for i in range(n) if not np.array_equal(other[f"{key}{i}"], b[f"{key}{i}"])]
        mx = max((int(np.abs(other[f"{key}{i}"].astype(int) - b[f"{key}{i}"].astype(int)).max()) for i in bad),
                 default=0)
        return f"{len(bad)}/{n} crops differ, max {mx} grey levels"

    def logits(p, q):
        return f"max |logit diff| {np.abs(p - q).max():.2g}, {(p.argmax(-1) != q.argmax(-1)).sum()} frames decode differently"

    area = sum(bool(a[f"area{i}"]) for i in range(n))
    xd = max(np.abs(a[k] - b[k]).max() for k in a.files if k.startswith("x"))
    print(f"    cv2.resize (same grey input; INTER_LINEAR, INTER_AREA for the {area} taller crops): {images('resized')}")
    print(f"    cv2.resize INTER_LINEAR_EXACT (same grey input): {images('exact')}")
    print(f"    CLAHE (same resized input): {images('clahe')}")
    print(f"    whole preprocessing (same grey input): max |tensor diff| {xd:.3g} (1/255 = 0.0078 per grey level x 2)")
    print(f"    fp32 model, same tensor:               {logits(a['fp32'], b['fp32'])}")
    print(f"    int8 model, same tensor:               {logits(a['int8'], b['int8'])}")
    print(f"    int8 x86 vs its QDQ reference:         {logits(a['int8'], a['int8ref'])}")
    print(f"    int8 arm64 vs its QDQ reference:       {logits(b['int8'], b['int8ref'])}")
    x86_off = (a["int8"].argmax(-1) != a["int8ref"].argmax(-1)).sum() > (b["int8"].argmax(-1) != b["int8ref"].argmax(-1)).sum()
    print("    hints:")
    moved = [i for i in range(n) if not np.array_equal(a[f"resized{i}"], b[f"resized{i}"])]
    if any(not bool(a[f"area{i}"]) for i in moved) and images("exact").startswith("0/"):
        print("     - cv2.resize INTER_LINEAR is not bit-exact across CPU architectures (arm64 builds take other"
              " fixed-point paths); INTER_LINEAR_EXACT is: use it in edge_ocr/read/preprocess.py resize_keep_aspect")
    if any(bool(a[f"area{i}"]) for i in moved):
        print("     - cv2.resize INTER_AREA (crops taller than the model) differs by 1 for non-integer factors: its"
              " float sums are rounded differently on arm64 (fused multiply-add); numpy float32 sums are not")
    if not images("clahe").startswith("0/"):
        print("     - OpenCV CLAHE interpolates its tile LUTs with fused multiply-add on arm64 (+-1 grey level), and"
              " CLAHE turns small input differences into large ones; a numpy CLAHE (float32, separate multiply"
              " and add) gives the same bytes on both")
    if x86_off:
        vnni = "vnni" in flags
        print(f"     - x86 int8 kernels leave the QDQ reference (host CPU {'has' if vnni else 'lacks'} VNNI): without VNNI"
              " onnxruntime's u8s8 AVX2 kernel (VPMADDUBSW) saturates 16-bit sums. Quantise with reduce_range=True"
              " (7-bit weights) or judge int8 accuracy on arm64/VNNI hosts")
EOF
    cp "$WORK/arm64_diag.py" "$ROOT/tmp/arm64_diag.py"
    t=$SECONDS
    (cd "$CROPS" && PYTHONPATH="$REPO" python3 "$WORK/arm64_diag.py" dump "$OUT/diag-ref.npz" "$REPO/models" "${FILES[@]}" &&
        PYTHONPATH="$REPO" python3 "$WORK/arm64_diag.py" replay "$OUT/diag-ref.npz" "$OUT/diag-x86.npz" "$REPO/models")
    cp "$OUT/diag-ref.npz" "$ROOT/tmp/diag-ref.npz"
    in_root /bin/sh -c "PYTHONPATH=/src exec $VENV/bin/python /tmp/arm64_diag.py replay /tmp/diag-ref.npz /tmp/diag-arm64.npz /src/models" \
        2>"$OUT/diag-arm64.err" || { cat "$OUT/diag-arm64.err"; die "diagnosis failed in the root"; }
    mv "$ROOT/tmp/diag-arm64.npz" "$OUT/diag-arm64.npz"
    python3 "$WORK/arm64_diag.py" report "$OUT/diag-ref.npz" "$OUT/diag-x86.npz" "$OUT/diag-arm64.npz" \
        "$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)"
    info "diagnosis took $(elapsed "$t")"
fi

# ----------------------------------------------------------------------------------------------
step "plate detections on x86 and arm64 (shipped detector; boxes IoU >= 0.95, scores within 0.02)"
# drawn street scenes (tests/scenes.py) and, where the dev data is at hand, the first 20 real frames
cat >"$WORK/arm64_detect.py" <<'PY'
import glob, json, sys
import cv2
from edge_ocr.find.detector import PlateDetector
from tests import scenes
det = PlateDetector(sys.argv[1], 640, 0.2, 5)
frames = [(f"drawn-{i}", scenes.still_with_box(t, r, seed=i)[0])
          for i, (t, r) in enumerate([("RK115AN", "eu"), ("PJC4903", "br"), ("7ABC123", "us"), ("B123XY", "eu")] * 3)]
frames += [(p.rsplit("/", 1)[-1], cv2.imread(p)) for p in sorted(glob.glob(sys.argv[2] + "/*/*.jpg"))[:20]]
for name, img in frames:
    found = det.detect(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    print(json.dumps({"file": name, "dets": [[round(d.score, 4), d.quad.round(2).tolist()] for d in found]}))
PY
REAL_FRAMES=$(dirname "$REAL")/frames
mkdir -p "$ROOT/work/frames"
[ -d "$REAL_FRAMES" ] && for d in "$REAL_FRAMES"/*/; do mkdir -p "$ROOT/work/frames/$(basename "$d")"; cp "$d"*.jpg "$ROOT/work/frames/$(basename "$d")/" 2>/dev/null || true; done
cp "$WORK/arm64_detect.py" "$ROOT/tmp/arm64_detect.py"
PYTHONPATH="$REPO" python3 "$WORK/arm64_detect.py" "$REPO/models/plate_det_int8.onnx" "$ROOT/work/frames" >"$OUT/x86-det.jsonl" ||
    die "x86 detection failed"
in_root /bin/sh -c "cd /src && PYTHONPATH=/src exec $VENV/bin/python /tmp/arm64_detect.py /src/models/plate_det_int8.onnx /work/frames" \
    >"$OUT/arm64-det.jsonl" 2>"$OUT/arm64-det.err" || { cat "$OUT/arm64-det.err"; die "arm64 detection failed"; }
python3 - "$OUT" <<'PY' || compare_ok=0
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
x86 = [json.loads(x) for x in (out / "x86-det.jsonl").read_text().splitlines()]
arm = [json.loads(x) for x in (out / "arm64-det.jsonl").read_text().splitlines()]
def box_iou(qa, qb):
    a = [min(p[0] for p in qa), min(p[1] for p in qa), max(p[0] for p in qa), max(p[1] for p in qa)]
    b = [min(p[0] for p in qb), min(p[1] for p in qb), max(p[0] for p in qb), max(p[1] for p in qb)]
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    inter = max(iw, 0) * max(ih, 0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


bad, worst_q, worst_s, worst_iou = 0, 0.0, 0.0, 1.0
for a, b in zip(x86, arm):
    # detections near the 0.2 floor may come and go; the ones that count (>= 0.3) must match
    da = [d for d in a["dets"] if d[0] >= 0.3]
    db = [d for d in b["dets"] if d[0] >= 0.3]
    if len(da) != len(db):
        bad += 1
        print(f"    {a['file']}: {len(da)} x86 detections, {len(db)} arm64")
        continue
    # the output conv is float, and its corner offsets are scaled by 64 px and by the frame's
    # downscaling: a last-bit difference moves a corner by a pixel or two of a 1280 px frame
    for (sa, qa), (sb, qb) in zip(da, db):
        dq = max(abs(u - v) for pa, pb in zip(qa, qb) for u, v in zip(pa, pb))
        ov = box_iou(qa, qb)
        worst_q, worst_s, worst_iou = max(worst_q, dq), max(worst_s, abs(sa - sb)), min(worst_iou, ov)
        if ov < 0.95 or abs(sa - sb) > 0.02:
            bad += 1
            print(f"    {a['file']}: boxes IoU {ov:.3f}, scores {sa} vs {sb}")
print(f"    {len(x86)} frames, {sum(len(a['dets']) for a in x86)} detections; worst corner difference "
      f"{worst_q:.3f} px, lowest box IoU {worst_iou:.4f}, worst score difference {worst_s:.4f}; {bad} frames differ")
sys.exit(1 if bad or len(x86) != len(arm) else 0)
PY

# ----------------------------------------------------------------------------------------------
step "unit tests in the root (no broker, no browser)"
tests=()
for f in $TESTS; do
    if [ -f "$ROOT/src/$f" ]; then tests+=("$f"); else info "skipping missing $f"; fi
done
[ ${#tests[@]} -gt 0 ] || die "no test files to run"
info "${tests[*]}"
t=$SECONDS
tests_ok=1
in_root /bin/sh -c 'cd /src && PYTHONPATH=/src EDGE_OCR_FUZZ_EXAMPLES='"${ARM64_FUZZ_EXAMPLES:-50}"' exec '"$VENV"'/bin/python -m pytest -q -p no:cacheprovider "$@"' \
    sh "${tests[@]}" 2>&1 | tee "$WORK/pytest.log" | sed 's/^/    /' || tests_ok=0
info "tests took $(elapsed "$t") (emulated)"

# ----------------------------------------------------------------------------------------------
step "result"
umount_root
echo "    readings x86 vs arm64: $([ $compare_ok = 1 ] && echo MATCH || echo DIFFER)"
echo "    unit tests in arm64 root: $([ $tests_ok = 1 ] && echo PASS || echo FAIL)"
echo "    total time: $(elapsed "$START")"
if [ $compare_ok = 1 ] && [ $tests_ok = 1 ]; then
    echo "arm64-check: OK"
    exit 0
fi
echo "arm64-check: FAILED"
exit 1
