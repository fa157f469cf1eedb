#!/usr/bin/env bash
# Wide-embedding benchmark (issue "wide embeddings: cost growing with min(N, D)"), in one run:
#   1. `embgeom analyze --timings` (every metric) of five shapes: 50,000 x 1,024 C = 1,000;
#      20,000 x 2,048 C = 1,000; 5,000 x 4,096 C = 100; 2,000 x 16,384 C = 10; and
#      100,000 x 4,096 C = 1,000 (a 1.6 GB f32 file): the stage table (work, bound, ratio),
#      the process's wall time and peak resident memory;
#   2. time against D at N = 2,000, C = 10 (D = 256 ... 16,384), with the model
#      min(N, D)^2 max(N, D) fitted through the widest point, as a CSV and an SVG plot.
# Rows are standard normal f32 (NumPy), labels uniform over C classes; written once to
# $EMBGEOM_BENCH_DATA (default ~/.cache/embgeom-bench). Results go to $OUT (default a new
# folder under /tmp): wide.txt, time-vs-d.csv, time-vs-d.svg. About 15 minutes on 2 cores.
#   benches/wide.sh [--quick]    (--quick: the first four shapes only, and D up to 8,192)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/embgeom-target}"
quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; fi
data="${EMBGEOM_BENCH_DATA:-$HOME/.cache/embgeom-bench}"
out="${OUT:-$(mktemp -d /tmp/embgeom-wide.XXXXXX)}"
mkdir -p "$data" "$out"

python=""
for candidate in "${EMBGEOM_VENV:-$HOME/.cache/embgeom-py}/bin/python" python3; do
  if "$candidate" -c "import numpy" 2>/dev/null; then python="$candidate"; break; fi
done
if [ -z "$python" ]; then python="$("$root/scripts/python.sh")"; fi

# make N D C: writes $data/wide-N-D.npy and $data/wide-N-C-labels.npy once.
make() {
  local n="$1" d="$2" c="$3"
  local x="$data/wide-$n-$d.npy" labels="$data/wide-$n-$c-labels.npy"
  if [ ! -f "$x" ] || [ ! -f "$labels" ]; then
    "$python" - "$x" "$labels" "$n" "$d" "$c" <<'PY'
import os, sys
import numpy as np
path, labels_path, n, d, c = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
rng = np.random.default_rng(2)
out = np.lib.format.open_memmap(path + ".tmp.npy", mode="w+", dtype=np.float32, shape=(n, d))
chunk = max(1, (1 << 27) // (4 * d))
for start in range(0, n, chunk):
    end = min(start + chunk, n)
    out[start:end] = rng.standard_normal((end - start, d), dtype=np.float32)
out.flush()
del out
os.replace(path + ".tmp.npy", path)
np.save(labels_path, np.random.default_rng(3).integers(0, c, n).astype(np.int64))
PY
  fi
  echo "$x $labels"
}

cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin embgeom
bin="$CARGO_TARGET_DIR/release/embgeom"
rates_dir="$(mktemp -d)"
trap 'rm -rf "$rates_dir"' EXIT

# run N D C: the stage table, then "process: wall, peak RSS"; the total seconds on stdout's
# last line as "total-seconds S".
run() {
  local n="$1" d="$2" c="$3" files x labels started ended
  files="$(make "$n" "$d" "$c")"
  x="${files% *}"; labels="${files#* }"
  cat "$x" > /dev/null
  started=$(date +%s.%N)
  XDG_CACHE_HOME="$rates_dir" /usr/bin/time -f "%M %S" -o "$out/rss" "$bin" analyze "$x" \
    --labels "$labels" --timings > "$out/run.txt"
  ended=$(date +%s.%N)
  sed -n '/^stage timings/,$p' "$out/run.txt"
  read -r kib system < "$out/rss"
  awk -v s="$started" -v e="$ended" -v k="$kib" -v y="$system" -v b="$(stat -c %s "$x")" 'BEGIN {
    printf "process: %.1f s wall, %.1f s system; peak RSS %.2f GB (input %.2f GB)\n",
      e - s, y, k * 1024 / 1e9, b / 1e9
    printf "total-seconds %.3f\n", e - s }'
}

shapes="50000:1024:1000 20000:2048:1000 5000:4096:100 2000:16384:10"
if [ "$quick" = 0 ]; then shapes="$shapes 100000:4096:1000"; fi
{
  echo "== 1. embgeom analyze --timings, every metric ($(nproc) threads)"
  for shape in $shapes; do
    IFS=: read -r n d c <<< "$shape"
    echo
    echo "-- $n x $d, C = $c"
    run "$n" "$d" "$c" | grep -v '^total-seconds'
  done
} | tee "$out/wide.txt"

echo
echo "== 2. time against D at N = 2,000, C = 10" | tee -a "$out/wide.txt"
widths="256 512 1024 2048 4096 8192 16384"
if [ "$quick" = 1 ]; then widths="256 512 1024 2048 4096 8192"; fi
echo "d,seconds" > "$out/time-vs-d.csv"
for d in $widths; do
  seconds="$(run 2000 "$d" 10 | sed -n 's/^total-seconds //p')"
  echo "$d,$seconds" | tee -a "$out/time-vs-d.csv"
done
"$python" "$root/benches/plot_time_vs_d.py" "$out/time-vs-d.csv" 2000 "$out/time-vs-d.svg" \
  | tee -a "$out/wide.txt"
rm -f "$out/rss" "$out/run.txt"
echo "results in $out"
