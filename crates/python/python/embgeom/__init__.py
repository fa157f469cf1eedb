"""embgeom: exact, fast geometry of learned embeddings.

Alignment and uniformity (Wang & Isola 2020), neural and class collapse (Papyan et al. 2020,
Galanti et al. 2022, Graf et al. 2021), dimensional collapse (effective rank, RankMe,
alpha-ReQ) and kNN accuracy, computed by embgeom's Rust engine (the same one as the
``embgeom`` command line) on NumPy arrays, PyTorch tensors or anything array-like.

>>> import numpy as np, embgeom
>>> x = np.random.default_rng(0).standard_normal((1000, 32)).astype(np.float32)
>>> y = np.arange(1000) % 10
>>> result = embgeom.analyze(x, labels=y)
>>> round(result.uniformity, 3) < 0
True
>>> embgeom.uniformity(x) == result.uniformity
True
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Optional, Sequence

from . import _embgeom
from ._convert import as_labels, as_rows
from ._embgeom import EmbgeomError

__all__ = [
    "Accumulator",
    "Analysis",
    "EmbgeomError",
    "Monitor",
    "alignment",
    "analyze",
    "analyze_file",
    "analyze_sharded",
    "catalogue",
    "cdnv",
    "class_alignment",
    "effective_rank",
    "etf_distance",
    "knn_accuracy",
    "nc1",
    "rankme",
    "report",
    "track",
    "uniformity",
]
__version__ = _embgeom.__version__

_OPTIONS = (
    "alpha",
    "t",
    "pairs",
    "max_exact",
    "seed",
    "knn_k",
    "knn_temperature",
    "knn_queries",
    "memory_limit",
    "uniformity",
    "knn",
)


class Analysis:
    """The result of :func:`analyze`: every metric as an attribute (``result.nc1``,
    ``result.uniformity``, ...; ``None`` when it does not apply), the ``embgeom.analysis/1``
    document (:meth:`to_dict`, identical to ``embgeom analyze --json``) and tables.

    Attributes: ``n``, ``dim``, ``num_classes``, ``warnings``, ``in_place`` (the rows were
    read where they are, not copied), and one per catalogued metric (see :func:`catalogue`).
    """

    def __init__(self, document: Dict[str, Any], rows: List[Dict[str, Any]], table: str,
                 in_place: bool = False) -> None:
        self._document = document
        self._rows = rows
        self._table = table
        self.in_place = in_place

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
        """The value of a catalogued metric by key (``"nc1"``, ``"simplex_angles.mean_norm"``)."""
        for row in self._rows:
            if row["metric"] == metric:
                return row["value"]
        raise KeyError(f"no metric {metric!r}; metrics: {', '.join(r['metric'] for r in self._rows)}")

    def __getattr__(self, name: str) -> Optional[float]:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.value(name)
        except KeyError as error:
            raise AttributeError(str(error)) from None

    def to_dict(self) -> Dict[str, Any]:
        """The ``embgeom.analysis/1`` document, as ``embgeom analyze --json`` writes it."""
        return json.loads(json.dumps(self._document))

    def metrics(self) -> List[Dict[str, Any]]:
        """One row per catalogued metric: metric, name, group, level, value, ideal,
        direction, reading, definition (with the parameters used), paper, link."""
        return [dict(row) for row in self._rows]

    def to_pandas(self):
        """The metric rows as a pandas DataFrame (needs pandas)."""
        import pandas

        return pandas.DataFrame(self.metrics())

    def to_polars(self):
        """The metric rows as a polars DataFrame (needs polars)."""
        import polars

        return polars.DataFrame(self.metrics())

    def scalars(self) -> Dict[str, float]:
        """Every metric that has a value, ``{key: value}``: what a logger wants."""
        return {r["metric"]: r["value"] for r in self._rows if r["value"] is not None}

    def __str__(self) -> str:
        return self._table

    def __repr__(self) -> str:
        return f"<embgeom.Analysis n={self.n} dim={self.dim} classes={self.num_classes}>"


def _options(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    unknown = sorted(set(kwargs) - set(_OPTIONS))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown}; options: {', '.join(_OPTIONS)}")
    return {k: v for k, v in kwargs.items() if v is not None}


def analyze(x=None, labels=None, views: Optional[Sequence[Any]] = None, classifier=None,
            bias=None, split=None, subclasses=None, normalize: bool = True,
            **options: Any) -> Analysis:
    """Every metric of ``embgeom analyze`` on in-memory arrays.

    ``x``: (N, D) embeddings (NumPy array, PyTorch tensor, list, anything with
    ``__array__`` or DLPack); ``views``: row-matched views of the same items (two or more);
    ``labels``, ``split`` (``"train"``/``"test"``) and ``subclasses``: one per row, integers
    or strings; ``classifier`` (C x D) and ``bias`` (C). Rows are L2-normalised unless
    ``normalize=False``. Options: ``alpha`` (2), ``t`` (2), ``pairs``, ``max_exact``
    (200000), ``seed`` (0), ``knn_k`` (20), ``knn_temperature`` (0.07), ``knn_queries``
    (10000), ``memory_limit`` (bytes); ``uniformity=False`` or ``knn=False`` skip those
    costly parts. f32 and f64 rows in C order are read in place.
    """
    document, rows, table, in_place = _embgeom.analyze(
        None if x is None else as_rows(x, "embeddings"),
        None if views is None else [as_rows(v, f"views[{i}]") for i, v in enumerate(views)],
        as_labels(labels, "labels"),
        None if classifier is None else as_rows(classifier, "classifier"),
        None if bias is None else [float(b) for b in as_rows(bias, "bias", vector=True)],
        as_labels(split, "split"),
        as_labels(subclasses, "subclasses"),
        normalize,
        **_options(options),
    )
    return Analysis(json.loads(document), json.loads(rows), table, in_place)


def analyze_file(path, labels=None, views=None, key=None, label_key=None, classifier=None,
                 normalize: bool = True, **options: Any) -> Analysis:
    """``embgeom analyze PATH``: a file of any supported format (npy, npz, safetensors,
    parquet, csv), with labels, views and a classifier stored in it or given as files."""
    document, rows, table = _embgeom.analyze_file(
        None if path is None else str(path),
        None if labels is None else str(labels),
        None if views is None else [str(v) for v in views],
        key, label_key, None if classifier is None else str(classifier), normalize,
        **_options(options),
    )
    return Analysis(json.loads(document), json.loads(rows), table)


def analyze_sharded(path, key: Optional[str] = None, label_key: Optional[str] = None,
                    classifier=None, bias=None, normalize: bool = True,
                    sample_rows: int = 10_000, **options: Any) -> Analysis:
    """``embgeom analyze DIR``: every metric of a directory of numbered shards, read one
    shard (or shard pair) at a time in this process.

    Layouts: LAION's ``DIR/img_emb/img_emb_N.npy`` with ``DIR/metadata/metadata_N.parquet``
    (labels from the column ``label_key``), or ``DIR/<name>_N.<ext>`` with label shards
    ``DIR/labels_N.<ext>`` or a label column in each shard. Uniformity is exact over shard
    pairs up to ``max_exact`` rows, else every pair of a seeded sample of ``sample_rows``
    rows. On a Ray cluster: :func:`embgeom.ray.analyze`.
    """
    job = _embgeom.ShardJob(
        str(path), key, label_key, None if classifier is None else str(classifier),
        None if bias is None else str(bias), normalize, sample_rows, **_options(options))
    document, rows, table = job.run()
    return Analysis(json.loads(document), json.loads(rows), table)


def _single(metric: str, parts: Dict[str, bool], x, labels=None, **kwargs: Any) -> Optional[float]:
    """One metric, from the same engine as :func:`analyze` (equal to its value to the last
    bit), skipping the costly parts the metric does not need."""
    return analyze(x, labels=labels, **kwargs, **parts).value(metric)


_NO_KNN = {"knn": False}
_NO_UNIFORMITY = {"uniformity": False, "knn": False}


def uniformity(x, t: float = 2.0, normalize: bool = True, **options: Any) -> float:
    """Wang & Isola's uniformity ``log mean_{i<j} exp(-t ||x_i - x_j||^2)`` over all pairs
    (exact, tiled; sampled above ``max_exact`` rows or with ``pairs``)."""
    return _single("uniformity", _NO_KNN, x, t=t, normalize=normalize, **options)


def alignment(x, y, alpha: float = 2.0, normalize: bool = True) -> float:
    """Wang & Isola's alignment ``mean_i ||x_i - y_i||^alpha`` of row-matched views."""
    return analyze(views=[x, y], alpha=alpha, normalize=normalize,
                   **_NO_UNIFORMITY).value("alignment")


def class_alignment(x, labels, alpha: float = 2.0, normalize: bool = True) -> float:
    """Label-positive alignment: ``mean ||x_i - x_j||^alpha`` over same-class pairs."""
    return _single("class_alignment", _NO_UNIFORMITY, x, labels, alpha=alpha, normalize=normalize)


def nc1(x, labels, normalize: bool = True) -> Optional[float]:
    """NC1 ``tr(Sigma_W Sigma_B^+)/C`` (Papyan et al. 2020) on the raw rows."""
    return _single("nc1", _NO_UNIFORMITY, x, labels, normalize=normalize)


def etf_distance(x, labels, normalize: bool = True) -> Optional[float]:
    """``||G/||G||_F - (I - 11^T/C)/sqrt(C-1)||_F`` of the centred class means."""
    return _single("etf_distance", _NO_UNIFORMITY, x, labels, normalize=normalize)


def cdnv(x, labels, normalize: bool = True) -> Optional[float]:
    """Mean class-distance normalised variance (Galanti et al. 2022)."""
    return _single("cdnv", _NO_UNIFORMITY, x, labels, normalize=normalize)


def rankme(x, normalize: bool = True) -> float:
    """RankMe (Garrido et al. 2023): entropy of the raw singular values, ``eps = 1e-7``."""
    return _single("rankme", _NO_UNIFORMITY, x, normalize=normalize)


def effective_rank(x, normalize: bool = True) -> float:
    """Effective rank (Roy & Vetterli 2007) of the centred raw rows."""
    return _single("effective_rank", _NO_UNIFORMITY, x, normalize=normalize)


def knn_accuracy(x, labels, knn_k: int = 20, knn_temperature: float = 0.07,
                 normalize: bool = True, **options: Any) -> float:
    """Cosine kNN accuracy with ``exp(sim/T)`` votes, leave-one-out."""
    return _single("knn_accuracy", {"uniformity": False}, x, labels, knn_k=knn_k,
                   knn_temperature=knn_temperature, normalize=normalize, **options)


def catalogue() -> List[Dict[str, Any]]:
    """Every metric: key, name, group, level, direction, reading, paper and link."""
    return json.loads(_embgeom.catalogue_json())


def report(path, out, name: Optional[str] = None, labels=None, force: bool = False,
           normalize: bool = True, **options: Any) -> str:
    """``embgeom report PATH``: the figures and the self-contained HTML page in ``out``;
    returns the path of ``index.html``."""
    import os

    name = name or os.path.splitext(os.path.basename(str(path)))[0]
    return _embgeom.report(str(path), str(out), name,
                           None if labels is None else str(labels), force, normalize,
                           **_options(options))


def track(run, out, labels=None, checks: Iterable[str] = (), force: bool = False,
          **options: Any) -> Dict[str, Any]:
    """One ``embgeom track RUN`` pass: every metric over a run's checkpoints (cached), with
    CKA, tables, figures and checks (``"nc1 increased"``, ``"rankme < 10"``)."""
    return _embgeom.track(str(run), str(out), None if labels is None else str(labels),
                          list(checks), force, **_options(options))


from .accumulator import Accumulator  # noqa: E402
from .monitor import Monitor  # noqa: E402  (needs the functions above)
