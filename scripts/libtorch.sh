#!/usr/bin/env bash
# Fetch libtorch 2.11.0 (what tch 0.24.0 needs) from PyPI's torch wheel, plus the two small
# CUDA runtime wheels it needs to load on a machine without a GPU, into a cache folder, and
# print the environment for building and running the trainer:
#   eval "$(scripts/libtorch.sh)"
# PyPI has no CPU-only torch: its CUDA wheel carries a complete libtorch (torch/lib, headers), which
# loads on a machine without a GPU once the two CUDA runtime wheels are beside it. The download
# (~540 MB) happens once per machine.
set -euo pipefail
cache="${EMBGEOM_LIBTORCH_CACHE:-$HOME/.cache/embgeom-libtorch}"
root="$cache/libtorch"
if [ ! -f "$root/.complete" ]; then
  mkdir -p "$cache/dl"
  python3 -m pip download -q --no-deps --only-binary=:all: torch==2.11.0 -d "$cache/dl" >&2
  python3 -m pip download -q --no-deps --only-binary=:all: \
    "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cupti==13.0.*" -d "$cache/dl" >&2
  rm -rf "$root"
  mkdir -p "$root"
  python3 - "$cache/dl" "$root" <<'PY' >&2
import glob, sys, zipfile
dl, root = sys.argv[1], sys.argv[2]
torch = glob.glob(f"{dl}/torch-2.11.0-*.whl")[0]
with zipfile.ZipFile(torch) as z:
    z.extractall(root, [n for n in z.namelist() if n.startswith(("torch/lib/", "torch/include/", "torch/share/"))])
for wheel in glob.glob(f"{dl}/nvidia_*.whl"):
    with zipfile.ZipFile(wheel) as z:
        z.extractall(root)
PY
  touch "$root/.complete"
fi
cuda_lib="$(find "$root/nvidia" -maxdepth 3 -name lib -type d | head -n 1)"
echo "export LIBTORCH=$root/torch LIBTORCH_CXX11_ABI=1"
echo "export LD_LIBRARY_PATH=$root/torch/lib:$cuda_lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
