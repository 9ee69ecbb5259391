"""Track-level confidence calibration: temperature scaling, ECE and reliability bins."""

from __future__ import annotations

import numpy as np

from .aggregate import track_scores

N_BINS = 10
TEMPERATURES = np.exp(np.linspace(np.log(0.2), np.log(10.0), 200))  # grid of the temperature fit


def _track_scores(slice_probabilities: list[np.ndarray], method: str, temperature: float,
                  aggregator: dict | None) -> np.ndarray:
    return np.stack([track_scores(p, method, temperature=temperature, aggregator=aggregator)
                     for p in slice_probabilities])


def fit_temperature(slice_probabilities: list[np.ndarray], targets: np.ndarray, method: str,
                    aggregator: dict | None = None) -> float:
    """The temperature that minimises the track-level negative log-likelihood (1 for ``vote``)."""
    if method == "vote":
        return 1.0
    nll = [-np.mean(np.log(_track_scores(slice_probabilities, method, t, aggregator)
                           [np.arange(len(targets)), targets] + 1e-12)) for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(nll))])


def reliability(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> tuple[float, list[dict]]:
    """Expected calibration error over ``n_bins`` equal-width confidence bins, and the bins.

    Each bin: ``lower``, ``upper``, ``count``, mean ``confidence`` and ``accuracy``.
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
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


def calibration_report(slice_probabilities: list[np.ndarray], targets: np.ndarray, method: str,
                       temperature: float, aggregator: dict | None = None) -> dict:
    """ECE and reliability bins of the track confidences at ``temperature``."""
    scores = _track_scores(slice_probabilities, method, temperature, aggregator)
    ece, bins = reliability(scores.max(axis=1), scores.argmax(axis=1) == targets)
    return {"ece": round(ece, 4), "temperature": temperature, "reliability": bins}
