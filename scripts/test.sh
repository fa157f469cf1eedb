#!/usr/bin/env bash
# The whole test suite: unit, property and end-to-end tests of every crate (release build,
# shared with `scripts/embgeom` and the benchmarks so polars is compiled once), then the
# trainer's CPU tests against libtorch (fetched once by scripts/libtorch.sh, ~540 MB).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/deps.sh" --browser
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/embgeom-target}"
cd "$root"
cargo test --release --workspace "$@"
eval "$("$root/scripts/libtorch.sh")"
EMBGEOM_BIN="$CARGO_TARGET_DIR/release/embgeom" \
  cargo test --release --manifest-path "$root/crates/trainer/Cargo.toml" "$@"
