#!/usr/bin/env bash
# The whole test suite: unit, property and end-to-end tests of every crate (release build,
# shared with `scripts/embgeom` and the benchmarks so polars is compiled once).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/deps.sh" --browser
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/embgeom-target}"
cd "$root"
cargo test --release --workspace "$@"
