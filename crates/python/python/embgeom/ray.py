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

Paired modalities held as row-matched sharded directories (LAION's ``img_emb/`` and
``text_emb/``, :func:`analyze_modalities`) run each modality's analysis as above, then, per
configuration (the rows as given, then each shift step), one task per shard (sums and matched
similarities) and one per shard pair (retrieval tallies both ways), merged in shard order: the
same document as ``embgeom analyze --modalities DIR DIR`` on one machine.

Command line (what ``embgeom analyze DIR --ray ADDRESS`` and ``embgeom analyze --modalities
DIR DIR --ray ADDRESS`` run)::

    python -m embgeom.ray --job JOB.json --address auto --out RESULT.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from . import Analysis, PathLike, _embgeom, _options
from ._convert import as_path
from ._embgeom import EmbgeomError
from .modalities import Modalities

__all__ = ["analyze", "analyze_modalities", "main", "run", "run_modalities"]


def _summarize(job: Any, shard: int) -> bytes:
    return job.summarize(shard)


def _second_pass(job: Any, context: bytes, shard: int) -> bytes:
    return job.second_pass(context, shard)


def _uniformity_block(job: Any, context: bytes, a: int, b: int) -> bytes:
    return job.uniformity_block(context, a, b)


def _first_round(pair: Any, config: int, shard: int, base: Optional[bytes]) -> bytes:
    return pair.first_round(config, shard, base)


def _second_round(pair: Any, config: int, k: int, l: int, context: bytes,
                  base: Optional[bytes]) -> bytes:
    return pair.second_round(config, k, l, context, base)


def _collect(ray: Any, refs: List[Any]) -> List[bytes]:
    """Every task's result, in the order of ``refs``; on a failed task cancel the others and
    raise its error."""
    return _finish_or_cancel(ray, refs, lambda: ray.get(refs))


def _finish_or_cancel(ray: Any, refs: List[Any], body: Callable[[], Any]) -> Any:
    """``body()``, or on a failed task: cancel the unfinished tasks of ``refs`` and raise its
    error.

    The cancel is Ray's default (a pending task is dropped, a running one is interrupted when
    it returns to Python), not ``force=True``: killing workers mid-task is the suspected cause
    of a driver that exited (status 1, no traceback) in a CI run of the bad-shard test."""
    try:
        return body()
    except ray.exceptions.RayTaskError as error:
        _, unfinished = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in unfinished:
            ray.cancel(ref)
        cause = getattr(error, "cause", None)
        raise EmbgeomError(str(cause) if cause is not None else str(error)) from None


def _gather(ray: Any, refs: List[Any], merge: Callable[[List[bytes]], bytes]) -> bytes:
    """Merge task results as they finish (memory: one merged result and one part); on a
    failed task cancel the others and raise its error."""
    def merge_all() -> Optional[bytes]:
        pending, merged = list(refs), None
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            part = ray.get(done[0])
            merged = part if merged is None else merge([merged, part])
        return merged

    merged = _finish_or_cancel(ray, refs, merge_all)
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


def run_pair(pair: Any, max_retries: int = 3, cpus_per_task: int = 1) -> bytes:
    """Measure two sharded modalities together on the Ray cluster this process is connected
    to: per configuration one task per shard, then one per shard pair.

    Args:
        pair: An :class:`embgeom._embgeom.PairJob`.
        max_retries: Retries of a task whose worker dies.
        cpus_per_task: Threads of each task.

    Returns:
        The pair's measurement (JSON bytes, for :func:`embgeom._embgeom.modalities_result`).

    Raises:
        EmbgeomError: A shard that cannot be read or measured (the message names it).

    Example:
        >>> measured = embgeom.ray.run_pair(pair_job)
    """
    import ray

    task = ray.remote(
        num_cpus=cpus_per_task,
        max_retries=max_retries,
        runtime_env={"env_vars": {"RAYON_NUM_THREADS": str(cpus_per_task)}},
    )
    first, second = task(_first_round), task(_second_round)
    pair_ref = ray.put(pair)
    shards = range(pair.shards)
    configurations = []
    base: Optional[bytes] = None
    base_ref = None
    for config in range(pair.configurations):
        parts = _collect(ray, [first.remote(pair_ref, config, k, base_ref) for k in shards])
        context = pair.context(parts)
        if config == 0:
            base, base_ref = context, ray.put(context)
        context_ref = ray.put(context)
        tallies = _collect(ray, [second.remote(pair_ref, config, k, l, context_ref, base_ref)
                                 for k in shards for l in shards])
        configurations.append((context, tallies))
    return pair.finish(configurations)


def run_modalities(modalities: List[Tuple[str, Any]], pairs: List[Any], max_retries: int = 3,
                   cpus_per_task: int = 1) -> Modalities:
    """Analyse sharded modalities on the Ray cluster this process is connected to: each one's
    analysis (:func:`run`), then every two of them together (:func:`run_pair`).

    Args:
        modalities: ``(name, ShardJob)`` of each modality, in order.
        pairs: The :class:`embgeom._embgeom.PairJob` of every two of them, in the order
            (0, 1), (0, 2), ..., (1, 2), ...
        max_retries: Retries of a task whose worker dies.
        cpus_per_task: Threads of each task.

    Returns:
        The :class:`embgeom.Modalities` (the ``embgeom.modalities/1`` document).

    Raises:
        EmbgeomError: A shard that cannot be read or measured (the message names it).

    Example:
        >>> embgeom.ray.run_modalities([("image", a), ("text", b)], [pair]).names
        ['image', 'text']
    """
    analyses = [run(job, max_retries=max_retries, cpus_per_task=cpus_per_task)
                for _, job in modalities]
    measured = [run_pair(pair, max_retries=max_retries, cpus_per_task=cpus_per_task)
                for pair in pairs]
    document, table = _embgeom.modalities_result(
        [name for name, _ in modalities], [a._run for a in analyses], measured)
    return Modalities(document, table)


def analyze_modalities(paths: Mapping[str, PathLike], *, address: Optional[str] = None,
                       temperature: float = 0.01, siglip_scale: float = 10.0,
                       siglip_bias: float = -10.0,
                       shifts: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
                       key: Optional[str] = None, normalize: bool = True,
                       sample_rows: int = 10_000, max_retries: int = 3, cpus_per_task: int = 1,
                       num_cpus: Optional[int] = None, **options: Any) -> Modalities:
    """``embgeom analyze --modalities DIR DIR`` for modalities held as row-matched directories
    of shards (LAION's ``img_emb/`` and ``text_emb/``), computed by Ray tasks.

    Args:
        paths: Name to directory of shards, two or more, in order.
        address: A Ray cluster, or ``None``/``"local"`` to start one here.
        temperature: InfoNCE's temperature.
        siglip_scale: SigLIP's logit scale t.
        siglip_bias: SigLIP's logit bias b.
        shifts: The shift experiment's fractions of the gap closed.
        key: The array or column of the embeddings in each shard.
        normalize: L2-normalise the rows first.
        sample_rows: Rows of each modality's seeded uniformity sample.
        max_retries: Retries of a task whose worker dies.
        cpus_per_task: Threads of each task.
        num_cpus: CPUs of a cluster started here (all by default).
        **options: The options of :func:`embgeom.analyze`.

    Returns:
        The :class:`embgeom.Modalities`, the same as the CLI's on one machine.

    Raises:
        EmbgeomError: Shards that do not match row for row, or a shard that cannot be read
            (the message names it).

    Example:
        >>> result = embgeom.ray.analyze_modalities(
        ...     {"image": "laion/img_emb", "text": "laion/text_emb"}, address="auto")
        >>> result.gap("image", "text")["distance"]
        0.8...
    """
    jobs = [(str(name), _embgeom.ShardJob(as_path(path, f"paths[{name!r}]"), key, None, None,
                                          None, normalize, sample_rows, **_options(options)))
            for name, path in paths.items()]
    pairs = [_embgeom.PairJob((jobs[i][0], jobs[j][0]), jobs[i][1], jobs[j][1], temperature,
                              siglip_scale, siglip_bias, [float(s) for s in shifts])
             for i in range(len(jobs)) for j in range(i + 1, len(jobs))]
    _connect(address, num_cpus)
    return run_modalities(jobs, pairs, max_retries=max_retries, cpus_per_task=cpus_per_task)


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
        text = sys.stdin.read()
    else:
        with open(args.job) as handle:
            text = handle.read()
    retries = {"max_retries": args.max_retries, "cpus_per_task": args.cpus_per_task}
    try:
        raw = json.loads(text)
        if isinstance(raw, dict) and "modalities" in raw and "pairs" in raw:
            modalities = [(name, _embgeom.ShardJob.from_json(json.dumps(job)))
                          for name, job in raw["modalities"]]
            pairs = [_embgeom.PairJob.from_json(json.dumps(pair)) for pair in raw["pairs"]]
            _connect(args.address, None)
            result: Any = run_modalities(modalities, pairs, **retries)
        else:
            job = _embgeom.ShardJob.from_json(text)
            _connect(args.address, None)
            result = run(job, **retries)
    except (EmbgeomError, ValueError) as error:
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
