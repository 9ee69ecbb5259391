"""Decoding: a few seconds of audio at chosen points, by one ffmpeg process with input seeking.

ffmpeg is run as an argument list (never through a shell) and every file name is
passed as ``file:/absolute/path``, so no name can become an option or a protocol.
Without any ffmpeg, ``audioread`` decodes the whole file and scipy resamples it.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from math import gcd

import numpy as np

from .constants import SAMPLE_RATE, SLICE_SECONDS
from .errors import DecodeError, ParameterError

PathLike = str | bytes | os.PathLike
DECODE_TIMEOUT_S = 60.0  # one ffmpeg call; a hung decoder is abandoned after this
PREROLL_S = 0.1  # decoded before each segment and dropped: lossy decoders need a frame or two after a seek
COUNTING_RATE = 1000  # Hz: audio decoded only to count how long it is
# ffmpeg's default resampler (32 taps, cutoff 0.97) takes up to 1.3 ln units off the top five mel bands
# (9.7-11 kHz) of a 44.1 or 48 kHz file, which the network heard at full strength in GTZAN's native
# 22.05 kHz, and lets 11.5 kHz alias at -20 dB; this one takes 0.4 off the top band alone and aliases
# 11.5 kHz at -92 dB, at the default's CPU (256 taps, cutoff 0.995: the top band whole, 1.14x the CPU,
# the same figures; bench/resampler.py). The audioread fallback builds the same filter for scipy.
RESAMPLER_TAPS = 128  # swr's filter_size
RESAMPLER_CUTOFF = 0.99  # of the lower Nyquist frequency
RESAMPLER_KAISER_BETA = 9.0  # swr's default window
RESAMPLER = f"filter_size={RESAMPLER_TAPS}:cutoff={RESAMPLER_CUTOFF}"
_DURATION_RE = re.compile(rb"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_COMPONENT_RE = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")  # "[out#0/f32le @ 0x55fc...] ": which part spoke
_INVALID = "Invalid data found when processing input"
_NO_OUTPUT = b"At least one output file must be specified"  # ffmpeg -i alone, on a file it could open
_EPILOGUES = ("Error marking filters as finished", "Conversion failed!")  # ffmpeg 5-7's last words, no reason


@functools.lru_cache(maxsize=8)
def find_ffmpeg(configured: str | None = None) -> str | None:
    """Path of the ffmpeg to use: ``configured``, else ``ffmpeg`` on PATH, else imageio-ffmpeg's.

    Returns None when there is none (decoding then falls back to audioread).
    A configured path that does not exist, or does not answer ``-version`` as
    ffmpeg does, is an error, not a silent fallback.
    """
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise ParameterError(f"ffmpeg not found at {configured!r}")
        if not ffmpeg_version(found).startswith("ffmpeg version"):
            raise ParameterError(f"ffmpeg {found!r} is not ffmpeg (its -version does not say so)")
        return found
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        return None


def ffmpeg_version(exe: str) -> str:
    """The first line of ``exe -version`` (``ffmpeg version n9.0.2 Copyright ...``); empty if it does not answer."""
    try:
        proc = subprocess.run([exe, "-version"], stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout.decode("utf-8", "replace").partition("\n")[0]


@functools.cache
def decoder_identity() -> str:
    """What decodes audio here: ffmpeg's version and resampler, or ``audioread``; caches of decoded audio use it."""
    exe = find_ffmpeg()
    return f"{ffmpeg_version(exe)}; aresample={RESAMPLER}" if exe else "audioread"


def _input_arg(path: PathLike) -> bytes:
    """ffmpeg input argument for a local file: never an option, never a URL."""
    return b"file:" + os.fsencode(os.path.abspath(os.fsencode(path)))


def _check_readable(path: PathLike) -> None:
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device would block the open and the read
            raise DecodeError(path, "not a regular file")
        with open(path, "rb") as f:
            if not f.read(1):
                raise DecodeError(path, "empty file")
    except OSError as exc:
        raise DecodeError(path, exc.strerror or str(exc)) from None


def _ffmpeg_error(path: PathLike, stderr: bytes, default: str) -> DecodeError:
    """ffmpeg's reason in one line: its last (closing formulas aside), or an earlier one saying "invalid data"."""
    lines = [_COMPONENT_RE.sub("", ln).strip() for ln in stderr.decode("utf-8", "replace").splitlines()]
    lines = [ln for ln in lines if ln and ln not in _EPILOGUES]
    reason = next((_INVALID for ln in lines if _INVALID in ln), lines[-1] if lines else default)
    # ffmpeg prefixes messages with the input name; keep the reason only
    reason = reason.split(": ", 1)[-1] if reason.startswith("file:") else reason
    return DecodeError(path, f"ffmpeg: {reason}")


def _run(cmd: list[bytes | str], path: PathLike, timeout: float) -> tuple[int, bytes, bytes]:
    """Run ffmpeg; return its exit status, standard output and standard error.

    The output goes to an unnamed temporary file, not a pipe: a pipe is drained
    by a Python thread that needs the GIL for every chunk, so a busy main thread
    (inference, tag writing) would stall the decoder behind it. ffmpeg runs in a
    process group of its own: Ctrl-C interrupts Python, which stops the run,
    instead of killing a decoder in a worker thread that then reports the track
    as bad.
    """
    with tempfile.TemporaryFile() as stdout:
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                                  timeout=timeout, check=False, process_group=0)
        except subprocess.TimeoutExpired:
            raise DecodeError(path, f"decoding took longer than {timeout:g} s") from None
        except OSError as exc:
            raise DecodeError(path, f"cannot run ffmpeg: {exc.strerror or exc}") from None
        stdout.seek(0)
        return proc.returncode, stdout.read(), proc.stderr


def probe_duration(path: PathLike, *, ffmpeg: str | None = None, timeout: float = DECODE_TIMEOUT_S) -> float:
    """Duration of an audio file in seconds, read from its container by ffmpeg (or audioread)."""
    _check_readable(path)
    exe = find_ffmpeg(ffmpeg)
    if exe is None:
        return _audioread_duration(path)
    _, _, stderr = _run([exe, "-hide_banner", "-nostdin", "-i", _input_arg(path)], path, timeout)
    if b"Audio:" not in stderr:
        if _NO_OUTPUT in stderr:  # the file opened; ffmpeg only misses the output it was not given
            raise DecodeError(path, "no audio stream")
        raise _ffmpeg_error(path, stderr, "no audio stream")
    match = _DURATION_RE.search(stderr)
    if match is None:  # no length in the container (Matroska written to a pipe): count the samples
        return decode_full(path, ffmpeg=ffmpeg, timeout=timeout).size / SAMPLE_RATE
    h, m, s = match.groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


def decode_segments(
    path: PathLike,
    starts: Sequence[float],
    *,
    duration: float = SLICE_SECONDS,
    sr: int = SAMPLE_RATE,
    ffmpeg: str | None = None,
    timeout: float = DECODE_TIMEOUT_S,
    channel: int | None = None,
) -> np.ndarray:
    """Decode ``len(starts)`` segments of ``duration`` seconds in one ffmpeg process.

    Each segment is read with input seeking (``-ss`` before its ``-i``) from
    ``PREROLL_S`` before its start (dropped again, so that MP3 and AAC decoders
    have warmed up), mixed to mono (or, given ``channel``, that channel alone)
    and resampled to ``sr`` (with :data:`RESAMPLER`); a segment that runs
    past the end is zero-padded, and one that starts past it (a file shorter
    than its tags say) is silence. A segment at 0 is read without seeking, so
    short files come back whole. The decoded audio is placed by its
    timestamps before the pre-roll is cut (``aresample=first_pts=0``): after
    a seek, a decoder can start past the seek point and say so only in the
    timestamps (ffmpeg 9 with AAC in MP4, by up to 1024 samples; Ogg Vorbis
    now and then, by a few hundred).

    Returns
    -------
    y : np.ndarray [shape=(len(starts), round(duration * sr)), dtype=float32]
    """
    if len(starts) == 0:
        raise ParameterError("no segment to decode")
    n_samples = int(round(duration * sr))
    _check_readable(path)
    exe = find_ffmpeg(ffmpeg)
    if exe is None:
        full = decode_full(path, sr=sr, channel=channel)
        return _cut_segments(full, starts, n_samples, sr)
    source = _input_arg(path)
    cmd: list[bytes | str] = [exe, "-hide_banner", "-nostdin", "-v", "error"]
    chains = []
    for i, start in enumerate(starts):
        start = max(float(start), 0.0)
        preroll = min(PREROLL_S, start)
        seek = start > preroll  # "-ss 0" drops the first frame of MP3 and of AAC in MP4
        if seek:
            cmd += ["-ss", f"{start - preroll:.6f}"]
        cmd += ["-t", f"{duration + preroll + 0.1:.6f}", "-i", source]
        chains.append(  # silence after the audio, then cut: a segment past the end (no frames at all) is silence
            f"[{i}:a:0]{_mono_at(sr, channel, by_timestamps=seek)},"
            f"atrim=start_sample={int(round(preroll * sr))},asetpts=PTS-STARTPTS[a{i}];"
            f"anullsrc=r={sr}:cl=mono,aformat=sample_fmts=flt,atrim=end_sample={n_samples}[z{i}];"
            f"[a{i}][z{i}]concat=n=2:v=0:a=1,atrim=end_sample={n_samples}[s{i}]"
        )
    labels = "".join(f"[s{i}]" for i in range(len(starts)))
    graph = ";".join(chains) + f";{labels}concat=n={len(starts)}:v=0:a=1[out]"
    cmd += ["-filter_complex", graph, "-map", "[out]", "-f", "f32le", "-"]
    returncode, stdout, stderr = _run(cmd, path, timeout)
    if returncode != 0:
        raise _ffmpeg_error(path, stderr, f"exit status {returncode}")
    y = np.frombuffer(stdout, dtype="<f4")
    if y.size != n_samples * len(starts):
        raise DecodeError(path, f"ffmpeg returned {y.size} samples, expected {n_samples * len(starts)}")
    return y.reshape(len(starts), n_samples).astype(np.float32)


def _mono_at(sr: int, channel: int | None, *, by_timestamps: bool = False) -> str:
    """ffmpeg filters from any audio stream to mono (or ``channel`` alone) float32 at ``sr``, by :data:`RESAMPLER`.

    ``by_timestamps`` places the audio by its timestamps as it is resampled (after a seek);
    unseeked, a file's own start time (ASF) is no gap to fill.
    """
    pick = "" if channel is None else f"pan=mono|c0=c{channel},"
    placed = ":first_pts=0" if by_timestamps else ""
    return f"{pick}aformat=sample_fmts=flt:channel_layouts=mono,aresample={sr}:{RESAMPLER}{placed}"


def decode_full(path: PathLike, *, sr: int = SAMPLE_RATE, ffmpeg: str | None = None,
                timeout: float = DECODE_TIMEOUT_S, max_seconds: float | None = None,
                channel: int | None = None) -> np.ndarray:
    """Decode a whole file, or its first ``max_seconds``, to mono (or its ``channel`` alone) float32 at ``sr``.

    Returns
    -------
    y : np.ndarray [shape=(n_samples,), dtype=float32]
    """
    _check_readable(path)
    exe = find_ffmpeg(ffmpeg)
    if exe is None:
        return _audioread_full(path, sr, channel)[: None if max_seconds is None else int(round(max_seconds * sr))]
    limit = [] if max_seconds is None else ["-t", f"{max_seconds:.6f}"]
    cmd = [exe, "-hide_banner", "-nostdin", "-v", "error", "-i", _input_arg(path), "-map", "0:a:0",
           "-af", _mono_at(sr, channel), *limit, "-f", "f32le", "-"]
    returncode, stdout, stderr = _run(cmd, path, timeout)
    if returncode != 0:
        raise _ffmpeg_error(path, stderr, f"exit status {returncode}")
    y = np.frombuffer(stdout, dtype="<f4").astype(np.float32)
    if y.size == 0:
        raise DecodeError(path, "no audio decoded")
    return y


def decoded_duration(path: PathLike, *, ffmpeg: str | None = None, timeout: float = DECODE_TIMEOUT_S) -> float:
    """Seconds of audio that really decode: a cut-short download's headers still give its full length.

    The whole file is decoded, at 1 kHz and 8 bits: 1 ms resolution, 1 kB a second of audio.
    """
    _check_readable(path)
    exe = find_ffmpeg(ffmpeg)
    if exe is None:
        return decode_full(path).size / SAMPLE_RATE
    cmd = [exe, "-hide_banner", "-nostdin", "-v", "error", "-i", _input_arg(path),
           "-map", "0:a:0", "-ac", "1", "-ar", str(COUNTING_RATE), "-f", "u8", "-"]
    returncode, stdout, stderr = _run(cmd, path, timeout)
    if returncode != 0:
        raise _ffmpeg_error(path, stderr, f"exit status {returncode}")
    return len(stdout) / COUNTING_RATE


def _cut_segments(y: np.ndarray, starts: Sequence[float], n_samples: int, sr: int) -> np.ndarray:
    out = np.zeros((len(starts), n_samples), dtype=np.float32)
    for i, start in enumerate(starts):
        seg = y[int(round(max(start, 0.0) * sr)):][:n_samples]
        out[i, : seg.size] = seg
    return out


def _audioread_duration(path: PathLike) -> float:
    import audioread

    try:
        with audioread.audio_open(os.fsdecode(path)) as f:
            return float(f.duration)
    except (audioread.DecodeError, OSError, EOFError) as exc:
        raise DecodeError(path, f"audioread: {str(exc) or type(exc).__name__}") from None


def _audioread_full(path: PathLike, sr: int, channel: int | None = None) -> np.ndarray:
    """Full decode with audioread, mixed to mono as ffmpeg mixes it, resampled as :data:`RESAMPLER` does."""
    import audioread
    from scipy.signal import firwin, resample_poly

    try:
        with audioread.audio_open(os.fsdecode(path)) as f:
            native_sr, channels = f.samplerate, f.channels
            pcm = b"".join(f)
    except (audioread.DecodeError, OSError, EOFError) as exc:
        raise DecodeError(path, f"audioread: {str(exc) or type(exc).__name__}") from None
    y = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    if y.size == 0:
        raise DecodeError(path, "no audio decoded")
    y = y[: y.size - y.size % channels].reshape(-1, channels)
    if channel is not None:
        y = np.ascontiguousarray(y[:, channel])
    else:
        y = y.mean(axis=1)
        if channels == 2:  # ffmpeg's stereo downmix: (L + R) / sqrt(2), equal power, not the mean
            y *= np.sqrt(2.0)
    if native_sr != sr:
        g = gcd(native_sr, sr)
        up, down = sr // g, native_sr // g
        taps = firwin(RESAMPLER_TAPS * max(up, down) + 1, RESAMPLER_CUTOFF / max(up, down),
                      window=("kaiser", RESAMPLER_KAISER_BETA))
        y = resample_poly(y, up, down, window=taps).astype(np.float32)
    return y
