#!/usr/bin/env bash
# Install the system packages embgeom builds against (Debian/Ubuntu): OpenBLAS for
# ndarray-linalg's `openblas-system` and pkg-config; with --browser also Chromium, for the
# report's browser test (best effort: the test says it is skipped when Chromium is missing).
# Does nothing when they are present.
set -euo pipefail
packages=(libopenblas-dev pkg-config)
[ "${1:-}" = "--browser" ] && packages+=(chromium)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libopenblas-dev pkg-config >/dev/null
  if [[ " ${missing[*]} " == *" chromium "* ]]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null ||
      echo "warning: could not install chromium; the browser test will be skipped" >&2
  fi
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }
