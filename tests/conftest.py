"""Fixtures for the plugin tests: real audio files, a real beets library, the real model.

The model is the shipped one, or the one $SPECTROGENRE_TEST_MODEL names (to check a candidate).

Audio: 20-second cuts of the demo recordings (examples/demo), encoded once per
session by ffmpeg (tests/audio_factory.py). Library: a fresh BEETSDIR per test, with
``beet`` run as a subprocess exactly as a user runs it.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from audio_factory import FORMATS, encode
from genre_model.audio import find_ffmpeg
from beets.dbcore.types import MULTI_VALUE_DELIMITER

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "demo"
MODEL = Path(os.environ.get("SPECTROGENRE_TEST_MODEL", REPO / "genre_model" / "models" / "gtzan-cnn.tflite"))
FFMPEG = find_ffmpeg()

RECORDINGS = {  # file stem: (artist, title)
    "brahms-hungarian-dance-5": ("US Army Strings", "Hungarian Dance no. 5"),
    "macleod-sugar-plum-fairy": ("Kevin MacLeod", "Dance of the Sugar Plum Fairy"),
    "macleod-vibe-ace": ("Kevin MacLeod", "Vibe Ace"),
    "hobbs-lets-go-fishin": ("Karissa Hobbs", "Let's Go Fishin'"),
}
requires_model = pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model is not built yet")


def cut(stem: str, target: Path, **tags: str) -> Path:
    """20 s from 20 s into a demo recording, mono, encoded into ``target`` with ``tags``."""
    return encode(DEMO / f"{stem}.ogg", target, start=20.0, duration=20.0, extra=["-ac", "1"], **tags)


@pytest.fixture(scope="session")
def audio(tmp_path_factory) -> Path:
    """Import sources, shared by all tests (never modified: imports copy them).

    ``formats/``: one recording in every format; ``album/``: the four recordings
    as one album; ``bad/``: a silent FLAC.
    """
    root = tmp_path_factory.mktemp("audio")
    for ext in FORMATS:
        cut("macleod-vibe-ace", root / "formats" / f"vibe-ace.{ext}", artist="Kevin MacLeod", title=f"Vibe Ace {ext}")
    for number, (stem, (artist, title)) in enumerate(RECORDINGS.items(), 1):
        cut(stem, root / "album" / f"{stem}.mp3", artist=artist, title=title,
            album="Demo Sampler", album_artist="Various Artists", track=str(number))
    encode(np.zeros(10 * 22_050, np.float32), root / "bad" / "silence.flac", artist="Nobody", title="Silence")
    return root


class Beets:
    """A throwaway beets library in ``root``, driven through the ``beet`` command line."""

    def __init__(self, root: Path, plugin_config: str = ""):
        self.root = root
        self.music = root / "music"
        self.db = root / "library.db"
        root.mkdir(parents=True, exist_ok=True)
        (root / "config.yaml").write_text(
            f"directory: {self.music}\nlibrary: {self.db}\nplugins: [spectrogenre]\n"
            f"import:\n  copy: yes\n  write: yes\n  log: null\n"
            f"spectrogenre:\n  threads: 2\n  model: {MODEL}\n{plugin_config}",
            encoding="utf-8")

    def configure(self, **options) -> None:
        """Add ``spectrogenre`` options to the config file."""
        with open(self.root / "config.yaml", "a", encoding="utf-8") as f:
            for key, value in options.items():
                f.write(f"  {key}: {value}\n")

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, BEETSDIR=str(self.root), HOME=str(self.root),
                    PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))

    def popen(self, *args: str, stderr=subprocess.PIPE) -> subprocess.Popen:
        """Start ``beet`` without waiting for it (``stderr``: a pipe, or a file descriptor such as a terminal's)."""
        return subprocess.Popen([sys.executable, "-m", "beets", *args], env=self.env, text=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "beets", *args], env=self.env, capture_output=True,
                              text=True, timeout=300, stdin=subprocess.DEVNULL)
        proc.output = proc.stdout + proc.stderr
        if check and proc.returncode != 0:
            raise AssertionError(f"beet {' '.join(args)} failed ({proc.returncode}):\n{proc.output}")
        return proc

    def __call__(self, *args: str) -> str:
        return self.run(*args).output

    def ls(self, *query: str, fmt: str = "$title", album: bool = False) -> list[str]:
        out = self.run("ls", *(["-a"] if album else []), "-f", fmt, *query).stdout
        return sorted(line for line in out.splitlines() if line)

    def items(self) -> dict[str, dict[str, str]]:
        """title: {format, path, genres, genre_confidence, genre_model} of every item, read from the database.

        Absent flexible fields are "", genres are joined by "; " and confidences
        formatted with three decimals, as ``beet ls`` shows them.
        """
        with sqlite3.connect(self.db) as con:
            rows = con.execute("SELECT id, title, format, path, genres FROM items").fetchall()
            attrs = con.execute("SELECT entity_id, key, value FROM item_attributes").fetchall()
        flex = {(entity, key): value for entity, key, value in attrs}
        items = {}
        for id_, title, fmt, path, genres in rows:
            confidence = flex.get((id_, "genre_confidence"))
            items[title] = {
                "format": fmt, "path": str(self.music / os.fsdecode(path)),
                "genres": genres.replace(MULTI_VALUE_DELIMITER, "; "),
                "genre_confidence": "" if confidence is None else f"{float(confidence):.3f}",
                "genre_model": flex.get((id_, "genre_model"), ""),
            }
        return items

    def fields(self, title: str) -> dict[str, str]:
        return self.items()[title]

    def snapshot(self) -> tuple:
        """Every item row, flexible attribute and library file's bytes: to prove nothing changed."""
        with sqlite3.connect(self.db) as con:
            items = con.execute("SELECT * FROM items ORDER BY id").fetchall()
            attrs = con.execute("SELECT * FROM item_attributes ORDER BY id").fetchall()
        return items, attrs, {str(p): self.digest(p) for p in sorted(self.music.rglob("*")) if p.is_file()}

    def state(self, title: str) -> tuple:
        """The database row, flexible attributes and file bytes of one item."""
        with sqlite3.connect(self.db) as con:
            row = con.execute("SELECT * FROM items WHERE title = ?", (title,)).fetchone()
            attrs = con.execute("SELECT key, value FROM item_attributes WHERE entity_id = ? ORDER BY key",
                                (row[0],)).fetchall()
        return row, attrs, self.digest(self.fields(title)["path"])

    @staticmethod
    def digest(path) -> str:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def beets(tmp_path) -> Beets:
    return Beets(tmp_path / "beets")
