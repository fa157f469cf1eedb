"""The result of :func:`embgeom.analyze_modalities`: paired modalities measured together."""

from __future__ import annotations

import html
import json
from typing import Any, Dict, List, Optional

__all__ = ["Modalities"]


class Modalities:
    """Two or more modalities of the same items (image and text embeddings, say) measured
    together: each modality's own analysis, the gap matrix, and for every two of them the
    modality gap, exact retrieval both ways, the objectives over all pairs and the shift
    experiment (the ``embgeom.modalities/1`` document of ``embgeom analyze --modalities``).

    Example:
        >>> result = embgeom.analyze_modalities({"image": images, "text": texts})
        >>> result.gap("image", "text")["distance"]
        0.82...
        >>> result.retrieval("image", "text")["image_to_text"]["recall_at_1"]
        0.31...
    """

    def __init__(self, document: str, table: str) -> None:
        self._document: Dict[str, Any] = json.loads(document)
        self._table = table

    @property
    def names(self) -> List[str]:
        """The modalities' names, in order."""
        return [m["name"] for m in self._document["modalities"]]

    def analysis(self, name: str) -> Dict[str, Any]:
        """One modality's own analysis document (``embgeom.analysis/1``).

        Args:
            name: The modality.

        Returns:
            The document, as ``Analysis.to_dict`` gives it.

        Example:
            >>> result.analysis("text")["metrics"]["uniformity"]["value"]
            -3.1...
        """
        for m in self._document["modalities"]:
            if m["name"] == name:
                return dict(m["analysis"])
        raise KeyError(f"no modality {name!r}; modalities: {', '.join(self.names)}")

    @property
    def notes(self) -> List[str]:
        """Why two modalities were not measured together (different widths); empty when every
        two were."""
        return list(self._document.get("notes", []))

    def _pair(self, first: str, second: str) -> Dict[str, Any]:
        for p in self._document["pairs"]:
            if (p["first"], p["second"]) in ((first, second), (second, first)):
                return dict(p)
        why = [n for n in self.notes
               if n.startswith((f"modalities {first} and {second} have",
                                f"modalities {second} and {first} have"))]
        raise KeyError(f"no pair {first!r}, {second!r}"
                       + (f": {why[0]}" if why else f"; modalities: {', '.join(self.names)}"))

    def gap(self, first: str, second: str) -> Dict[str, Any]:
        """The gap between two modalities: ``distance`` (Liang et al.'s, L2M), ``components``,
        ``centroid_cosine_distance``, ``l2i``, ``pair_cosine``, ``rmg``, ``rmg_training``,
        ``cones``.

        Args:
            first: One modality.
            second: The other.

        Returns:
            The gap's fields, as in the JSON document.

        Example:
            >>> result.gap("image", "text")["rmg"]
            0.42...
        """
        return dict(self._pair(first, second)["gap"])

    def retrieval(self, first: str, second: str) -> Dict[str, Any]:
        """Retrieval both ways (``FIRST_to_SECOND`` and ``SECOND_to_FIRST``: ``recall_at_1``,
        ``recall_at_5``, ``recall_at_10``, ``mean_rank``, ``median_rank``, ``mrr``,
        ``tied_queries``) and the objectives ``info_nce`` and ``siglip`` over all pairs.

        Args:
            first: One modality.
            second: The other.

        Returns:
            The retrieval fields, as in the JSON document.

        Example:
            >>> result.retrieval("image", "text")["text_to_image"]["mrr"]
            0.51...
        """
        return dict(self._pair(first, second)["retrieval"])

    def shift(self, first: str, second: str) -> List[Dict[str, Any]]:
        """The shift experiment: per fraction of the gap closed, the gap left and retrieval.

        Args:
            first: One modality.
            second: The other.

        Returns:
            One dict per fraction (``fraction``, ``distance``, ``retrieval``).

        Example:
            >>> [step["distance"] for step in result.shift("image", "text")]
            [0.61..., 0.40..., 0.20..., 0.01...]
        """
        return list(self._pair(first, second)["shift"])

    @property
    def gap_matrix(self) -> List[List[Optional[float]]]:
        """The centroid distances between every two modalities, in the order of :attr:`names`
        (``None`` between modalities of different widths)."""
        return [list(row) for row in self._document["gap_matrix"]["distances"]]

    def to_dict(self) -> Dict[str, Any]:
        """The whole ``embgeom.modalities/1`` document.

        Returns:
            A copy of the document (``schema``, ``modalities``, ``gap_matrix``, ``pairs``,
            ``notes``).

        Example:
            >>> result.to_dict()["schema"]
            'embgeom.modalities/1'
        """
        return json.loads(json.dumps(self._document))

    def __str__(self) -> str:
        return self._table

    def __repr__(self) -> str:
        return f"<embgeom.Modalities {', '.join(self.names)}>"

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self._table)}</pre>"
