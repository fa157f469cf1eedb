#!/usr/bin/env bash
# Build the Python package (crates/python, PyO3 + maturin, one abi3 wheel for CPython >= 3.10,
# linked against the system OpenBLAS that scripts/deps.sh installs)
# and install it into the project venv under ~/.cache/embgeom-py, with what the Python tests
# need (numpy, pytest, pandas, mypy for the stub check, Ray and pyarrow for the sharded
# analysis on a local Ray cluster; with --torch also PyTorch 2.11.0, about 5 GB once, and
# Lightning, IsoScore, scikit-dimension and reptrix, the references of the isotropy,
# intrinsic-dimension and LiDAR tests, and embedding-atlas's reader for the per-point
# export). Prints the venv's python on stdout:
#   PY=$(scripts/python.sh [--torch])
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EMBGEOM_VENV:-$HOME/.cache/embgeom-py}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/embgeom-target}"
"$root/scripts/deps.sh" >&2
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
pip() { "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@" >&2; }
stamp="$venv/.embgeom-deps-4"
if [ ! -f "$stamp" ]; then
  pip "maturin>=1.16,<2" "numpy>=2" pytest pandas polars mypy pyarrow "ray>=2.40,<3"
  touch "$stamp"
fi
if [ "${1:-}" = "--torch" ] && [ ! -f "$venv/.embgeom-torch-2" ]; then
  echo "installing torch 2.11.0, lightning and IsoScore into $venv (once)" >&2
  pip "torch==2.11.0" lightning "IsoScore==2.0.1"
  touch "$venv/.embgeom-torch-2"
fi
if [ "${1:-}" = "--torch" ] && [ ! -f "$venv/.embgeom-peers-1" ]; then
  echo "installing scikit-dimension 0.5.0 (the intrinsic-dimension reference) into $venv (once)" >&2
  pip "scikit-dimension==0.5.0"
  touch "$venv/.embgeom-peers-1"
fi
if [ "${1:-}" = "--torch" ] && [ ! -f "$venv/.embgeom-peers-2" ]; then
  echo "installing reptrix 0.1.0 (the LiDAR reference; its own imports only) into $venv (once)" >&2
  pip --no-deps "reptrix==0.1.0"
  pip scikit-learn matplotlib
  touch "$venv/.embgeom-peers-2"
fi
if [ "${1:-}" = "--torch" ] && [ ! -f "$venv/.embgeom-peers-3" ]; then
  echo "installing embedding-atlas 0.26.0 (its Parquet reader and neighbour-graph code: no server, no embedders) into $venv (once)" >&2
  pip --no-deps "embedding-atlas==0.26.0"
  pip narwhals inquirer umap-learn
  touch "$venv/.embgeom-peers-3"
fi
wheels="$CARGO_TARGET_DIR/wheels"
rm -f "$wheels"/embgeom-*.whl
"$venv/bin/maturin" build --release --quiet -m "$root/crates/python/Cargo.toml" \
  -i "$venv/bin/python" -o "$wheels" --auditwheel skip >&2
pip --force-reinstall --no-deps "$wheels"/embgeom-*.whl
echo "$venv/bin/python"
