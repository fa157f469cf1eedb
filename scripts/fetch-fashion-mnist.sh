#!/usr/bin/env bash
# Fetch Fashion-MNIST (MIT, Zalando SE) from Debian's dataset-fashion-mnist package into
# data/fashion-mnist/ (ignored by git) as the four decompressed IDX files, and check their MD5.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/data/fashion-mnist"
if [ -f "$dest/.complete" ]; then
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
(cd "$work" && { apt-get download dataset-fashion-mnist >/dev/null 2>&1 || { $sudo apt-get update -qq && apt-get download dataset-fashion-mnist >/dev/null; }; })
dpkg-deb -x "$work"/dataset-fashion-mnist_*.deb "$work/x"
mkdir -p "$dest"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  gunzip -c "$work/x/usr/share/datasets/fashion-mnist/$f.gz" > "$dest/$f"
done
(cd "$dest" && md5sum -c --quiet <<'SUMS'
f4a8712d7a061bf5bd6d2ca38dc4d50a  train-images-idx3-ubyte
9018921c3c673c538a1fc5bad174d6f9  train-labels-idx1-ubyte
8181f5470baa50b63fa0f6fddb340f0a  t10k-images-idx3-ubyte
15d484375f8d13e6eb1aabb0c3f46965  t10k-labels-idx1-ubyte
SUMS
)
touch "$dest/.complete"
echo "Fashion-MNIST in $dest" >&2
