#!/usr/bin/env bash
# The recogniser's capacity sweep (issue 25; models/MODEL_CARD.md, "Capacity, measured") in one command:
#
#   tools/capacity_sweep.sh                 # 4 sizes x 3,000 steps of 64, two at a time: ~80 min on 2 cores
#   STEPS=12000 SIZES="base w15" tools/capacity_sweep.sh
#   FINISH_ONLY=1 tools/capacity_sweep.sh   # only export, quantise and measure what was trained
#
# A CPU cannot train each size from scratch, so each one is grown from the shipped FP32 model
# (tools/grow.py: it starts out computing the same function), then fine-tuned with the same
# data, steps, learning rate and seed as the others, averaged half and half with its start (the
# shipped recipe's last step), exported, quantised and read on the validation split by plate.
# The table (accuracy against parameters, multiply-adds and milliseconds) goes to $OUT/table.md.
# REAL: the real crops mixed into each batch (the 1.5.0 recipe: python -m tools.detector_crops
# ../shared/data/plates-real-dev/frames/frames.csv runs/detcrops --also LABELS).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-3000}
OUT=${OUT:-runs/sweep}
SIZES=${SIZES:-base h160 w15 l2}
L=${LABELS:-../shared/data/plates-real-dev/crops/labels.csv}
REAL=${REAL:-runs/detcrops/labels.csv}
START=${START:-models/plate_crnn_fp32.onnx}
mkdir -p "$OUT"

grow_args() {
  case "$1" in
    base) echo "" ;;
    h160) echo "--hidden 160" ;;
    w15) echo "--widths 24,72,96,144,192" ;;
    l2) echo "--layers 2" ;;
    w15h160) echo "--widths 24,72,96,144,192 --hidden 160" ;;
    *) echo "unknown size $1" >&2; exit 2 ;;
  esac
}

train_one() {
  local n=$1
  # shellcheck disable=SC2046
  python -m tools.grow "$START" "$OUT/$n-init.pt" $(grow_args "$n")
  python -m tools.train --stream-workers 1 --real-workers 0 --recipe 3 --real "$REAL" --real-fraction 0.3 \
    --init "$OUT/$n-init.pt" --freeze-bn --out "$OUT/$n" --steps "$STEPS" --batch 64 --lr 3e-4 \
    --var-width 0.4 --threads 1 --seed 12 --eval-every 500 --buffer 50000 > "$OUT/$n.log" 2>&1
}

finish_one() {
  local n=$1 d=$OUT/$1
  python -m tools.average_weights "$OUT/$n-init.pt" "$d/last.pt" "$d/soup.pt"
  for ck in last soup; do
    python -m tools.export_onnx "$d/$ck.pt" "$d/$ck-fp32.onnx" --version "sweep-$n" \
      --training "capacity sweep $n: grown from $START, $STEPS steps (tools/capacity_sweep.sh)"
    python -m tools.quantize "$d/$ck-fp32.onnx" "$d/$ck-int8.onnx" --calib "$L"
    # the confidence temperature, as shipped: the mending gate and the two-row re-read use confidences
    python -m tools.calibrate "$L" --models "$d/$ck-fp32.onnx,$d/$ck-int8.onnx" --write > "$d/calib-$ck.log"
    for m in fp32 int8; do
      python -m tools.evaluate "$d/$ck-$m.onnx" "$L" --split val --retry-below 0 --latency-n 600 --json \
        > "$d/val-$ck-$m.json"
    done
  done
}

if [ -z "${FINISH_ONLY:-}" ]; then
  # two lanes: one training process per core (each with one rendering process beside it)
  set -- $SIZES
  lane() { for n in "$@"; do train_one "$n"; done; }
  odd=() even=()
  i=0
  for n in "$@"; do if (( i % 2 )); then odd+=("$n"); else even+=("$n"); fi; i=$((i + 1)); done
  lane "${even[@]}" &
  A=$!
  [ ${#odd[@]} -gt 0 ] && lane "${odd[@]}"
  wait $A
fi
for n in $SIZES; do finish_one "$n"; done
python - "$OUT" $SIZES <<'EOF'
import json, sys
from pathlib import Path

import torch

from tools.crnn import count_macs, from_checkpoint

out, sizes = Path(sys.argv[1]), sys.argv[2:]
rows = ["| size | parameters | MACs (160 wide) | INT8 ms p50 | FP32 one read | INT8 one read | INT8 soup | "
        "INT8 soup per source (cn / e2e / seg / td / 2row) | CER INT8 soup |", "|" + "---|" * 9]
for n in sizes:
    ck = torch.load(out / n / "soup.pt", map_location="cpu")
    model = from_checkpoint(ck)
    params = sum(p.numel() for p in model.parameters())
    macs = count_macs(**ck.get("arch", {}))
    v = {k: json.loads((out / n / f"val-{k}.json").read_text()) for k in ("last-fp32", "last-int8", "soup-int8")}
    src = v["soup-int8"]["sources"]
    per = " / ".join(f"{100 * src[s]['exact']:.1f}" for s in sorted(src))
    rows.append(f"| {n} | {params:,} | {macs / 1e6:.0f} M | {v['soup-int8']['latency_ms_p50']} | "
                f"{100 * v['last-fp32']['regions']['overall']['exact']:.1f} % | "
                f"{100 * v['last-int8']['regions']['overall']['exact']:.1f} % | "
                f"**{100 * v['soup-int8']['regions']['overall']['exact']:.1f} %** | {per} | "
                f"{100 * v['soup-int8']['regions']['overall']['cer']:.2f} % |")
(out / "table.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
EOF
