"""A corpus of bad and odd audio files beside good ones, for the reliability tests.

Every file is real audio encoded by ffmpeg (``audio_factory.encode``), titled
with its case name so the tests find its library row. Files that beets would
refuse to import (empty, random bytes, text, truncated, deleted...) are imported
good and spoiled afterwards by :func:`spoil`, so each has a row to keep intact.
Randomness (truncation points, noise) comes from one seed.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio_factory import DEMO_DIR, encode
from genre_model.audio import find_ffmpeg

SOURCE = DEMO_DIR / "macleod-vibe-ace.ogg"
SR = 22_050

TAGGED, FAILED, EITHER = "tagged", "failed", "either"  # either: tagged, or failed leaving all as it was


@dataclass
class Case:
    name: str  # also the track's title
    path: Path
    expect: str  # TAGGED, FAILED or EITHER
    spoil: str | None = None  # damage done after import (see spoil)
    replacement: Path | None = None  # the bytes a "replace" spoil puts in place


def _music(path: Path, seconds: float, extra: list[str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return encode(SOURCE, path, start=20.0, duration=seconds,
                  extra=["-vn", "-metadata", f"title={path.stem}", *(extra or [])])


def _samples(path: Path, y: np.ndarray, sr: int = SR) -> Path:
    return encode(y, path, sr=sr, extra=["-metadata", f"title={path.stem}"])


def bad_files(root: Path, seed: int = 0) -> list[Case]:
    """Write the corpus into ``root``: bad files, odd-but-good files and good files beside them."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    cases = [
        # spoiled after import
        Case("empty", _music(root / "empty.mp3", 6), FAILED, "empty"),
        Case("random-bytes", _music(root / "random-bytes.flac", 6), FAILED, "random"),
        Case("text", _music(root / "text.mp3", 6), FAILED, "text"),
        Case("gone", _music(root / "gone.mp3", 6), FAILED, "delete"),
        Case("truncated-mp3", _music(root / "truncated-mp3.mp3", 6), EITHER, "truncate"),
        Case("truncated-flac", _music(root / "truncated-flac.flac", 6), EITHER, "truncate"),
        Case("truncated-m4a", _music(root / "truncated-m4a.m4a", 6), EITHER, "truncate"),
        Case("corrupt-tags", _music(root / "corrupt-tags.mp3", 6), EITHER, "tags"),
        Case("read-only", _music(root / "read-only.mp3", 6), FAILED, "immutable"),
        # refused by the analysis
        Case("short-1s", _music(root / "short-1s.mp3", 1.0), FAILED),
        Case("silence", _samples(root / "silence.flac", np.zeros(5 * SR, np.float32)), FAILED),
        # odd but good
        Case("pad-2.2s", _music(root / "pad-2.2s.flac", 2.2), TAGGED),
        Case("one-slice", _music(root / "one-slice.flac", 2.56), TAGGED),
        Case("6ch-96k", _music(root / "6ch-96k.flac", 6, ["-ac", "6", "-ar", "96000"]), TAGGED),
        Case("8k-mono", _music(root / "8k-mono.mp3", 6, ["-ac", "1", "-ar", "8000"]), TAGGED),
        Case("dc-clipping", _samples(root / "dc-clipping.flac",
                                     np.clip(0.7 + 0.8 * rng.standard_normal(6 * SR), -1, 1).astype(np.float32)),
             TAGGED),
        Case("flac-named-mp3", _music(root / "flac-named-mp3.mp3", 6), FAILED, "replace",
             _music(root.parent / f"{root.name}-spare" / "flac-named-mp3.flac", 6)),
        # good
        Case("good-mp3", _music(root / "good-mp3.mp3", 6), TAGGED),
        Case("good-m4a", _music(root / "good-m4a.m4a", 6), TAGGED),
    ]
    return cases


def spoil(case: Case, rng: random.Random) -> None:
    """Damage one (imported) file in place."""
    path, how = case.path, case.spoil
    if how == "replace":  # other bytes, such as FLAC under an .mp3 name
        path.write_bytes(case.replacement.read_bytes())
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "random":
        path.write_bytes(rng.randbytes(path.stat().st_size))
    elif how == "text":
        path.write_text("This is not an MP3 file, just a note.\n" * 50)
    elif how == "delete":
        path.unlink()
    elif how == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[:rng.randrange(1, len(data))])
    elif how == "tags":  # keep the ID3v2 header and its size, garble the frames: the audio is intact
        data = bytearray(path.read_bytes())
        assert data[:3] == b"ID3"
        size = sum(b << (7 * (3 - i)) for i, b in enumerate(data[6:10]))  # synchsafe
        data[10:10 + size] = bytes(rng.randrange(0, 128) for _ in range(size))
        path.write_bytes(bytes(data))
    elif how == "immutable":  # read-only; for root, immutable where the file system allows it
        path.chmod(0o444)
        if os.geteuid() == 0 and (shutil.which("chattr") is None
                                  or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode):
            case.expect = EITHER  # root writes it anyway: tagged, and the file agrees with its row
    else:
        raise ValueError(how)


def release(cases: list[Case]) -> None:
    """Undo what stops the temporary directory from being removed."""
    for case in cases:
        if case.spoil == "immutable" and case.path.exists() and shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(case.path)], capture_output=True, check=False)


def hostile_names(root: Path) -> dict[str, Path]:
    """Good files whose names are quotes, spaces, ``$(...)``, a leading dash, a newline, non-UTF-8 or unicode."""
    names = {
        "quotes": b"it's \"quoted\".mp3",
        "spaces": b"  two  spaces .mp3",
        "subshell": b"$(touch pwned).mp3",
        "dash": b"-i leading dash.mp3",
        "newline": b"new\nline.mp3",
        "latin1": b"caf\xe9 latin-1.mp3",
        "unicode": "ünïcødé 日本 🎵.mp3".encode(),
    }
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for title, name in names.items():
        path = Path(os.fsdecode(os.path.join(os.fsencode(root), name)))
        tmp = _music(root / f"{title}.mp3", 4)
        os.replace(tmp, path)
        files[title] = path
    return files


def two_hour_mp3(path: Path) -> Path:
    """A two-hour 8 kHz noise MP3, made cheaply: one minute encoded, its frames repeated 120 times."""
    minute = path.with_name("minute.mp3")
    subprocess.run([find_ffmpeg(), "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", "anoisesrc=d=60:r=8000",
                    "-c:a", "libmp3lame", "-b:a", "8k", "-write_xing", "0", f"file:{minute}"], check=True)
    path.write_bytes(minute.read_bytes() * 120)
    minute.unlink()
    return path
