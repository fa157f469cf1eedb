"""Mergeable partial states: accumulate batches (in a training loop, over shards, in other
processes), merge them exactly in any order, pickle them, and finalise into the metrics that
depend on sufficient statistics only (spectrum, effective rank, RankMe, alpha-ReQ, std of
normalised rows, label-positive alignment, NC1-NC2, ETF distance, CDNV, simplex angles)."""

from __future__ import annotations

from typing import Any, Optional, Tuple

from . import _embgeom
from ._convert import ArrayLike, as_labels, as_rows
from .analysis import Analysis


class Accumulator:
    """A mergeable summary of embeddings (and labels).

    Memory is O(D^2 + C D), whatever the number of rows: the second moments of the raw and
    the L2-normalised rows about a fixed shift (the first batch's mean) and per-class sums.
    Merging is exact up to rounding; states pickle (``to_bytes``/``from_bytes``, versioned).
    The values equal :func:`embgeom.analyze`'s to about 1e-9 relative (one-pass moments
    against its two-pass statistics). Exact uniformity, kNN and nearest-class-mean accuracy
    need the rows again and are not part of a state.

    Args:
        dim: The embedding dimension D (default: the first batch's).

    Example:
        >>> state = embgeom.Accumulator()
        >>> for x, y in batches:
        ...     state.update(x, y)
        >>> state.merge(other_state)
        >>> state.finalize().nc1
        0.41...
    """

    def __init__(self, dim: Optional[int] = None) -> None:
        self._state = None if dim is None else _embgeom.State(dim)

    def update(self, embeddings: ArrayLike, labels: Optional[ArrayLike] = None) -> "Accumulator":
        """Add a batch of rows.

        Args:
            embeddings: (B, D) rows.
            labels: One class label per row (integers or strings): with every batch, or
                with none.

        Returns:
            This accumulator.

        Raises:
            EmbgeomError: Another dimension, NaN, or labels with some batches only.

        Example:
            >>> embgeom.Accumulator().update(x, y).rows
            1000
        """
        rows = as_rows(embeddings, "batch")
        if self._state is None:
            self._state = _embgeom.State(rows.shape[1])
        values = None
        if labels is not None:
            converted = as_labels(labels, "labels")
            values = converted if isinstance(converted, list) else converted.tolist()
        self._state.update(rows, values)
        return self

    def merge(self, other: "Accumulator") -> "Accumulator":
        """Merge another accumulator into this one (any order gives the same result, up to
        rounding).

        Args:
            other: An accumulator of other rows (of the same dimension).

        Returns:
            This accumulator.

        Raises:
            EmbgeomError: Another dimension, or labels in one of them only.

        Example:
            >>> whole = embgeom.Accumulator().update(x[:500], y[:500])
            >>> whole.merge(embgeom.Accumulator().update(x[500:], y[500:])).rows
            1000
        """
        if not isinstance(other, Accumulator):
            raise TypeError(f"other: expected an Accumulator, got {type(other).__name__}")
        if other._state is None:
            return self
        if self._state is None:
            self._state = _embgeom.State.from_bytes(other._state.to_bytes())
        else:
            self._state.merge(other._state)
        return self

    @property
    def rows(self) -> int:
        """Rows summarised so far."""
        return 0 if self._state is None else self._state.rows

    def finalize(self) -> Analysis:
        """The analysis of every row seen, the same :class:`~embgeom.Analysis` as
        :func:`embgeom.analyze` returns.

        Returns:
            The analysis: the spectrum (effective rank, RankMe, alpha-ReQ, std of normalised
            rows) and, with labels, label-positive alignment (alpha = 2), NC1-NC2, ETF
            distance, CDNV and simplex angles. Uniformity, kNN and nearest-class-mean accuracy
            need the rows and are ``None`` (a warning says so); there is no figure data.

        Raises:
            EmbgeomError: No rows, or fewer than two.

        Example:
            >>> result = embgeom.Accumulator().update(x, y).finalize()
            >>> result.nc1 == pytest.approx(embgeom.analyze(x, labels=y).nc1)
            True
        """
        if self._state is None:
            raise _embgeom.EmbgeomError("an empty accumulator: update it with rows first")
        return Analysis(self._state.finalize())

    def to_bytes(self) -> bytes:
        """The state as versioned bytes.

        Returns:
            The bytes :meth:`from_bytes` reads (empty for an empty accumulator).

        Example:
            >>> embgeom.Accumulator.from_bytes(state.to_bytes()).rows == state.rows
            True
        """
        if self._state is None:
            return b""
        return bytes(self._state.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> "Accumulator":
        """An accumulator from :meth:`to_bytes`.

        Args:
            data: Bytes written by :meth:`to_bytes` (of this version of embgeom's state).

        Returns:
            The accumulator.

        Raises:
            EmbgeomError: Bytes of another version, or not a state.

        Example:
            >>> embgeom.Accumulator.from_bytes(b"").rows
            0
        """
        out = cls()
        if data:
            out._state = _embgeom.State.from_bytes(data)
        return out

    def __reduce__(self) -> Tuple[Any, Tuple[bytes]]:
        return (Accumulator.from_bytes, (self.to_bytes(),))

    def __repr__(self) -> str:
        return f"<embgeom.Accumulator rows={self.rows}>"
