"""Reference uniformity timings for benches/uniformity.rs.

Reads an (N, D) float32 .npy of unit rows and times the formula as researchers write it:
torch.pdist when PyTorch is importable, else SciPy's pdist, then exp, mean and log
(Wang & Isola's `torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()`).
Prints one JSON line: {"impl": ..., "seconds": ..., "value": ...}.
"""
import json
import sys
import time

import numpy as np

path, t = sys.argv[1], float(sys.argv[2])
x = np.load(path)
try:
    import torch

    xt = torch.from_numpy(x)
    start = time.perf_counter()
    value = torch.pdist(xt, p=2).pow(2).mul(-t).exp().mean().log().item()
    seconds = time.perf_counter() - start
    impl = f"torch.pdist (torch {torch.__version__}, {torch.get_num_threads()} threads)"
except ImportError:
    from scipy.spatial.distance import pdist

    start = time.perf_counter()
    value = float(np.log(np.mean(np.exp(-t * pdist(x, "sqeuclidean")))))
    seconds = time.perf_counter() - start
    impl = "scipy.spatial.distance.pdist + numpy exp"
print(json.dumps({"impl": impl, "seconds": seconds, "value": value}))
