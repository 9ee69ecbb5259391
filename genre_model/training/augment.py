"""Training-time augmentation: codec round trips and clipping on waveforms; gain, tilt, pitch, lowpass,
masks and mixup on log-mels."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..audio import decode_full, find_ffmpeg
from ..constants import LOG_FLOOR, SAMPLE_RATE
from ..evaluate import CONDITIONS

if TYPE_CHECKING:
    from .train import TrainConfig

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


def augment_log_mels(x: np.ndarray, rng: np.random.Generator, config: TrainConfig, mean: float, std: float
                     ) -> np.ndarray:
    """Random gain, spectral tilt, pitch shift, lowpass, time and frequency masks on log-mels (n, mels, frames).

    ``x`` is normalised (``(log_mel - mean) / std``); gain and tilt are given in ln-power
    units. By default they shift the log-mels, the log floor included; with
    ``config.gain_in_power`` they scale the mel power under the floor, as turning
    a track up or down does: ``log(floor + g P) = logaddexp(log floor, log g + log P)``.
    """
    n, n_mels, _ = x.shape
    gain = gain_db_to_log_offset(rng.uniform(-config.gain_db, config.gain_db, n))
    tilt = rng.uniform(-config.tilt, config.tilt, n)[:, None] * np.linspace(-0.5, 0.5, n_mels)[None, :]
    offset = (gain[:, None] + tilt)[:, :, None]
    if config.gain_in_power:
        power = np.maximum(np.exp(x * std + mean) - LOG_FLOOR, 1e-30)
        out = ((np.logaddexp(np.log(LOG_FLOOR), offset + np.log(power)) - mean) / std).astype(np.float32)
    else:
        out = x + offset / std
    _shift_bands(out, rng, config.pitch_bands)
    _lowpass(out, rng, config.lowpass)
    for _ in range(config.time_masks):
        _mask(out, rng, axis=2, max_width=16)
    for _ in range(config.freq_masks):
        _mask(out, rng, axis=1, max_width=12)
    return out


def mixup(x: np.ndarray, targets: np.ndarray, rng: np.random.Generator, alpha: float, mean: float, std: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """Each window mixed with a random other, as audio: mixup (Zhang et al. 2018) in the power domain.

    With weight ``lam ~ Beta(alpha, alpha)``, ``log(floor + lam P_a + (1 - lam) P_b)`` is exactly
    ``logaddexp(log lam + L_a, log(1 - lam) + L_b)`` of the log-mels ``L`` (normalised by
    ``mean`` and ``std``); the targets, teacher embedding and weights included, mix linearly.
    """
    lam = np.clip(rng.beta(alpha, alpha, len(x)), 1e-3, 1 - 1e-3)
    other = rng.permutation(len(x))
    shape = (-1,) + (1,) * (x.ndim - 1)
    mixed = np.logaddexp(np.log(lam).reshape(shape) + x * std + mean,
                         np.log1p(-lam).reshape(shape) + x[other] * std + mean)
    return ((mixed - mean) / std).astype(np.float32), lam[:, None] * targets + (1 - lam[:, None]) * targets[other]


def _shift_bands(x: np.ndarray, rng: np.random.Generator, max_bands: int) -> None:
    """Move each window up or down by up to ``max_bands`` mel bands, the edge band repeated into the gap.

    Above 1 kHz a band is about 0.46 semitone, so this is a pitch shift there (one
    artist's key or tuning should not be what the genre is learned from); below,
    where the mel scale is linear, a shift of about 26 Hz a band.
    """
    if max_bands <= 0:
        return
    n, n_mels, _ = x.shape
    shift = rng.integers(-max_bands, max_bands + 1, n)
    source = np.clip(np.arange(n_mels)[None, :] - shift[:, None], 0, n_mels - 1)
    x[:] = np.take_along_axis(x, source[:, :, None], axis=1)


def _lowpass(x: np.ndarray, rng: np.random.Generator, share: float) -> None:
    """Cut the bands above a random band in the top sixth of a random ``share`` of windows.

    MP3 and Opus at low bit rates (or sample rates) drop everything above 10-16 kHz;
    without this the model read genre into those top bands.
    """
    if share <= 0:
        return
    n, n_mels, _ = x.shape
    picked = rng.random(n) < share
    cut = rng.integers(n_mels * 5 // 6, n_mels, n)
    for i in np.flatnonzero(picked):
        x[i, cut[i]:] = x[i].min()


def _mask(x: np.ndarray, rng: np.random.Generator, *, axis: int, max_width: int) -> None:
    size = x.shape[axis]
    width = rng.integers(0, max_width + 1, x.shape[0])
    start = rng.integers(0, size - max_width, x.shape[0])
    pos = np.arange(size)[None, :]
    masked = (pos >= start[:, None]) & (pos < (start + width)[:, None])
    fill = x.mean(axis=(1, 2), keepdims=True)
    if axis == 1:
        x[:] = np.where(masked[:, :, None], fill, x)
    else:
        x[:] = np.where(masked[:, None, :], fill, x)
