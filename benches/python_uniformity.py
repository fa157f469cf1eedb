"""Benchmark of the Python package: `embgeom.uniformity(x)` against Wang & Isola's
`uniform_loss` with `torch.pdist` (torch threads = cores) at N = 20,000 and 40,000, D = 128,
and the Python call against the CLI's `analyze` of the same rows (same work: uniformity and
spectrum), all measured in this run. Each timing runs in a fresh child process, which also
reports its peak resident memory.

    PY=$(scripts/python.sh --torch); $PY benches/python_uniformity.py
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("EMBGEOM_BIN") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/embgeom-target")),
    "release", "embgeom")

CHILD = r"""
import json, resource, sys, time
import numpy as np
kind, path, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
x = np.load(path)
if kind == "torch":
    import torch
    f = lambda: torch.pdist(torch.from_numpy(x), p=2).pow(2).mul(-2).exp().mean().log().item()
else:
    import embgeom
    f = lambda: embgeom.uniformity(x)
times, value = [], None
for _ in range(runs):
    start = time.perf_counter(); value = f(); times.append(time.perf_counter() - start)
# VmHWM: this process's own peak (ru_maxrss would carry the parent's over from fork).
status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
peak = int(status) / 1024
info = ""
if kind == "torch":
    info = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
print(json.dumps({"seconds": sorted(times)[len(times) // 2], "value": value, "peak_mib": peak,
                  "info": info}))
"""


def child(kind, path, runs):
    out = subprocess.run([sys.executable, "-c", CHILD, kind, path, str(runs)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def cli(path, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([BINARY, "analyze", path, "--json", "-"], check=True,
                       stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main():
    print(f"{os.cpu_count()} cores")
    print("| N | embgeom.uniformity | CLI analyze (process) | Python / CLI | torch uniform_loss"
          " | torch / embgeom | peak MiB embgeom | peak MiB torch | |difference| |")
    print("|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for n in (20_000, 40_000):
            x = rng.standard_normal((n, 128)).astype(np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            path = os.path.join(tmp, f"x{n}.npy")
            np.save(path, x)
            ours = child("embgeom", path, 3)
            process = cli(path, 3)
            reference = child("torch", path, 1)
            if n == 20_000:
                print(f"(reference: {reference['info']})")
            print(f"| {n} | {ours['seconds']:.3f} s | {process:.3f} s | "
                  f"{ours['seconds'] / process:.3f} | {reference['seconds']:.2f} s | "
                  f"{reference['seconds'] / ours['seconds']:.1f}x | {ours['peak_mib']:.0f} | "
                  f"{reference['peak_mib']:.0f} | {abs(ours['value'] - reference['value']):.1e} |",
                  flush=True)


if __name__ == "__main__":
    main()
