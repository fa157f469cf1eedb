"""Mergeable partial states: accumulate batches (in a training loop, over shards, in other
processes), merge them exactly in any order, pickle them, and finalise into the metrics that
depend on sufficient statistics only (spectrum, effective rank, RankMe, alpha-ReQ, std of
normalised rows, label-positive alignment, NC1-NC2, ETF distance, CDNV, simplex angles)."""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from . import _embgeom
from ._convert import as_labels, as_rows


class Accumulator:
    """A mergeable summary of embeddings (and labels).

    >>> state = Accumulator()
    >>> for x, y in batches:                       # doctest: +SKIP
    ...     state.update(x, y)
    >>> state.merge(other_state)                    # doctest: +SKIP
    >>> state.finalize()["nc1"]                     # doctest: +SKIP

    Memory is O(D^2 + C D), whatever the number of rows: the second moments of the raw and
    the L2-normalised rows about a fixed shift (the first batch's mean) and per-class sums.
    Merging is exact up to rounding; states pickle (``to_bytes``/``from_bytes``, versioned).
    The values equal :func:`embgeom.analyze`'s to about 1e-9 relative (one-pass moments
    against its two-pass statistics). Exact uniformity, kNN and nearest-class-mean accuracy
    need the rows again and are not part of a state.
    """

    def __init__(self, dim: Optional[int] = None) -> None:
        self._state = None if dim is None else _embgeom.State(dim)

    def update(self, embeddings, labels=None) -> "Accumulator":
        """Add a batch of rows, with one label per row (every batch, or none)."""
        rows = as_rows(embeddings, "batch")
        if self._state is None:
            self._state = _embgeom.State(rows.shape[1])
        values = None
        if labels is not None:
            converted = as_labels(labels, "labels")
            values = converted.tolist() if hasattr(converted, "tolist") else list(converted)
        self._state.update(rows, values)
        return self

    def merge(self, other: "Accumulator") -> "Accumulator":
        """Merge another accumulator into this one."""
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

    def finalize(self) -> Dict[str, Any]:
        """The metrics of every row seen: n, dim, num_classes, eigenvalues, effective_rank,
        rankme, alpha_req, normalized_std, class_alignment, nc1, nc1_quotient, nc2_equinorm,
        nc2_equiangularity, nc2_max_angle, etf_distance, cdnv, simplex_angles, warnings."""
        if self._state is None:
            raise _embgeom.EmbgeomError("an empty accumulator: update it with rows first")
        return json.loads(self._state.finalize())

    def to_bytes(self) -> bytes:
        """The state as versioned bytes."""
        if self._state is None:
            return b""
        return bytes(self._state.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> "Accumulator":
        """An accumulator from :meth:`to_bytes`."""
        out = cls()
        if data:
            out._state = _embgeom.State.from_bytes(data)
        return out

    def __reduce__(self):
        return (Accumulator.from_bytes, (self.to_bytes(),))

    def __repr__(self) -> str:
        return f"<embgeom.Accumulator rows={self.rows}>"
