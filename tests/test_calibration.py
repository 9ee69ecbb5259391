"""Temperature scaling, ECE and the learned aggregator."""

import numpy as np
import pytest

from genre_model.aggregate import aggregate, fit_aggregator, track_scores
from genre_model.calibration import calibration_report, fit_temperature, reliability


def test_ece_of_perfectly_calibrated_bins_is_zero_and_of_overconfidence_is_the_gap():
    confidence = np.array([0.25] * 4 + [0.95] * 20)
    correct = np.array([1, 0, 0, 0] + [1] * 19 + [0])
    ece, bins = reliability(confidence, correct)
    assert ece == pytest.approx(0.0, abs=1e-9)
    assert sum(b["count"] for b in bins) == 24 and len(bins) == 10
    ece, _ = reliability(np.full(10, 0.9), np.array([1] * 5 + [0] * 5))
    assert ece == pytest.approx(0.4)


def _overconfident_tracks(n=200, k=4, seed=0):
    """Tracks whose slices are sharply peaked but right only about 60% of the time."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, k, n)
    probs = []
    for t in targets:
        guess = t if rng.random() < 0.6 else rng.integers(0, k)
        p = np.full((5, k), 0.02)
        p[:, guess] = 1 - 0.02 * (k - 1)
        probs.append(p)
    return probs, targets


def test_temperature_fit_repairs_overconfidence():
    probs, targets = _overconfident_tracks()
    before = calibration_report(probs, targets, "mean", 1.0)["ece"]
    t = fit_temperature(probs, targets, "mean")
    after = calibration_report(probs, targets, "mean", t)["ece"]
    assert t > 1.0 and after < before / 2


def test_vote_has_no_temperature():
    probs, targets = _overconfident_tracks()
    assert fit_temperature(probs, targets, "vote") == 1.0


def test_learned_aggregator_learns_a_systematic_slice_confusion():
    # the CNN calls every "b" track "c" on its slices, weakly: a learned aggregator can undo that
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 3, 300)
    probs = []
    for t in targets:
        p = rng.dirichlet(np.ones(3) * 5, 5)
        p[:, t if t != 1 else 2] += 0.4 if t != 1 else 0.25
        probs.append(p / p.sum(axis=1, keepdims=True))
    params = fit_aggregator(probs[:200], targets[:200], 3)
    learned = np.mean([track_scores(p, "learned", aggregator=params).argmax() == t
                       for p, t in zip(probs[200:], targets[200:])])
    mean = np.mean([track_scores(p, "mean").argmax() == t for p, t in zip(probs[200:], targets[200:])])
    assert learned > mean + 0.15
    prediction = aggregate(probs[0], ["a", "b", "c"], "learned", aggregator=params)
    assert sum(prediction.scores.values()) == pytest.approx(1.0)
