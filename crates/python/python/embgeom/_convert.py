"""Turning what users hold (NumPy arrays, PyTorch tensors, lists, ``__array__`` or DLPack
objects) into the arrays the Rust core reads: float32 or float64, 2-D; labels as int64 or a
list of strings; paths as strings. No error message shows an array's contents."""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any, List, Optional, Union, overload

import numpy as np
import numpy.typing as npt

from ._embgeom import EmbgeomError

if TYPE_CHECKING:
    from typing_extensions import TypeIs

ArrayLike = npt.ArrayLike
"""What embgeom reads as an array: a NumPy array, a PyTorch tensor, a (nested) list, anything
with ``__array__``, or a DLPack object."""

PathLike = Union[str, os.PathLike[str]]
"""A file or folder: a ``str`` or an ``os.PathLike`` such as ``pathlib.Path``."""


def is_path(value: Any) -> TypeIs[Union[str, os.PathLike[str]]]:
    """Whether ``value`` names a file or folder (``str`` or ``os.PathLike``)."""
    return isinstance(value, (str, os.PathLike))


def as_path(value: Any, name: str) -> str:
    """``value`` as a path string; anything else (an array, say) is an error that names its
    type, never its contents."""
    if not is_path(value):
        raise EmbgeomError(f"{name}: expected a path (str or os.PathLike), got "
                           f"{type(value).__name__}")
    return os.fspath(value)


def _from_torch(x: Any, name: str) -> Optional[np.ndarray]:
    """A PyTorch tensor as a NumPy array: detached, moved to the CPU (with a note when it
    was on a GPU), bfloat16 widened to float32. ``None`` for anything else."""
    module = type(x).__module__
    if not module.startswith("torch"):
        return None
    if getattr(x, "device", None) is not None and x.device.type != "cpu":
        warnings.warn(f"{name}: moved from {x.device} to the CPU for embgeom", stacklevel=4)
    x = x.detach().cpu()
    if str(x.dtype) == "torch.bfloat16":
        x = x.float()
    return x.numpy()


def as_rows(x: Any, name: str, vector: bool = False) -> np.ndarray:
    """``x`` as a float32 or float64 array, 2-D (1-D with ``vector``). float32 and float64
    arrays pass through unchanged (read in place when C-contiguous); float16 becomes float32,
    integers float64."""
    if is_path(x):
        raise EmbgeomError(f"{name}: expected an array, got a path (files are read by "
                           "embgeom.analyze_file)")
    array = _from_torch(x, name)
    if array is None:
        if not isinstance(x, np.ndarray) and hasattr(x, "__dlpack__") and not hasattr(x, "__array__"):
            array = np.from_dlpack(x)
        else:
            array = np.asarray(x)
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    elif array.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
                or array.dtype == np.bool_):
            raise EmbgeomError(f"{name}: expected numbers, got dtype {array.dtype}")
        array = array.astype(np.float64)
    want = 1 if vector else 2
    if array.ndim != want:
        raise EmbgeomError(f"{name}: expected a {want}-D array, got shape {array.shape}")
    return array


@overload
def as_labels(labels: None, name: str) -> None: ...


@overload
def as_labels(labels: ArrayLike, name: str) -> Union[np.ndarray, List[str]]: ...


def as_labels(labels: Any, name: str) -> Union[None, np.ndarray, List[str]]:
    """Labels (one per row) as int64 (integers, or integral floats) or a list of strings."""
    if labels is None:
        return None
    if is_path(labels):
        raise EmbgeomError(f"{name}: expected one label per row, got a path (a labels file "
                           "goes with a file of embeddings)")
    array = _from_torch(labels, name)
    if array is None:
        array = np.asarray(labels)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise EmbgeomError(f"{name}: expected one label per row, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        if array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
            return [str(v) for v in array.tolist()]
        return np.ascontiguousarray(array, dtype=np.int64)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            bad = int(np.flatnonzero(~np.isfinite(array) | (array != np.round(array)))[0])
            raise EmbgeomError(f"{name}: label of row {bad} is {array[bad]}, not an integer "
                             "(labels must be integers or strings)")
        return array.astype(np.int64)
    return [str(v) for v in array.tolist()]
