"""Log-mel spectrogram in pure numpy (Slaney mel scale, as librosa's default).

Start-up matters more than FFT speed here: a track needs 640 FFTs of 1024
points, which ``numpy.fft`` does in ~5 ms of CPU against scipy.fft's ~1.5 ms,
but importing ``scipy.fft`` (scipy.special, numpy.f2py) adds 0.25-0.4 s to every
``beet spectrogenre``. For the same reason the Hann window is computed here
rather than taken from scipy.signal.
"""

from __future__ import annotations

import functools

import numpy as np

from .constants import FMAX, FMIN, HOP_LENGTH, LOG_FLOOR, N_FFT, N_MELS, SAMPLE_RATE
from .errors import ParameterError


def hz_to_mel(frequencies: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asanyarray(frequencies, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    linear = f / f_sp
    log = min_log_hz / f_sp + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep
    return np.where(f >= min_log_hz, log, linear)


def mel_to_hz(mels: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asanyarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_frequencies(n_mels: int, *, fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """``n_mels`` frequencies evenly spaced on the mel scale from ``fmin`` to ``fmax`` (librosa's name).

    Returns
    -------
    f : np.ndarray [shape=(n_mels,)], in Hz
    """
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels))


@functools.lru_cache(maxsize=4)
def mel_filterbank(*, sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
                   fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """Triangular mel filters with Slaney area normalisation.

    Returns
    -------
    M : np.ndarray [shape=(n_mels, 1 + n_fft // 2), dtype=float32]
    """
    if not 0 <= fmin < fmax <= sr / 2:
        raise ParameterError(f"need 0 <= fmin < fmax <= sr/2, got fmin={fmin}, fmax={fmax}")
    fft_hz = np.linspace(0.0, sr / 2, 1 + n_fft // 2)
    edges_hz = mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax)  # band i rises from edge i, peaks at i + 1
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    weights = weights.astype(np.float32)
    weights.setflags(write=False)  # cached and shared: no caller may change it
    return weights


def log_mel_spectrogram(y: np.ndarray, *, sr: int = SAMPLE_RATE, n_fft: int = N_FFT,
                        hop_length: int = HOP_LENGTH, n_mels: int = N_MELS, fmin: float = FMIN,
                        fmax: float = FMAX, log_floor: float = LOG_FLOOR) -> np.ndarray:
    """Natural-log mel power spectrogram, one frame per ``hop_length`` block of samples.

    Frame ``t`` is a Hann window of ``n_fft`` samples centred on block ``t``
    (samples ``t * hop_length`` to ``(t + 1) * hop_length``); the signal is
    reflect-padded at both ends. So ``len(y) // hop_length`` frames: 2.56 s at
    22 050 Hz with a 441-sample hop gives exactly 128.

    Parameters
    ----------
    y : np.ndarray [shape=(..., n_samples)]
        Audio in [-1, 1]; leading axes (e.g. slices) are kept.

    Returns
    -------
    S : np.ndarray [shape=(..., n_mels, n_samples // hop_length), dtype=float32]
        ``log(log_floor + mel power)``.
    """
    y = np.asarray(y, dtype=np.float32)
    n_frames = y.shape[-1] // hop_length
    if n_frames < 1:
        raise ParameterError(f"need at least {hop_length} samples, got {y.shape[-1]}")
    pad_left = n_fft // 2 - hop_length // 2
    pad_right = max(0, (n_frames - 1) * hop_length + n_fft - y.shape[-1] - pad_left)
    mode = "reflect" if y.shape[-1] > max(pad_left, pad_right) else "constant"
    pad = [(0, 0)] * (y.ndim - 1) + [(pad_left, pad_right)]
    padded = np.pad(y, pad, mode=mode)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[
        ..., : (n_frames - 1) * hop_length + 1 : hop_length, :
    ]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)  # periodic Hann
    spectrum = np.fft.rfft(frames * window, n=n_fft, axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    # one 2-D product: a stacked matmul with a transposed operand misses BLAS (25-55x slower)
    fb = mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    mel = (power.reshape(-1, power.shape[-1]) @ fb.T).reshape(*power.shape[:-1], n_mels)
    return np.log(log_floor + mel).swapaxes(-1, -2).astype(np.float32)
