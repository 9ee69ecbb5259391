"""Labelled audio on disk: ``<root>/<genre>/<file>``, optionally with ``<root>/splits/<split>.txt``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ParameterError

AUDIO_SUFFIXES = {".flac", ".wav", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".au", ".aiff"}


@dataclass(frozen=True)
class LabelledTrack:
    """One audio file and its genre (the name of the folder it lies in)."""

    path: Path
    genre: str


def read_tracks(root: str | Path, split: str | None = None) -> list[LabelledTrack]:
    """The tracks of ``split`` (listed in ``<root>/splits/<split>.txt``), or every track under ``root``.

    A split list holds one path per line, relative to ``root``; the genre is the
    path's parent folder. Sorted, so every run sees the same order.
    """
    root = Path(root)
    if split is not None:
        listing = root / "splits" / f"{split}.txt"
        if not listing.is_file():
            raise ParameterError(f"split list {listing} not found")
        paths = [root / line.strip() for line in listing.read_text().splitlines() if line.strip()]
    else:
        paths = [p for p in root.glob("*/*") if p.suffix.lower() in AUDIO_SUFFIXES]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise ParameterError(f"{len(missing)} listed files are missing, e.g. {missing[0]}")
    if not paths:
        raise ParameterError(f"no audio files under {root}")
    return sorted((LabelledTrack(p, p.parent.name) for p in paths), key=lambda t: str(t.path))
