"""Benchmark of the sharded analysis (issue: beyond one machine).

A synthetic LAION-layout set (default 2,000,000 x 768 float16 rows in 40 shards, 1,000
classes; written once by benches/make_shards.py into ~/.cache/embgeom-bench) is analysed:

1. on this machine by ``embgeom analyze DIR`` (every merged metric, sampled uniformity,
   10,000 kNN queries): wall time and peak resident memory, and the same for the first
   quarter of the shards (peak memory must not grow with the number of shards);
2. on a local Ray cluster with 1 and with 2 CPUs (one single-threaded task per CPU): wall
   time per round, the scaling ratio, and the per-core throughput of each round in rows/s.

    PY=$(scripts/python.sh) && cargo build --release && $PY benches/sharded.py [--rows N ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(binary: str, directory: Path, extra: list) -> tuple:
    """Wall seconds and peak RSS (bytes) of one `embgeom analyze` in a child process."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        script = (
            "import resource, subprocess, sys, time\n"
            "t = time.perf_counter()\n"
            "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        )
        command = [binary, "analyze", str(directory), "--label-key", "label", "--json",
                   out.name, "--force", *extra]
        result = subprocess.run([sys.executable, "-c", script, *command], check=True,
                                capture_output=True, text=True)
        wall, peak_kib = result.stdout.split()
        document = json.load(open(out.name))
    return float(wall), int(peak_kib) * 1024, document


def ray_run(directory: Path, cpus: int) -> tuple:
    """Wall seconds per round of embgeom.ray on a fresh local cluster of `cpus` CPUs."""
    code = f"""
import json, time, ray, embgeom.ray
ray.init(num_cpus={cpus}, include_dashboard=False, log_to_driver=False)
timings = {{}}
t = time.perf_counter()
result = embgeom.ray.analyze({str(directory)!r}, label_key="label", timings=timings)
timings["total"] = time.perf_counter() - t
print(json.dumps({{"timings": timings, "uniformity": result.uniformity, "nc1": result.nc1}}))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--shards", type=int, default=40)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--dir", default=None, help="where the set is (written when missing)")
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    cache = Path(os.environ.get("EMBGEOM_BENCH_DIR", Path.home() / ".cache" / "embgeom-bench"))
    directory = Path(args.dir) if args.dir else cache / (
        f"laion-{args.rows}x{args.dim}-{args.shards}s-{args.classes}c")
    if not (directory / "metadata").is_dir():
        subprocess.run([sys.executable, str(ROOT / "benches" / "make_shards.py"), str(directory),
                        "--rows", str(args.rows), "--dim", str(args.dim), "--shards",
                        str(args.shards), "--classes", str(args.classes)], check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "embgeom-target"))
    binary = os.environ.get("EMBGEOM_BIN", str(target / "release" / "embgeom"))
    shard_bytes = (directory / "img_emb" / "img_emb_0.npy").stat().st_size
    print(f"set: {args.rows} x {args.dim} float16 in {args.shards} shards "
          f"({shard_bytes / 1e6:.0f} MB each), {args.classes} classes; {os.cpu_count()} cores")

    # Peak memory with a quarter of the shards, through a folder of links.
    quarter = Path(tempfile.mkdtemp()) / "quarter"
    for sub in ("img_emb", "metadata"):
        (quarter / sub).mkdir(parents=True)
        for path in sorted((directory / sub).iterdir()):
            number = int(path.stem.rsplit("_", 1)[1])
            if number < max(1, args.shards // 4):
                (quarter / sub / path.name).symlink_to(path)
    wall_q, peak_q, _ = run_cli(binary, quarter, [])
    wall, peak, document = run_cli(binary, directory, [])
    metrics = document["metrics"]
    print("\nlocal run (embgeom analyze DIR, all merged metrics, sampled uniformity, 10k kNN queries)")
    print(f"  {'shards':>8} {'rows':>10} {'wall s':>8} {'peak MB':>8} {'peak / shard file':>18}")
    for shards, rows, w, p in ((max(1, args.shards // 4), None, wall_q, peak_q),
                               (args.shards, args.rows, wall, peak)):
        print(f"  {shards:>8} {rows or '':>10} {w:>8.1f} {p / 1e6:>8.0f} {p / shard_bytes:>18.1f}")
    u = metrics["uniformity"]
    stderr = "" if u["stderr"] is None else f"se {u['stderr']:.1e}, "
    print(f"  uniformity {u['value']:.6f} ({stderr}{u['method']}), "
          f"nc1 {metrics['nc1']['value']:.6f}, kNN {metrics['knn_accuracy']['value']:.4f}")
    if args.skip_ray:
        return
    runs = {cpus: ray_run(directory, cpus) for cpus in (1, 2)}
    print("\nRay, local cluster, one single-threaded task per CPU (wall seconds per round)")
    rounds = ["first pass", "second pass", "uniformity pairs", "finalize", "total"]
    print(f"  {'CPUs':>5} " + " ".join(f"{r:>12}" for r in rounds))
    for cpus, result in runs.items():
        t = result["timings"]
        print(f"  {cpus:>5} " + " ".join(f"{t.get(r, 0.0):>12.1f}" for r in rounds))
    one, two = runs[1]["timings"], runs[2]["timings"]
    print(f"  scaling 1 -> 2 CPUs: {one['total'] / two['total']:.2f}x; "
          f"same values as the local run: "
          f"{abs(runs[2]['uniformity'] - metrics['uniformity']['value']) < 1e-9}")
    print("\nper-core throughput (1 CPU), for planning")
    for name in ("first pass", "second pass"):
        print(f"  {name:>12}: {args.rows / one[name]:>10.0f} rows/s")


if __name__ == "__main__":
    main()
