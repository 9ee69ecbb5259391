"""Fixtures for the plugin tests: real audio files, a real beets library, the real model.

The model is the shipped one, or the one $SPECTROGENRE_TEST_MODEL names (to check a candidate).

Audio: 20-second cuts of the demo recordings (examples/demo), encoded once per
session by imageio-ffmpeg's ffmpeg. Library: a fresh BEETSDIR per test, with
``beet`` run as a subprocess exactly as a user runs it.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import pytest
from beets.dbcore.types import MULTI_VALUE_DELIMITER

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "demo"
MODEL = Path(os.environ.get("SPECTROGENRE_TEST_MODEL", REPO / "genre_model" / "models" / "gtzan-cnn.tflite"))
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()

RECORDINGS = {  # file stem: (artist, title)
    "brahms-hungarian-dance-5": ("US Army Strings", "Hungarian Dance no. 5"),
    "macleod-sugar-plum-fairy": ("Kevin MacLeod", "Dance of the Sugar Plum Fairy"),
    "macleod-vibe-ace": ("Kevin MacLeod", "Vibe Ace"),
    "hobbs-lets-go-fishin": ("Karissa Hobbs", "Let's Go Fishin'"),
}
CODECS = {
    "mp3": ["-c:a", "libmp3lame", "-b:a", "96k"],
    "flac": ["-c:a", "flac"],
    "ogg": ["-c:a", "libvorbis"],
    "opus": ["-c:a", "libopus", "-b:a", "64k"],
    "m4a": ["-c:a", "aac", "-b:a", "96k"],
    "wav": ["-c:a", "pcm_s16le", "-write_id3v2", "1"],
}

requires_model = pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model is not built yet")


def encode(source: list[str], target: Path, **tags: str) -> Path:
    """Encode ``source`` (ffmpeg input arguments) into ``target`` with the given tags."""
    target.parent.mkdir(parents=True, exist_ok=True)
    metadata = [arg for key, value in tags.items() for arg in ("-metadata", f"{key}={value}")]
    subprocess.run([FFMPEG, "-v", "error", "-y", *source, "-vn", "-map_metadata", "-1", "-ac", "1", *CODECS[target.suffix[1:]],
                    *metadata, str(target)], check=True)
    return target


def cut(stem: str, start: float = 20.0, seconds: float = 20.0) -> list[str]:
    return ["-ss", f"{start}", "-t", f"{seconds}", "-i", str(DEMO / f"{stem}.ogg")]


@pytest.fixture(scope="session")
def audio(tmp_path_factory) -> Path:
    """Import sources, shared by all tests (never modified: imports copy them).

    ``formats/``: one recording in every format; ``album/``: the four recordings
    as one album; ``bad/``: a silent FLAC.
    """
    root = tmp_path_factory.mktemp("audio")
    for ext in CODECS:
        encode(cut("macleod-vibe-ace"), root / "formats" / f"vibe-ace.{ext}",
               artist="Kevin MacLeod", title=f"Vibe Ace {ext}")
    for number, (stem, (artist, title)) in enumerate(RECORDINGS.items(), 1):
        encode(cut(stem), root / "album" / f"{stem}.mp3", artist=artist, title=title,
               album="Demo Sampler", album_artist="Various Artists", track=str(number))
    encode(["-f", "lavfi", "-t", "10", "-i", "anullsrc=r=22050:cl=mono"], root / "bad" / "silence.flac",
           artist="Nobody", title="Silence")
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

    def popen(self, *args: str) -> subprocess.Popen:
        """Start ``beet`` without waiting for it."""
        return subprocess.Popen([sys.executable, "-m", "beets", *args], env=self.env, text=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

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
