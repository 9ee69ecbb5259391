"""Exceptions raised by genre_model; each message is one line a user can act on."""

from __future__ import annotations

import os


class GenreModelError(Exception):
    """Base class of every error raised by genre_model."""


class DecodeError(GenreModelError):
    """Audio could not be decoded (missing, unreadable, corrupt, too short, silent)."""

    def __init__(self, path: str | bytes | os.PathLike, reason: str):
        self.path = path
        self.reason = reason
        path = os.fspath(path)
        shown = path.decode("utf-8", "backslashreplace") if isinstance(path, bytes) else path
        super().__init__(f"{shown!r}: {reason}")


class ModelError(GenreModelError):
    """A model or its sidecar is missing, corrupt or does not match the front-end."""


class ParameterError(GenreModelError):
    """A function received arguments it cannot work with."""
