"""Sharded datasets on a Ray cluster: every shard is a task, results merge exactly.

>>> import embgeom.ray
>>> result = embgeom.ray.analyze("laion/", label_key="label", address="auto")  # doctest: +SKIP
>>> result.uniformity, result.nc1                                              # doctest: +SKIP

The dataset is a directory of numbered shards (see :func:`embgeom.analyze_sharded`); every
worker must be able to read it (a shared file system, or the same path on every node). The
run has three rounds of Ray tasks:

1. one task per shard: the first pass (second moments, class sums, kNN query rows, the
   bottom-k keys of the uniformity sample), merged on the driver as tasks finish;
2. one task per shard: the second pass (nearest-class-mean and classifier predictions, the
   top-k neighbours of every query among the shard's rows, the sample rows);
3. exact uniformity (N at most ``max_exact``): one task per shard pair ``(a, b)``, ``a <= b``.

The merged result is the same :class:`embgeom.Analysis` (and ``embgeom.analysis/1`` document)
as :func:`embgeom.analyze_sharded` on one machine. A task whose worker dies is retried by Ray
(``max_retries``); a shard that fails validation (NaN, zero row, truncated file, missing
labels) stops the run with an :class:`embgeom.EmbgeomError` naming the shard, and the other
tasks are cancelled: there is no partial result.

Command line (what ``embgeom analyze DIR --ray ADDRESS`` runs)::

    python -m embgeom.ray --job JOB.json --address auto --out RESULT.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from . import Analysis, PathLike, _embgeom, _options
from ._convert import as_path
from ._embgeom import EmbgeomError

__all__ = ["analyze", "main", "run"]


def _summarize(job: Any, shard: int) -> bytes:
    return job.summarize(shard)


def _second_pass(job: Any, context: bytes, shard: int) -> bytes:
    return job.second_pass(context, shard)


def _uniformity_block(job: Any, context: bytes, a: int, b: int) -> bytes:
    return job.uniformity_block(context, a, b)


def _gather(ray: Any, refs: List[Any], merge: Callable[[List[bytes]], bytes]) -> bytes:
    """Merge task results as they finish (memory: one merged result and one part); on a
    failed task cancel the others and raise its error."""
    pending = list(refs)
    merged: Optional[bytes] = None
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            part = ray.get(done[0])
            merged = part if merged is None else merge([merged, part])
    except ray.exceptions.RayTaskError as error:
        for ref in pending:
            ray.cancel(ref, force=True)
        cause = getattr(error, "cause", None)
        raise EmbgeomError(str(cause) if cause is not None else str(error)) from None
    if merged is None:
        raise EmbgeomError("no task results to merge")
    return merged


def run(job: Any, max_retries: int = 3, cpus_per_task: int = 1,
        timings: Optional[Dict[str, float]] = None) -> Analysis:
    """Run a sharded analysis on the Ray cluster this process is connected to (``ray.init``
    was called).

    Args:
        job: An :class:`embgeom._embgeom.ShardJob`.
        max_retries: Retries of a task whose worker dies.
        cpus_per_task: Threads of each task.
        timings: A dict that receives the wall seconds of each round (``first pass``,
            ``second pass``, ``uniformity pairs``, ``finalize``).

    Returns:
        The :class:`embgeom.Analysis` (without figure data).

    Raises:
        EmbgeomError: A shard that cannot be read or analysed (the message names it).

    Example:
        >>> ray.init(address="auto")
        >>> embgeom.ray.run(embgeom._embgeom.ShardJob("laion/")).uniformity
        -3.1...
    """
    import ray

    clock = {"last": time.perf_counter()}

    def lap(name: str) -> None:
        now = time.perf_counter()
        if timings is not None:
            timings[name] = now - clock["last"]
        clock["last"] = now

    task = ray.remote(
        num_cpus=cpus_per_task,
        max_retries=max_retries,
        runtime_env={"env_vars": {"RAYON_NUM_THREADS": str(cpus_per_task)}},
    )
    summarize, second_pass, uniformity_block = (
        task(_summarize), task(_second_pass), task(_uniformity_block))
    job_ref = ray.put(job)
    shards = range(job.shards)
    summary = _gather(ray, [summarize.remote(job_ref, i) for i in shards], job.merge_summaries)
    lap("first pass")
    context = job.context(summary)
    context_ref = ray.put(context)
    second = _gather(ray, [second_pass.remote(job_ref, context_ref, i) for i in shards],
                     job.merge_second_passes)
    lap("second pass")
    block = None
    pairs = job.blocks()
    if pairs:
        block = _gather(ray, [uniformity_block.remote(job_ref, context_ref, a, b)
                              for a, b in pairs], job.merge_uniformity_blocks)
        lap("uniformity pairs")
    result = Analysis(job.finalize(summary, context, second, block))
    lap("finalize")
    return result


def _connect(address: Optional[str], num_cpus: Optional[int]) -> None:
    import ray

    if ray.is_initialized():
        return
    if address in (None, "local"):
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)


def analyze(path: PathLike, *, address: Optional[str] = None, key: Optional[str] = None,
            label_key: Optional[str] = None, classifier: Optional[PathLike] = None,
            bias: Optional[PathLike] = None,
            normalize: bool = True, sample_rows: int = 10_000, max_retries: int = 3,
            cpus_per_task: int = 1, num_cpus: Optional[int] = None,
            timings: Optional[Dict[str, float]] = None, **options: Any) -> Analysis:
    """Every metric of ``embgeom analyze DIR`` for a directory of shards, computed by Ray
    tasks.

    A ``ray.data.Dataset`` is not taken directly: write it as shards first
    (``ds.write_parquet(dir)``) so that every task reads its rows, in a fixed order, itself.

    Args:
        path: The folder of shards (see :func:`embgeom.analyze_sharded`).
        address: A Ray cluster (``"auto"``, ``"ray://host:10001"``), or ``None``/``"local"``
            to start one on this machine; an already initialised Ray is used as it is.
        key: The array or column of the embeddings in each shard.
        label_key: The label column of the metadata (or label) shards.
        classifier: A file of classifier weights.
        bias: A file of classifier biases.
        normalize: L2-normalise the rows first.
        sample_rows: Rows of the seeded sample whose pairs give the uniformity above
            ``max_exact`` rows.
        max_retries: Retries of a task whose worker dies.
        cpus_per_task: Threads of each task.
        num_cpus: CPUs of a cluster started here (all by default).
        timings: A dict that receives the wall seconds of each round.
        **options: The options of :func:`embgeom.analyze`.

    Returns:
        The :class:`embgeom.Analysis`, the same as :func:`embgeom.analyze_sharded`'s.

    Raises:
        EmbgeomError: A shard that cannot be read or analysed (the message names it).
        TypeError: A ``ray.data.Dataset`` instead of a folder.

    Example:
        >>> result = embgeom.ray.analyze("laion/", label_key="label", address="auto")
        >>> result.uniformity, result.nc1
        (-3.1..., 0.8...)
    """
    try:
        import ray
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise EmbgeomError("embgeom.ray needs Ray: pip install 'ray[default]'") from error
    data = getattr(ray, "data", None)
    if data is not None and isinstance(path, data.Dataset):
        raise TypeError("embgeom.ray.analyze takes a directory of shards; write the dataset "
                        "first, e.g. ds.write_parquet(dir), and pass dir")
    job = _embgeom.ShardJob(
        as_path(path, "path"), key, label_key,
        None if classifier is None else as_path(classifier, "classifier"),
        None if bias is None else as_path(bias, "bias"), normalize, sample_rows,
        **_options(options))
    _connect(address, num_cpus)
    return run(job, max_retries=max_retries, cpus_per_task=cpus_per_task, timings=timings)


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m embgeom.ray``: run a shard job written by ``embgeom analyze DIR --ray``.

    Args:
        argv: The command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0, or 2 when the analysis failed (the error on stderr).

    Example:
        >>> embgeom.ray.main(["--job", "job.json", "--address", "local", "--out", "out.json"])
        0
    """
    parser = argparse.ArgumentParser(prog="python -m embgeom.ray", description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True,
                        help="a shard job (JSON) written by embgeom analyze; - reads it from stdin")
    parser.add_argument("--address", default="auto", help="Ray address, or 'local'")
    parser.add_argument("--out", required=True,
                        help="where to write the document and table (JSON); - writes them to "
                             "stdout as its last line")
    parser.add_argument("--max-retries", type=int, default=3)
    parser.add_argument("--cpus-per-task", type=int, default=1)
    args = parser.parse_args(argv)
    if args.job == "-":
        job = _embgeom.ShardJob.from_json(sys.stdin.read())
    else:
        with open(args.job) as handle:
            job = _embgeom.ShardJob.from_json(handle.read())
    try:
        _connect(args.address, None)
        result = run(job, max_retries=args.max_retries, cpus_per_task=args.cpus_per_task)
    except EmbgeomError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    output = json.dumps({"document": result.to_dict(), "table": str(result)})
    if args.out == "-":
        print(output, flush=True)
    else:
        with open(args.out, "w") as handle:
            handle.write(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
