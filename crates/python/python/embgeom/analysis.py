"""The result of an analysis (:class:`Analysis`) and the report's figures drawn from it
(:class:`Figure`, :class:`Figures`), for scripts and notebooks: every catalogued metric is a
typed attribute, the result shows itself in Jupyter as an HTML table and each figure as SVG.

The metric attributes are generated from the Rust catalogue when the module is imported (one
per catalogue key, ``.`` written ``_``); ``analysis.pyi`` lists them for type checkers and
editors, and a test keeps the two equal."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union, overload

from . import _embgeom
from ._convert import PathLike, as_path
from ._embgeom import EmbgeomError


def _attribute(key: str) -> str:
    """The attribute of the metric with catalogue key ``key``: ``nc1`` -> ``nc1``,
    ``simplex_angles.mean_norm`` -> ``simplex_angles_mean_norm``."""
    return key.replace(".", "_")


class Figure:
    """One figure of the report, drawn as SVG in memory; Jupyter shows it inline.

    Attributes:
        id: The figure's file stem in a report (``"06-spectrum"``).
        title: The figure's title.
        caption: What the figure shows and how to read it.
        svg: The figure as an SVG document (the same as the report's ``figures/ID.svg``).

    Example:
        >>> figure = embgeom.analyze(x, labels=y, figures=True).figures()["spectrum"]
        >>> figure                                  # in Jupyter: the figure, inline
        >>> figure.save("spectrum.png")             # or .svg
    """

    def __init__(self, run: _embgeom.Run, id: str, title: str, caption: str, svg: str) -> None:
        self._run = run
        self.id = id
        self.title = title
        self.caption = caption
        self.svg = svg

    @property
    def name(self) -> str:
        """The id without its page number (``"spectrum"``)."""
        return self.id.split("-", 1)[1]

    def save(self, path: PathLike) -> None:
        """Write the figure to a file.

        Args:
            path: Where to write it: an SVG file for a name ending in ``.svg``, a PNG image
                for ``.png``.

        Raises:
            EmbgeomError: Another extension, or the file cannot be written.

        Example:
            >>> figure.save("figures/spectrum.svg")
        """
        self._run.write_figure(self.id, as_path(path, "path"))

    def _repr_svg_(self) -> str:
        return self.svg

    def __repr__(self) -> str:
        return f"<embgeom.Figure {self.id}: {self.title}>"


class Figures(Sequence[Figure]):
    """The report's figures of an analysis, in page order; Jupyter shows them all, with titles
    and captions.

    Index by position or by name, with or without its page number (``figures["spectrum"]``,
    ``figures["06-spectrum"]``). Figures that do not apply to the input (those that need
    labels, say) are left out and listed in :attr:`skipped`.

    Attributes:
        skipped: ``(id, title, why)`` of each figure not drawn.

    Example:
        >>> figures = result.figures()
        >>> [f.name for f in figures]
        ['alignment-uniformity', 'distance-histograms', ...]
        >>> figures["pca-scatter"]                  # in Jupyter: the figure
    """

    def __init__(self, figures: List[Figure], skipped: List[Tuple[str, str, str]]) -> None:
        self._figures = figures
        self.skipped = skipped

    @overload
    def __getitem__(self, key: Union[int, str]) -> Figure: ...

    @overload
    def __getitem__(self, key: slice) -> List[Figure]: ...

    def __getitem__(self, key: Union[int, str, slice]) -> Union[Figure, List[Figure]]:
        if not isinstance(key, str):
            return self._figures[key]
        for figure in self._figures:
            if key in (figure.id, figure.name):
                return figure
        skipped = {id: why for id, _, why in self.skipped}
        for id, why in skipped.items():
            if key in (id, id.split("-", 1)[1]):
                raise KeyError(f"figure {key!r} was not drawn for this analysis: {why}")
        raise KeyError(f"no figure {key!r}; figures: "
                       f"{', '.join(f.name for f in self._figures)}")

    def __len__(self) -> int:
        return len(self._figures)

    def __iter__(self) -> Iterator[Figure]:
        return iter(self._figures)

    def _repr_html_(self) -> str:
        blocks = [
            f"<figure><h4>{html.escape(f.title)}</h4>\n{f.svg}\n"
            f"<figcaption>{html.escape(f.caption)}</figcaption></figure>"
            for f in self._figures
        ]
        if self.skipped:
            not_drawn = "; ".join(f"{title} ({why})" for _, title, why in self.skipped)
            blocks.append(f"<p>Not drawn: {html.escape(not_drawn)}.</p>")
        return "\n".join(blocks)

    def __repr__(self) -> str:
        return f"<embgeom.Figures {', '.join(f.name for f in self._figures)}>"


class Analysis:
    """The result of an analysis (:func:`embgeom.analyze`, :func:`embgeom.analyze_file`,
    :meth:`embgeom.Accumulator.finalize`, the sharded analyses).

    Every catalogued metric is a typed attribute (``result.nc1``, ``result.uniformity``,
    ``result.simplex_angles_mean_norm``, ...): its value, or ``None`` when it does not apply
    to the input. In Jupyter the result shows itself as an HTML table (metric, value, ideal,
    reading) with the warnings; ``print(result)`` gives the table of ``embgeom analyze``.

    Attributes:
        in_place: Whether the rows were read where they are, not copied.

    Example:
        >>> result = embgeom.analyze(x, labels=y, figures=True)
        >>> result.nc1, result.rankme
        (0.41..., 12.3...)
        >>> result                                  # in Jupyter: the table
        >>> result.figures()["spectrum"]            # in Jupyter: the figure
        >>> result.report("reports/mine")           # the HTML report, as files
    """

    def __init__(self, run: _embgeom.Run, in_place: bool = False) -> None:
        self._run: Optional[_embgeom.Run] = run
        self._document: Dict[str, Any] = json.loads(run.document())
        self._rows: List[Dict[str, Any]] = json.loads(run.rows())
        self._values: Dict[str, Optional[float]] = {r["metric"]: r["value"] for r in self._rows}
        self._table: str = run.table()
        self._html: str = run.html()
        self.in_place = in_place

    def __getstate__(self) -> Dict[str, Any]:
        # The Rust run (and with it the figures) stays in this process.
        return {**self.__dict__, "_run": None}

    @property
    def n(self) -> int:
        """Items (rows per view)."""
        return self._document["n"]

    @property
    def dim(self) -> int:
        """Embedding dimension D."""
        return self._document["dim"]

    @property
    def num_classes(self) -> Optional[int]:
        """C, when labels were given."""
        return self._document["num_classes"]

    @property
    def warnings(self) -> List[str]:
        """What limits the meaning of the results, or why a metric is absent."""
        return list(self._document["warnings"])

    @property
    def per_class(self) -> List[Dict[str, Any]]:
        """The per-class table (n, within-class variance, vertex distance, ...)."""
        return list(self._document["metrics"]["per_class"] or [])

    @property
    def spectrum(self) -> List[float]:
        """Eigenvalues (decreasing) of the normalised rows' centred covariance."""
        return list(self._document["metrics"]["spectrum"]["eigenvalues"])

    def value(self, metric: str) -> Optional[float]:
        """The value of a catalogued metric by its key.

        Args:
            metric: A catalogue key (``"nc1"``, ``"simplex_angles.mean_norm"``; see
                :func:`embgeom.catalogue`).

        Returns:
            The value, or ``None`` when the metric does not apply to the input.

        Raises:
            KeyError: ``metric`` is not a catalogue key.

        Example:
            >>> result.value("simplex_angles.mean_norm") == result.simplex_angles_mean_norm
            True
        """
        if not isinstance(metric, str) or metric not in self._values:
            raise KeyError(f"no metric {metric!r}; metrics: {', '.join(self._values)}"
                           if isinstance(metric, str) else
                           f"a metric is named by its key (str), not a {type(metric).__name__}")
        return self._values[metric]

    def to_dict(self) -> Dict[str, Any]:
        """The ``embgeom.analysis/1`` document.

        Returns:
            The document as ``embgeom analyze --json`` writes it (a fresh copy).

        Example:
            >>> result.to_dict()["schema"]
            'embgeom.analysis/1'
        """
        return json.loads(json.dumps(self._document))

    def metrics(self) -> List[Dict[str, Any]]:
        """One row per catalogued metric.

        Returns:
            Dicts of metric, name, group, level, value, ideal, direction, reading, definition
            (with the parameters used), paper and link.

        Example:
            >>> [row["metric"] for row in result.metrics()][:3]
            ['alignment', 'uniformity', 'class_alignment']
        """
        return [dict(row) for row in self._rows]

    def to_pandas(self) -> Any:
        """The metric rows of :meth:`metrics` as a table (needs pandas).

        Returns:
            A ``pandas.DataFrame``, one row per catalogued metric.

        Example:
            >>> result.to_pandas().set_index("metric").loc["nc1", "ideal"]
            0.0
        """
        import pandas

        return pandas.DataFrame(self.metrics())

    def to_polars(self) -> Any:
        """The metric rows of :meth:`metrics` as a table (needs polars).

        Returns:
            A ``polars.DataFrame``, one row per catalogued metric.

        Example:
            >>> result.to_polars().height
            25
        """
        import polars

        return polars.DataFrame(self.metrics())

    def scalars(self) -> Dict[str, float]:
        """Every metric that has a value: what a logger wants.

        Returns:
            ``{key: value}`` in catalogue order.

        Example:
            >>> "nc1" in result.scalars()
            True
        """
        return {k: v for k, v in self._values.items() if v is not None}

    def _with_figure_data(self) -> _embgeom.Run:
        if self._run is None:
            raise EmbgeomError("this analysis was unpickled: its figure data stays in the "
                               "process that computed it; analyze again with figures=True")
        return self._run

    def per_point(self, path: Optional[PathLike] = None) -> Any:
        """The per-point diagnostics: one row per described row (``row`` in the input,
        ``class``, ``class_mean_distance``, ``k_occurrence``, ``nearest_same_class``,
        ``nearest_other_class``, ``knn_prediction``, ``knn_disagrees``, ``lid``,
        ``projection_x``, ``projection_y`` and ``neighbors``), as the Parquet file of
        ``embgeom analyze --per-point`` holds them.

        Args:
            path: Also write the table there as Parquet, in the form Apple's embedding-atlas
                opens (``embedding-atlas FILE --x projection_x --y projection_y --neighbors
                neighbors``).

        Returns:
            A polars DataFrame when polars is installed, else a pandas DataFrame, else a dict
            of column lists.

        Raises:
            EmbgeomError: The analysis ran without ``per_point`` (or was unpickled).

        Example:
            >>> table = embgeom.analyze(x, labels=y, per_point=True).per_point()
            >>> table.sort("k_occurrence", descending=True).head(5)     # the hubs
        """
        run = self._with_figure_data()
        if path is not None:
            run.write_per_point(as_path(path, "path"))
        columns = run.per_point()
        try:
            import polars

            return polars.DataFrame(columns)
        except ImportError:
            pass
        try:
            import pandas

            return pandas.DataFrame(columns)
        except ImportError:
            return columns

    def figures(self) -> Figures:
        """The report's figures, drawn as SVG in memory (nothing is written).

        Returns:
            The figures that apply to the input, in the report's order; Jupyter shows them
            inline.

        Raises:
            EmbgeomError: The analysis was computed without figure data (``figures=False``,
                an :class:`~embgeom.Accumulator`, a sharded analysis) or unpickled.

        Example:
            >>> figures = embgeom.analyze(x, labels=y, figures=True).figures()
            >>> figures["spectrum"].save("spectrum.png")
        """
        run = self._with_figure_data()
        drawn, skipped = run.figures()
        return Figures([Figure(run, *f) for f in drawn], skipped)

    def report(self, out: PathLike, name: Optional[str] = None, force: bool = False) -> str:
        """Write the HTML report of this analysis (as :func:`embgeom.report` does), without
        analysing again.

        Args:
            out: The report folder (created if needed).
            name: The report's name, in its title (default: the folder's name).
            force: Replace a folder that holds a different report or other files.

        Returns:
            The path of ``index.html``.

        Raises:
            EmbgeomError: No figure data (see :meth:`figures`), or ``out`` holds something
                else and ``force`` is not set.

        Example:
            >>> embgeom.analyze(x, labels=y, figures=True).report("reports/mine")
            'reports/mine/index.html'
        """
        out = as_path(out, "out")
        return self._with_figure_data().write_report(out, name or Path(out).resolve().name,
                                                     force)

    def _repr_html_(self) -> str:
        return self._html

    def __str__(self) -> str:
        return self._table

    def __repr__(self) -> str:
        return f"<embgeom.Analysis n={self.n} dim={self.dim} classes={self.num_classes}>"


def _metric(key: str, name: str, reading: str) -> property:
    def get(self: Analysis) -> Optional[float]:
        return self._values[key]

    get.__name__ = _attribute(key)
    return property(get, doc=f"{name}: {reading}; ``None`` when it does not apply.")


for _entry in json.loads(_embgeom.catalogue_json()):
    setattr(Analysis, _attribute(_entry["metric"]),
            _metric(_entry["metric"], _entry["name"], _entry["reading"]))
del _entry
