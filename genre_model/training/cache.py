"""Training's files on disk (caches, unzipped checkpoints), each written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

CACHE_ROOT = Path("cache")  # relative: ./cache of the directory that training runs from


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[BinaryIO]:
    """A temporary file beside ``path`` that replaces it when the block ends without an error.

    A run cut short leaves no half-written file to trust, and runs writing the same
    file at once leave one whole copy (the last writer's).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False)
    try:
        with tmp:
            yield tmp
        os.replace(tmp.name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp.name)
        raise
