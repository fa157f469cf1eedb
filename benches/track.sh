#!/usr/bin/env bash
# Track benchmark (issue 5): 50 checkpoints of 10,000 x 128 (f32) with 10 classes, the whole
# `embgeom track` run (cold, then fully cached) against one `embgeom analyze` of a single
# checkpoint, on the same machine in the same run. Needs Python 3 with NumPy for the data.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/embgeom-target}"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin embgeom
bin="$CARGO_TARGET_DIR/release/embgeom"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import sys, numpy as np
work = sys.argv[1]
rng = np.random.default_rng(0)
n, d, c, steps = 10_000, 128, 10, 50
labels = np.arange(n) % c
np.savetxt(f"{work}/labels.txt", labels, fmt="%d")
start = rng.standard_normal((c, d))
target = np.linalg.qr(rng.standard_normal((d, c)))[0].T * 3
noise = rng.standard_normal((n, d))
import os
os.makedirs(f"{work}/run")
for s in range(steps):
    a = s / (steps - 1)
    means = (1 - a) * start + a * target
    x = means[labels] + (1.0 - 0.9 * a) * noise + 0.05 * rng.standard_normal((n, d))
    np.save(f"{work}/run/ckpt_{s}.npy", x.astype(np.float32))
PY
seconds() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
single=$(seconds "$bin" analyze "$work/run/ckpt_25.npy" --labels "$work/labels.txt")
cold=$(seconds "$bin" track "$work/run" --labels "$work/labels.txt" --out "$work/out")
warm=$(seconds "$bin" track "$work/run" --labels "$work/labels.txt" --out "$work/out")
printf '| what | seconds | per checkpoint | per checkpoint / one analyze |\n|---|---|---|---|\n'
printf '| one `analyze` (10,000 x 128, C = 10) | %.2f | %.2f | 1.00 |\n' "$single" "$single"
printf '| `track`, 50 checkpoints, cold (jobs = cores) | %.2f | %.2f | %.2f |\n' "$cold" "$(echo "$cold/50" | bc -l)" "$(echo "$cold/50/$single" | bc -l)"
printf '| `track` again, all cached | %.2f | %.3f | %.3f |\n' "$warm" "$(echo "$warm/50" | bc -l)" "$(echo "$warm/50/$single" | bc -l)"
