"""Geometry inside a training loop: :class:`Monitor` computes the metrics every few steps
(or at the end of each epoch) on a held-out batch or on the embeddings gathered since the
last report, and hands the scalars to a callback (a logger, ``print``, a dict)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import numpy as np

from ._convert import as_labels, as_rows


class Monitor:
    """Measure embedding geometry during training.

    >>> monitor = Monitor(log=print, every=100)           # every 100 steps
    >>> for step, (x, y) in enumerate(loader):            # doctest: +SKIP
    ...     z = model(x)
    ...     monitor.update(z, y)                           # gathers (detached, on CPU)
    ...     monitor.step(step)                             # reports every 100 steps

    With ``holdout=(x, y)`` and ``embed=model_fn``, each report embeds the held-out batch
    instead of using the gathered rows. Each report calls ``log(scalars, step)`` with
    ``{"geometry/<metric>": value}`` (prefix configurable), keeps it in ``history``, and
    clears the gathered rows. ``max_rows`` caps what is gathered (the most recent rows are
    kept). Options (``t``, ``knn_k``, ...) go to :func:`embgeom.analyze`.
    """

    def __init__(self, log: Optional[Callable[[Dict[str, float], int], Any]] = None,
                 every: Optional[int] = None, holdout=None, embed: Optional[Callable] = None,
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

    def update(self, embeddings, labels=None) -> None:
        """Gather a batch of embeddings (and labels) for the next report."""
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
        """Report when ``step`` is a multiple of ``every``; returns the scalars if it did."""
        if self.every and step % self.every == 0:
            return self.report(step)
        return None

    def report(self, step: int) -> Optional[Dict[str, float]]:
        """Compute the geometry now (e.g. at the end of an epoch) and log it."""
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
