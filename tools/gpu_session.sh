#!/usr/bin/env bash
# Both models trained on a lent GPU machine in one call (models/MODEL_CARD.md, "Training on a lent GPU").
#
#   tools/gpu_session.sh pack        # here: writes .gpu/ (data copies, fonts, wheels) and prints its size
#   tools/gpu_session.sh run 6       # there, .gpu carried: 6 minutes of training, all done within 6 + 3
#
# run trains the recogniser (tools/train_recipe.sh gpu: fine-tunes models/plate_crnn_fp32.onnx) and
# the detector (tools/train_detector.py, from scratch) at the same time on the one GPU, the CPU
# cores split between their data workers (the renderers, not the GPU, set both paces); then each
# is exported, quantised and evaluated on the validation split. Into $OUT (at most 8 files, as the
# device tool returns them): session.log, train-crnn.log and train-det.log (written from the
# start, so a run cut short still brings them back), the four ONNX files as each is ready, and
# results.tar (the eval JSONs and text, training logs, checkpoints). It stops itself 20 s before
# MINUTES + 3 minutes. Knobs (environment): EDGE_OCR_GPU_DEVICE (cuda; cpu to try it here),
# REC_WORKERS / DET_WORKERS (data processes; half the cores / the rest but 2), DET_BATCH (128),
# REC_BATCH (256), DET_EVAL_EVERY (120 s), REC_LABELS (the packed crops' labels.csv; .gpu/data/detcrops/labels.csv
# adds the detector's crops of the train frames), CRNN_VERSION, DET_VERSION, GPU_PACK (.gpu).
set -uo pipefail
cd "$(dirname "$0")/.."
PACK=${GPU_PACK:-.gpu}
DEPS=(pydantic pydantic-core annotated-types typing-inspection typing-extensions)

pack() {
  mkdir -p "$PACK"
  rm -rf "$PACK/wheels"
  # the versions this checkout is tested with, built for the machine's CPython 3.12 on x86-64
  local pins
  pins=$(python -c "import importlib.metadata as m, sys; print(' '.join(f'{d}=={m.version(d)}' for d in sys.argv[1:]))" \
    "${DEPS[@]}") || exit 1
  python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$PACK/wheels" $pins || exit 1
  # fontTools, here only, to cut the 17 MB CJK font down to the characters drawn
  local ft
  ft=$(mktemp -d)
  python -m pip download -q --no-deps --only-binary=:all: --platform any --python-version 3.12 -d "$ft" \
    fonttools==4.68.0 || echo "fontTools not fetched: the CJK font travels whole"
  PYTHONPATH="$PWD$(printf ':%s' "$ft"/*.whl)" python -m tools.gpu_pack "$PACK" "${@}" || exit 1
  rm -rf "$ft"
  local repo extra
  repo=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
  extra=$(git ls-files -z --others --exclude-standard | xargs -0 -r du -cb | tail -1 | cut -f1)
  local gpu
  gpu=$(du -sb "$PACK" | cut -f1)
  local all=$(( repo + ${extra:-0} + gpu ))
  echo "travels: repo $(( repo / 1000 )) kB + untracked $(( ${extra:-0} / 1000 )) kB + $PACK $(( gpu / 1000 )) kB" \
    "= $(( all / 1048576 )) MiB of the 64 MiB limit"
  [ "$all" -lt $(( 60 * 1048576 )) ] || { echo "error: over 60 MiB: pack with a smaller --budget-mb"; exit 1; }
}

run() {
  local minutes=${1:?usage: tools/gpu_session.sh run MINUTES}
  T0=$(date +%s)
  END=$(( T0 + minutes * 60 + 180 - 20 ))
  OUT=${OUT:-runs/gpu-session-out}
  mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
  local device=${EDGE_OCR_GPU_DEVICE:-cuda} n
  n=$(nproc)
  local rec_w=${REC_WORKERS:-$(( n / 2 ))} det_w=${DET_WORKERS:-$(( n - n / 2 - 2 ))}
  (( rec_w < 3 )) && rec_w=3  # two augment real crops; at least one must render
  (( det_w < 1 )) && det_w=1
  say "run $minutes min on $device, $n cores: recogniser $rec_w data processes, detector $det_w; ends by $(date -u -d @"$END" +%T)"
  [ -f "$PACK/data/plates-real-dev/crops/labels.csv" ] || { say "no $PACK/data: run 'tools/gpu_session.sh pack' here and carry $PACK"; exit 2; }
  export PYTHONUNBUFFERED=1 EDGE_OCR_FONT_DIR=$PWD/$PACK/fonts EDGE_OCR_DATA=$PWD/$PACK/data
  if ! command -v python >/dev/null; then  # the recipe says python; some images only have python3
    mkdir -p /tmp/gpu-bin && ln -sf "$(command -v python3)" /tmp/gpu-bin/python && export PATH=/tmp/gpu-bin:$PATH
  fi
  if ! python -c 'import pydantic' 2>/dev/null; then
    python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      "$PACK"/wheels/*.whl 2>&1 | tee -a "$OUT/session.log" || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  command -v nvidia-smi >/dev/null && nvidia-smi -L 2>&1 | tee -a "$OUT/session.log"
  df -h /dev/shm | tail -1 | tee -a "$OUT/session.log"  # the detector's loader passes ~1 GB/s of batches through it
  python - "$device" <<'EOF' 2>&1 | tee -a "$OUT/session.log"
import sys, torch, pydantic, tools.eval_localizer, tools.evaluate, tools.train, tools.train_detector  # noqa
from tools.synth_plates import available_fonts
latin, cjk = available_fonts()
print(f"torch {torch.__version__}, pydantic {pydantic.VERSION}, cuda {torch.cuda.is_available()}, "
      f"{len(latin)} Latin fonts, {len(cjk)} CJK")
if sys.argv[1] == "cuda" and not torch.cuda.is_available():
    sys.exit("no CUDA device")
EOF
  (( PIPESTATUS[0] == 0 )) || { say "preflight failed"; exit 1; }

  local rec_labels=${REC_LABELS:-$PACK/data/plates-real-dev/crops/labels.csv}
  (
    LABELS=$rec_labels DEVICE=$device WORKERS=$rec_w BATCH=${REC_BATCH:-256} VERSION=${CRNN_VERSION:-1.5.0} \
      timeout -k 10 "$(left)" tools/train_recipe.sh gpu "$minutes"
    rc=$?
    for m in fp32 int8; do  # what the recipe finished, even if it was stopped later
      [ -f runs/recipe-gpu/plate_crnn_$m.onnx ] && cp runs/recipe-gpu/plate_crnn_$m.onnx "$OUT"/
    done
    exit $rc
  ) > "$OUT/train-crnn.log" 2>&1 &
  local rec=$!
  (
    timeout -k 10 "$(left)" python -m tools.train_detector runs/gpu-det --minutes "$minutes" \
      --device "$device" --batch "${DET_BATCH:-128}" --workers "$det_w" --eval-every "${DET_EVAL_EVERY:-120}"
    rc=$?  # stopped early, it may still have a best.pt from an evaluation on the way
    timeout -k 10 "$(left)" python -m tools.export_detector runs/gpu-det/best.pt \
      runs/gpu-det/plate_det_fp32.onnx runs/gpu-det/plate_det_int8.onnx --version "${DET_VERSION:-1.1.0}" || exit
    cp runs/gpu-det/plate_det_fp32.onnx runs/gpu-det/plate_det_int8.onnx "$OUT"/
    for m in int8 fp32; do
      timeout -k 10 "$(left)" python -m tools.eval_localizer --type learnt \
        --model runs/gpu-det/plate_det_$m.onnx > runs/gpu-det/eval-$m.txt || exit
    done
    exit $rc
  ) > "$OUT/train-det.log" 2>&1 &
  local det=$!
  wait "$rec"; local rc_rec=$?
  say "recogniser done (exit $rc_rec)"
  wait "$det"; local rc_det=$?
  say "detector done (exit $rc_det)"

  for f in runs/recipe-gpu/val-fp32.json runs/recipe-gpu/val-int8.json runs/gpu-det/eval-int8.txt runs/gpu-det/eval-fp32.txt; do
    [ -f "$f" ] && { echo "== $f"; cat "$f"; } >> "$OUT/session.log"
  done
  local keep=() f
  for f in runs/recipe-gpu/{val-fp32.json,val-int8.json,train.log,soup.pt,last.pt} \
           runs/gpu-det/{eval-int8.txt,eval-fp32.txt,train.log,best.pt,last.pt}; do
    [ -f "$f" ] && keep+=("$f")
  done
  (( ${#keep[@]} )) && tar -cf "$OUT/results.tar" "${keep[@]}"
  if [ -f "$OUT/results.tar" ] && (( $(stat -c %s "$OUT/results.tar") > 16 * 1048576 )); then
    local small=()  # the returned file's limit: the checkpoints' optimiser states go first
    for f in "${keep[@]}"; do [[ $f == */last.pt ]] || small+=("$f"); done
    tar -cf "$OUT/results.tar" "${small[@]}"
  fi
  say "files in $OUT:"
  ls -l "$OUT" | tee -a "$OUT/session.log"
  python - "$OUT" <<'EOF' | tee -a "$OUT/session.log"
import json, pathlib, re, sys
run = pathlib.Path("runs")
for m in ("fp32", "int8"):
    p = run / "recipe-gpu" / f"val-{m}.json"
    if p.exists():
        d = json.loads(p.read_text())
        o = d["regions"]["overall"]
        print(f"recogniser {m} (val, one read): {o['exact']:.1%} exact of {o['n']}, CER {o['cer']:.1%}; "
              + ", ".join(f"{k} {v['exact']:.1%}" for k, v in {**d["regions"], **d["sources"]}.items() if k != "overall"))
    p = run / "gpu-det" / f"eval-{m}.txt"
    if p.exists():
        print(f"detector {m}:", " | ".join(l for l in p.read_text().splitlines() if re.match(r"(all |many-country|no-plate)", l)))
for log in (pathlib.Path(sys.argv[1]) / "train-crnn.log", pathlib.Path(sys.argv[1]) / "train-det.log"):
    lines = [l for l in log.read_text(errors="replace").splitlines() if "eval" in l or "done" in l or "rror" in l]
    print(f"{log.name}: " + "\n  ".join(lines[-4:]))
EOF
  say "finished (recogniser exit $rc_rec, detector exit $rc_det)"
  (( rc_rec == 0 && rc_det == 0 ))
}

left() { local s=$(( END - $(date +%s) )); echo $(( s > 1 ? s : 1 )); }  # seconds to the deadline
say() { echo "$(date -u +%T) +$(( $(date +%s) - T0 ))s $*" | tee -a "$OUT/session.log"; }

case ${1:-} in
  pack) shift; pack "$@" ;;
  run) shift; run "$@" ;;
  *) echo "usage: tools/gpu_session.sh pack [tools.gpu_pack options] | run MINUTES" >&2; exit 2 ;;
esac
