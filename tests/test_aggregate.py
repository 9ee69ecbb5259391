"""Vote, mean and log-sum aggregation of slice probabilities."""

import numpy as np
import pytest

from genre_model.aggregate import aggregate, track_scores
from genre_model.errors import ParameterError

LABELS = ["jazz", "metal", "pop"]
# two slices say metal weakly, one says jazz strongly
P = np.array([[0.30, 0.40, 0.30], [0.30, 0.40, 0.30], [0.90, 0.05, 0.05]])


def test_vote_follows_the_majority_of_slices():
    p = aggregate(P, LABELS, "vote")
    assert p.genre == "metal"
    assert p.confidence == pytest.approx(2 / 3, abs=1e-4)


def test_mean_follows_the_mean_probability():
    p = aggregate(P, LABELS, "mean")
    assert p.genre == "jazz"
    assert p.confidence == pytest.approx(0.5, abs=1e-4)


def test_logsum_punishes_a_genre_that_some_slice_rules_out():
    q = np.array([[0.6, 0.4, 0.0], [0.6, 0.4, 0.0], [0.01, 0.39, 0.6]])
    assert aggregate(q, LABELS, "mean").genre == "jazz"  # 0.403 against metal's 0.397
    p = aggregate(q, LABELS, "logsum")
    assert p.genre == "metal"  # the third slice all but rules jazz out
    assert sum(p.scores.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["vote", "mean", "logsum"])
def test_scores_are_a_distribution(method):
    s = track_scores(np.random.default_rng(1).dirichlet(np.ones(3), 7), method)
    assert s.shape == (3,) and np.all(s >= 0) and s.sum() == pytest.approx(1.0)


def test_temperature_flattens_confidence_without_changing_the_genre():
    sharp = aggregate(P, LABELS, "mean")
    flat = aggregate(P, LABELS, "mean", temperature=3.0)
    assert flat.genre == sharp.genre and flat.confidence < sharp.confidence


def test_top_k_is_sorted():
    top = aggregate(P, LABELS, "mean").top(2)
    assert [g for g, _ in top] == ["jazz", "metal"]


def test_unknown_method_and_bad_shapes_are_refused():
    with pytest.raises(ParameterError):
        track_scores(P, "median")
    with pytest.raises(ParameterError):
        track_scores(np.zeros((0, 3)))
    with pytest.raises(ParameterError):
        aggregate(P, ["a", "b"])
