"""Where slices are taken and how short audio becomes a slice."""

import numpy as np
import pytest

from genre_model.constants import SAMPLE_RATE, SLICE_SAMPLES, SLICE_SECONDS
from genre_model.errors import ParameterError
from genre_model.slicing import pad_to_slice, slice_starts, training_windows


def test_long_track_skips_intro_and_outro_and_is_deterministic():
    starts = slice_starts(240.0, n_slices=5)
    assert len(starts) == 5
    assert starts[0] >= 24.0 and starts[-1] + SLICE_SECONDS <= 216.0
    assert np.all(np.diff(starts) > SLICE_SECONDS)  # no overlap
    np.testing.assert_array_equal(starts, slice_starts(240.0, n_slices=5))


def test_short_tracks_use_the_whole_track():
    starts = slice_starts(10.0, n_slices=5)
    assert len(starts) == 3  # only three 2.56 s slices fit in 10 s
    assert starts[0] >= 0 and starts[-1] + SLICE_SECONDS <= 10.0


@pytest.mark.parametrize("k", range(2, 8))
def test_a_track_of_exactly_k_slices_gets_k(k):
    duration = round(k * SLICE_SECONDS, 2)  # as ffmpeg states it: 7.68 // 2.56 is 2.0 in floats
    assert len(slice_starts(duration, n_slices=10)) == k


def test_track_shorter_than_a_slice_gets_one_slice_at_zero():
    np.testing.assert_array_equal(slice_starts(2.2), [0.0])


def test_pad_repeats_the_audio():
    y = np.arange(int(2.2 * SAMPLE_RATE), dtype=np.float32)
    padded = pad_to_slice(y)
    assert padded.shape == (SLICE_SAMPLES,)
    np.testing.assert_array_equal(padded[: y.size], y)
    np.testing.assert_array_equal(padded[y.size :], y[: SLICE_SAMPLES - y.size])


def test_one_second_is_too_short():
    with pytest.raises(ParameterError, match="1.00 s"):
        pad_to_slice(np.zeros(SAMPLE_RATE, dtype=np.float32))


def test_training_windows_cover_the_track():
    y = np.random.default_rng(0).standard_normal(30 * SAMPLE_RATE).astype(np.float32)
    w = training_windows(y, hop=SAMPLE_RATE)
    assert w.shape == (1 + (y.size - SLICE_SAMPLES) // SAMPLE_RATE, SLICE_SAMPLES)
    np.testing.assert_array_equal(w[3], y[3 * SAMPLE_RATE : 3 * SAMPLE_RATE + SLICE_SAMPLES])


def test_an_excerpt_shorter_than_a_slice_gives_min_windows_rotations_of_its_repetition():
    y = np.arange(2 * SAMPLE_RATE, dtype=np.float32)
    w = training_windows(y, hop=SAMPLE_RATE, min_windows=4)
    assert w.shape == (4, SLICE_SAMPLES)
    np.testing.assert_array_equal(w[0], pad_to_slice(y))  # the first is the slice inference sees
    tiled = np.tile(y, 3)
    for k in range(4):  # each starts a quarter further into the excerpt, so the seam moves
        start = k * y.size // 4
        np.testing.assert_array_equal(w[k], tiled[start:start + SLICE_SAMPLES])


def test_an_excerpt_a_little_longer_than_a_slice_gives_min_windows_over_its_slack():
    y = np.arange(int(2.9 * SAMPLE_RATE), dtype=np.float32)
    w = training_windows(y, hop=SAMPLE_RATE, min_windows=3)
    assert w.shape == (3, SLICE_SAMPLES)
    np.testing.assert_array_equal(w[0], y[:SLICE_SAMPLES])  # no seam: it fits without repetition
    np.testing.assert_array_equal(w[-1], y[-SLICE_SAMPLES:])
    assert training_windows(y, hop=SAMPLE_RATE).shape == (1, SLICE_SAMPLES)


def test_min_windows_leaves_a_long_track_and_the_length_check_as_they_are():
    y = np.random.default_rng(0).standard_normal(30 * SAMPLE_RATE).astype(np.float32)
    np.testing.assert_array_equal(training_windows(y, hop=SAMPLE_RATE, min_windows=4),
                                  training_windows(y, hop=SAMPLE_RATE))
    with pytest.raises(ParameterError, match="1.00 s"):
        training_windows(y[:SAMPLE_RATE], hop=SAMPLE_RATE, min_windows=4)
