"""The log-mel front-end against facts that can fail."""

import numpy as np
import pytest

from audio_factory import sine
from genre_model.constants import HOP_LENGTH, N_MELS, SAMPLE_RATE, SLICE_FRAMES, SLICE_SAMPLES
from genre_model.errors import ParameterError
from genre_model.features import hz_to_mel, log_mel_spectrogram, mel_filterbank, mel_frequencies, mel_to_hz


BAND_CENTRES = mel_frequencies(N_MELS + 2)[1:-1]  # each band peaks where the next one starts


def test_slice_of_2_56_seconds_gives_exactly_128_frames():
    assert SLICE_SAMPLES == int(2.56 * SAMPLE_RATE)
    S = log_mel_spectrogram(np.zeros(SLICE_SAMPLES, dtype=np.float32))
    assert S.shape == (N_MELS, SLICE_FRAMES) == (128, 128)


@pytest.mark.parametrize("n_samples", [HOP_LENGTH, 10_000, 3 * SAMPLE_RATE + 17])
def test_one_frame_per_hop(n_samples):
    assert log_mel_spectrogram(np.zeros(n_samples)).shape[-1] == n_samples // HOP_LENGTH


@pytest.mark.parametrize("frequency", [250.0, 1000.0, 4000.0])
def test_sine_lands_in_the_mel_band_centred_on_it(frequency):
    S = log_mel_spectrogram(sine(frequency, 2.56))
    expected = int(np.argmin(np.abs(BAND_CENTRES - frequency)))
    assert abs(int(S.mean(axis=1).argmax()) - expected) <= 1
    # the energy is concentrated: bands an octave away are far below
    far = int(np.argmin(np.abs(BAND_CENTRES - frequency * 2)))
    assert S.mean(axis=1)[expected] - S.mean(axis=1)[far] > 5.0


def test_1khz_is_band_38_of_128():
    S = log_mel_spectrogram(sine(1000.0, 2.56))
    assert int(S.mean(axis=1).argmax()) == 38


def test_gain_shifts_log_power_by_its_decibels():
    quiet = log_mel_spectrogram(sine(440.0, 2.56, amplitude=0.05))
    loud = log_mel_spectrogram(sine(440.0, 2.56, amplitude=0.5))
    band = int(loud.mean(axis=1).argmax())
    assert loud[band].mean() - quiet[band].mean() == pytest.approx(2 * np.log(10.0), abs=0.01)


def test_batches_of_slices_match_single_slices():
    rng = np.random.default_rng(0)
    y = rng.standard_normal((3, SLICE_SAMPLES)).astype(np.float32) * 0.1
    batch = log_mel_spectrogram(y)
    assert batch.shape == (3, N_MELS, SLICE_FRAMES)
    np.testing.assert_allclose(batch[1], log_mel_spectrogram(y[1]), atol=1e-4)


def test_mel_scale_round_trips_and_filters_cover_the_spectrum():
    f = np.array([0.0, 500.0, 1000.0, 5000.0, 11025.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f)), f, atol=1e-6)
    M = mel_filterbank()
    assert M.shape == (128, 513)
    assert (M.sum(axis=0)[1:-1] > 0).all()  # every FFT bin but DC/Nyquist feeds a band


def test_too_little_audio_is_a_parameter_error():
    with pytest.raises(ParameterError):
        log_mel_spectrogram(np.zeros(100))


def test_the_cached_filterbank_cannot_be_changed_by_a_caller():
    with pytest.raises(ValueError, match="read-only"):
        mel_filterbank()[:] = 0.0
