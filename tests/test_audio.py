"""Seek-decoding with ffmpeg, its errors, and the audioread fallback."""

import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest
from scipy.io import wavfile
from scipy.signal import resample

from audio_factory import DEMO_DIR, FORMATS, encode, sine
from genre_model import audio
from genre_model.audio import (decode_full, decode_segments, decoded_duration, find_ffmpeg, ffmpeg_version,
                               probe_duration)
from genre_model.constants import SAMPLE_RATE, SLICE_SAMPLES
from genre_model.errors import DecodeError, ParameterError
from genre_model.features import log_mel_spectrogram
from genre_model.slicing import slice_starts

DEMO = DEMO_DIR / "brahms-hungarian-dance-5.ogg"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A 40 s cut of a real recording as FLAC, MP3, Ogg Vorbis, Opus and AAC in MP4."""
    d = tmp_path_factory.mktemp("clips")
    return {fmt: encode(DEMO, d / f"brahms.{fmt}", start=2.0, duration=40.0)
            for fmt in ("flac", "mp3", "ogg", "opus", "m4a")}


def test_probe_reads_the_duration(clips):
    assert probe_duration(clips["flac"]) == pytest.approx(40.0, abs=0.05)
    assert probe_duration(clips["mp3"]) == pytest.approx(40.0, abs=0.1)


def test_segments_come_back_mono_float32_and_exactly_one_slice_long(clips):
    y = decode_segments(clips["mp3"], [1.0, 10.0, 20.0, 30.0, 35.0])
    assert y.shape == (5, SLICE_SAMPLES) and y.dtype == np.float32
    assert 0.01 < np.abs(y).max() <= 1.0


@pytest.mark.parametrize(("fmt", "sr", "tolerance"), [
    ("flac", None, 1e-4), ("mp3", None, 0.02), ("ogg", None, 1e-4), ("opus", None, 1e-4), ("m4a", None, 1e-4),
    ("flac", 44_100, 1e-4), ("mp3", 44_100, 1e-4), ("ogg", 44_100, 1e-4), ("opus", 48_000, 1e-4),
    ("m4a", 44_100, 0.02)])
def test_seek_decoded_segments_match_the_same_span_of_a_full_decode(clips, tmp_path, fmt, sr, tolerance):
    """After a seek, ffmpeg 9 decodes AAC in MP4 from up to 1024 samples late: only its timestamps say so.

    Resampled (``sr``: a CD- or Opus-rate copy), segments are placed as exactly: with ffmpeg's default
    resampler a 44.1 kHz MP3's came back up to a sample off (0.08 apart here, 0.4 in another file),
    placed after the resampling, not in it.
    """
    path = clips[fmt] if sr is None else encode(DEMO, tmp_path / f"brahms.{fmt}", start=2.0, duration=40.0,
                                                extra=["-ar", str(sr), "-ac", "2"])
    full = decode_full(path)
    starts = [3.0, 10.0, 17.5, 24.2, 31.0]  # whole samples at 22 050 Hz
    for start, segment in zip(starts, decode_segments(path, starts)):
        i = int(round(start * SAMPLE_RATE))
        span = full[i : i + SLICE_SAMPLES]
        assert np.abs(segment - span).max() < tolerance, f"{fmt} at {start} s"
        assert np.corrcoef(segment, span)[0, 1] > 0.999, f"{fmt} at {start} s"


def test_a_vorbis_segment_that_decodes_late_is_placed_by_its_timestamps():
    """This recording's first segment came back 204 samples late with every ffmpeg checked (4.2 to 9.0)."""
    path = DEMO_DIR / "hobbs-lets-go-fishin.ogg"
    (start, *_) = slice_starts(probe_duration(path))
    (segment,) = decode_segments(path, [start])
    i = int(round(start * SAMPLE_RATE))
    np.testing.assert_allclose(segment, decode_full(path)[i: i + SLICE_SAMPLES], atol=1e-4)


@pytest.mark.parametrize("sr", [44_100, 48_000])
def test_a_cd_or_dvd_rate_file_reaches_the_network_as_its_native_22_05_khz_audio(tmp_path, sr):
    """GTZAN is native 22.05 kHz; ffmpeg's default resampler took up to 1.3 ln units off the top mel bands."""
    rng = np.random.default_rng(0)
    native = (0.1 * rng.standard_normal(6 * SAMPLE_RATE)).astype(np.float32)  # white up to 11.025 kHz
    upsampled = resample(native, native.size * sr // SAMPLE_RATE)  # band-limited: nothing above 11.025 kHz
    path = encode(upsampled, tmp_path / f"noise {sr}.flac", sr=sr)
    expected = log_mel_spectrogram(native[SAMPLE_RATE: SAMPLE_RATE + SLICE_SAMPLES]).mean(axis=-1)
    for y in (decode_segments(path, [1.0])[0], decode_full(path)[SAMPLE_RATE: SAMPLE_RATE + SLICE_SAMPLES]):
        error = np.abs(log_mel_spectrogram(y).mean(axis=-1) - expected)
        assert error[:-1].max() < 0.05 and error[-1] < 0.5  # the default resampler: 0.9 and 1.5


def test_a_tone_above_11_khz_does_not_fold_back_into_the_top_bands(tmp_path):
    """ffmpeg's default resampler lets a 12 kHz tone of a 44.1 kHz file alias to 10.05 kHz at -36 dB."""
    path = encode(sine(12_000.0, 4.0, sr=44_100), tmp_path / "12 kHz.flac", sr=44_100)
    for y in (decode_segments(path, [1.0])[0], decode_full(path)[SAMPLE_RATE:-SAMPLE_RATE]):  # not its onset
        assert np.abs(y).max() < 0.5 * 10 ** (-60 / 20)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_short_file_comes_back_whole_in_every_format(tmp_path, fmt):
    """The segment at 0 of a 2.2 s excerpt is its full decode: no frame lost, no silence appended.

    (ffmpeg's "-ss 0" drops the first 1024 samples of AAC in MP4, which left
    46 ms of padding at every seam of a padded excerpt.)
    """
    path = encode(DEMO, tmp_path / f"excerpt.{fmt}", start=5.0, duration=2.2)
    full = decode_full(path)
    segment = decode_segments(path, [0.0])[0]
    assert 2.1 * SAMPLE_RATE < full.size < SLICE_SAMPLES
    np.testing.assert_allclose(segment[: full.size], full, atol=1e-6)
    assert np.abs(segment[full.size - 1024 : full.size]).max() > 0.01


def test_segment_past_the_end_is_zero_padded(clips):
    y = decode_segments(clips["flac"], [39.0])
    assert np.abs(y[0, : SAMPLE_RATE // 2]).max() > 0.0
    assert np.abs(y[0, int(1.2 * SAMPLE_RATE) :]).max() == 0.0



def test_segments_that_start_past_the_end_are_silence(clips):
    """What a file shorter than its tags say gives: silence to drop, not an ffmpeg error."""
    y = decode_segments(clips["flac"], [41.0, 45.0, 10.0])
    assert np.abs(y[:2]).max() == 0.0 and np.abs(y[2]).max() > 0.01

def test_multichannel_high_rate_input_is_mixed_down_and_resampled(tmp_path):
    stereo = tmp_path / "six.wav"
    subprocess.run([find_ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=96000:duration=4",
                    "-ac", "6", f"file:{stereo}"], check=True)
    y = decode_segments(stereo, [0.5])
    assert y.shape == (1, SLICE_SAMPLES)
    spectrum = np.abs(np.fft.rfft(y[0]))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / SLICE_SAMPLES - 440.0) < 2.0


@pytest.mark.parametrize("name", ["-leading dash.flac", "$(touch pwned) 'q\".flac", "new\nline é.flac",
                                  "concat:x.flac"])  # not a protocol: only ``file:`` keeps ffmpeg from reading it so
def test_hostile_names_are_only_ever_file_names(clips, tmp_path, monkeypatch, name):
    target = tmp_path / name
    target.write_bytes(clips["flac"].read_bytes())
    monkeypatch.chdir(tmp_path)
    assert decode_segments(name, [1.0]).shape == (1, SLICE_SAMPLES)
    assert not (tmp_path / "pwned").exists()


def test_non_utf8_bytes_path(clips, tmp_path):
    target = os.fsencode(tmp_path) + b"/caf\xe9.flac"
    with open(target, "wb") as f:
        f.write(clips["flac"].read_bytes())
    assert decode_segments(target, [1.0]).shape == (1, SLICE_SAMPLES)


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (np.random.default_rng(0).bytes(20_000), "ffmpeg"),  # fixed: a random draw decodes once in ~4000
    (b"this is a text file, not audio\n" * 50, "ffmpeg"),
])
def test_bad_files_raise_one_line_decode_errors(tmp_path, content, reason):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(content)
    with pytest.raises(DecodeError) as err:
        decode_segments(bad, [0.0])
    assert reason in str(err.value) and "bad.mp3" in str(err.value)
    assert "\n" not in str(err.value)



@pytest.mark.parametrize("suffix", [".flac", ".mp3", ".m4a"])
def test_text_under_an_audio_name_is_invalid_data_whatever_the_name(tmp_path, suffix):
    """ffmpeg's last line for a .flac is about its empty output, with a pointer in it; the reason is earlier.

    ffmpeg before 9 (Debian 12 has 5.1) reads a little further and words it by format, then closes with
    "Error marking filters as finished", which says nothing of the file.
    """
    reasons = {"Invalid data found when processing input"}
    if int(re.search(r"version n?(\d+)", ffmpeg_version(find_ffmpeg())).group(1)) < 9:
        reasons |= {".flac": {"Cannot determine format of input stream 0:0 after EOF"},
                    ".mp3": {"Invalid argument"}}.get(suffix, set())
    bad = tmp_path / f"notes{suffix}"
    bad.write_bytes(b"this is a text file, not audio\n" * 50)
    for decode in (probe_duration, decode_full, lambda p: decode_segments(p, [0.0])):
        with pytest.raises(DecodeError) as err:
            decode(bad)
        assert str(err.value) in {f"'{bad}': ffmpeg: {reason}" for reason in reasons}


@pytest.mark.parametrize("closing", [b"Error marking filters as finished", b"Conversion failed!"])
def test_ffmpegs_closing_line_is_not_given_as_the_reason(closing):
    """ffmpeg 5-7 end a failed run with a formula; the line before it is about the file."""
    stderr = b"[aist#0:0/flac @ 0x5581] Cannot determine format of input stream 0:0 after EOF\n" + closing + b"\n"
    assert str(audio._ffmpeg_error("x.flac", stderr, "exit status 1")) == (
        "'x.flac': ffmpeg: Cannot determine format of input stream 0:0 after EOF")


def test_a_file_without_audio_is_one_clear_line(tmp_path):
    video = tmp_path / "video.mp4"
    subprocess.run([find_ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "testsrc=d=2", "-c:v", "mpeg4", str(video)],
                   check=True)
    with pytest.raises(DecodeError, match=r"video\.mp4': no audio stream$"):
        probe_duration(video)


def test_a_container_without_a_length_is_measured_by_decoding(tmp_path):
    stream = tmp_path / "stream.mka"  # Matroska written to a pipe states no duration
    with open(stream, "wb") as f:
        subprocess.run([find_ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "sine=d=5", "-f", "matroska", "-"],
                       stdout=f, check=True)
    assert probe_duration(stream) == pytest.approx(5.0, abs=0.05)

def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "fifo.mp3"
    os.mkfifo(fifo)

    def release_a_blocked_reader():  # only a reader that opened the FIFO lets this open succeed
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass

    writer = threading.Timer(3.0, release_a_blocked_reader)
    writer.start()
    try:
        with pytest.raises(DecodeError, match="not a regular file"):
            probe_duration(fifo)
    finally:
        writer.cancel()


def test_a_cut_short_file_decodes_shorter_than_its_header_says(tmp_path):
    whole = encode(DEMO, tmp_path / "whole.flac", duration=30.0)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 6])
    assert probe_duration(cut) == pytest.approx(30.0, abs=0.05)  # FLAC's header still says 30 s
    assert decoded_duration(cut) == pytest.approx(decode_full(cut).size / SAMPLE_RATE, abs=0.002)
    assert 2.0 < decoded_duration(cut) < 10.0


def test_ctrl_c_interrupts_python_not_a_decoder_in_a_worker_thread():
    """Ctrl-C reaches the terminal's whole process group: a decoder killed by it failed its track."""
    script = """
import os, signal, sys, threading, time
from genre_model import audio
signal.signal(signal.SIGINT, signal.default_int_handler)  # a job started with "&" by a script inherits SIGINT ignored
results = []
worker = threading.Thread(target=lambda: results.append(
    audio._run([sys.executable, "-c", "import time; time.sleep(1.5)"], "decoder", timeout=10)[0]))
worker.start()
time.sleep(0.5)
try:
    os.killpg(0, signal.SIGINT)
    time.sleep(5)
except KeyboardInterrupt:
    worker.join()
    print("interrupted; the decoder exited with", results[0])
"""
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                           start_new_session=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert child.stdout.strip() == "interrupted; the decoder exited with 0", child.stderr


def test_missing_file(tmp_path):
    with pytest.raises(DecodeError, match="No such file"):
        probe_duration(tmp_path / "gone.flac")


def test_configured_ffmpeg_that_does_not_exist_is_refused():
    with pytest.raises(ParameterError, match="ffmpeg not found"):
        find_ffmpeg("/nonexistent/ffmpeg")


def test_configured_program_that_is_not_ffmpeg_is_refused():
    with pytest.raises(ParameterError, match=f"'{re.escape(sys.executable)}' is not ffmpeg"):
        find_ffmpeg(sys.executable)
    assert find_ffmpeg(find_ffmpeg()) == find_ffmpeg()


def test_audioread_fallback_without_ffmpeg_resamples_as_ffmpeg_does(tmp_path, monkeypatch):
    noise = (0.1 * np.random.default_rng(0).standard_normal(6 * 44_100)).astype(np.float32)  # up to 22 kHz
    wav = encode(noise, tmp_path / "noise.wav", sr=44_100)
    via_ffmpeg = decode_segments(wav, [2.0])
    monkeypatch.setattr(audio, "find_ffmpeg", lambda configured=None: None)
    assert probe_duration(wav) == pytest.approx(6.0, abs=0.01)
    fallback = decode_segments(wav, [2.0])
    assert fallback.shape == (1, SLICE_SAMPLES)
    assert np.corrcoef(fallback[0], via_ffmpeg[0])[0, 1] > 0.9999  # scipy's default filter: 0.997


def test_audioread_mixes_stereo_down_as_ffmpeg_does(tmp_path, monkeypatch):
    """Equal power, (L + R) / sqrt(2): the same file reaches the network at the same level either way."""
    tone = sine(440.0, 3.0, amplitude=0.25)
    wav = tmp_path / "stereo.wav"
    wavfile.write(wav, SAMPLE_RATE, (np.stack([tone, tone], axis=1) * 32767).astype(np.int16))
    via_ffmpeg = decode_full(wav)
    monkeypatch.setattr(audio, "find_ffmpeg", lambda configured=None: None)
    fallback = decode_full(wav)
    assert np.abs(via_ffmpeg).max() == pytest.approx(0.25 * np.sqrt(2), rel=0.01)
    assert np.abs(fallback).max() == pytest.approx(np.abs(via_ffmpeg).max(), rel=0.01)


def test_one_channel_alone_is_decoded_as_it_is_by_ffmpeg_and_audioread(tmp_path, monkeypatch):
    left, right = sine(440.0, 3.0, amplitude=0.25), sine(660.0, 3.0, amplitude=0.5)
    wav = tmp_path / "two tones.wav"
    wavfile.write(wav, SAMPLE_RATE, (np.stack([left, right], axis=1) * 32767).astype(np.int16))
    via_ffmpeg = [decode_full(wav, channel=0), decode_segments(wav, [0.5], channel=1)[0]]
    monkeypatch.setattr(audio, "find_ffmpeg", lambda configured=None: None)
    fallback = [decode_full(wav, channel=0), decode_segments(wav, [0.5], channel=1)[0]]
    expected = [left, right[int(0.5 * SAMPLE_RATE):]]
    for want, got in zip(expected * 2, via_ffmpeg + fallback, strict=True):
        np.testing.assert_allclose(got[: want.size], want[: got.size], atol=1e-4)


def test_audioread_failure_names_its_reason(tmp_path, monkeypatch):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"this is a text file, not audio\n" * 50)
    monkeypatch.setattr(audio, "find_ffmpeg", lambda configured=None: None)
    with pytest.raises(DecodeError, match=r"junk\.mp3': audioread: \S"):
        decode_segments(junk, [0.0])
