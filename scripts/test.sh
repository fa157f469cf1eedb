#!/usr/bin/env bash
# The whole test suite: unit, property and end-to-end tests of every crate (release build,
# shared with `scripts/embgeom` and the benchmarks so polars is compiled once), the Python
# package's tests (wheel built and installed into ~/.cache/embgeom-py by scripts/python.sh,
# with PyTorch and Lightning, ~5 GB once), then the trainer's CPU tests against libtorch
# (fetched once by scripts/libtorch.sh, ~540 MB), including the parity test against the
# PyTorch replica (benches/trainer_reference.py, run by the venv's Python) and the CUDA test,
# whose "NOT RUN" line is printed where there is no GPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/deps.sh" --browser
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/embgeom-target}"
cd "$root"
cargo test --release --workspace "$@"
python="$("$root/scripts/python.sh" --torch)"
# --capture=sys: what native code (the extension, Ray's core worker) writes to the file
# descriptors reaches the log, so a process that exits from native code leaves its message.
EMBGEOM_BIN="$CARGO_TARGET_DIR/release/embgeom" "$python" -m pytest -q --capture=sys \
  "$root/crates/python/tests"
eval "$("$root/scripts/libtorch.sh")"
EMBGEOM_BIN="$CARGO_TARGET_DIR/release/embgeom" EMBGEOM_PYTHON="$python" \
  cargo test --release --manifest-path "$root/crates/trainer/Cargo.toml" "$@"
# The CUDA test again with its output shown: it says whether it ran.
cargo test --release --manifest-path "$root/crates/trainer/Cargo.toml" --test trainer \
  cuda_paths -- --nocapture 2>&1 | grep -E "^(RAN|NOT RUN)"
