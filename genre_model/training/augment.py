"""Training-time augmentation: codec round trips and clipping on waveforms, gain/EQ/masks on log-mels."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..audio import decode_full, find_ffmpeg
from ..constants import SAMPLE_RATE
from ..evaluate import CONDITIONS

# each codec's lossy condition of the robustness evaluation: file suffix and ffmpeg options
CODECS = {"mp3": CONDITIONS["mp3_128k"], "opus": CONDITIONS["opus_64k"], "aac": CONDITIONS["aac_96k"]}
# every kind of degraded training copy: the codecs, and "clip" (:func:`overdriven`)
COPIES = (*CODECS, "clip")
CLIP_DRIVE_DB = (3.0, 12.0)  # range of the gain that drives a "clip" copy into clipping


def overdriven(y: np.ndarray, gain_db: float) -> np.ndarray:
    """Audio raised by ``gain_db`` and hard-clipped at full scale, as an over-loud master is."""
    return np.clip(y * 10.0 ** (gain_db / 20.0), -1.0, 1.0).astype(np.float32)


def degraded_copy(y: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One of :data:`COPIES` of mono float32 audio, same length; ``rng`` draws a clip's drive."""
    if kind == "clip":
        return overdriven(y, rng.uniform(*CLIP_DRIVE_DB))
    return codec_round_trip(y, kind)


def codec_round_trip(y: np.ndarray, codec: str, *, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Encode mono float32 audio with a lossy codec into a file and decode it back, same length.

    A file, as the robustness copies are and as a listener's are: only its header tells the
    decoder the encoder's delay, which MP3 and AAC through a pipe keep as ~50 ms of silence.
    """
    suffix, options = CODECS[codec]
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / f"copy{suffix}"
        subprocess.run([find_ffmpeg(), "-v", "error", "-nostdin", "-f", "f32le", "-ac", "1", "-ar", str(sr),
                        "-i", "-", *options, f"file:{copy}"],
                       input=np.ascontiguousarray(y, dtype="<f4").tobytes(), capture_output=True, check=True)
        out = decode_full(copy, sr=sr)
    return np.pad(out, (0, max(0, y.size - out.size)))[: y.size].astype(np.float32)


def gain_db_to_log_offset(gain_db: np.ndarray | float) -> np.ndarray:
    """A gain in dB as an offset of ln(mel power): power scales by 10^(dB/10)."""
    return np.asarray(gain_db) * np.log(10.0) / 10.0
