"""Build data/digits.npz (the demo set of `embgeom report`) from data/digits.csv.

embeddings: the 64 pixels of each 8x8 UCI digit, scaled to [0, 1], float32 (1797 x 64)
views:      two augmented views per digit (1797 x 2 x 64): the image shifted one pixel left
            and one pixel right (zero fill), the usual translation augmentation
labels:     the digit, int64
Deterministic: no randomness.
"""
import pathlib

import numpy as np

here = pathlib.Path(__file__).parent
table = np.loadtxt(here / "digits.csv", delimiter=",", skiprows=1)
pixels = (table[:, :64] / 16.0).astype(np.float32)
labels = table[:, 64].astype(np.int64)
images = pixels.reshape(-1, 8, 8)


def shift(images, dx):
    out = np.zeros_like(images)
    if dx > 0:
        out[:, :, dx:] = images[:, :, :-dx]
    else:
        out[:, :, :dx] = images[:, :, -dx:]
    return out.reshape(len(images), 64)


views = np.stack([shift(images, -1), shift(images, 1)], axis=1)
np.savez_compressed(here / "digits.npz", embeddings=pixels, views=views, labels=labels)
