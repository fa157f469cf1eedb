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

def analyze(
    embeddings: Optional[_Rows] = None,
    views: Optional[Sequence[_Rows]] = None,
    labels: Optional[_Labels] = None,
    classifier: Optional[_Rows] = None,
    bias: Optional[Sequence[float]] = None,
    split: Optional[_Labels] = None,
    subclasses: Optional[_Labels] = None,
    normalize: bool = True,
    **kwargs: Any,
) -> Tuple[str, str, str, bool]: ...
def analyze_file(
    path: Optional[Union[str, PathLike[str]]],
    labels: Optional[Union[str, PathLike[str]]] = None,
    views: Optional[Sequence[Union[str, PathLike[str]]]] = None,
    key: Optional[str] = None,
    label_key: Optional[str] = None,
    classifier: Optional[str] = None,
    normalize: bool = True,
    **kwargs: Any,
) -> Tuple[str, str, str]: ...
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
    **kwargs: Any,
) -> Dict[str, Any]: ...
def catalogue_json() -> str: ...

@final
class State:
    """A mergeable partial state; use ``embgeom.Accumulator``."""

    def __new__(cls, dim: int) -> "State": ...
    def update(self, rows: _Rows, labels: Optional[List[str]] = None) -> None: ...
    def merge(self, other: "State") -> None: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> "State": ...
    def finalize(self) -> str: ...
    @property
    def rows(self) -> int: ...
