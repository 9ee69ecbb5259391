"""Track-level calibration: bias-corrected temperature scaling, ECE and reliability bins.

Bias-corrected temperature scaling (BCTS; Alexandari, Kundaje & Shrikumar 2020)
rescales a track's log-scores ``z`` to ``softmax(z / T + b)``: one temperature
``T`` and one bias per genre ``b``, fitted on held-out tracks. The temperature
makes the confidence honest; the bias undoes a genre the model under- or
over-predicts on music unlike its training set (here: blues and rock, whose
training material is mostly 2-3 s excerpts). The fit weighs every genre the
same, so the bias corrects the model, not the genre mix of the held-out split.

A track heard through one slice and one heard through several then get a
temperature each, ``t``, for ``softmax((z / T + b) / t)``: the mean of several
slices' probabilities is flatter than one slice's, so one temperature alone
leaves long tracks underconfident and short excerpts overconfident. These
weigh the tracks as they come, as the ECE does, and never change the top genre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .aggregate import class_balanced_weights, track_scores

N_BINS = 10
NOISE_DRAWS = 2000  # simulated label sets behind :func:`ece_if_calibrated`
LOG_TEMPERATURE_BOUNDS = (np.log(0.2), np.log(10.0))
BIAS_BOUND = 5.0  # |b| per genre; keeps a genre absent from the held-out tracks finite
MIN_GROUP_TRACKS = 20  # fewer tracks heard through one slice (or several): they keep the common temperature


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature, per-genre bias and slice temperatures; the identity is ``Calibration()``.

    ``slice_temperatures``: the temperatures of a track heard through one slice
    and of one heard through several.
    """

    temperature: float = 1.0
    bias: np.ndarray | None = None
    slice_temperatures: tuple[float, float] = (1.0, 1.0)

    def kwargs(self) -> dict:
        """Keyword arguments of :func:`genre_model.aggregate.track_scores`."""
        return {"temperature": self.temperature, "bias": self.bias, "slice_temperatures": self.slice_temperatures}

    def as_json(self) -> dict:
        """``temperature``, ``bias`` and ``slice_temperatures`` rounded to 4 decimals, as sidecars and
        reports store them."""
        one, several = (round(float(t), 4) for t in self.slice_temperatures)
        return {"temperature": round(float(self.temperature), 4),
                "bias": None if self.bias is None else [round(float(b), 4) for b in self.bias],
                "slice_temperatures": {"one": one, "several": several}}


def _log_scores(slice_probabilities: list[np.ndarray], method: str, aggregator: dict | None) -> np.ndarray:
    return np.log(np.stack([track_scores(p, method, aggregator=aggregator) for p in slice_probabilities]) + 1e-12)


def _several_slices(slice_probabilities: list[np.ndarray]) -> np.ndarray:
    return np.array([len(p) > 1 for p in slice_probabilities])


def _fit(log_scores: np.ndarray, targets: np.ndarray, several: np.ndarray) -> Calibration:
    """The class-balanced temperature and bias, then the plain slice temperatures of the calibrated scores."""
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
    temperature = float(np.exp(theta[0]))
    calibrated = log_scores / temperature + bias
    slice_temperatures = tuple(_plain_temperature(calibrated[several == heard], targets[several == heard])
                               for heard in (False, True))
    return Calibration(temperature, bias, slice_temperatures)


def _plain_temperature(log_scores: np.ndarray, targets: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``log_scores``, every track weighed
    the same; 1 for fewer than :data:`MIN_GROUP_TRACKS` tracks."""
    from scipy.optimize import minimize_scalar

    if len(targets) < MIN_GROUP_TRACKS:
        return 1.0

    def loss(log_t: float) -> float:
        z = log_scores / np.exp(log_t)
        z -= z.max(axis=1, keepdims=True)
        return float(np.sum(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(targets)), targets]))

    return float(np.exp(minimize_scalar(loss, bounds=LOG_TEMPERATURE_BOUNDS, method="bounded").x))


def fit_calibration(slice_probabilities: list[np.ndarray], targets: np.ndarray, method: str,
                    aggregator: dict | None = None) -> Calibration:
    """The temperature and bias that minimise the class-balanced track-level negative log-likelihood, then
    the slice temperatures that minimise the plain one of the tracks heard through one slice, and through several.

    ``vote`` shares are not log-scores: it gets the identity.
    """
    if method == "vote":
        return Calibration()
    return _fit(_log_scores(slice_probabilities, method, aggregator), np.asarray(targets),
                _several_slices(slice_probabilities))


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
    several = _several_slices(slice_probabilities)
    calibrations = [Calibration() if method == "vote" else
                    _fit(np.delete(log_scores, i, axis=0), np.delete(targets, i), np.delete(several, i))
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


def by_slices(scores: np.ndarray, targets: np.ndarray, slice_probabilities: list[np.ndarray]) -> dict:
    """Track count, accuracy, mean confidence and ECE of the tracks heard through ``one`` slice and through
    ``several``."""
    several = _several_slices(slice_probabilities)
    figures = {}
    for name, heard in (("one", ~several), ("several", several)):
        confidence, correct = scores[heard].max(axis=1), scores[heard].argmax(axis=1) == np.asarray(targets)[heard]
        figures[name] = {"tracks": int(heard.sum())}
        if heard.any():
            figures[name].update(accuracy=round(float(correct.mean()), 4),
                                 confidence=round(float(confidence.mean()), 4),
                                 ece=round(reliability(confidence, correct)[0], 4))
    return figures


def calibration_report(scores: np.ndarray, targets: np.ndarray, slice_probabilities: list[np.ndarray]) -> dict:
    """ECE and reliability bins of track scores (n_tracks, n_genres), the ECE of pure sampling noise, and
    the figures of the tracks heard through one slice and through several (:func:`by_slices`).

    Confidence is the top score.
    """
    confidence = scores.max(axis=1)
    ece, bins = reliability(confidence, scores.argmax(axis=1) == np.asarray(targets))
    return {"ece": round(ece, 4), "ece_if_calibrated": ece_if_calibrated(confidence), "reliability": bins,
            "by_slices": by_slices(scores, targets, slice_probabilities)}
