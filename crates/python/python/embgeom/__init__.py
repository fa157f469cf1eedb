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

In a notebook the result shows itself as a table, ``result.figures()`` draws the report's
figures inline, and :func:`report`, :func:`compare` and :func:`track` take arrays as well as
files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union, cast

from . import _embgeom
from ._convert import ArrayLike, PathLike, as_labels, as_path, as_rows, is_path
from ._embgeom import EmbgeomError
from ._staging import staging
from .analysis import Analysis, Figure, Figures
from .modalities import Modalities

__all__ = [
    "Accumulator",
    "Analysis",
    "ArrayLike",
    "EmbgeomError",
    "Figure",
    "Figures",
    "Modalities",
    "Monitor",
    "PathLike",
    "alignment",
    "analyze",
    "analyze_file",
    "analyze_modalities",
    "analyze_sharded",
    "catalogue",
    "cdnv",
    "class_alignment",
    "compare",
    "effective_rank",
    "etf_distance",
    "knn_accuracy",
    "nc1",
    "rankme",
    "report",
    "similarity",
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
    "isoscore_zeta",
)

def _options(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    unknown = sorted(set(kwargs) - set(_OPTIONS))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown}; options: {', '.join(_OPTIONS)}")
    return {k: v for k, v in kwargs.items() if v is not None}


def _optional_path(value: Any, name: str) -> Optional[str]:
    return None if value is None else as_path(value, name)


def analyze(x: Optional[ArrayLike] = None, labels: Optional[ArrayLike] = None,
            views: Optional[Sequence[ArrayLike]] = None, classifier: Optional[ArrayLike] = None,
            bias: Optional[ArrayLike] = None, split: Optional[ArrayLike] = None,
            subclasses: Optional[ArrayLike] = None, normalize: bool = True,
            figures: bool = False, per_point: Union[bool, int] = False,
            **options: Any) -> Analysis:
    """Every metric of ``embgeom analyze`` on in-memory arrays.

    f32 and f64 rows in C order are read in place, not copied; other dtypes, Fortran order and
    lists are converted once; PyTorch tensors are detached and moved to the CPU.

    Args:
        x: (N, D) embeddings.
        labels: One class label per row, integers or strings.
        views: Row-matched views of the same items (two or more), each (N, D); alignment
            needs them.
        classifier: (C, D) classifier weights, for NC2-NC4.
        bias: (C,) classifier biases.
        split: ``"train"`` or ``"test"`` per row: kNN accuracy of the test rows among the
            train rows.
        subclasses: One subclass label per row.
        normalize: L2-normalise the rows first (as the CLI does unless ``--no-normalize``).
        figures: Also compute the numbers behind the report's figures, so that
            :meth:`Analysis.figures` and :meth:`Analysis.report` work (costs about one more
            pass over the rows and a PCA).
        per_point: Also compute the per-point diagnostics (:meth:`Analysis.per_point`) of a
            seeded sample of 10,000 rows (every row below that), or of this many rows.
        **options: The CLI's metric options: ``alpha`` (2), ``t`` (2), ``pairs``,
            ``max_exact`` (200000), ``seed`` (0), ``knn_k`` (20), ``knn_temperature``
            (0.07), ``knn_queries`` (10000), ``memory_limit`` (bytes), ``isoscore_zeta``
            (0.2, IsoScore*'s shrinkage); ``uniformity=False`` or ``knn=False`` skip those
            costly parts.

    Returns:
        The :class:`Analysis`: every metric as an attribute; in Jupyter, a table.

    Raises:
        EmbgeomError: An input that cannot be analysed (shape, NaN, labels that do not
            match); the message names the input and the row, never the values.
        TypeError: An unknown option.

    Example:
        >>> result = embgeom.analyze(x, labels=y, figures=True)
        >>> result.nc1
        0.41...
        >>> result.figures()["spectrum"]            # in Jupyter: the figure
    """
    run, in_place = _embgeom.analyze(
        None if x is None else as_rows(x, "embeddings"),
        None if views is None else [as_rows(v, f"views[{i}]") for i, v in enumerate(views)],
        as_labels(labels, "labels"),
        None if classifier is None else as_rows(classifier, "classifier"),
        None if bias is None else [float(b) for b in as_rows(bias, "bias", vector=True)],
        as_labels(split, "split"),
        as_labels(subclasses, "subclasses"),
        normalize,
        figures,
        None if per_point is False else 10_000 if per_point is True else int(per_point),
        **_options(options),
    )
    return Analysis(run, in_place)


def analyze_modalities(modalities: Mapping[str, ArrayLike], pair_map: Optional[ArrayLike] = None,
                       labels: Optional[ArrayLike] = None, normalize: bool = True,
                       temperature: float = 0.01, siglip_scale: float = 10.0,
                       siglip_bias: float = -10.0,
                       shifts: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
                       report: Optional[PathLike] = None, force: bool = False,
                       retrieval_queries: Optional[int] = None, **options: Any) -> Modalities:
    """Analyse paired modalities (image and text embeddings of the same items, say), as
    ``embgeom analyze --modalities`` does.

    Each modality gets its own analysis; then every two of them the modality gap (Liang et
    al. 2022; L2M, L2I and Schrodi et al.'s RMG), exact retrieval both ways (R@1/5/10, mean and
    median rank, MRR), CLIP's InfoNCE and SigLIP's loss over all pairs, and the shift
    experiment.

    Args:
        modalities: Name to (N_m, D) rows, two or more, in order.
        pair_map: For each row of the second modality, its row of the first (five captions
            per image: five rows with the same value); without it row i pairs with row i.
        labels: One class label per row, for every modality's own analysis.
        normalize: L2-normalise the rows first (as the CLI does unless ``--no-normalize``).
        temperature: InfoNCE's temperature (CLIP's ``1 / logit_scale``).
        siglip_scale: SigLIP's logit scale t.
        siglip_bias: SigLIP's logit bias b.
        shifts: The shift experiment's fractions of the gap closed.
        report: A folder to write the modalities report into (``embgeom report
            --modalities``: the joint PCA with the gap vector, the gap's components, matched
            against unmatched similarities, the R@k curves, and each modality's own report).
        force: Replace a ``report`` folder that holds a different report or other files.
        retrieval_queries: Rank a seeded subset of at most this many rows of each modality
            (exactly, against every row of the other) instead of every row; the objectives,
            which need every row, are then left out.
        **options: The options of :func:`analyze` for each modality's analysis.

    Returns:
        A :class:`Modalities`: ``gap``, ``retrieval``, ``shift`` per pair, each modality's
        ``analysis``, the ``gap_matrix``; in Jupyter, the table.

    Raises:
        EmbgeomError: Modalities of other widths, rows that differ without a pair map, a
            pair map that names a missing row (the message names it).

    Example:
        >>> result = embgeom.analyze_modalities({"image": images, "text": texts})
        >>> result.retrieval("image", "text")["text_to_image"]["recall_at_1"]
        0.28...
    """
    rows = [(str(name), as_rows(x, str(name))) for name, x in modalities.items()]
    pairs = None
    if pair_map is not None:
        pairs = [int(v) for v in as_labels(pair_map, "pair_map")]
    document, table = _embgeom.analyze_modalities(
        rows, pairs, as_labels(labels, "labels"), normalize, temperature, siglip_scale,
        siglip_bias, [float(s) for s in shifts],
        None if report is None else as_path(report, "report"), force,
        None if retrieval_queries is None else int(retrieval_queries), **_options(options))
    return Modalities(document, table)


def analyze_file(path: PathLike, labels: Optional[PathLike] = None,
                 views: Optional[Sequence[PathLike]] = None, key: Optional[str] = None,
                 label_key: Optional[str] = None, classifier: Optional[PathLike] = None,
                 normalize: bool = True, figures: bool = False, **options: Any) -> Analysis:
    """``embgeom analyze PATH``: every metric of a file of any supported format.

    Args:
        path: The embeddings: ``.npy``, ``.npz``, ``.safetensors``, ``.parquet``, ``.csv``
            (labels, views and a classifier stored in it are found by name).
        labels: A labels file.
        views: Files of row-matched views.
        key: The array or column of the embeddings in ``path``.
        label_key: The array or column of the labels.
        classifier: A file of (C, D) classifier weights.
        normalize: L2-normalise the rows first.
        figures: Also compute the numbers behind the report's figures (see
            :func:`analyze`).
        **options: The options of :func:`analyze`.

    Returns:
        The :class:`Analysis`, equal to ``embgeom analyze PATH --json``.

    Raises:
        EmbgeomError: A file that cannot be read or analysed (the message names it).

    Example:
        >>> embgeom.analyze_file("data/digits.npz").num_classes
        10
    """
    run = _embgeom.analyze_file(
        as_path(path, "path"),
        _optional_path(labels, "labels"),
        None if views is None else [as_path(v, f"views[{i}]") for i, v in enumerate(views)],
        key, label_key, _optional_path(classifier, "classifier"), normalize, figures,
        **_options(options),
    )
    return Analysis(run)


def analyze_sharded(path: PathLike, key: Optional[str] = None, label_key: Optional[str] = None,
                    classifier: Optional[PathLike] = None, bias: Optional[PathLike] = None,
                    normalize: bool = True, sample_rows: int = 10_000,
                    **options: Any) -> Analysis:
    """``embgeom analyze DIR``: every metric of a directory of numbered shards, read one
    shard (or shard pair) at a time in this process. On a Ray cluster:
    :func:`embgeom.ray.analyze`.

    Args:
        path: The folder. Layouts: LAION's ``DIR/img_emb/img_emb_N.npy`` with
            ``DIR/metadata/metadata_N.parquet``, or ``DIR/<name>_N.<ext>`` with label shards
            ``DIR/labels_N.<ext>`` or a label column in each shard.
        key: The array or column of the embeddings in each shard.
        label_key: The label column (of the metadata or label shards).
        classifier: A file of classifier weights.
        bias: A file of classifier biases.
        normalize: L2-normalise the rows first.
        sample_rows: Above ``max_exact`` rows, uniformity is over every pair of a seeded
            sample of this many rows.
        **options: The options of :func:`analyze`.

    Returns:
        The :class:`Analysis` (without figure data).

    Raises:
        EmbgeomError: A shard that cannot be read or analysed (the message names it).

    Example:
        >>> embgeom.analyze_sharded("laion/", label_key="label").uniformity
        -3.1...
    """
    job = _embgeom.ShardJob(
        as_path(path, "path"), key, label_key, _optional_path(classifier, "classifier"),
        _optional_path(bias, "bias"), normalize, sample_rows, **_options(options))
    return Analysis(job.run())


def _single(metric: str, parts: Dict[str, Any], x: ArrayLike, labels: Optional[ArrayLike] = None,
            **kwargs: Any) -> Optional[float]:
    """One metric, from the same engine as :func:`analyze` (equal to its value to the last
    bit), skipping the costly parts the metric does not need."""
    return analyze(x, labels=labels, **kwargs, **parts).value(metric)


def _always(value: Optional[float]) -> float:
    """A metric the engine computes for every input it accepts (it raises otherwise)."""
    return cast(float, value)


_NO_KNN: Dict[str, Any] = {"knn": False}
_NO_UNIFORMITY: Dict[str, Any] = {"uniformity": False, "knn": False}


def uniformity(x: ArrayLike, t: float = 2.0, normalize: bool = True,
               **options: Any) -> float:
    """Wang & Isola's uniformity ``log mean_{i<j} exp(-t ||x_i - x_j||^2)`` over all pairs
    (exact, tiled; sampled above ``max_exact`` rows or with ``pairs``).

    Args:
        x: (N, D) embeddings.
        t: The kernel's scale.
        normalize: L2-normalise the rows first.
        **options: The options of :func:`analyze`.

    Returns:
        The uniformity (lower is more uniform), equal to :func:`analyze`'s.

    Example:
        >>> embgeom.uniformity(x) < 0
        True
    """
    return _always(_single("uniformity", _NO_KNN, x, t=t, normalize=normalize, **options))


def alignment(x: ArrayLike, y: ArrayLike, alpha: float = 2.0, normalize: bool = True) -> float:
    """Wang & Isola's alignment ``mean_i ||x_i - y_i||^alpha`` of row-matched views.

    Args:
        x: (N, D) first view.
        y: (N, D) second view, row ``i`` the same item as ``x``'s.
        alpha: The exponent.
        normalize: L2-normalise the rows first.

    Returns:
        The alignment (lower is better aligned).

    Example:
        >>> embgeom.alignment(x, x) == 0
        True
    """
    return _always(analyze(views=[x, y], alpha=alpha, normalize=normalize,
                           **_NO_UNIFORMITY).value("alignment"))


def class_alignment(x: ArrayLike, labels: ArrayLike, alpha: float = 2.0,
                    normalize: bool = True) -> Optional[float]:
    """Label-positive alignment: ``mean ||x_i - x_j||^alpha`` over same-class pairs.

    Args:
        x: (N, D) embeddings.
        labels: One class label per row.
        alpha: The exponent.
        normalize: L2-normalise the rows first.

    Returns:
        The alignment of same-class pairs, ``None`` without a class of two rows.

    Example:
        >>> embgeom.class_alignment(x, y) > 0
        True
    """
    return _single("class_alignment", _NO_UNIFORMITY, x, labels, alpha=alpha, normalize=normalize)


def nc1(x: ArrayLike, labels: ArrayLike, normalize: bool = True) -> Optional[float]:
    """NC1 ``tr(Sigma_W Sigma_B^+)/C`` (Papyan et al. 2020) on the raw rows.

    Args:
        x: (N, D) embeddings.
        labels: One class label per row.
        normalize: L2-normalise the rows first.

    Returns:
        NC1 (0 = collapsed), ``None`` with fewer than two classes.

    Example:
        >>> embgeom.nc1(x, y) >= 0
        True
    """
    return _single("nc1", _NO_UNIFORMITY, x, labels, normalize=normalize)


def etf_distance(x: ArrayLike, labels: ArrayLike, normalize: bool = True) -> Optional[float]:
    """``||G/||G||_F - (I - 11^T/C)/sqrt(C-1)||_F`` of the centred class means.

    Args:
        x: (N, D) embeddings.
        labels: One class label per row.
        normalize: L2-normalise the rows first.

    Returns:
        The distance to a simplex ETF (0 = one), ``None`` with fewer than two classes.

    Example:
        >>> embgeom.etf_distance(x, y) >= 0
        True
    """
    return _single("etf_distance", _NO_UNIFORMITY, x, labels, normalize=normalize)


def cdnv(x: ArrayLike, labels: ArrayLike, normalize: bool = True) -> Optional[float]:
    """Mean class-distance normalised variance (Galanti et al. 2022).

    Args:
        x: (N, D) embeddings.
        labels: One class label per row.
        normalize: L2-normalise the rows first.

    Returns:
        The mean CDNV over class pairs (0 = collapsed), ``None`` with fewer than two
        classes with distinct means.

    Example:
        >>> embgeom.cdnv(x, y) >= 0
        True
    """
    return _single("cdnv", _NO_UNIFORMITY, x, labels, normalize=normalize)


def rankme(x: ArrayLike, normalize: bool = True) -> float:
    """RankMe (Garrido et al. 2023): entropy of the raw singular values, ``eps = 1e-7``.

    Args:
        x: (N, D) embeddings.
        normalize: L2-normalise the rows first.

    Returns:
        RankMe, between 1 and D (higher = less dimensional collapse).

    Example:
        >>> 1 <= embgeom.rankme(x) <= x.shape[1]
        True
    """
    return _always(_single("rankme", _NO_UNIFORMITY, x, normalize=normalize))


def effective_rank(x: ArrayLike, normalize: bool = True) -> float:
    """Effective rank (Roy & Vetterli 2007) of the centred raw rows.

    Args:
        x: (N, D) embeddings.
        normalize: L2-normalise the rows first.

    Returns:
        The effective rank, between 1 and D.

    Example:
        >>> 1 <= embgeom.effective_rank(x) <= x.shape[1]
        True
    """
    return _always(_single("effective_rank", _NO_UNIFORMITY, x, normalize=normalize))


def knn_accuracy(x: ArrayLike, labels: ArrayLike, knn_k: int = 20, knn_temperature: float = 0.07,
                 normalize: bool = True, **options: Any) -> Optional[float]:
    """Cosine kNN accuracy with ``exp(sim/T)`` votes, leave-one-out.

    Args:
        x: (N, D) embeddings.
        labels: One class label per row.
        knn_k: Neighbours per query.
        knn_temperature: The votes' temperature T.
        normalize: L2-normalise the rows first.
        **options: The options of :func:`analyze`.

    Returns:
        The fraction of rows whose neighbours vote for their class.

    Example:
        >>> 0 <= embgeom.knn_accuracy(x, y) <= 1
        True
    """
    return _single("knn_accuracy", {"uniformity": False}, x, labels, knn_k=knn_k,
                   knn_temperature=knn_temperature, normalize=normalize, **options)


def catalogue() -> List[Dict[str, Any]]:
    """Every metric embgeom measures.

    Returns:
        One dict per metric: ``metric`` (its key; the :class:`Analysis` attribute is the key
        with ``.`` written ``_``), name, group, level, direction, reading, paper and link.

    Example:
        >>> [m["metric"] for m in embgeom.catalogue()][:2]
        ['alignment', 'uniformity']
    """
    return json.loads(_embgeom.catalogue_json())


def report(x: Union[ArrayLike, PathLike], out: PathLike, name: Optional[str] = None,
           labels: Union[ArrayLike, PathLike, None] = None, force: bool = False,
           normalize: bool = True, **options: Any) -> str:
    """``embgeom report``: the figures and the self-contained HTML page in a folder.

    An array is analysed in memory and nothing but the report folder is written. For more
    inputs (views, a classifier), analyse first and call :meth:`Analysis.report`.

    Args:
        x: (N, D) embeddings, or a file of them (with labels and views stored in it).
        out: The report folder (created if needed).
        name: The report's name, in its title (default: the file's stem, or the folder's
            name for an array).
        labels: One class label per row (with an array), or a labels file (with a file).
        force: Replace a folder that holds a different report or other files.
        normalize: L2-normalise the rows first.
        **options: The options of :func:`analyze`.

    Returns:
        The path of ``index.html``.

    Raises:
        EmbgeomError: An input that cannot be analysed, or ``out`` holds something else and
            ``force`` is not set.

    Example:
        >>> embgeom.report(x, labels=y, out="reports/mine")
        'reports/mine/index.html'
    """
    out = as_path(out, "out")
    if is_path(x):
        path = as_path(x, "x")
        return _embgeom.report(path, out, name or Path(path).stem,
                               _optional_path(labels, "labels"), force, normalize,
                               **_options(options))
    # A labels file with an array is refused by as_labels, with its message.
    result = analyze(x, labels=cast(Optional[ArrayLike], labels), normalize=normalize,
                     figures=True, **options)
    return result.report(out, name=name, force=force)


def _named(inputs: Union[Sequence[Any], Mapping[str, Any]]) -> List[Tuple[str, Any]]:
    """``(name, input)`` pairs: a mapping's keys, else each file's stem or ``input-K``, made
    unique with ``-K`` as ``embgeom compare`` does."""
    if isinstance(inputs, Mapping):
        return [(str(k), v) for k, v in inputs.items()]
    if is_path(inputs) or not isinstance(inputs, Sequence):
        raise EmbgeomError("inputs: expected a list (or a dict by name) of two or more arrays "
                           f"or files, got {type(inputs).__name__}")
    stems = [Path(as_path(v, "input")).stem if is_path(v) else f"input-{k + 1}"
             for k, v in enumerate(inputs)]
    return [(s if stems.count(s) == 1 else f"{s}-{k + 1}", v)
            for k, (s, v) in enumerate(zip(stems, inputs))]


def _sample(rbf_rows: Optional[int], neighbour_rows: Optional[int], k: Optional[int],
            platonic: bool) -> Tuple[int, int, int, bool]:
    return (2_000 if rbf_rows is None else int(rbf_rows),
            10_000 if neighbour_rows is None else int(neighbour_rows),
            10 if k is None else int(k), bool(platonic))


def similarity(x: ArrayLike, y: ArrayLike, rbf_rows: Optional[int] = None,
               neighbour_rows: Optional[int] = None, k: Optional[int] = None,
               platonic: bool = False, seed: int = 0) -> Dict[str, Any]:
    """The similarity family between two representations of the same rows (layers,
    checkpoints, models): linear, debiased and RBF CKA, Procrustes (squared and angular), mean
    CCA, SVCCA, PWCCA, mutual kNN alignment and CKNNA, as ``embgeom compare`` measures them.

    Args:
        x: (N, D1) rows.
        y: (N, D2) rows of the same items in the same order (any width).
        rbf_rows: Rows of RBF CKA's seeded sample (default 2,000; 0 leaves it out).
        neighbour_rows: Rows of the seeded sample of mutual kNN and CKNNA (default 10,000;
            0 leaves them out).
        k: Neighbours of mutual kNN and CKNNA (default 10, platonic-rep's topk).
        platonic: Huh et al.'s preprocessing (clamp at the mean per-row 0.95 quantile of
            ``|x|``, then L2-normalise) before mutual kNN and CKNNA.
        seed: Seed of the samples.

    Returns:
        One value per catalogued key (``cka``, ``debiased_cka``, ``procrustes``,
        ``procrustes_angular``, ``mean_cca``, ``svcca``, ``pwcca``, ``rbf_cka``,
        ``mutual_knn``, ``cknna``; ``None`` where undefined) and ``notes`` (why).

    Raises:
        EmbgeomError: Different row counts, fewer than two rows, a constant representation
            or a bad option.

    Example:
        >>> s = embgeom.similarity(layer_6, layer_12)
        >>> round(s["cka"], 3), s["mutual_knn"]
        (0.912, 0.43)
    """
    sample = _sample(rbf_rows, neighbour_rows, k, platonic)
    return cast(Dict[str, Any], _embgeom.similarity(as_rows(x, "x"), as_rows(y, "y"), sample,
                                                    int(seed)))


def compare(inputs: Union[Sequence[Union[ArrayLike, PathLike]],
                          Mapping[str, Union[ArrayLike, PathLike]]],
            out: PathLike, labels: Union[ArrayLike, PathLike, None] = None,
            title: Optional[str] = None, force: bool = False,
            modalities: Optional[Sequence[str]] = None, rbf_rows: Optional[int] = None,
            neighbour_rows: Optional[int] = None, mutual_k: Optional[int] = None,
            platonic: bool = False, similarity_only: bool = False,
            **options: Any) -> Dict[str, Any]:
    """``embgeom compare``: several embedding sets (runs, losses, checkpoints, models) side by
    side, with the differences to the first, overlaid figures and, for the same items in the
    same order, the similarity family (CKA linear, debiased and RBF, Procrustes, the CCA
    family, mutual kNN and CKNNA) between every pair, and the per-class changes.

    Arrays are written to a private temporary folder for the engine and removed afterwards:
    nothing but the report folder is left.

    Args:
        inputs: Two or more (N, D) arrays or files, in a list (named by file stem, or
            ``input-1``, ``input-2``, ... for arrays) or in a dict by name.
        out: The report folder (created if needed).
        labels: One class label per row for every input (an array), or a labels file.
        title: The page's title (default: ``embgeom compare: A vs B``).
        force: Replace a folder that holds a different report or other files.
        modalities: The keys of two modalities every input file holds (``("image",
            "text")``): the first's metrics and figures, the second's metrics, and the two
            measured together (the gap, the cones, retrieval both ways), input by input.
        rbf_rows: Rows of RBF CKA's seeded sample (default 2,000; 0 leaves it out).
        neighbour_rows: Rows of the seeded sample of mutual kNN and CKNNA (default 10,000;
            0 leaves them out).
        mutual_k: Neighbours k of mutual kNN and CKNNA (default 10).
        platonic: Huh et al.'s preprocessing before mutual kNN and CKNNA.
        similarity_only: Compute only the similarity family (no analysis of each input: no
            metric table, overlaid figures or per-class changes), for many layers or
            checkpoints at a fraction of the time; the inputs must hold the same items in the
            same order.
        **options: The options of :func:`analyze`.

    Returns:
        ``index`` (the path of ``index.html``), ``document`` (the ``embgeom.compare/1``
        document, the similarity matrices under ``similarity``) and ``table`` (the table
        ``embgeom compare`` prints).

    Raises:
        EmbgeomError: Fewer than two inputs, an input that cannot be analysed, or ``out``
            holds something else and ``force`` is not set.

    Example:
        >>> outcome = embgeom.compare({"supcon": a, "simclr": b}, labels=y, out="reports/cmp")
        >>> outcome["index"]
        'reports/cmp/index.html'
    """
    out = as_path(out, "out")
    named = _named(inputs)
    title = title or f"embgeom compare: {' vs '.join(n for n, _ in named)}"
    with staging(out) as stage:
        files = [(n, as_path(v, f"inputs[{n!r}]") if is_path(v)
                  else stage.rows(v, f"inputs[{n!r}]", f"input-{k}.npy"))
                 for k, (n, v) in enumerate(named)]
        label_file = (None if labels is None else as_path(labels, "labels") if is_path(labels)
                      else stage.labels(labels, "labels", "labels.npy"))
        keys = None if modalities is None else [str(k) for k in modalities]
        sample = _sample(rbf_rows, neighbour_rows, mutual_k, platonic)
        outcome = _embgeom.compare(files, out, title, label_file, force, keys, sample,
                                   bool(similarity_only), **_options(options))
    return {**outcome, "document": json.loads(outcome["document"])}


def track(run: Union[PathLike, Sequence[ArrayLike], Mapping[float, ArrayLike]], out: PathLike,
          labels: Union[ArrayLike, PathLike, None] = None, checks: Iterable[str] = (),
          force: bool = False, name: Optional[str] = None,
          modalities: Optional[Sequence[str]] = None, **options: Any) -> Dict[str, Any]:
    """One ``embgeom track`` pass: every metric over a run's checkpoints (cached in ``out``),
    with CKA between consecutive checkpoints, tables, figures and CI checks.

    Arrays are written to a private temporary folder for the engine and removed afterwards:
    nothing but the report folder is left.

    Args:
        run: A run folder (or glob) of checkpoint files, or the checkpoints as arrays: a
            list in training order (steps 0, 1, ...) or a dict by step.
        out: The report folder (created if needed).
        labels: One class label per row of every checkpoint (an array), or a labels file.
        checks: Conditions that fail the run (``embgeom track --fail-if``), such as
            ``"nc1 increased"`` (from the first to the last checkpoint) or ``"rankme < 10"``
            (at the last).
        force: Replace a folder that holds a different report or other files.
        name: The run's name on the page (default: the run folder's name, or the report
            folder's name for arrays).
        modalities: The keys of two modalities every checkpoint of a run folder holds (a
            two-tower run's ``("top", "bottom")``, or ``("image", "text")``): each one's
            metrics as ``KEY.METRIC``, and the two together (the gap, the cones, exact
            retrieval both ways, the objectives over all pairs).
        **options: The options of :func:`analyze`.

    Returns:
        ``checkpoints``, ``analysed`` and ``cached`` (counts), ``index`` (the page),
        ``checks`` (``(check, passed, detail)``: passed when the condition does not hold)
        and ``failed`` (``(checkpoint, why)``: checkpoints that could not be read).

    Raises:
        EmbgeomError: No checkpoints, a check that cannot be parsed, or ``out`` holds
            something else and ``force`` is not set.

    Example:
        >>> outcome = embgeom.track([x_epoch1, x_epoch2, x_epoch3], labels=y,
        ...                         out="reports/run", checks=["nc1 increased"])
        >>> outcome["checks"][0][1]
        True
    """
    out = as_path(out, "out")
    checks = list(checks)
    keys = None if modalities is None else [str(k) for k in modalities]
    if is_path(run):
        return _embgeom.track(as_path(run, "run"), out, _optional_path(labels, "labels"),
                              checks, force, name, keys, **_options(options))
    if keys is not None:
        raise EmbgeomError("modalities: give a run folder whose checkpoints hold both keys")
    if isinstance(run, Mapping):
        steps = list(run.items())
    elif isinstance(run, Sequence):
        steps = list(enumerate(run))
    else:
        raise EmbgeomError("run: expected a run folder, or a list (or a dict by step) of "
                           f"checkpoint arrays, got {type(run).__name__}")
    with staging(out) as stage:
        (stage.folder / "run").mkdir()
        manifest = [{"step": float(step),
                     "path": Path(stage.rows(x, f"run[{step!r}]", f"run/{k:06d}.npy")).name}
                    for k, (step, x) in enumerate(steps)]
        (stage.folder / "run" / "manifest.json").write_text(json.dumps(manifest))
        label_file = (None if labels is None else as_path(labels, "labels") if is_path(labels)
                      else stage.labels(labels, "labels", "labels.npy"))
        return _embgeom.track(str(stage.folder / "run"), out, label_file, checks, force,
                              name or Path(os.path.abspath(out)).name, None, **_options(options))


from .accumulator import Accumulator  # noqa: E402
from .monitor import Monitor  # noqa: E402  (needs the functions above)
