#!/usr/bin/env bash
# Paired-modality benchmark (issue "paired modalities"): `embgeom analyze --modalities` of two
# sets of N x 512 f32 rows (default N = 100,000; row i of the second a noisy copy of row i of
# the first, shifted along a few dimensions: a gap), with --timings: each modality's analysis,
# then the gap and exact retrieval both ways with InfoNCE and SigLIP (stage "retrieval",
# `2 x 2 N^2 D` flops against the sgemm bound), without the shift experiment; wall time and
# peak resident memory. The data are written once to $EMBGEOM_BENCH_DATA (NumPy).
#   benches/modalities.sh [--rows N]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/embgeom-target}"
rows=100000
if [ "${1:-}" = "--rows" ]; then rows="$2"; fi
data="${EMBGEOM_BENCH_DATA:-$HOME/.cache/embgeom-bench}"
mkdir -p "$data"
a="$data/modality-a-$rows-512.npy"
b="$data/modality-b-$rows-512.npy"
python=""
for candidate in "${EMBGEOM_VENV:-$HOME/.cache/embgeom-py}/bin/python" python3; do
  if "$candidate" -c "import numpy" 2>/dev/null; then python="$candidate"; break; fi
done
if [ -z "$python" ]; then python="$("$root/scripts/python.sh")"; fi
if [ ! -f "$a" ] || [ ! -f "$b" ]; then
  "$python" - "$a" "$b" "$rows" <<'PY'
import sys
import numpy as np
a_path, b_path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(5)
a = rng.standard_normal((n, 512), dtype=np.float32)
b = a + rng.standard_normal((n, 512), dtype=np.float32)
b[:, :4] += 3.0
np.save(a_path, a)
np.save(b_path, b)
PY
fi
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin embgeom
bin="$CARGO_TARGET_DIR/release/embgeom"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
started=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$report" "$bin" analyze --modalities "$a" "$b" \
  --modality-names image text --shifts "" --timings | sed -n '/^== image and text/,$p'
ended=$(date +%s.%N)
awk -v s="$started" -v e="$ended" -v k="$(tail -n 1 "$report")" 'BEGIN {
  printf "process: %.1f s wall; peak RSS %.2f GB\n", e - s, k * 1024 / 1e9 }'
