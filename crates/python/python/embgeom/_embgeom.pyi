"""Type stubs of the compiled core (``embgeom._embgeom``); use the functions of ``embgeom``."""

from os import PathLike
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt
from typing_extensions import final

__version__: str

_Rows = Union[npt.NDArray[np.float32], npt.NDArray[np.float64]]
_Labels = Union[npt.NDArray[np.int64], List[str]]

class EmbgeomError(ValueError):
    """Bad input or an analysis that cannot be done; the message names the array, file,
    key or row."""

@final
class Run:
    """An analysis done; use ``embgeom.Analysis``."""

    def document(self) -> str: ...
    def rows(self) -> str: ...
    def table(self) -> str: ...
    def html(self) -> str: ...
    def figures(
        self,
    ) -> Tuple[List[Tuple[str, str, str, str]], List[Tuple[str, str, str]]]: ...
    def write_figure(self, figure: str, path: Union[str, PathLike[str]]) -> None: ...
    def per_point(self) -> Dict[str, List[Any]]: ...
    def write_per_point(self, path: Union[str, PathLike[str]]) -> None: ...
    def write_report(
        self, out: Union[str, PathLike[str]], name: str, force: bool = False
    ) -> str: ...

def analyze(
    embeddings: Optional[_Rows] = None,
    views: Optional[Sequence[_Rows]] = None,
    labels: Optional[_Labels] = None,
    classifier: Optional[_Rows] = None,
    bias: Optional[Sequence[float]] = None,
    split: Optional[_Labels] = None,
    subclasses: Optional[_Labels] = None,
    normalize: bool = True,
    figures: bool = False,
    per_point: Optional[int] = None,
    **kwargs: Any,
) -> Tuple[Run, bool]: ...
def analyze_modalities(
    modalities: Sequence[Tuple[str, _Rows]],
    pair_map: Optional[Sequence[int]] = None,
    labels: Optional[_Labels] = None,
    normalize: bool = True,
    temperature: float = 0.01,
    siglip_scale: float = 10.0,
    siglip_bias: float = ...,
    shifts: Sequence[float] = ...,
    report: Optional[Union[str, PathLike[str]]] = None,
    force: bool = False,
    retrieval_queries: Optional[int] = None,
    **kwargs: Any,
) -> Tuple[str, str]: ...
def analyze_file(
    path: Optional[Union[str, PathLike[str]]],
    labels: Optional[Union[str, PathLike[str]]] = None,
    views: Optional[Sequence[Union[str, PathLike[str]]]] = None,
    key: Optional[str] = None,
    label_key: Optional[str] = None,
    classifier: Optional[str] = None,
    normalize: bool = True,
    figures: bool = False,
    **kwargs: Any,
) -> Run: ...
def report(
    path: Union[str, PathLike[str]],
    out: Union[str, PathLike[str]],
    name: str,
    labels: Optional[Union[str, PathLike[str]]] = None,
    force: bool = False,
    normalize: bool = True,
    **kwargs: Any,
) -> str: ...
def track(
    run: str,
    out: Union[str, PathLike[str]],
    labels: Optional[Union[str, PathLike[str]]] = None,
    checks: Optional[Sequence[str]] = None,
    force: bool = False,
    name: Optional[str] = None,
    modalities: Optional[Sequence[str]] = None,
    **kwargs: Any,
) -> Dict[str, Any]: ...
def compare(
    inputs: Sequence[Tuple[str, Union[str, PathLike[str]]]],
    out: Union[str, PathLike[str]],
    title: str,
    labels: Optional[Union[str, PathLike[str]]] = None,
    force: bool = False,
    modalities: Optional[Sequence[str]] = None,
    sample: Optional[Tuple[int, int, int, bool]] = None,
    similarity_only: bool = False,
    **kwargs: Any,
) -> Dict[str, Any]: ...
def catalogue_json() -> str: ...
def similarity(
    x: Any,
    y: Any,
    sample: Optional[Tuple[int, int, int, bool]] = None,
    seed: int = 0,
) -> Dict[str, Any]: ...

@final
class State:
    """A mergeable partial state; use ``embgeom.Accumulator``."""

    def __new__(cls, dim: int) -> "State": ...
    def update(self, rows: _Rows, labels: Optional[Sequence[Union[int, str]]] = None) -> None: ...
    def merge(self, other: "State") -> None: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> "State": ...
    def finalize(self) -> Run: ...
    @property
    def rows(self) -> int: ...

@final
class ShardJob:
    """A sharded analysis: the shards of a directory, the plan and the task functions."""

    def __new__(cls, path: str, key: Optional[str] = None, label_key: Optional[str] = None,
                classifier: Optional[str] = None, bias: Optional[str] = None,
                normalize: bool = True, sample_rows: int = 10000,
                **options: Any) -> "ShardJob": ...
    @staticmethod
    def from_json(json: str) -> "ShardJob": ...
    def to_json(self) -> str: ...
    @property
    def shards(self) -> int: ...
    @property
    def rows(self) -> List[int]: ...
    @property
    def files(self) -> List[str]: ...
    def blocks(self) -> List[Tuple[int, int]]: ...
    def summarize(self, shard: int) -> bytes: ...
    def merge_summaries(self, parts: List[bytes]) -> bytes: ...
    def context(self, summary: bytes) -> bytes: ...
    def second_pass(self, context: bytes, shard: int) -> bytes: ...
    def merge_second_passes(self, parts: List[bytes]) -> bytes: ...
    def uniformity_block(self, context: bytes, a: int, b: int) -> bytes: ...
    def merge_uniformity_blocks(self, parts: List[bytes]) -> bytes: ...
    def finalize(self, summary: bytes, context: bytes, second: bytes,
                 block: Optional[bytes] = None) -> Run: ...
    def run(self) -> Run: ...

@final
class PairJob:
    """Two sharded modalities measured together as tasks (results are JSON bytes)."""

    def __new__(cls, names: Tuple[str, str], first: ShardJob, second: ShardJob,
                temperature: float = 0.01, siglip_scale: float = 10.0,
                siglip_bias: float = ..., shifts: Sequence[float] = ...) -> "PairJob": ...
    @staticmethod
    def from_json(json: str) -> "PairJob": ...
    def to_json(self) -> str: ...
    @property
    def shards(self) -> int: ...
    @property
    def configurations(self) -> int: ...
    def first_round(self, config: int, shard: int, base: Optional[bytes] = None) -> bytes: ...
    def context(self, parts: List[bytes]) -> bytes: ...
    def second_round(self, config: int, k: int, l: int, context: bytes,
                     base: Optional[bytes] = None) -> bytes: ...
    def finish(self, configurations: List[Tuple[bytes, List[bytes]]]) -> bytes: ...

def modalities_result(names: Sequence[str], runs: Sequence[Run],
                      pairs: Sequence[bytes]) -> Tuple[str, str]: ...
