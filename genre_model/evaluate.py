"""Track-level evaluation of a TFLite model on a labelled split (runtime dependencies only)."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .aggregate import AGGREGATIONS, track_scores
from .analysis import analyse_file, track_log_mels
from .audio import decoder_identity, find_ffmpeg
from .calibration import Calibration, by_slices, calibration_report, cross_validated_scores, reliability
from .constants import N_SLICES
from .dataset import LabelledTrack, read_tracks
from .errors import ParameterError
from .inference import GenreClassifier, float_twin_path

BOOTSTRAP_DRAWS = 2000


@dataclass(frozen=True)
class SplitOutputs:
    """Slice probabilities of every track of a split, with the true labels."""

    tracks: list[LabelledTrack]
    targets: np.ndarray  # (n_tracks,) label indices
    slice_probabilities: list[np.ndarray]  # per track: (n_slices, n_labels)


# the robustness conditions: file suffix and ffmpeg output options (codec, bit rate, gain). The codecs
# keep the file's rate (GTZAN's 22 050 Hz, where LAME cuts the top mel bands) except the last, MP3 at
# 44.1 kHz as CDs are ripped, where its lowpass lies above every band the model hears
CONDITIONS = {
    "mp3_128k": (".mp3", ["-c:a", "libmp3lame", "-b:a", "128k"]),
    "opus_64k": (".opus", ["-c:a", "libopus", "-b:a", "64k"]),
    "aac_96k": (".m4a", ["-c:a", "aac", "-b:a", "96k"]),
    "gain_-10dB": (".flac", ["-af", "volume=-10dB", "-c:a", "flac"]),
    "gain_+6dB_clipped": (".flac", ["-af", "volume=6dB", "-c:a", "flac", "-sample_fmt", "s16"]),
    "mp3_128k_44.1kHz": (".mp3", ["-ar", "44100", "-c:a", "libmp3lame", "-b:a", "128k"]),
}


def degrade(path: Path, condition: str, out_dir: Path) -> Path:
    """A copy of ``path`` re-encoded under one of :data:`CONDITIONS` (+6 dB clips at 16 bits)."""
    suffix, options = CONDITIONS[condition]
    out = out_dir / f"{condition}{suffix}"
    subprocess.run([find_ffmpeg(), "-v", "error", "-nostdin", "-y", "-i", f"file:{path}", "-vn", *options,
                    f"file:{out}"], check=True, capture_output=True)
    return out


def encoder_version() -> str:
    """The version line of the ffmpeg that :func:`degrade` runs, without its copyright.

    Robustness figures hold for one encoder: codec versions change the copies, and
    encoding Opus, or decoding AAC and Opus, takes SIMD code chosen by the CPU at
    run time, so those copies differ between machines.
    """
    return decoder_identity().split(" Copyright")[0]


def split_log_mels(tracks: list[LabelledTrack], frontend: dict, *, n_slices: int = N_SLICES) -> list[np.ndarray]:
    """Log-mel slices of each track, taken exactly as the plugin takes them."""
    return [track_log_mels(t.path, frontend, n_slices=n_slices) for t in tracks]


def run_split(classifier: GenreClassifier, tracks: list[LabelledTrack], log_mels: list[np.ndarray]) -> SplitOutputs:
    """Classify every slice of every track."""
    index = {label: i for i, label in enumerate(classifier.labels)}
    targets = np.array([index[t.genre] for t in tracks])
    return SplitOutputs(tracks, targets, [classifier.predict_proba(s) for s in log_mels])


def classification_metrics(targets: np.ndarray, predictions: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-genre recall and the confusion matrix (rows: truth)."""
    n = len(labels)
    confusion = np.zeros((n, n), dtype=int)
    np.add.at(confusion, (targets, predictions), 1)
    support = confusion.sum(axis=1)
    present = support > 0
    recall = np.divide(np.diag(confusion), support, out=np.zeros(n), where=present)
    return {
        "accuracy": float(np.mean(targets == predictions)),
        "balanced_accuracy": float(recall[present].mean()),
        "per_genre_recall": {labels[i]: round(float(recall[i]), 4) for i in range(n) if present[i]},
        "confusion": {"labels": labels, "matrix": confusion.tolist()},
    }


def bootstrap_interval(statistic: Callable[[np.ndarray], float], targets: np.ndarray, *,
                       draws: int = BOOTSTRAP_DRAWS, level: float = 0.95, seed: int = 0) -> list[float]:
    """Percentile interval of ``statistic(indices)`` over the tracks resampled within each genre.

    How much the figure of a split this size moves by the luck of which tracks
    it holds; resampling keeps each genre's count, as the hidden test half was
    cut per genre from the same pool.
    """
    rng = np.random.default_rng(seed)
    by_genre = [np.flatnonzero(targets == g) for g in np.unique(targets)]
    values = [statistic(np.concatenate([rng.choice(ix, ix.size) for ix in by_genre])) for _ in range(draws)]
    tail = 100 * (1 - level) / 2
    return [round(float(v), 4) for v in np.percentile(values, [tail, 100 - tail])]


def format_interval(bounds: list[float]) -> str:
    """``[lo, hi]`` with three decimals, as the CLI and the model card print intervals."""
    return "[{:.3f}, {:.3f}]".format(*bounds)


def accuracy_intervals(targets: np.ndarray, predictions: np.ndarray, labels: list[str]) -> dict[str, list[float]]:
    """95% bootstrap intervals of track accuracy and balanced accuracy."""
    def metric(key: str) -> Callable[[np.ndarray], float]:
        return lambda ix: classification_metrics(targets[ix], predictions[ix], labels)[key]

    return {"track_accuracy": bootstrap_interval(metric("accuracy"), targets),
            "balanced_accuracy": bootstrap_interval(metric("balanced_accuracy"), targets)}


def split_track_scores(outputs: SplitOutputs, aggregation: str, calibration: Calibration = Calibration(),
                       aggregator: dict | None = None) -> np.ndarray:
    """Every track's calibrated genre scores (n_tracks, n_genres)."""
    return np.stack([track_scores(p, aggregation, aggregator=aggregator, **calibration.kwargs())
                     for p in outputs.slice_probabilities])


def summarise(outputs: SplitOutputs, labels: list[str], aggregation: str, scores: np.ndarray,
              aggregator: dict | None = None) -> dict[str, Any]:
    """The JSON-ready evaluation of one model on one split, given its track ``scores``.

    ``interval_95`` holds 95% bootstrap intervals over tracks;
    ``track_accuracy_by_aggregation`` is uncalibrated.
    """
    predictions = scores.argmax(axis=1)
    metrics = classification_metrics(outputs.targets, predictions, labels)
    intervals = accuracy_intervals(outputs.targets, predictions, labels)
    slice_hits = np.concatenate([p.argmax(axis=1) == y for p, y in zip(outputs.slice_probabilities, outputs.targets)])
    by_method = {}
    for method in AGGREGATIONS if aggregator else AGGREGATIONS[:-1]:
        s = split_track_scores(outputs, method, aggregator=aggregator)
        by_method[method] = round(float(np.mean(s.argmax(axis=1) == outputs.targets)), 4)
    return {
        "track_accuracy": round(metrics.pop("accuracy"), 4),
        "balanced_accuracy": round(metrics.pop("balanced_accuracy"), 4),
        "interval_95": intervals,
        "slice_accuracy": round(float(slice_hits.mean()), 4),
        "aggregation": aggregation,
        "track_accuracy_by_aggregation": by_method,
        **metrics,
        "n_tracks": len(outputs.tracks),
        "n_slices": int(slice_hits.size),
    }


def cross_validated(outputs: SplitOutputs, labels: list[str], aggregation: str,
                    aggregator: dict | None = None, *, intervals: bool = True) -> dict[str, Any]:
    """Accuracy and ECE when each track's calibration is fitted on the split's other tracks.

    The honest figures on the split the stored calibration was fitted on; with
    ``intervals``, the accuracies' 95% bootstrap intervals (about a second each).
    """
    scores = cross_validated_scores(outputs.slice_probabilities, outputs.targets, aggregation, aggregator)
    predictions = scores.argmax(axis=1)
    metrics = classification_metrics(outputs.targets, predictions, labels)
    figures = {"track_accuracy": round(metrics["accuracy"], 4),
               "balanced_accuracy": round(metrics["balanced_accuracy"], 4),
               "per_genre_recall": metrics["per_genre_recall"],
               "ece": round(reliability(scores.max(axis=1), predictions == outputs.targets)[0], 4),
               "by_slices": by_slices(scores, outputs.targets, outputs.slice_probabilities)}
    if intervals:
        figures["interval_95"] = accuracy_intervals(outputs.targets, predictions, labels)
    return figures


def robustness(classifier: GenreClassifier, tracks: list[LabelledTrack], reference: np.ndarray, *,
               n_slices: int, aggregation: str) -> dict[str, np.ndarray]:
    """Whether each track keeps its predicted genre (``reference``: label indices), under each of
    :data:`CONDITIONS`."""
    kept = {}
    with tempfile.TemporaryDirectory(prefix="robustness-") as tmp:
        for condition in CONDITIONS:
            kept[condition] = np.array([
                analyse_file(degrade(track.path, condition, Path(tmp)), classifier, n_slices=n_slices,
                             aggregation=aggregation).genre == classifier.labels[genre]
                for track, genre in zip(tracks, reference)])
    return kept


def evaluate(data: str | Path, model: str | Path, *, split: str | None = "valid",
             n_slices: int = N_SLICES, aggregation: str | None = None,
             calibration: bool = False, with_robustness: bool = False,
             log_mels: list[np.ndarray] | None = None) -> dict[str, Any]:
    """Evaluate the int8 model, and its float twin when it exists, on ``split`` of ``data``.

    ``log_mels``, the split's slices as :func:`split_log_mels` gives them, saves
    decoding it again when the caller has them.

    Returns one JSON-ready dict: the int8 model's metrics at the top level, the
    float twin's (with its own calibration) under ``"float"`` with
    ``"int8_float_agreement"`` (share of tracks given the same genre by both, each
    twin with its own calibration), ``"int8_float_agreement_uncalibrated"`` (the
    bare networks) and ``"int8_float_slice_agreement"`` (share of slices);
    with ``calibration``, ``ece`` and the reliability bins of the stored
    confidence, its ``temperature``, ``bias`` and ``slice_temperatures``, the
    figures of the tracks heard through one slice and through several
    (``by_slices``), and under ``cross_validated``
    the accuracy and ECE of a calibration refitted without each track in turn
    (the honest figures on the split it was fitted on); with
    ``with_robustness``, ``agreement`` per re-encoding and gain condition, under
    ``flipped`` the tracks whose genre each condition changes, and under ``encoder``
    the ffmpeg that made the copies.
    Accuracies and agreements come with 95% bootstrap intervals over tracks
    (``interval_95``, ``agreement_interval_95``), the ECE with what a perfectly
    calibrated model would show on as many tracks (``ece_if_calibrated``).
    """
    classifier = GenreClassifier(model)
    card = classifier.card
    method = aggregation or card.aggregation
    calibration_of_method = card.calibration(method, float_twin=classifier.is_float)
    if with_robustness and find_ffmpeg() is None:
        raise ParameterError("--robustness needs ffmpeg to make the re-encoded copies (on PATH, or imageio-ffmpeg)")
    tracks = read_tracks(data, split)
    unknown = sorted({t.genre for t in tracks} - set(classifier.labels))
    if unknown:
        raise ParameterError(f"genres the model does not know: {', '.join(unknown)} "
                             f"(it knows {', '.join(classifier.labels)})")
    if log_mels is None:
        log_mels = split_log_mels(tracks, classifier.frontend, n_slices=n_slices)
    outputs = run_split(classifier, tracks, log_mels)
    scores = split_track_scores(outputs, method, calibration_of_method, card.aggregator)
    report = {"model": card.tag, "split": split,
              **summarise(outputs, classifier.labels, method, scores, card.aggregator)}
    twin = float_twin_path(model)
    if twin.is_file():
        float_outputs = run_split(GenreClassifier(twin), tracks, log_mels)
        float_scores = split_track_scores(float_outputs, method, card.calibration(method, float_twin=True),
                                          card.aggregator)
        report["float"] = summarise(float_outputs, classifier.labels, method, float_scores, card.aggregator)
        if calibration:
            report["float"]["cross_validated"] = cross_validated(float_outputs, classifier.labels, method,
                                                                 card.aggregator)
        report["int8_float_agreement"] = round(float(np.mean(scores.argmax(axis=1) == float_scores.argmax(axis=1))), 4)
        bare, float_bare = (split_track_scores(o, method, aggregator=card.aggregator).argmax(axis=1)
                            for o in (outputs, float_outputs))
        report["int8_float_agreement_uncalibrated"] = round(float(np.mean(bare == float_bare)), 4)
        report["int8_float_slice_agreement"] = round(float(np.mean(np.concatenate(
            [p.argmax(axis=1) == q.argmax(axis=1)
             for p, q in zip(outputs.slice_probabilities, float_outputs.slice_probabilities)]))), 4)
    if calibration:
        report.update(calibration_report(scores, outputs.targets, outputs.slice_probabilities),
                      **calibration_of_method.as_json())
        report["cross_validated"] = cross_validated(outputs, classifier.labels, method, card.aggregator)
    if with_robustness:
        kept = robustness(classifier, tracks, scores.argmax(axis=1), n_slices=n_slices, aggregation=method)
        report["agreement"] = {c: round(float(same.mean()), 4) for c, same in kept.items()}
        report["flipped"] = {c: [str(t.path) for t, k in zip(tracks, same) if not k] for c, same in kept.items()}
        report["encoder"] = encoder_version()
        report["agreement_interval_95"] = {
            c: bootstrap_interval(lambda ix, same=same: same[ix].mean(), outputs.targets) for c, same in kept.items()}
    return report
