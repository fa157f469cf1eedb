#!/usr/bin/env bash
# Training throughput of embgeom-train against the PyTorch replica (benches/trainer_reference.py)
# on the same device, model, loss, batch size and precision, in one run; then a short SupCon run
# whose first and last checkpoints `embgeom analyze` measures, and two-tower CLIP and SigLIP runs.
#
# Needs only: the embgeom-train binary ($EMBGEOM_TRAIN), the embgeom binary ($EMBGEOM, for the
# analysis; optional), a Python with PyTorch 2.11 ($PYTHON, default python3; its libtorch is the
# one the binary loads) and data/digits.csv. No Rust, no network: copy those files to a GPU
# machine and run it there (see docs/src/development/parity.md, "The GPU check").
#
# On CUDA: batch sizes 512 and 2048, f32 and f16 autocast, 50 timed steps after 3 warm-up ones.
# On CPU: batch sizes 128 and 512, f32, 5 timed steps (the GPU rows are reported as not measured).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$HOME/.cache/embgeom-target}"
PYTHON="${PYTHON:-python3}"
TRAIN="${EMBGEOM_TRAIN:-$target/release/embgeom-train}"
EMBGEOM="${EMBGEOM:-$target/release/embgeom}"
REFERENCE="${REFERENCE:-$here/trainer_reference.py}"
DIGITS="${DIGITS:-$root/data/digits.csv}"

# The binary loads the libtorch of this Python's torch (and its NVIDIA libraries, on a GPU).
torch_dir="$("$PYTHON" -c 'import torch, os; print(os.path.dirname(torch.__file__))')"
nvidia="$(find "$torch_dir/../nvidia" -maxdepth 3 -name lib -type d 2>/dev/null | tr '\n' ':')"
export LD_LIBRARY_PATH="$torch_dir/lib:${nvidia}${LD_LIBRARY_PATH:-}"

device="$("$PYTHON" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')"
name="$("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (" + str(torch.get_num_threads()) + " threads)")')"
if [ "$device" = cuda ]; then
  batches="${BATCHES:-512 2048}"; steps="${STEPS:-50}"; precisions="f32 amp"
else
  batches="${BATCHES:-128 512}"; steps="${STEPS:-5}"; precisions="f32"
fi
echo "device: $name; timed steps: $steps after 3 warm-up; loss supcon, dim 128, 28x28 images"
echo
echo "| device | batch | precision | embgeom-train images/s | PyTorch images/s | ratio |"
echo "|---|---|---|---|---|---|"
rate() { "$PYTHON" -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["images_per_second"])'; }
for batch in $batches; do
  for precision in $precisions; do
    flag=(); [ "$precision" = amp ] && flag=(--amp)
    ours="$("$TRAIN" --bench-steps "$steps" --batch-size "$batch" --device "$device" "${flag[@]}" | rate)"
    theirs="$("$PYTHON" "$REFERENCE" bench --steps "$steps" --batch-size "$batch" --device "$device" "${flag[@]}" | rate)"
    label="$precision"; [ "$precision" = amp ] && label="f16 autocast"
    "$PYTHON" -c "print(f'| $device | $batch | $label | {$ours:.0f} | {$theirs:.0f} | {$ours / $theirs:.2f} |')"
  done
done
if [ "$device" = cpu ]; then
  echo "| cuda | 512, 2048 | f32, f16 autocast | not measured (no GPU here) | | |"
fi

# A short SupCon run: the geometry moves toward the simplex.
run="$(mktemp -d)/supcon"
epochs="${EPOCHS:-4}"
"$TRAIN" --dataset digits --data "$DIGITS" --loss supcon --epochs "$epochs" --batch-size 128 \
  --dim 16 --temperature 0.2 --lr 3e-3 --device "$device" --out "$run" | tail -1
if [ -x "$EMBGEOM" ]; then
  for ckpt in "$run/ckpt_epoch_0001.safetensors" "$run/ckpt_epoch_$(printf %04d "$epochs").safetensors"; do
    "$EMBGEOM" analyze "$ckpt" --json - | "$PYTHON" -c '
import json, sys
m = json.load(sys.stdin)["metrics"]
nc1, etf, knn = (m[k]["value"] for k in ("nc1", "etf_distance", "knn_accuracy"))
name = sys.argv[1].rsplit("/", 1)[-1]
print(f"{name}: NC1 {nc1:.3f}, ETF distance {etf:.3f}, kNN accuracy {knn:.3f}")
' "$ckpt"
  done
else
  echo "($EMBGEOM not found: the checkpoints are in $run)"
fi

# The two towers (CLIP's and SigLIP's losses with their learnable scale and bias) on the same
# device: the gap and R@1 of the untrained and the last checkpoint.
for loss in clip siglip; do
  towers="$(mktemp -d)/$loss"
  "$TRAIN" --dataset digits --data "$DIGITS" --loss "$loss" --epochs "$epochs" --batch-size 128 \
    --dim 16 --temperature 0.07 --lr 3e-3 --device "$device" --initial-checkpoint --out "$towers" | tail -1
  if [ -x "$EMBGEOM" ]; then
    for ckpt in "$towers/ckpt_epoch_0000.safetensors" "$towers/ckpt_epoch_$(printf %04d "$epochs").safetensors"; do
      "$EMBGEOM" analyze --modalities "$ckpt:top" "$ckpt:bottom" --shifts '' --json - | "$PYTHON" -c '
import json, sys
pair = json.load(sys.stdin)["pairs"][0]
name = sys.argv[1].rsplit("/", 1)[-1]
r1 = pair["retrieval"]["top_to_bottom"]["recall_at_1"]
distance, (cone_a, cone_b) = pair["gap"]["distance"], pair["gap"]["cones"]
print(f"{sys.argv[2]} {name}: gap {distance:.3f}, cones {cone_a:.3f} / {cone_b:.3f}, R@1 {r1:.4f}")
' "$ckpt" "$loss"
    done
  fi
done
