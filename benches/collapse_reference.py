"""Straightforward NumPy implementation of embgeom's class-collapse and spectrum metrics, for
benches/collapse.rs: the formulas of docs/src/reference/metrics.md written the way a notebook
would (float64, per-class loops, np.cov, SVDs), timed without the loading.

Usage: collapse_reference.py X.npy Y.npy; prints one JSON line.
"""
import json
import sys
import time

import numpy as np

x32 = np.load(sys.argv[1])
y = np.load(sys.argv[2]).reshape(-1).astype(np.int64)
start = time.perf_counter()
X = x32.astype(np.float64)
N, D = X.shape
classes = np.unique(y)
C = len(classes)
members = [np.flatnonzero(y == c) for c in classes]
means = np.stack([X[m].mean(0) for m in members])
muG = means.mean(0)
M = means - muG
Sw = np.zeros((D, D))
var = np.zeros(C)
for k, m in enumerate(members):
    Z = X[m] - means[k]
    Sw += Z.T @ Z
    var[k] = (Z**2).sum(1).mean()
Sw /= N
Sb = M.T @ M / C
eps = np.finfo(np.float64).eps
w, V = np.linalg.eigh(Sb)
keep = w > max(D, C) * eps * w.max()
nc1 = np.trace(Sw @ (V[:, keep] / w[keep]) @ V[:, keep].T) / C
nc1_quotient = np.trace(Sw) / np.trace(Sb)
norms = np.linalg.norm(M, axis=1)
equinorm = norms.std(ddof=1) / norms.mean()
cos = (M @ M.T) / np.outer(norms, norms)
off = cos[~np.eye(C, dtype=bool)]
equiangularity = off.std(ddof=1)
max_angle = np.abs(off + 1 / (C - 1)).mean()
G = M @ M.T
etf = np.linalg.norm(G / np.linalg.norm(G) - (np.eye(C) - 1 / C) / np.sqrt(C - 1))
sq = (means**2).sum(1)
gap = sq[:, None] + sq[None, :] - 2 * means @ means.T
iu = np.triu_indices(C, 1)
cdnv = ((var[:, None] + var[None, :]) / (2 * gap))[iu].mean()
dist = (X**2).sum(1)[:, None] - 2 * X @ means.T + sq[None, :]
ncc = (classes[dist.argmin(1)] == y).mean()
Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
um = np.stack([Xn[m].mean(0) for m in members])
un = np.linalg.norm(um, axis=1)
angles = np.degrees(np.arccos(np.clip((um @ um.T) / np.outer(un, un), -1, 1)))[iu]
ideal = np.degrees(np.arccos(-1 / (C - 1)))
graf = np.abs(angles - ideal).mean()
S = np.sqrt(C / (C - 1)) * (np.eye(C) - 1 / C)
Mh = M / norms.mean()
U, _, Vt = np.linalg.svd(S.T @ Mh, full_matrices=False)
vertices = S @ (U @ Vt)
vertex = np.sqrt(((Mh[:, None, :] - vertices[None, :, :]) ** 2).sum(-1)).min(1)
eig = np.linalg.eigvalsh(np.cov(Xn.T))[::-1]
std = Xn.std(0, ddof=1).mean()


def erank(s, e=0.0):
    p = s / s.sum() + e
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


effective_rank = erank(np.linalg.svd(X - X.mean(0), compute_uv=False))
rankme = erank(np.linalg.svd(X, compute_uv=False), 1e-7)
k = np.arange(11, min(100, D) + 1)
fit = np.polyfit(np.log(k), np.log(eig[k - 1]), 1, w=np.sqrt(1 / k))
per_class_rank = [erank(np.linalg.svd(X[m] - means[i], compute_uv=False)) for i, m in enumerate(members)]
seconds = time.perf_counter() - start
print(json.dumps({
    "seconds": seconds, "nc1": nc1, "etf_distance": etf, "cdnv": cdnv, "ncc_accuracy": ncc,
    "effective_rank": effective_rank, "rankme": rankme, "alpha_req": -fit[0], "graf": graf,
    "normalized_std": std, "mean_class_rank": float(np.mean(per_class_rank)),
}))
