"""In-memory arrays as ``.npy`` files for the engines that read files (``track``,
``compare``), in a private temporary folder that is removed afterwards: nothing is left but
the report folder.

The folder's path depends only on the report folder, so an engine that recognises a report
by its inputs' paths (to refuse replacing another one) sees the same inputs when a notebook
cell runs again."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ._convert import as_labels, as_rows
from ._embgeom import EmbgeomError


def _private_root() -> Path:
    """This user's folder for staged inputs in the temporary folder: created readable by the
    user only, and refused when anything else holds its name."""
    uid = os.getuid()
    root = Path(tempfile.gettempdir()) / f"embgeom-{uid}"
    root.mkdir(mode=0o700, exist_ok=True)
    info = root.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & 0o077:
        raise EmbgeomError(f"{root}: not a folder private to this user; remove it")
    return root


class Staging:
    """A folder that receives arrays as ``.npy`` files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def rows(self, x: Any, name: str, file: str) -> str:
        """Write the rows ``x`` (named ``name`` in messages) as ``file``; its path."""
        path = self.folder / file
        np.save(path, np.ascontiguousarray(as_rows(x, name)), allow_pickle=False)
        return str(path)

    def labels(self, labels: Any, name: str, file: str) -> str:
        """Write one label per row as ``file``; its path."""
        path = self.folder / file
        np.save(path, np.asarray(as_labels(labels, name)), allow_pickle=False)
        return str(path)


@contextlib.contextmanager
def staging(out: str) -> Iterator[Staging]:
    """A fresh staging folder for the report folder ``out``, removed on exit."""
    key = hashlib.sha256(os.path.abspath(out).encode()).hexdigest()[:16]
    folder = _private_root() / key
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700)
    try:
        yield Staging(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
