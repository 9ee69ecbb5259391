"""Bias-corrected temperature scaling, ECE and the learned aggregator."""

import numpy as np
import pytest

from genre_model.aggregate import aggregate, fit_aggregator, softmax, track_scores
from genre_model.calibration import (MIN_GROUP_TRACKS, Calibration, by_slices, calibration_report,
                                     cross_validated_scores, ece_if_calibrated, fit_calibration, reliability)
from genre_model.evaluate import accuracy_intervals, bootstrap_interval


def test_ece_of_perfectly_calibrated_bins_is_zero_and_of_overconfidence_is_the_gap():
    confidence = np.array([0.25] * 4 + [0.95] * 20)
    correct = np.array([1, 0, 0, 0] + [1] * 19 + [0])
    ece, bins = reliability(confidence, correct)
    assert ece == pytest.approx(0.0, abs=1e-9)
    assert sum(b["count"] for b in bins) == 24 and len(bins) == 10
    ece, _ = reliability(np.full(10, 0.9), np.array([1] * 5 + [0] * 5))
    assert ece == pytest.approx(0.4)


def test_ece_of_a_calibrated_model_is_sampling_noise_that_shrinks_with_more_tracks():
    assert ece_if_calibrated(np.ones(50)) == {"mean": 0.0, "p95": 0.0}  # always right: no noise
    rng = np.random.default_rng(1)
    few, many = ece_if_calibrated(rng.uniform(0.3, 1.0, 100)), ece_if_calibrated(rng.uniform(0.3, 1.0, 5000))
    assert 0.04 < few["mean"] < few["p95"] < 0.2
    assert many["p95"] < few["mean"] / 2
    # an overconfident model's ECE stands out of that noise
    confidence = np.full(100, 0.95)
    correct = rng.random(100) < 0.6
    assert reliability(confidence, correct)[0] > ece_if_calibrated(confidence)["p95"]


def test_bootstrap_keeps_each_genre_count_and_brackets_the_figure():
    targets = np.array([0] * 30 + [1] * 10 + [2] * 5)
    counts = []

    def genre_counts(ix):
        counts.append(np.bincount(targets[ix], minlength=3).tolist())
        return 0.5

    assert bootstrap_interval(genre_counts, targets, draws=50) == [0.5, 0.5]
    assert counts == [[30, 10, 5]] * 50
    predictions = np.where(np.arange(45) % 3 == 0, (targets + 1) % 3, targets)  # 15 of 45 wrong
    intervals = accuracy_intervals(targets, predictions, ["a", "b", "c"])
    lo, hi = intervals["track_accuracy"]
    assert lo < 30 / 45 < hi and hi - lo < 0.4
    assert intervals == accuracy_intervals(targets, predictions, ["a", "b", "c"])  # seeded: reproducible


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


def _scores(probs, method, calibration=Calibration()):
    return np.stack([track_scores(p, method, **calibration.kwargs()) for p in probs])


def test_temperature_fit_repairs_overconfidence():
    probs, targets = _overconfident_tracks()
    before = calibration_report(_scores(probs, "mean"), targets, probs)["ece"]
    calibration = fit_calibration(probs, targets, "mean")
    after = calibration_report(_scores(probs, "mean", calibration), targets, probs)["ece"]
    assert calibration.temperature > 1.0 and after < before / 2


def _long_and_short_tracks(n=120, k=4, seed=4):
    """Long tracks (5 slices) that are mostly right with flat mean scores, one-slice excerpts peaked and
    right half the time: what one temperature cannot calibrate both ways."""
    rng = np.random.default_rng(seed)
    probs, targets = [], rng.integers(0, k, 2 * n)
    for i, t in enumerate(targets):
        if i < n:
            logits = rng.normal(0, 1.0, (5, k))
            logits[:, t] += 1.0
        else:
            logits = np.zeros((1, k))
            logits[0, t if rng.random() < 0.5 else rng.integers(0, k)] = 4.0
        probs.append(softmax(logits))
    return probs, targets


def test_slice_temperatures_calibrate_long_tracks_and_excerpts_apart_without_changing_a_genre():
    probs, targets = _long_and_short_tracks()
    calibration = fit_calibration(probs, targets, "mean")
    common = Calibration(calibration.temperature, calibration.bias)
    one, several = calibration.slice_temperatures
    assert several < 1 < one  # long tracks sharpened, excerpts softened
    before = by_slices(_scores(probs, "mean", common), targets, probs)
    after = by_slices(_scores(probs, "mean", calibration), targets, probs)
    assert before["several"]["confidence"] < before["several"]["accuracy"] - 0.1  # underconfident
    assert before["one"]["confidence"] > before["one"]["accuracy"] + 0.1  # overconfident
    for heard in ("one", "several"):
        assert after[heard]["tracks"] == 120 and after[heard]["accuracy"] == before[heard]["accuracy"]
        assert after[heard]["ece"] < before[heard]["ece"] / 2
    assert np.array_equal(_scores(probs, "mean", calibration).argmax(axis=1),
                          _scores(probs, "mean", common).argmax(axis=1))
    assert calibration.as_json()["slice_temperatures"] == {"one": round(one, 4), "several": round(several, 4)}


def test_too_few_tracks_heard_one_way_keep_the_common_temperature():
    probs, targets = _long_and_short_tracks()
    few = list(range(MIN_GROUP_TRACKS - 1)) + list(range(120, 240))  # 19 long tracks, 120 excerpts
    calibration = fit_calibration([probs[i] for i in few], targets[few], "mean")
    assert calibration.slice_temperatures[1] == 1.0 and calibration.slice_temperatures[0] > 1.0
    assert by_slices(np.full((1, 4), 0.25), targets[:1], probs[:1])["one"] == {"tracks": 0}


def _under_predicted_genre(n=240, k=4, seed=2):
    """Tracks of genre 0 look a little like genre 1 to the model: it calls most of them 1."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, k, n)
    probs = []
    for t in targets:
        logits = rng.normal(0, 0.5, (3, k))
        logits[:, t] += 1.5
        if t == 0:
            logits[:, 1] += 2.0
        probs.append(softmax(logits))
    return probs, targets


def test_bias_undoes_a_genre_the_model_under_predicts_on_tracks_it_was_not_fitted_on():
    probs, targets = _under_predicted_genre()
    calibration = fit_calibration(probs, targets, "mean")
    assert calibration.bias[0] == max(calibration.bias)
    fresh_probs, fresh_targets = _under_predicted_genre(seed=3)
    before = np.mean(_scores(fresh_probs, "mean").argmax(axis=1) == fresh_targets)
    after = _scores(fresh_probs, "mean", calibration).argmax(axis=1) == fresh_targets
    assert after.mean() > before + 0.1
    assert after[fresh_targets == 0].mean() > 0.5


def test_cross_validated_scores_never_use_the_track_itself():
    probs, targets = _under_predicted_genre(n=60)
    scores = cross_validated_scores(probs, targets, "mean")
    assert scores.shape == (60, 4) and np.allclose(scores.sum(axis=1), 1.0)
    # flipping one track's label changes its own in-sample fit, never its held-out score
    flipped = targets.copy()
    flipped[0] = (targets[0] + 2) % 4
    assert np.allclose(cross_validated_scores(probs, flipped, "mean")[0], scores[0])
    in_sample = _scores(probs[:1], "mean", fit_calibration(probs, targets, "mean"))[0]
    assert not np.allclose(np.log(in_sample), np.log(scores[0]))


def test_a_vote_share_falls_in_the_bin_it_names():
    probs = np.eye(4)[[0, 0, 0, 0, 1]][None] * 0.9 + 0.025  # 4 of 5 slices vote genre 0
    share = track_scores(probs[0], "vote").max()
    assert share == pytest.approx(0.8, abs=1e-6) and share < 0.8  # the tie-break leaves it just under
    _, bins = reliability(np.array([share]), np.array([True]))
    assert [b["lower"] for b in bins if b["count"]] == [0.8]


def test_vote_is_left_uncalibrated():
    probs, targets = _overconfident_tracks()
    calibration = fit_calibration(probs, targets, "vote")
    assert calibration.temperature == 1.0 and calibration.bias is None


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
