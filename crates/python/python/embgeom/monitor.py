"""Geometry inside a training loop: :class:`Monitor` computes the metrics every few steps
(or at the end of each epoch) on a held-out batch or on the embeddings gathered since the
last report, and hands the scalars to a callback (a logger, ``print``, a dict)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import numpy as np

from ._convert import ArrayLike, as_labels, as_rows


class Monitor:
    """Measure embedding geometry during training.

    Each report calls ``log(scalars, step)`` with ``{"geometry/<metric>": value}``, keeps it
    in ``history`` and clears the gathered rows.

    Args:
        log: Called with the scalars and the step at each report (a logger, ``print``).
        every: Report every this many steps (:meth:`step`); ``None``: only when asked
            (:meth:`report`).
        holdout: A held-out batch ``x`` or ``(x, y)``: each report measures it (embedded by
            ``embed``) instead of the gathered rows.
        embed: Turns the held-out inputs into embeddings (the model's encoder).
        prefix: Prefix of the scalars' names.
        max_rows: Rows gathered at most (the most recent are kept).
        **options: The options of :func:`embgeom.analyze` (``t``, ``knn_k``, ...).

    Example:
        >>> monitor = embgeom.Monitor(log=print, every=100)
        >>> for step, (x, y) in enumerate(loader):
        ...     monitor.update(model(x), y)             # gathers (detached, on the CPU)
        ...     monitor.step(step)                      # reports every 100 steps
    """

    def __init__(self, log: Optional[Callable[[Dict[str, float], int], Any]] = None,
                 every: Optional[int] = None, holdout: Any = None,
                 embed: Optional[Callable[[Any], ArrayLike]] = None,
                 prefix: str = "geometry/", max_rows: int = 50_000, **options: Any) -> None:
        self.log = log
        self.every = every
        self.holdout = holdout
        self.embed = embed
        self.prefix = prefix
        self.max_rows = max_rows
        self.options = options
        self.history: List[Dict[str, Any]] = []
        self._rows: List[np.ndarray] = []
        self._labels: List[Any] = []

    def update(self, embeddings: ArrayLike, labels: Optional[ArrayLike] = None) -> None:
        """Gather a batch for the next report.

        Args:
            embeddings: (B, D) rows (copied: the caller may reuse its buffer).
            labels: One class label per row.

        Example:
            >>> monitor.update(z, y)
        """
        rows = np.array(as_rows(embeddings, "embeddings"), copy=True)
        self._rows.append(rows)
        if labels is not None:
            labels = as_labels(labels, "labels")
            self._labels.append(np.asarray(labels))
        total = sum(len(r) for r in self._rows)
        while total > self.max_rows and len(self._rows) > 1:
            total -= len(self._rows.pop(0))
            if self._labels:
                self._labels.pop(0)

    def step(self, step: int) -> Optional[Dict[str, float]]:
        """Report when ``step`` is a multiple of ``every``.

        Args:
            step: The training step.

        Returns:
            The scalars when it reported, else ``None``.

        Example:
            >>> monitor.step(100)["geometry/nc1"]
            0.41...
        """
        if self.every and step % self.every == 0:
            return self.report(step)
        return None

    def report(self, step: int) -> Optional[Dict[str, float]]:
        """Compute the geometry now (e.g. at the end of an epoch) and log it.

        Args:
            step: The step (or epoch) the scalars are logged at.

        Returns:
            The scalars, or ``None`` with nothing gathered and no held-out batch.

        Example:
            >>> monitor.report(epoch)["geometry/uniformity"]
            -3.2...
        """
        from . import analyze

        if self.holdout is not None:
            x, y = self.holdout if isinstance(self.holdout, tuple) else (self.holdout, None)
            rows = self.embed(x) if self.embed is not None else x
            labels = y
        elif self._rows:
            rows = np.concatenate(self._rows)
            labels = np.concatenate(self._labels) if self._labels else None
        else:
            return None
        result = analyze(rows, labels=labels, **self.options)
        scalars = {self.prefix + k: v for k, v in result.scalars().items()}
        self.history.append({"step": step, **scalars})
        self._rows.clear()
        self._labels.clear()
        if self.log is not None:
            self.log(scalars, step)
        return scalars
