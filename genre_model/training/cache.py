"""Training's files on disk (caches, unzipped checkpoints, a model's sidecar and report), each written whole
or not at all."""

from __future__ import annotations

import contextlib
import os
import secrets
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        with open(tmp, "xb") as f:  # mode 0o666 less the umask, as the file itself would get
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
