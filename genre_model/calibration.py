"""Track-level calibration: bias-corrected temperature scaling, ECE and reliability bins.

Bias-corrected temperature scaling (BCTS; Alexandari, Kundaje & Shrikumar 2020)
rescales a track's log-scores ``z`` to ``softmax(z / T + b)``: one temperature
``T`` and one bias per genre ``b``, fitted on held-out tracks. The temperature
makes the confidence honest; the bias undoes a genre the model under- or
over-predicts on music unlike its training set (here: blues and rock, whose
training material is mostly 2-3 s excerpts). The fit weighs every genre the
same, so the bias corrects the model, not the genre mix of the held-out split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .aggregate import class_balanced_weights, track_scores

N_BINS = 10
NOISE_DRAWS = 2000  # simulated label sets behind :func:`ece_if_calibrated`
LOG_TEMPERATURE_BOUNDS = (np.log(0.2), np.log(10.0))
BIAS_BOUND = 5.0  # |b| per genre; keeps a genre absent from the held-out tracks finite


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature and per-genre bias; the identity is ``Calibration(1.0, None)``."""

    temperature: float = 1.0
    bias: np.ndarray | None = None

    def kwargs(self) -> dict:
        """Keyword arguments of :func:`genre_model.aggregate.track_scores`."""
        return {"temperature": self.temperature, "bias": self.bias}

    def as_json(self) -> dict:
        """``temperature`` and ``bias`` rounded to 4 decimals, as sidecars and reports store them."""
        return {"temperature": round(float(self.temperature), 4),
                "bias": None if self.bias is None else [round(float(b), 4) for b in self.bias]}


def _log_scores(slice_probabilities: list[np.ndarray], method: str, aggregator: dict | None) -> np.ndarray:
    return np.log(np.stack([track_scores(p, method, aggregator=aggregator) for p in slice_probabilities]) + 1e-12)


def _fit(log_scores: np.ndarray, targets: np.ndarray) -> Calibration:
    from scipy.optimize import minimize

    n_tracks, n_genres = log_scores.shape
    weight = class_balanced_weights(targets, n_genres)
    onehot = np.eye(n_genres)[targets]

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        inverse_t, bias = np.exp(-theta[0]), theta[1:]
        z = log_scores * inverse_t + bias
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        residual = (np.exp(log_p) - onehot) * weight[:, None]
        grad_log_t = -np.sum(residual * log_scores * inverse_t)
        return float(-np.sum(weight * log_p[np.arange(n_tracks), targets])), np.r_[grad_log_t, residual.sum(axis=0)]

    bounds = [LOG_TEMPERATURE_BOUNDS] + [(-BIAS_BOUND, BIAS_BOUND)] * n_genres
    theta = minimize(loss_and_grad, np.zeros(1 + n_genres), jac=True, method="L-BFGS-B", bounds=bounds).x
    bias = theta[1:] - theta[1:].mean()  # softmax ignores a common shift
    return Calibration(float(np.exp(theta[0])), bias)


def fit_calibration(slice_probabilities: list[np.ndarray], targets: np.ndarray, method: str,
                    aggregator: dict | None = None) -> Calibration:
    """The temperature and bias that minimise the class-balanced track-level negative log-likelihood.

    ``vote`` shares are not log-scores: it gets the identity.
    """
    if method == "vote":
        return Calibration()
    return _fit(_log_scores(slice_probabilities, method, aggregator), np.asarray(targets))


def cross_validated_scores(slice_probabilities: list[np.ndarray], targets: np.ndarray, method: str,
                           aggregator: dict | None = None) -> np.ndarray:
    """Each track's calibrated scores, with the calibration fitted on all the other tracks (leave one out).

    What the calibration does for tracks it was not fitted on: the honest figure
    on the split it was fitted on.

    Returns
    -------
    scores : np.ndarray [shape=(n_tracks, n_genres)]
    """
    targets = np.asarray(targets)
    log_scores = _log_scores(slice_probabilities, method, aggregator)
    calibrations = [Calibration() if method == "vote" else _fit(np.delete(log_scores, i, axis=0), np.delete(targets, i))
                    for i in range(len(targets))]
    return np.stack([track_scores(p, method, aggregator=aggregator, **c.kwargs())
                     for p, c in zip(slice_probabilities, calibrations)])


def reliability(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> tuple[float, list[dict]]:
    """Expected calibration error over ``n_bins`` equal-width confidence bins, and the bins.

    Each bin: ``lower``, ``upper``, ``count``, mean ``confidence`` and ``accuracy``.
    """
    # rounded, so that a vote share k/n (k/n - 1e-9 after the tie-break) falls in the bin it names
    edges = np.round(np.linspace(0.0, 1.0, n_bins + 1), 6)
    which = np.clip(np.digitize(np.round(confidence, 6), edges[1:-1]), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        inside = which == b
        count = int(inside.sum())
        conf = float(confidence[inside].mean()) if count else 0.0
        acc = float(correct[inside].mean()) if count else 0.0
        ece += count / len(confidence) * abs(acc - conf)
        bins.append({"lower": round(float(edges[b]), 2), "upper": round(float(edges[b + 1]), 2),
                     "count": count, "confidence": round(conf, 4), "accuracy": round(acc, 4)})
    return float(ece), bins


def ece_if_calibrated(confidence: np.ndarray, n_bins: int = N_BINS, *, draws: int = NOISE_DRAWS,
                      seed: int = 0) -> dict:
    """The ECE that sampling noise alone gives a perfectly calibrated model with these confidences.

    Each draw makes every track right with probability equal to its confidence
    and measures the ECE of that outcome: on a few hundred tracks a flawless
    calibration still scores well above 0. Returns the ``mean`` and the 95th
    percentile (``p95``) over ``draws``; a measured ECE inside that range is
    consistent with a calibrated model.
    """
    rng = np.random.default_rng(seed)
    confidence = np.asarray(confidence, dtype=np.float64)
    eces = [reliability(confidence, rng.random(confidence.size) < confidence, n_bins)[0] for _ in range(draws)]
    return {"mean": round(float(np.mean(eces)), 4), "p95": round(float(np.percentile(eces, 95)), 4)}


def calibration_report(scores: np.ndarray, targets: np.ndarray) -> dict:
    """ECE and reliability bins of track scores (n_tracks, n_genres), and the ECE of pure sampling noise.

    Confidence is the top score.
    """
    confidence = scores.max(axis=1)
    ece, bins = reliability(confidence, scores.argmax(axis=1) == np.asarray(targets))
    return {"ece": round(ece, 4), "ece_if_calibrated": ece_if_calibrated(confidence), "reliability": bins}
