"""Where slices are taken in a track, and how short audio becomes one slice."""

from __future__ import annotations

import numpy as np

from .constants import EDGE_FRACTION, MIN_SECONDS, N_SLICES, SAMPLE_RATE, SLICE_SAMPLES, SLICE_SECONDS
from .errors import ParameterError


def slice_starts(duration: float, *, n_slices: int = N_SLICES, slice_seconds: float = SLICE_SECONDS,
                 edge_fraction: float = EDGE_FRACTION) -> np.ndarray:
    """Start times (s) of ``n_slices`` slices spread evenly over a track.

    The first and last ``edge_fraction`` of the track (intro, outro) are skipped
    when the rest still holds ``n_slices`` slices end to end; a track shorter
    than one slice gets one slice at 0 (padded by :func:`pad_to_slice`).
    Deterministic: the same duration always gives the same starts.

    Returns
    -------
    starts : np.ndarray [shape=(k,)], k <= n_slices, in seconds
    """
    if n_slices < 1:
        raise ParameterError(f"n_slices must be >= 1, got {n_slices}")
    if duration <= slice_seconds:
        return np.zeros(1)
    lo, hi = edge_fraction * duration, (1 - edge_fraction) * duration
    if hi - lo < n_slices * slice_seconds:
        lo, hi = 0.0, duration
    n = min(n_slices, int(duration / slice_seconds + 1e-9))  # 7.68 // 2.56 is 2.0: floats
    span = hi - lo - slice_seconds
    return lo + span * (np.arange(n) + 0.5) / n


def pad_to_slice(y: np.ndarray, *, n_samples: int = SLICE_SAMPLES, sr: int = SAMPLE_RATE,
                 min_seconds: float = MIN_SECONDS) -> np.ndarray:
    """Repeat audio shorter than one slice until it fills one; longer audio is returned as is.

    Raises ParameterError for audio shorter than ``min_seconds``.
    """
    if y.shape[-1] < min_seconds * sr:
        raise ParameterError(f"{y.shape[-1] / sr:.2f} s of audio, need at least {min_seconds:g} s")
    if y.shape[-1] >= n_samples:
        return y
    reps = -(-n_samples // y.shape[-1])
    return np.tile(y, reps)[..., :n_samples]


def training_windows(y: np.ndarray, *, hop: int, n_samples: int = SLICE_SAMPLES,
                     min_windows: int = 1) -> np.ndarray:
    """All slice-long windows of a track, ``hop`` samples apart, the first at its start.

    A track too short for ``min_windows`` windows at ``hop`` gets that many all
    the same, spread evenly: over its length when it is shorter than a slice
    (the audio repeated as :func:`pad_to_slice` repeats it, each window starting
    at another point of it, so the seam moves), else over the slack between its
    length and a slice.

    Returns
    -------
    windows : np.ndarray [shape=(n_windows, n_samples)]
    """
    padded = pad_to_slice(y, n_samples=n_samples)
    length = y.shape[-1]
    if min_windows > 1 and length < n_samples + (min_windows - 1) * hop:
        if length < n_samples:
            starts = np.arange(min_windows) * length // min_windows
            y = np.tile(y, -(-(n_samples + length) // length))
        else:
            starts = np.arange(min_windows) * (length - n_samples) // max(1, min_windows - 1)
        return np.stack([y[s:s + n_samples] for s in starts])
    return np.lib.stride_tricks.sliding_window_view(padded, n_samples)[::hop]
