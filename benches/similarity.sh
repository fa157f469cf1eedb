#!/usr/bin/env bash
# Similarity-family benchmark (issue "comparing representations"): `embgeom compare --timings`
# of K inputs of N x 512 f32 rows (default K = 10, N = 100,000: input k is the first one
# mixed by a random k-dependent map plus noise, so every pair is related), and the family's
# stages against their bounds: each input's own moments (`2 N D^2` f64 flops), each pair's
# cross moments (`2 N D^2`), each input's samples (the RBF kernel, `2 M^2 D` f64 flops on 2,000
# rows, and the neighbour search, `2 M^2 D` flops of the f32 screen on 10,000 rows), each
# input's covariance eigenvectors and each pair's finalisation (D x D decompositions, not
# modelled); wall time and peak resident memory of
# the whole compare (which also analyses every input), then of `compare --similarity-only`
# (the family alone) against the family's stages. The data are written once to
# $EMBGEOM_BENCH_DATA (NumPy).
#   benches/similarity.sh [--inputs K] [--rows N]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/embgeom-target}"
inputs=10
rows=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --inputs) inputs="$2"; shift 2 ;;
    --rows) rows="$2"; shift 2 ;;
    *) echo "usage: benches/similarity.sh [--inputs K] [--rows N]" >&2; exit 2 ;;
  esac
done
data="${EMBGEOM_BENCH_DATA:-$HOME/.cache/embgeom-bench}/similarity-$rows-512"
mkdir -p "$data"
python=""
for candidate in "${EMBGEOM_VENV:-$HOME/.cache/embgeom-py}/bin/python" python3; do
  if "$candidate" -c "import numpy" 2>/dev/null; then python="$candidate"; break; fi
done
if [ -z "$python" ]; then python="$("$root/scripts/python.sh")"; fi
"$python" - "$data" "$rows" "$inputs" <<'PY'
import os
import sys
import numpy as np
folder, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(7)
base = None
for i in range(k):
    path = os.path.join(folder, f"layer-{i:02d}.npy")
    if os.path.exists(path):
        continue
    if base is None:
        base = np.random.default_rng(7).standard_normal((n, 512), dtype=np.float32)
    mix = np.eye(512, dtype=np.float32) + 0.1 * i * rng.standard_normal((512, 512), dtype=np.float32) / 512 ** 0.5
    rows = base @ mix + 0.2 * i * rng.standard_normal((n, 512), dtype=np.float32)
    np.save(path, rows.astype(np.float32))
PY
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin embgeom
bin="$CARGO_TARGET_DIR/release/embgeom"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
files=()
for i in $(seq 0 $((inputs - 1))); do files+=("$data/$(printf 'layer-%02d.npy' "$i")"); done
started=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$work/rss" "$bin" compare "${files[@]}" --timings \
  --json "$work/compare.json" --out "$work/page" > /dev/null
ended=$(date +%s.%N)
"$python" - "$work/compare.json" "$started" "$ended" "$(tail -n 1 "$work/rss")" <<'PY'
import json
import sys
document = json.load(open(sys.argv[1]))
timings = document["similarity"]["timings"]
started, ended, rss_kb = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rates = timings["rates"]
print(f"rates: dgemm {rates['dgemm_gflops']:.0f} GFLOP/s, sgemm {rates['sgemm_gflops']:.0f} GFLOP/s")
groups = {}
for stage in timings["stages"]:
    g = groups.setdefault(stage["stage"], [0, 0.0, 0.0])
    g[0] += 1
    g[1] += stage["seconds"]
    g[2] += stage["bound_seconds"] or 0.0
print(f"{'stage':<28} {'count':>5} {'seconds':>9} {'bound':>9} {'ratio':>6}")
modelled = [0.0, 0.0]
for name, (count, seconds, bound) in groups.items():
    ratio = f"{seconds / bound:.2f}" if bound > 0 else "-"
    print(f"{name:<28} {count:>5} {seconds:>9.2f} {bound:>9.2f} {ratio:>6}")
    if name in ("similarity: own moments", "similarity: cross moments"):
        modelled[0] += seconds
        modelled[1] += bound
print(f"D x D products (own + cross moments): {modelled[0]:.1f} s against a bound of "
      f"{modelled[1]:.1f} s: {modelled[0] / modelled[1]:.2f}x")
names = document["similarity"]["names"]
print("CKA of the first input with each: " + ", ".join(
    f"{v:.3f}" for v in document["similarity"]["cka"][0]))
print(f"compare (every input also analysed): {ended - started:.1f} s wall; "
      f"peak RSS {rss_kb * 1024 / 1e9:.2f} GB; {len(names)} inputs")
PY
# The family alone (--similarity-only): its wall time against the sum of the family's stages
# in the same run (the rest is reading the inputs), and the same matrices as above.
started=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$work/rss" "$bin" compare "${files[@]}" --timings --similarity-only \
  --json "$work/only.json" --out "$work/only" > /dev/null
ended=$(date +%s.%N)
"$python" - "$work/compare.json" "$work/only.json" "$started" "$ended" "$(tail -n 1 "$work/rss")" <<'PY'
import json
import sys
full, only = (json.load(open(p)) for p in sys.argv[1:3])
started, ended, rss_kb = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
stages = sum(s["seconds"] for s in only["similarity"]["timings"]["stages"])
wall = ended - started
same = all(full["similarity"][m["key"]] == only["similarity"][m["key"]]
           for m in full["similarity"]["measures"])
print(f"compare --similarity-only: {wall:.1f} s wall, {wall / stages:.2f}x the family's stages "
      f"({stages:.1f} s); peak RSS {rss_kb * 1024 / 1e9:.2f} GB; the same matrices: {same}")
PY
