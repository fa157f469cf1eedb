"""Write a synthetic sharded embedding set in LAION's layout:

    OUT/img_emb/img_emb_{i}.npy          (rows x dim, float16 or float32)
    OUT/metadata/metadata_{i}.parquet     (column "label": the class of each row; "key")

Rows are class means (on a sphere of radius 2) plus unit Gaussian noise, so the class metrics
have something to measure. Shards are written one at a time (memory: one shard).

    python benches/make_shards.py OUT --rows 2000000 --dim 768 --shards 40 --classes 1000
"""

import argparse
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    means = rng.standard_normal((args.classes, args.dim)).astype(np.float32)
    means *= 2.0 / np.linalg.norm(means, axis=1, keepdims=True)
    os.makedirs(os.path.join(args.out, "img_emb"), exist_ok=True)
    os.makedirs(os.path.join(args.out, "metadata"), exist_ok=True)
    # Uneven shards: sizes vary by +-20% around the mean.
    weights = rng.uniform(0.8, 1.2, args.shards)
    sizes = np.floor(weights / weights.sum() * args.rows).astype(int)
    sizes[-1] += args.rows - sizes.sum()
    start = 0
    for i, size in enumerate(sizes):
        labels = rng.integers(0, args.classes, size)
        rows = means[labels] + rng.standard_normal((size, args.dim), dtype=np.float32)
        np.save(os.path.join(args.out, "img_emb", f"img_emb_{i}.npy"), rows.astype(args.dtype))
        table = pa.table({
            "key": np.arange(start, start + size, dtype=np.int64),
            "label": labels.astype(np.int64),
        })
        pq.write_table(table, os.path.join(args.out, "metadata", f"metadata_{i}.parquet"))
        start += size
    print(f"{args.out}: {args.rows} rows x {args.dim} ({args.dtype}) in {args.shards} shards, "
          f"{args.classes} classes")


if __name__ == "__main__":
    main()
