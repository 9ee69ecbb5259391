"""From per-slice genre probabilities to one genre per track."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ParameterError

AGGREGATIONS = ("vote", "mean", "logsum", "learned")
_EPS = 1e-6


@dataclass(frozen=True)
class GenrePrediction:
    """A track's genre, the confidence in it, and the score of every genre."""

    genre: str
    confidence: float
    scores: dict[str, float]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` best genres with their scores, best first."""
        return sorted(self.scores.items(), key=lambda kv: -kv[1])[:k]


def aggregator_features(probabilities: np.ndarray) -> np.ndarray:
    """What the learned aggregator sees of a track: mean probability, mean log-probability, vote share.

    Returns
    -------
    f : np.ndarray [shape=(3 * n_genres,)]
    """
    p = np.asarray(probabilities, dtype=np.float64)
    votes = np.bincount(p.argmax(axis=1), minlength=p.shape[1]) / p.shape[0]
    return np.concatenate([p.mean(axis=0), np.log(p + _EPS).mean(axis=0), votes])


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the maximum for stability."""
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def class_balanced_weights(targets: np.ndarray, n_classes: int) -> np.ndarray:
    """Sample weights summing to 1 with every class weighing the same, however many samples it has."""
    weight = (1.0 / np.maximum(np.bincount(targets, minlength=n_classes), 1))[targets]
    return weight / weight.sum()


def fit_softmax_regression(x: np.ndarray, targets: np.ndarray, n_classes: int, *, l2: float = 1e-2,
                           steps: int = 2000, learning_rate: float = 0.5) -> dict:
    """Class-balanced multinomial logistic regression on standardised features, by gradient descent.

    Returns ``weights`` (n_features x n_classes), ``bias`` and the feature ``mean``
    and ``scale``, as lists (JSON-ready); apply with :func:`softmax_regression_logits`.
    """
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z_x = (x - mean) / scale
    y = np.eye(n_classes)[targets]
    w_sample = class_balanced_weights(targets, n_classes)
    weights, bias = np.zeros((x.shape[1], n_classes)), np.zeros(n_classes)
    for _ in range(steps):
        grad = (softmax(z_x @ weights + bias) - y) * w_sample[:, None]
        weights -= learning_rate * (z_x.T @ grad + l2 * weights)
        bias -= learning_rate * grad.sum(axis=0)
    return {"weights": weights.round(6).tolist(), "bias": bias.round(6).tolist(),
            "mean": mean.round(6).tolist(), "scale": scale.round(6).tolist()}


def softmax_regression_logits(params: dict, x: np.ndarray) -> np.ndarray:
    """Logits of a :func:`fit_softmax_regression` model for features ``x`` (..., n_features)."""
    z_x = (x - np.asarray(params["mean"])) / np.asarray(params["scale"])
    return z_x @ np.asarray(params["weights"]) + np.asarray(params["bias"])


def fit_aggregator(slice_probabilities: list[np.ndarray], targets: np.ndarray, n_genres: int) -> dict:
    """Fit the learned aggregator: a softmax regression on :func:`aggregator_features`.

    Returns its parameters as stored in a model's sidecar.
    """
    features = np.stack([aggregator_features(p) for p in slice_probabilities])
    return fit_softmax_regression(features, targets, n_genres)


def aggregator_fits(params: Any, n_genres: int) -> bool:
    """Whether stored aggregator parameters have the shapes :func:`fit_aggregator` gives ``n_genres``, all finite."""
    n_features = aggregator_features(np.full((1, n_genres), 1.0 / n_genres)).size
    shapes = {"weights": (n_features, n_genres), "bias": (n_genres,), "mean": (n_features,), "scale": (n_features,)}
    try:
        arrays = {key: np.asarray(params[key], dtype=np.float64) for key in shapes}
    except (KeyError, TypeError, ValueError):
        return False
    return all(arrays[key].shape == shape and np.isfinite(arrays[key]).all() for key, shape in shapes.items())


def track_scores(probabilities: np.ndarray, method: str = "mean", *, temperature: float = 1.0,
                 bias: np.ndarray | list[float] | None = None, slice_temperatures: tuple[float, float] = (1.0, 1.0),
                 aggregator: dict | None = None) -> np.ndarray:
    """Per-genre track scores that sum to 1.

    Parameters
    ----------
    probabilities : np.ndarray [shape=(n_slices, n_genres)]
        Softmax output of the model for each slice.
    method : {"vote", "mean", "logsum", "learned"}
        ``vote``: share of slices whose top genre it is (ties go to the higher mean);
        ``mean``: mean probability; ``logsum``: softmax of the summed log-probabilities
        divided by the number of slices (a geometric mean); ``learned``: the
        ``aggregator``'s softmax regression on :func:`aggregator_features`.
    temperature : float
        Calibration temperature that divides the track's log-scores (all but
        ``vote``); 1 leaves them as they are.
    bias : np.ndarray [shape=(n_genres,)], optional
        Calibration bias added to the log-scores after the temperature (all but ``vote``).
    slice_temperatures : (float, float)
        Temperatures that then divide the log-scores of a track of one slice, and of one of
        several (all but ``vote``): the mean of several slices is flatter than one slice.
        They change the confidence, never the top genre.
    aggregator : dict, optional
        The fitted aggregator (:func:`fit_aggregator`), needed by ``learned``.

    Returns
    -------
    scores : np.ndarray [shape=(n_genres,)]
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ParameterError(f"need probabilities of shape (n_slices, n_genres), got {p.shape}")
    if method == "vote":
        votes = np.bincount(p.argmax(axis=1), minlength=p.shape[1]).astype(np.float64)
        return (votes + _EPS * p.mean(axis=0)) / (votes.sum() + _EPS)
    if method == "mean":
        log_scores = np.log(p.mean(axis=0) + _EPS)
    elif method == "logsum":
        log_scores = np.log(p + _EPS).mean(axis=0)
    elif method == "learned":
        if aggregator is None:
            raise ParameterError("the learned aggregation needs a model with a fitted aggregator")
        log_scores = softmax_regression_logits(aggregator, aggregator_features(p))
    else:
        raise ParameterError(f"aggregation must be one of {AGGREGATIONS}, got {method!r}")
    z = log_scores / temperature
    if bias is not None:
        z = z + np.asarray(bias, dtype=np.float64)
    one, several = slice_temperatures
    return softmax(z / (several if p.shape[0] > 1 else one))


def aggregate(probabilities: np.ndarray, labels: list[str], method: str = "mean", *,
              temperature: float = 1.0, bias: np.ndarray | list[float] | None = None,
              slice_temperatures: tuple[float, float] = (1.0, 1.0), aggregator: dict | None = None) -> GenrePrediction:
    """Aggregate slice probabilities into a :class:`GenrePrediction`.

    The confidence is the winning genre's track score, in [0, 1].
    """
    scores = track_scores(probabilities, method, temperature=temperature, bias=bias,
                          slice_temperatures=slice_temperatures, aggregator=aggregator)
    if scores.shape[0] != len(labels):
        raise ParameterError(f"{scores.shape[0]} scores for {len(labels)} labels")
    best = int(scores.argmax())
    return GenrePrediction(
        genre=labels[best],
        confidence=float(scores[best]),
        scores={label: float(s) for label, s in zip(labels, scores)},
    )
