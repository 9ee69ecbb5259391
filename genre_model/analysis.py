"""One track from file to genre: seek-decode, log-mel slices, CNN, aggregation."""

from __future__ import annotations

import numpy as np

from .aggregate import GenrePrediction, aggregate
from .audio import DECODE_TIMEOUT_S, PathLike, decode_full, decode_segments, decoded_duration, probe_duration
from .constants import MIN_SECONDS, N_SLICES
from .errors import DecodeError, ParameterError
from .features import log_mel_spectrogram
from .inference import GenreClassifier
from .slicing import pad_to_slice, slice_starts

SILENCE_PEAK = 1e-4  # -80 dBFS: a slice whose peak is below this carries no music
PADDED_TAIL_S = 0.01  # digital silence this long ending a short track's slice: zeros past the end of the audio?


def track_slices(path: PathLike, frontend: dict, *, n_slices: int = N_SLICES,
                 duration: float | None = None, ffmpeg: str | None = None,
                 timeout: float = DECODE_TIMEOUT_S) -> np.ndarray:
    """The audible slices of a track, as mono audio at the front-end's rate.

    ``duration`` (seconds) saves probing the file when the caller knows the length
    of its decoded audio (not a tag's: for MP3 and M4A it counts the encoder's
    delay and padding, and the slices, placed by it, move as much). A
    track shorter than one slice is decoded whole and repeated to fill one, as
    training pads it. When the slices fall silent from one of them to the end
    and the audio that decodes proves shorter than the duration (tags and
    headers can overstate it: a VBR MP3 without a length header, a cut-short
    download), they are placed again over that audio. Slices silent when mixed
    to mono, all of them, are heard again from the first channel alone (a
    channel in opposite phase cancels the other). Silent slices are dropped; a
    track that is too short, wholly silent or not finite raises
    :class:`DecodeError`.

    Returns
    -------
    y : np.ndarray [shape=(k, slice_samples), dtype=float32], 1 <= k <= n_slices
    """
    sr, hop = frontend["sample_rate"], frontend["hop_length"]
    slice_samples = frontend["slice_frames"] * hop
    if not (duration and duration >= MIN_SECONDS):  # a stored length can understate it too
        duration = probe_duration(path, ffmpeg=ffmpeg, timeout=timeout)
    y = _decode_slices(path, duration, n_slices, slice_samples, sr, ffmpeg, timeout)
    audible = _audible(y)
    if not audible[np.argmin(audible):].any():  # silent from one slice to the end: cut short?
        try:
            decoded = decoded_duration(path, ffmpeg=ffmpeg, timeout=timeout)
        except DecodeError:  # too long to count in time: keep what was heard
            decoded = duration
        if decoded < duration - slice_samples / sr:
            duration = decoded
            y = _decode_slices(path, duration, n_slices, slice_samples, sr, ffmpeg, timeout)
            audible = _audible(y)
    if not audible.any():  # silent mixed to mono: channels in opposite phase cancel out; hear the first alone
        y = _decode_slices(path, duration, n_slices, slice_samples, sr, ffmpeg, timeout, channel=0)
        audible = _audible(y)
    if not np.isfinite(y).all():
        raise DecodeError(path, "non-finite samples (NaN or infinity)")
    y = y[audible]
    if y.shape[0] == 0:
        raise DecodeError(path, "silent (no slice above -80 dBFS)")
    return y


def _audible(y: np.ndarray) -> np.ndarray:
    """Which slices (rows of ``y``) peak above :data:`SILENCE_PEAK`."""
    return np.abs(y).max(axis=1) >= SILENCE_PEAK


def track_log_mels(path: PathLike, frontend: dict, *, n_slices: int = N_SLICES,
                   duration: float | None = None, ffmpeg: str | None = None,
                   timeout: float = DECODE_TIMEOUT_S) -> np.ndarray:
    """Log-mel slices of a track (:func:`track_slices`), ready for :meth:`GenreClassifier.predict_proba`.

    Returns
    -------
    S : np.ndarray [shape=(k, n_mels, slice_frames), dtype=float32], 1 <= k <= n_slices
    """
    y = track_slices(path, frontend, n_slices=n_slices, duration=duration, ffmpeg=ffmpeg, timeout=timeout)
    with np.errstate(over="ignore", invalid="ignore"):  # a broken float file: refused just below
        S = log_mel_spectrogram(
            y, sr=frontend["sample_rate"], n_fft=frontend["n_fft"], hop_length=frontend["hop_length"],
            n_mels=frontend["n_mels"], fmin=frontend["fmin"], fmax=frontend["fmax"],
            log_floor=frontend["log_floor"],
        )
    if not np.isfinite(S).all():
        raise DecodeError(path, "samples too large to analyse")
    return S


def _decode_slices(path: PathLike, duration: float, n_slices: int, slice_samples: int, sr: int,
                   ffmpeg: str | None, timeout: float, channel: int | None = None) -> np.ndarray:
    """The slices of a track said to last ``duration`` seconds, as audio: shape (k, slice_samples).

    Said to be shorter than a slice, or shorter than two and its last slice
    ending in digital silence (the length of a short VBR MP3 is only
    estimated), it is decoded from the start (two slices at most): shorter
    than a slice, it is repeated to fill one, as training pads it; shorter
    than said, its slices are placed over the audio it has. Said to be
    shorter than a slice and found longer, it is probed. ``channel``: that
    channel alone instead of the mix to mono.
    """
    if duration < MIN_SECONDS:
        raise DecodeError(path, f"too short ({duration:.2f} s, need at least {MIN_SECONDS:g} s)")

    def segments(seconds: float) -> np.ndarray:
        starts = slice_starts(seconds, n_slices=n_slices, slice_seconds=slice_samples / sr)
        return decode_segments(path, starts, duration=slice_samples / sr, sr=sr, ffmpeg=ffmpeg, timeout=timeout,
                               channel=channel)

    y = None
    if duration * sr >= slice_samples:
        y = segments(duration)
        if duration * sr >= 2 * slice_samples or y[-1, -int(PADDED_TAIL_S * sr):].any():
            return y
    head = decode_full(path, sr=sr, ffmpeg=ffmpeg, timeout=timeout, max_seconds=2 * slice_samples / sr,
                       channel=channel)
    if head.size < slice_samples:
        try:
            return pad_to_slice(head, n_samples=slice_samples, sr=sr)[None]
        except ParameterError as exc:
            raise DecodeError(path, str(exc)) from None
    if y is None:  # longer than it was said to be
        return segments(probe_duration(path, ffmpeg=ffmpeg, timeout=timeout))
    if head.size < 2 * slice_samples and head.size < (duration - PADDED_TAIL_S) * sr:  # shorter than said
        return segments(head.size / sr)
    return y


def analyse_file(path: PathLike, classifier: GenreClassifier, *, n_slices: int = N_SLICES,
                 aggregation: str | None = None, duration: float | None = None,
                 ffmpeg: str | None = None, timeout: float = DECODE_TIMEOUT_S) -> GenrePrediction:
    """Genre of one audio file."""
    log_mels = track_log_mels(path, classifier.frontend, n_slices=n_slices, duration=duration,
                              ffmpeg=ffmpeg, timeout=timeout)
    return predict_tracks(classifier, [log_mels], aggregation)[0]


def predict_tracks(classifier: GenreClassifier, log_mels: list[np.ndarray],
                   aggregation: str | None = None) -> list[GenrePrediction]:
    """Classify the slices of several tracks in one batch and aggregate each track's own.

    Each slice's probabilities do not depend on the batch it runs in (int8 arithmetic), so
    the prediction of a track is the same however tracks are grouped.
    """
    method = aggregation or classifier.card.aggregation
    card = classifier.card
    probabilities = classifier.predict_proba(np.concatenate(log_mels))
    bounds = np.cumsum([len(s) for s in log_mels])[:-1]
    calibration = card.calibration(method, float_twin=classifier.is_float).kwargs()
    return [aggregate(p, classifier.labels, method, aggregator=card.aggregator, **calibration)
            for p in np.split(probabilities, bounds)]
