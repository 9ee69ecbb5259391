"""Real audio files for tests, encoded by ffmpeg (the imageio-ffmpeg binary when none is on PATH)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from genre_model.audio import find_ffmpeg

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / "examples" / "demo"
SHARED_DATA = REPO.parent / "shared" / "data" / "gtzan"

# output options of each format: codec and container
FORMATS = {
    "mp3": ["-c:a", "libmp3lame", "-b:a", "128k"],
    "flac": ["-c:a", "flac"],
    "ogg": ["-c:a", "libvorbis", "-q:a", "4"],
    "opus": ["-c:a", "libopus", "-b:a", "64k"],
    "m4a": ["-c:a", "aac", "-b:a", "96k"],
    "wav": ["-c:a", "pcm_s16le", "-write_id3v2", "1"],
    "aiff": ["-c:a", "pcm_s16be", "-write_id3v2", "1"],
    "wma": ["-c:a", "wmav2", "-b:a", "128k"],
}


def encode(source: Path | np.ndarray, out: Path, *, sr: int = 22_050, start: float = 0.0,
           duration: float | None = None, extra: list[str] | None = None, **tags: str) -> Path:
    """Encode a file (or mono float32 samples) into ``out``, format chosen by its suffix.

    Only the audio is kept, with the given ``tags`` (ffmpeg metadata keys) and no others.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [find_ffmpeg(), "-v", "error", "-nostdin", "-y"]
    data = None
    if isinstance(source, np.ndarray):
        cmd += ["-f", "f32le", "-ac", "1", "-ar", str(sr), "-i", "-"]
        data = np.ascontiguousarray(source, dtype="<f4").tobytes()
    else:
        cmd += ["-ss", str(start)] + (["-t", str(duration)] if duration else []) + ["-i", f"file:{source}"]
    metadata = [arg for key, value in tags.items() for arg in ("-metadata", f"{key}={value}")]
    cmd += ["-vn", "-map_metadata", "-1", *FORMATS[out.suffix.lstrip(".")], *(extra or []), *metadata, f"file:{out}"]
    subprocess.run(cmd, input=data, check=True, capture_output=True)
    return out


def sine(frequency: float, seconds: float, *, sr: int = 22_050, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
