#!/usr/bin/env bash
# Install edge-ocr as a systemd service on Raspberry Pi OS / Debian 12 (bookworm) or later.
#
#   sudo tools/install.sh --region us   install or upgrade, reading the plates of one country
#                                       (us, eu, br, cn; a comma list for several); asked if not given
#   sudo tools/install.sh               install or upgrade; enable and (re)start the service
#   sudo tools/install.sh --uninstall   remove the service, the virtualenv and the models;
#                                       keep /etc/edge-ocr and /var/lib/edge-ocr (the outbox)
#   sudo tools/install.sh --purge       --uninstall, and remove /etc/edge-ocr and /var/lib/edge-ocr too
#
# More cameras on one machine: one instance of the template unit edge-ocr@.service per camera.
#   sudo tools/install.sh --instance entry              add edge-ocr@entry: /etc/edge-ocr/entry.yaml
#                                                       (device_id, outbox, HTTP port of its own),
#                                                       state and outbox in /var/lib/edge-ocr-entry
#   sudo tools/install.sh --instance entry --uninstall  remove that instance, keep its config and outbox
#   sudo tools/install.sh --instance entry --purge      remove it with its config and outbox
#
# Safe to run again: an existing /etc/edge-ocr/config.yaml is never overwritten.
# Run with --help for the options (other locations, skipping apt/venv/systemctl for tests).
set -euo pipefail

PROG="edge-ocr install"
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PREFIX=/opt/edge-ocr
ETC=/etc/edge-ocr
UNIT_DIR=/etc/systemd/system
STATE_DIR=/var/lib/edge-ocr
CREDSTORE=/etc/credstore
ACTION=install
USE_VENV=1
USE_SYSTEMCTL=1
USE_APT=1
PI=auto
UNIT=edge-ocr.service
# the file that defines UNIT: the template edge-ocr@.service for an instance
UNIT_FILE=edge-ocr.service
INSTANCE=""
# the drop-in this script may write (and always owns); `systemctl edit` writes override.conf beside it
DROPIN_NAME=50-install.conf

usage() {
    cat <<EOF
Usage: sudo $0 [--instance NAME] [--uninstall | --purge] [options]

Installs edge-ocr from this checkout ($SRC):
  a virtualenv in PREFIX/venv (with the system's site-packages, so apt's python3-picamera2 is
  usable), the models in PREFIX/models, ETC/config.yaml (only if absent), the systemd unit in
  UNIT_DIR; then checks the config and enables and (re)starts the service.

Options:
  --instance NAME   one more camera: the unit edge-ocr@NAME (template edge-ocr@.service), its own
                    config ETC/NAME.yaml (new ones get device_id NAME, the outbox in STATE_DIR-NAME
                    and a free HTTP port), state in STATE_DIR-NAME; with --uninstall or --purge
                    only that instance goes (the program files stay for the others)
  --region LIST     the country whose plates are read: us, eu, br or cn (generic: Latin-script
                    plates of other countries), or a comma list such as
                    eu,br; written to formats.regions in ETC/config.yaml (also in an existing one).
                    Asked when the config is new and this is a terminal; otherwise all four, which
                    takes more signs and plate pieces for plates and reads fewer plates right
  --prefix DIR      program files (default $PREFIX)
  --etc DIR         configuration directory (default $ETC)
  --unit-dir DIR    where the unit goes (default $UNIT_DIR)
  --state-dir DIR   the service's state, removed by --purge only (default $STATE_DIR)
  --pi | --no-pi    treat this machine as a Raspberry Pi or not (default: read /proc/device-tree/model)
  --no-apt          do not apt-get install missing system packages
  --no-venv         do not create the virtualenv or pip install; check the config with
                    \$PYTHON (default python3) running the package from this checkout
  --no-systemctl    do not call systemctl (no root needed when every directory is writable)
  --uninstall       remove the unit, the virtualenv and the models; keep ETC and STATE_DIR
  --purge           --uninstall, and also remove ETC, STATE_DIR and $CREDSTORE/edge-ocr.mqtt_password
  -h, --help        this text
EOF
}

log() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
trap 'rc=$?; printf "%s: error: failed (exit %s) at line %s: %s\n" "$PROG" "$rc" "$LINENO" "$BASH_COMMAND" >&2' ERR

ARGS="$*"
custom_etc=0
REGIONS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --instance) INSTANCE="${2:?--instance needs a name, such as entry}"; shift ;;
        --region) REGIONS="${REGIONS:+$REGIONS,}${2:?--region needs a country: us, eu, br or cn}"; shift ;;
        --prefix) PREFIX="${2:?--prefix needs a directory}"; shift ;;
        --etc) ETC="${2:?--etc needs a directory}"; custom_etc=1; shift ;;
        --unit-dir) UNIT_DIR="${2:?--unit-dir needs a directory}"; shift ;;
        --state-dir) STATE_DIR="${2:?--state-dir needs a directory}"; shift ;;
        --pi) PI=yes ;;
        --no-pi) PI=no ;;
        --no-apt) USE_APT=0 ;;
        --no-venv) USE_VENV=0 ;;
        --no-systemctl) USE_SYSTEMCTL=0 ;;
        --uninstall) ACTION=uninstall ;;
        --purge) ACTION=purge ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done

# "eu, br" / "eu,,br" -> "eu,br"; each one known (the same names as formats.regions)
check_regions() {
    local r out=""
    for r in $(printf '%s' "$1" | tr ',A-Z' ' a-z'); do
        case "$r" in
            us | eu | br | cn | generic) case ",$out," in *",$r,"*) ;; *) out="${out:+$out,}$r" ;; esac ;;
            *) return 1 ;;
        esac
    done
    [ -n "$out" ] && printf '%s' "$out"
}
if [ -n "$REGIONS" ]; then
    given="$REGIONS"
    REGIONS="$(check_regions "$given")" || die "--region: use us, eu, br, cn or generic (a comma list for several), got '$given'"
fi

for d in PREFIX ETC UNIT_DIR STATE_DIR; do
    case "${!d}" in
        /*) ;;
        *) die "--$(echo "$d" | tr 'A-Z_' 'a-z-') must be an absolute path, got '${!d}'" ;;
    esac
done
# only the real /etc holds the credential store the unit reads; keep --purge inside a custom --etc
if [ "$custom_etc" = 1 ]; then CREDSTORE="$ETC/credstore"; fi

CRED=edge-ocr.mqtt_password
if [ -n "$INSTANCE" ]; then
    [[ "$INSTANCE" =~ ^[A-Za-z0-9_-]{1,64}$ ]] && [ "$INSTANCE" != config ] \
        || die "--instance: use 1..64 letters, digits, _ and - (not 'config'), got '$INSTANCE'"
    UNIT="edge-ocr@$INSTANCE.service"
    UNIT_FILE="edge-ocr@.service"
    STATE_DIR="$STATE_DIR-$INSTANCE"
    CRED="edge-ocr-$INSTANCE.mqtt_password"
fi

VENV="$PREFIX/venv"
MODELS="$PREFIX/models"
CONFIG="$ETC/${INSTANCE:-config}.yaml"

if [ "$USE_SYSTEMCTL" = 1 ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root: sudo $0 $ARGS"
fi
if [ "$USE_SYSTEMCTL" = 1 ] && [ ! -d /run/systemd/system ]; then
    die "systemd is not running here (a container?): use --no-systemctl, or install on the Pi itself"
fi

systemctl_() {
    if [ "$USE_SYSTEMCTL" = 1 ]; then
        systemctl "$@"
    else
        log "skipped (--no-systemctl): systemctl $*"
    fi
}

# ----------------------------------------------------------------------------- uninstall

stop_unit() {
    if [ "$USE_SYSTEMCTL" = 1 ] && systemctl cat "$1" >/dev/null 2>&1; then
        log "stopping and disabling $1"
        systemctl disable --now "$1" || warn "could not stop $1; removing it anyway"
    fi
}

# a unit file and the drop-in this script wrote for it; the user's own drop-ins stay unless --purge
remove_unit_file() {
    local f="$1"
    if [ -e "$UNIT_DIR/$f" ]; then
        log "removing $UNIT_DIR/$f"
        rm -f "$UNIT_DIR/$f"
    fi
    rm -f "$UNIT_DIR/$f.d/$DROPIN_NAME"
    if [ -d "$UNIT_DIR/$f.d" ]; then
        if [ "$ACTION" = purge ]; then
            rm -rf "$UNIT_DIR/$f.d"
        else
            rmdir "$UNIT_DIR/$f.d" 2>/dev/null || log "keeping your drop-ins in $UNIT_DIR/$f.d"
        fi
    fi
}

# the instances whose configs are in ETC (every NAME.yaml but config.yaml)
instances() {
    local f
    for f in "$ETC"/*.yaml; do
        [ -e "$f" ] && [ "$(basename "$f")" != config.yaml ] && basename "$f" .yaml
    done
    return 0
}

purge_paths() {
    local p
    for p in "$@"; do
        if [ -e "$p" ] || [ -L "$p" ]; then
            log "purging $p"
            rm -rf "$p"
        fi
    done
}

# DynamicUser= keeps the real state directory under private/ and links it from STATE_DIR
private_of() { printf '%s' "$(dirname "$1")/private/$(basename "$1")"; }

uninstall_instance() {
    stop_unit "$UNIT"
    remove_unit_file "$UNIT"
    if [ "$USE_SYSTEMCTL" = 1 ]; then
        systemctl daemon-reload
        systemctl reset-failed "$UNIT" 2>/dev/null || true
    fi
    if [ "$ACTION" = purge ]; then
        purge_paths "$CONFIG" "$STATE_DIR" "$(private_of "$STATE_DIR")" "$CREDSTORE/$CRED"
        log "purged $UNIT"
    else
        log "uninstalled $UNIT; kept $CONFIG and $STATE_DIR (remove them with --instance $INSTANCE --purge)"
    fi
}

uninstall() {
    local names name
    names="$(instances)"
    stop_unit "$UNIT"
    # the instances cannot run without the program files either
    for name in $names; do stop_unit "edge-ocr@$name.service"; done
    remove_unit_file "$UNIT"
    remove_unit_file "edge-ocr@.service"
    if [ "$USE_SYSTEMCTL" = 1 ]; then
        systemctl daemon-reload
        systemctl reset-failed "$UNIT" 2>/dev/null || true
    fi
    for d in "$VENV" "$MODELS"; do
        if [ -e "$d" ]; then
            log "removing $d"
            rm -rf "$d"
        fi
    done
    rmdir "$PREFIX" 2>/dev/null || true
    if [ "$ACTION" = purge ]; then
        purge_paths "$ETC" "$STATE_DIR" "$(private_of "$STATE_DIR")" "$CREDSTORE/$CRED"
        for name in $names; do
            purge_paths "$STATE_DIR-$name" "$(private_of "$STATE_DIR-$name")" "$CREDSTORE/edge-ocr-$name.mqtt_password"
        done
        log "purged"
    else
        log "uninstalled; kept $ETC and $STATE_DIR${names:+ and the state of the instances} (remove them with --purge)"
    fi
}

if [ "$ACTION" != install ]; then
    if [ -n "$INSTANCE" ]; then uninstall_instance; else uninstall; fi
    exit 0
fi

# ----------------------------------------------------------------------------- install

[ -f "$SRC/pyproject.toml" ] && [ -f "$SRC/config.yaml" ] && [ -f "$SRC/systemd/$UNIT_FILE" ] \
    || die "$SRC does not look like an edge-ocr checkout (pyproject.toml, config.yaml, systemd/$UNIT_FILE)"

if [ "$PI" = auto ]; then
    PI=no
    if [ -r /proc/device-tree/model ] && tr -d '\0' </proc/device-tree/model | grep -q "Raspberry Pi"; then
        PI=yes
    fi
fi
log "installing from $SRC (Raspberry Pi: $PI)"

# --- system packages
if [ "$USE_APT" = 1 ] && command -v apt-get >/dev/null 2>&1; then
    want=()
    [ "$USE_VENV" = 1 ] && want+=(python3-venv)
    # picamera2 comes from Raspberry Pi OS's apt repository: it is built against that libcamera
    [ "$PI" = yes ] && want+=(python3-picamera2)
    missing=()
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "apt-get install ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
fi

# --- virtualenv and package
if [ "$USE_VENV" = 1 ]; then
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtualenv $VENV"
        mkdir -p "$PREFIX"
        # --system-site-packages: apt's python3-picamera2 (and libcamera's bindings) stay importable
        python3 -m venv --system-site-packages "$VENV" \
            || die "python3 -m venv failed: install python3-venv (sudo apt-get install python3-venv)"
    fi
    # Build from a copy so that running as root leaves no root-owned build/ or *.egg-info in the checkout.
    build="$(mktemp -d)"
    trap 'rm -rf "$build"' EXIT
    cp -r "$SRC/pyproject.toml" "$SRC/edge_ocr" "$build/"
    for f in "$SRC"/README* "$SRC"/LICENSE* "$SRC"/MANIFEST.in "$SRC"/setup.cfg; do
        if [ -e "$f" ]; then cp "$f" "$build/"; fi
    done
    find "$build" -name __pycache__ -prune -exec rm -rf {} +
    spec="$build"
    pip_env=()
    if [ "$PI" = yes ]; then
        spec="$build[pi]"
        # apt's picamera2 imports simplejpeg, which Debian built against numpy 1.x: a numpy 2 in the
        # virtualenv would break `import picamera2`.
        printf 'numpy<2\n' >"$build/constraints.txt"
        pip_env=(PIP_CONSTRAINT="$build/constraints.txt")
    fi
    log "pip install $([ "$PI" = yes ] && echo "edge-ocr[pi]" || echo edge-ocr) into $VENV"
    # pip always reinstalls a package given as a local directory, so an upgrade picks up new code;
    # dependencies are only installed or upgraded where the requirements ask for it
    env "${pip_env[@]}" "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$spec"
    EDGE_OCR=("$VENV/bin/edge-ocr")
else
    log "skipped (--no-venv): virtualenv and pip install"
    EDGE_OCR=(env "PYTHONPATH=$SRC" "${PYTHON:-python3}" -m edge_ocr)
fi

# --- models
mkdir -p "$MODELS"
shopt -s nullglob
onnx=("$SRC"/models/*.onnx)
docs=("$SRC"/models/*.md)
shopt -u nullglob
if [ ${#onnx[@]} -eq 0 ]; then
    warn "no ONNX model in $SRC/models: the service cannot start until recognizer.model exists"
else
    log "installing ${#onnx[@]} model(s) into $MODELS"
    install -m 0644 "${onnx[@]}" "${docs[@]}" "$MODELS/"
fi

# formats.regions of a config file set to $REGIONS, in place; the rest of the file (comments
# included) unchanged. Handles the shipped flow list and a block list ("- us" lines).
set_regions() {
    local file="$1" yaml
    yaml="[$(printf '%s' "$REGIONS" | sed 's/,/, /g')]"
    if grep -Eq '^formats:[[:space:]]*(#.*)?$' "$file"; then
        if sed -n '/^formats:/,/^[^[:space:]#]/p' "$file" | grep -Eq '^[[:space:]]+regions:'; then
            sed -i -E "/^formats:/,/^[^[:space:]#]/ {
                /^[[:space:]]+regions:/,/^[[:space:]]*[A-Za-z_]+:|^[^[:space:]#]/ { /^[[:space:]]+-[[:space:]]/d }
                s#^([[:space:]]+regions:).*#\1 $yaml#
            }" "$file"
        else
            sed -i -E "s#^formats:[[:space:]]*(\#.*)?\$#&\n  regions: $yaml#" "$file"
        fi
    elif grep -Eq '^formats:' "$file"; then
        die "$file: formats is not a block here: set formats.regions: $yaml in it yourself"
    else
        printf '\nformats:\n  regions: %s\n' "$yaml" >>"$file"
    fi
}

# a new instance's config: its own device id, camera name, outbox and HTTP port (the first from
# 8081 that no config in ETC names; the single camera's config has 8080)
own_instance() {
    local file="$1" used port=8081 f
    used="$(for f in "$ETC"/*.yaml; do
        [ -e "$f" ] && sed -n '/^http:/,/^[^[:space:]#]/p' "$f" | awk '$1 == "port:" {print $2}'
    done; echo 8080)"
    while printf '%s\n' $used | grep -qx "$port"; do port=$((port + 1)); done
    log "$INSTANCE: device_id $INSTANCE, outbox $STATE_DIR/outbox.sqlite, http.port $port"
    sed -i -E "s#^device_id:.*#device_id: $INSTANCE#;
               /^camera:/,/^[^[:space:]#]/ s#^([[:space:]]+name:[[:space:]]*).*#\1$INSTANCE#;
               /^outbox:/,/^[^[:space:]#]/ s#^([[:space:]]+path:[[:space:]]*).*#\1$STATE_DIR/outbox.sqlite#;
               /^http:/,/^[^[:space:]#]/ s#^([[:space:]]+port:[[:space:]]*).*#\1$port#" "$file"
}

ask_regions() {
    local answer
    while :; do
        printf '%s' "Which country's plates will this camera read? us, eu, br or cn (a comma list for several; Enter: all four): " >/dev/tty
        IFS= read -r answer </dev/tty || return 0
        [ -z "$answer" ] && return 0
        if REGIONS="$(check_regions "$answer")"; then return 0; fi
        printf '%s\n' "  not a region: '$answer'" >/dev/tty
    done
}

# --- configuration (never overwrite the user's)
if [ ! -d "$ETC" ]; then
    mkdir -p "$ETC"
    chmod 0755 "$ETC"
fi
if [ -e "$CONFIG" ]; then
    log "keeping existing $CONFIG"
    if [ -n "$REGIONS" ]; then
        log "setting formats.regions to [$REGIONS] in $CONFIG"
        tmp="$CONFIG.tmp.$$"
        cp -p "$CONFIG" "$tmp"
        set_regions "$tmp"
        mv "$tmp" "$CONFIG"
    fi
else
    log "writing $CONFIG"
    tmp="$CONFIG.tmp.$$"
    # The package resolves relative model paths against its own parent folder, which is
    # site-packages once installed: point at the installed models by absolute path.
    sed -E "s#^([[:space:]]*model:[[:space:]]*)models/#\1$MODELS/#" "$SRC/config.yaml" >"$tmp"
    if [ "$PI" = yes ]; then
        # a Pi gets its camera module, not the demo video
        sed -i -E '/^camera:/,/^[^[:space:]#]/ s#^([[:space:]]+type:[[:space:]]*)file\b#\1picamera2#;
                   /^camera:/,/^[^[:space:]#]/ s#^([[:space:]]+uri:[[:space:]]*).*#\1""#' "$tmp"
    fi
    if [ -n "$INSTANCE" ]; then
        own_instance "$tmp"
    fi
    if [ -z "$REGIONS" ] && [ -t 0 ]; then
        ask_regions
    fi
    if [ -n "$REGIONS" ]; then
        log "formats.regions: [$REGIONS]"
        set_regions "$tmp"
    else
        warn "formats.regions is all four (us, eu, br, cn): set your country with --region xx (fewer signs and plate pieces taken for plates; see README)"
    fi
    # world-readable: the service's dynamic user has no fixed uid (secrets go in the credential store)
    chmod 0644 "$tmp"
    mv "$tmp" "$CONFIG"
    [ "$PI" = yes ] || warn "set camera.type and camera.uri in $CONFIG (the default reads a demo video)"
fi

# with every other config in ETC: the instances of this machine must not share a topic, port or file
others=()
for f in "$ETC"/*.yaml; do
    if [ -e "$f" ] && [ "$f" != "$CONFIG" ]; then others+=("$f"); fi
done
log "checking $CONFIG${others[*]:+ (and that it shares nothing with ${others[*]})}"
if ! effective="$("${EDGE_OCR[@]}" check-config "$CONFIG" "${others[@]}")"; then
    die "$CONFIG has errors (listed above): fix it, then run $0 again"
fi
# check-config prints the effective config; recognizer.model is its only "model:" key
model="$(printf '%s\n' "$effective" | awk '/^recognizer:/ {r = 1; next} /^[^ ]/ {r = 0} r && $1 == "model:" {print $2}')"
case "$model" in
    /*) [ -f "$model" ] || warn "recognizer.model $model does not exist: the service will not start" ;;
    *) warn "recognizer.model is relative ($model): use an absolute path such as $MODELS/plate_crnn_int8.onnx" ;;
esac

# --- systemd unit
mkdir -p "$UNIT_DIR"
log "installing $UNIT_DIR/$UNIT_FILE"
tmp="$UNIT_DIR/.$UNIT_FILE.tmp.$$"
sed -e "s#/opt/edge-ocr/venv/bin/edge-ocr#$VENV/bin/edge-ocr#" \
    -e "s#--config /etc/edge-ocr/config.yaml#--config $CONFIG#" \
    -e "s#--config /etc/edge-ocr/%i.yaml#--config $ETC/%i.yaml#" \
    "$SRC/systemd/$UNIT_FILE" >"$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$UNIT_DIR/$UNIT_FILE"

# MemoryDenyWriteExecute= makes loading a library that asks for an executable stack fail. Look
# for one in the virtualenv (ELF program header PT_GNU_STACK with PF_X) and relax that one setting
# in a drop-in if found, rather than ship a service that cannot import onnxruntime.
dropin="$UNIT_DIR/$UNIT_FILE.d/$DROPIN_NAME"
execstack=""
if [ "$USE_VENV" = 1 ]; then
    execstack="$("$VENV/bin/python" - "$VENV" <<'EOF'
import struct, sys
from pathlib import Path

def wants_exec_stack(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(64)
        if len(head) < 52 or head[:4] != b"\x7fELF":
            return False
        is64, end = head[4] == 2, "<" if head[5] == 1 else ">"
        if is64:
            phoff, = struct.unpack_from(end + "Q", head, 32)
            phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
        else:
            phoff, = struct.unpack_from(end + "I", head, 28)
            phentsize, phnum = struct.unpack_from(end + "HH", head, 42)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        p_type, = struct.unpack_from(end + "I", table, i * phentsize)
        flags_at = 4 if is64 else 24  # p_flags follows p_type in ELF64, comes late in ELF32
        p_flags, = struct.unpack_from(end + "I", table, i * phentsize + flags_at)
        if p_type == 0x6474E551 and p_flags & 1:  # PT_GNU_STACK, PF_X
            return True
    return False

for so in sorted(Path(sys.argv[1]).rglob("*.so*")):
    if so.is_file() and not so.is_symlink():
        try:
            if wants_exec_stack(so):
                print(so)
        except (OSError, struct.error):
            pass
EOF
)"
fi
if [ -n "$execstack" ]; then
    warn "these libraries ask for an executable stack, so MemoryDenyWriteExecute= is turned off in $dropin:"
    printf '  %s\n' $execstack >&2
    mkdir -p "$UNIT_DIR/$UNIT_FILE.d"
    printf '# Written by tools/install.sh: a library in the virtualenv needs an executable stack.\n[Service]\nMemoryDenyWriteExecute=no\n' >"$dropin"
    chmod 0644 "$dropin"
else
    rm -f "$dropin"
    rmdir "$UNIT_DIR/$UNIT_FILE.d" 2>/dev/null || true
fi

# --- enable and (re)start
systemctl_ daemon-reload
systemctl_ enable "$UNIT"
if [ "$USE_SYSTEMCTL" = 1 ]; then
    log "starting $UNIT (waits for READY=1)"
    # restart, not `enable --now`: on an upgrade the running daemon must pick up the new code
    if ! systemctl restart "$UNIT"; then
        journalctl -u "$UNIT" -n 30 --no-pager >&2 || true
        die "$UNIT did not start; see above, or: journalctl -u $UNIT"
    fi
    log "running. Logs: journalctl -u $UNIT -f   Status: systemctl status $UNIT"
else
    log "skipped (--no-systemctl): systemctl restart $UNIT"
fi
log "done. Config: $CONFIG (then: sudo systemctl reload ${UNIT%.service})"
