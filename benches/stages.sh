#!/usr/bin/env bash
# Performance benchmark (issue "every stage near its bound"), in one run:
#   1. `embgeom analyze --timings` of N = 1,000,000 x 512 f32 (a 2.05 GB .npy), C = 1,000,
#      every metric: the stage table with each stage's work, bound and ratio, the peak memory
#      against the input, and the wall time and peak resident memory of the process;
#   2. the exact uniformity kernel against its half-Gram GEMM bound at N = 20,000 and 100,000,
#      D = 128, for every kernel this CPU has (`cargo bench --bench uniformity -- --kernel-only`;
#      the portable kernel at N = 5,000 only: on x86-64 its FMA is a libm call);
#   3. the kNN search screened by AMX tiles against the same search screened by sgemm
#      (`cargo bench --bench knn`: 200,000 x 512, 2,000 queries; sgemm alone without AMX).
# The data (class means on a sphere of radius 2 plus unit Gaussian noise; seed 0) are written
# once to $EMBGEOM_BENCH_DATA (default ~/.cache/embgeom-bench) with NumPy. About 7 minutes.
#   benches/stages.sh [--rows N]      (a smaller N for a quick look)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/embgeom-target}"
rows=1000000
if [ "${1:-}" = "--rows" ]; then rows="$2"; fi
data="${EMBGEOM_BENCH_DATA:-$HOME/.cache/embgeom-bench}"
mkdir -p "$data"
x="$data/stages-$rows-512.npy"
labels="$data/stages-$rows-labels.npy"

python=""
for candidate in "${EMBGEOM_VENV:-$HOME/.cache/embgeom-py}/bin/python" python3; do
  if "$candidate" -c "import numpy" 2>/dev/null; then python="$candidate"; break; fi
done
if [ -z "$python" ]; then python="$("$root/scripts/python.sh")"; fi

if [ ! -f "$x" ] || [ ! -f "$labels" ]; then
  echo "writing $x (once)" >&2
  "$python" - "$x" "$labels" "$rows" <<'PY'
import sys
import numpy as np
path, labels_path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
d, c, chunk = 512, 1000, 100_000
rng = np.random.default_rng(0)
means = rng.standard_normal((c, d)).astype(np.float32)
means *= 2.0 / np.linalg.norm(means, axis=1, keepdims=True)
labels = rng.integers(0, c, n)
out = np.lib.format.open_memmap(path + ".tmp.npy", mode="w+", dtype=np.float32, shape=(n, d))
for start in range(0, n, chunk):
    end = min(start + chunk, n)
    out[start:end] = means[labels[start:end]] + rng.standard_normal((end - start, d), dtype=np.float32)
out.flush()
del out
np.save(labels_path, labels.astype(np.int64))
import os
os.replace(path + ".tmp.npy", path)
PY
fi

cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin embgeom
bin="$CARGO_TARGET_DIR/release/embgeom"
input_bytes=$(stat -c %s "$x")
echo "== 1. embgeom analyze --timings: $rows x 512 f32 ($input_bytes bytes), C = 1,000, every metric"
# Read the file once so that every run starts from the page cache.
cat "$x" > /dev/null
report="$(mktemp)"
trap 'rm -rf "$report" "${rates_dir:-}"' EXIT
started=$(date +%s.%N)
# A new cache directory: the machine's rates (the bounds) are measured in this run.
rates_dir="$(mktemp -d)"
XDG_CACHE_HOME="$rates_dir" /usr/bin/time -f "%M" -o "$report.rss" "$bin" analyze "$x" --labels "$labels" --timings \
  | sed -n '/^stage timings/,$p'
ended=$(date +%s.%N)
peak_kib=$(tail -n 1 "$report.rss")
rm -f "$report.rss"
awk -v s="$started" -v e="$ended" -v k="$peak_kib" -v b="$input_bytes" 'BEGIN {
  printf "process: %.1f s wall; peak RSS %.2f GB = %.2fx the input (mapped file pages included)\n",
    e - s, k * 1024 / 1e9, k * 1024 / b }'

echo
echo "== 2. exact uniformity kernel against the GEMM bound"
kernels="portable"
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && kernels="avx2 $kernels"
grep -qw avx512f /proc/cpuinfo && kernels="avx512 $kernels"
for kernel in $kernels; do
  echo "-- EMBGEOM_KERNEL=$kernel"
  EMBGEOM_KERNEL="$kernel" cargo bench --quiet --manifest-path "$root/Cargo.toml" \
    --bench uniformity -- --kernel-only
done

echo
echo "== 3. kNN: the AMX screen against the sgemm screen"
cargo bench --quiet --manifest-path "$root/Cargo.toml" --bench knn
