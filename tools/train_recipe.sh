#!/usr/bin/env bash
# The recogniser's recipe in one command (models/MODEL_CARD.md, "Training data and recipe").
#
#   tools/train_recipe.sh gpu      # one GPU + 16 CPU cores: 8 minutes of training (model 1.4.0)
#   tools/train_recipe.sh cpu 120  # a 2-core CPU: shards rendered in the background, 120 minutes
#   tools/train_recipe.sh cpu3 70  # model 1.5.0: recipe 3 streamed + the detector's crops, one core,
#                                  # lr 2e-4, averaged with its start, calibrated (MODEL_CARD "1.5.0")
#
# Both fine-tune the shipped FP32 model (models/plate_crnn_fp32.onnx) on crop-robust synthetic
# plates (tools/synth_mix.py --recipe 2; the GPU run recipe 3, the same mix composed by
# tools/synth_fast.py, several times faster) mixed with the train split of the real dev crops
# (split by plate: tools/evaluate.py split_of), then export, quantise and evaluate into runs/.
# A CPU run can be stopped and started again: it resumes from runs/<name>/last.pt on its clock.
# The GPU run ends by averaging its weights half and half with the model it started from
# (tools/average_weights.py): the fine-tune alone drifted towards the sources it saw most.
# A GPU machine without the fonts needs the ones tools/synth_plates.py lists copied to the same
# paths; the rendering processes, not the GPU, set the pace (recipe 2 gave about 600 samples/s on
# 14 cores; python -m bench.synth_speed measures both renderers per core).
# GROW (tools/grow.py options: a larger network grown from the shipped one) and REAL_SMALL (share of
# real crops shown small, tools/train.py --real-small) are the next run's two levers (MODEL_CARD,
# "Capacity, measured"). LABELS, DEVICE (cuda), WORKERS (rendering processes, all cores but 2) and BATCH (256) change the
# GPU run's inputs; tools/gpu_session.sh sets them to share one GPU machine with the detector's
# training (and to try the run on a CPU with a small batch, which needs fewer samples to start).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-cpu}
MINUTES=${2:-}
L=${LABELS:-../shared/data/plates-real-dev/crops/labels.csv}
VERSION=${VERSION:-1.4.0}
CKPT=last.pt
OUT=runs/recipe-$MODE
RECIPE=2
mkdir -p "$OUT"
if [ "$MODE" = cpu3 ]; then
  RECIPE=3
  DET=runs/detcrops
  [ -f "$DET/labels.csv" ] || python -m tools.detector_crops "${FRAMES:-$(dirname "$L")/../frames/frames.csv}" "$DET" --also "$L"
  RESUME=()
  [ -f "$OUT/last.pt" ] && RESUME=(--resume --freeze-bn) || RESUME=(--init-onnx models/plate_crnn_fp32.onnx)
  python -m tools.train --stream-workers 1 --real-workers 0 --recipe 3 --real "$DET/labels.csv" --real-fraction 0.3 \
    "${RESUME[@]}" --out "$OUT" --minutes "${MINUTES:-70}" --batch 64 --lr 2e-4 --var-width 0.4 --threads 1 \
    --seed 12 --eval-every 500 --buffer 50000
  python -m tools.average_weights models/plate_crnn_fp32.onnx "$OUT/last.pt" "$OUT/soup.pt"
  CKPT=soup.pt
elif [ "$MODE" = gpu ]; then
  RECIPE=3
  START=(--init-onnx models/plate_crnn_fp32.onnx)
  BASE=models/plate_crnn_fp32.onnx
  if [ -n "${GROW:-}" ]; then  # e.g. GROW="--widths 24,72,96,144,192": the capacity sweep's best size
    # shellcheck disable=SC2086
    python -m tools.grow models/plate_crnn_fp32.onnx "$OUT/grown-init.pt" $GROW
    START=(--init "$OUT/grown-init.pt" --freeze-bn)
    BASE=$OUT/grown-init.pt
  fi
  python -m tools.train --stream-workers "${WORKERS:-$(( $(nproc) - 2 ))}" --real-workers 2 --recipe $RECIPE --real "$L" \
    --real-fraction 0.3 --real-small "${REAL_SMALL:-0}" "${START[@]}" --out "$OUT" --minutes "${MINUTES:-8}" \
    --batch "${BATCH:-256}" --lr 8e-4 --var-width 0.4 --buffer 300000 --threads 4 --seed 11 --device "${DEVICE:-cuda}"
  python -m tools.average_weights "$BASE" "$OUT/last.pt" "$OUT/soup.pt"
  CKPT=soup.pt
else
  SHARDS=${SHARDS:-data/shards2}
  # render in the background (one core); training re-scans the folder every 1,000 steps
  python -m tools.synth_mix "$SHARDS" --shards 1 --count 2000 --seed 21 --recipe 2
  nice -n 5 python -m tools.synth_mix "$SHARDS" --shards 200 --count 2000 --seed 22 --recipe 2 \
    > "$OUT/render.log" 2>&1 &
  RENDER=$!
  trap 'kill $RENDER 2>/dev/null || true' EXIT
  RESUME=()
  [ -f "$OUT/last.pt" ] && RESUME=(--resume --freeze-bn) || RESUME=(--init-onnx models/plate_crnn_fp32.onnx)
  python -m tools.train --shards "$SHARDS" --real "$L" --real-fraction 0.3 "${RESUME[@]}" --out "$OUT" \
    --minutes "${MINUTES:-120}" --batch 64 --lr 8e-4 --var-width 0.4 --threads 1 --seed 11 --eval-every 500
fi
python -m tools.export_onnx "$OUT/$CKPT" "$OUT/plate_crnn_fp32.onnx" --version "$VERSION" \
  --training "synthetic recipe $RECIPE (tools/synth_mix.py, 3: tools/synth_fast.py) + real dev crops, train split by plate"
python -m tools.quantize "$OUT/plate_crnn_fp32.onnx" "$OUT/plate_crnn_int8.onnx" --calib "$L"
[ "$MODE" = cpu3 ] && python -m tools.calibrate "$L" --models "$OUT/plate_crnn_fp32.onnx,$OUT/plate_crnn_int8.onnx" --write
for m in fp32 int8; do
  python -m tools.evaluate "$OUT/plate_crnn_$m.onnx" "$L" --split val --retry-below 0 --json > "$OUT/val-$m.json"
done
echo "models and validation figures in $OUT"
