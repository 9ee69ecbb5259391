"""From per-slice genre probabilities to one genre per track."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ParameterError

AGGREGATIONS = ("vote", "mean", "logsum")
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


def track_scores(probabilities: np.ndarray, method: str = "mean", *, temperature: float = 1.0) -> np.ndarray:
    """Per-genre track scores that sum to 1.

    Parameters
    ----------
    probabilities : np.ndarray [shape=(n_slices, n_genres)]
        Softmax output of the model for each slice.
    method : {"vote", "mean", "logsum"}
        ``vote``: share of slices whose top genre it is (ties go to the higher mean);
        ``mean``: mean probability; ``logsum``: softmax of the summed log-probabilities
        divided by the number of slices (a geometric mean).
    temperature : float
        Calibration temperature applied to the track's log-scores (``mean`` and
        ``logsum``); 1 leaves them as they are.

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
    else:
        raise ParameterError(f"aggregation must be one of {AGGREGATIONS}, got {method!r}")
    z = log_scores / temperature
    z = np.exp(z - z.max())
    return z / z.sum()


def aggregate(probabilities: np.ndarray, labels: list[str], method: str = "mean", *,
              temperature: float = 1.0) -> GenrePrediction:
    """Aggregate slice probabilities into a :class:`GenrePrediction`.

    The confidence is the winning genre's track score, in [0, 1].
    """
    scores = track_scores(probabilities, method, temperature=temperature)
    if scores.shape[0] != len(labels):
        raise ParameterError(f"{scores.shape[0]} scores for {len(labels)} labels")
    best = int(scores.argmax())
    return GenrePrediction(
        genre=labels[best],
        confidence=float(scores[best]),
        scores={label: float(s) for label, s in zip(labels, scores)},
    )
