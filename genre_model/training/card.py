"""The model card: a Markdown page and two figures rendered from a training report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..evaluate import format_interval
from ..inference import sidecar_path
from ..plots import plot_confusion, plot_reliability
from .distill import INSTALL_SOUNDTRACKS


def confused_pairs(confusion: dict, k: int = 5) -> list[tuple[str, str, int]]:
    """The ``k`` most frequent (true, predicted) mistakes, most frequent first."""
    labels, matrix = confusion["labels"], np.array(confusion["matrix"])
    np.fill_diagonal(matrix, 0)
    order = np.argsort(matrix, axis=None)[::-1][:k]
    return [(labels[i], labels[j], int(matrix[i, j])) for i, j in zip(*np.unravel_index(order, matrix.shape))
            if matrix[i, j] > 0]


_TEACHER_TARGETS = {
    "embedding": "400-d embedding (MSD and MTT penultimate layers)",
    "tags": "100 tag logits (50 MSD and 50 MTT tags)",
}
_DISTILLATION = """Knowledge distillation: a second head (dropped at export) learns, on every slice, the
{target} of the pretrained musicnn models (Pons & Serra 2019;
ISC licence, (c) Music Technology Group, Universitat Pompeu Fabra; weights read from the `musicnn`
0.1.0 wheel at training time, never shipped), with weight {embed_weight}. Up to {unlabelled_slices} slices
of unlabelled real music (spread evenly over the files, so short files give fewer; Debian's free game
soundtracks, see `genre_model/training/distill.py`) join
the labelled windows, their genre target given by a softmax-regression probe on the teacher's
embeddings fitted on the labelled training windows (weight {unlabelled_weight}).
"""
_MUSICNN_ARCHITECTURE = ("musicnn's design (Pons & Serra 2019) at a quarter of its width: timbral filters 7 frames "
                         "wide over 40% and 70% of the mel bands and temporal filters over the mel-averaged "
                         "slice, three 1-D convs over time, max and mean over time, dense 128")
_TEACHER_GENRES = """A labelled window's genre target is {teacher_genre_weight} parts that probe's distribution, fitted
without the window's track (5 folds of tracks), to {label_share:g} parts its true genre.
"""


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def write_model_card(report: dict, model: Path, command: str) -> Path:
    """Write ``<model>.md`` with its confusion and reliability PNGs beside it; returns the page's path."""
    sidecar = json.loads(sidecar_path(model).read_text())
    valid = report["valid"]
    name = model.stem
    plot_confusion(valid["confusion"], str(model.with_name(f"{name}-confusion.png")),
                   title=f"{sidecar['name']} {sidecar['version']}: valid, track level")
    plot_reliability(valid["reliability"], str(model.with_name(f"{name}-reliability.png")),
                     title=f"valid, track level, ECE {valid['ece']:.3f}")
    twin = valid.get("float", {})
    slice_t = sidecar["slice_temperatures"]
    config, frontend = report["config"], sidecar["frontend"]
    lines = [
        f"# Model card: {sidecar['name']} {sidecar['version']}",
        "",
        f"A genre classifier for 2.56 s log-mel slices ({frontend['n_mels']} mel bands up to "
        f"{frontend['fmax'] / 1000:g} kHz x {frontend['slice_frames']} frames of 20 ms at 22 050 Hz),",
        f"full-integer int8 TFLite, {report['size_bytes'] / 1000:.0f} KB "
        f"(float twin {report['float_size_bytes'] / 1000:.0f} KB, for evaluation only).",
        f"Labels: {', '.join(sidecar['labels'])}.",
        "",
        "## Data",
        "GTZAN (Tzanetakis & Cook 2002), the part of it gathered in `shared/data/gtzan` (full 30 s clips, 15 s",
        "classical openings and 2-3 s excerpts). Training on the artist-filtered `train` split of Kereliuk,",
        "Sturm & Larsen (2015); every figure below is on the `valid` split, whose artists never occur in",
        "`train`, at **track level** (one genre per track, all of its slices aggregated). A hidden test half",
        "of the same held-out pool checks these figures. Short excerpts are padded by repetition, never dropped.",
        "",
        "## Validation, track level",
        *_table(["", "int8 (shipped)", "float twin"], [
            ["track accuracy", valid["track_accuracy"], twin.get("track_accuracy", "-")],
            ["balanced accuracy", valid["balanced_accuracy"], twin.get("balanced_accuracy", "-")],
            ["slice accuracy", valid["slice_accuracy"], twin.get("slice_accuracy", "-")],
            ["track accuracy, calibration cross-validated", valid["cross_validated"]["track_accuracy"],
             twin.get("cross_validated", {}).get("track_accuracy", "-")],
            [f"track accuracy, uncalibrated ({valid['aggregation']})",
             valid["track_accuracy_by_aggregation"][valid["aggregation"]],
             twin.get("track_accuracy_by_aggregation", {}).get(valid["aggregation"], "-")],
        ]),
        "",
        "The track figures include the calibration (below), which was fitted on these tracks (each twin",
        "has its own, fitted on its own outputs); the cross-validated row scores every track with a",
        "calibration fitted on the other valid tracks only; the uncalibrated row compares the bare",
        "networks.",
        "",
        f"On {valid['n_tracks']} tracks every figure moves by chance. 95% bootstrap intervals over the tracks",
        "(resampled within each genre, as the hidden test half was cut): track accuracy "
        + format_interval(valid["interval_95"]["track_accuracy"]) + ",",
        "balanced accuracy " + format_interval(valid["interval_95"]["balanced_accuracy"]) + "; cross-validated "
        + format_interval(valid["cross_validated"]["interval_95"]["track_accuracy"]) + " and "
        + format_interval(valid["cross_validated"]["interval_95"]["balanced_accuracy"]) + ".",
        "",
        f"{valid['n_tracks']} tracks, {valid['n_slices']} slices; int8 and float agree on "
        f"{valid.get('int8_float_agreement', float('nan')):.1%} of the tracks, each with its own calibration",
        f"({valid.get('int8_float_agreement_uncalibrated', float('nan')):.1%} uncalibrated), and on "
        f"{valid.get('int8_float_slice_agreement', float('nan')):.1%} of the slices.",
        "",
        "Per-genre recall (int8):",
        "",
        *_table(["genre", "recall", "tracks"], [
            [g, r, sum(valid["confusion"]["matrix"][valid["confusion"]["labels"].index(g)])]
            for g, r in valid["per_genre_recall"].items()]),
        "",
        "Most confused pairs (true -> predicted, tracks): "
        + "; ".join(f"{a} -> {b} ({n})" for a, b, n in confused_pairs(valid["confusion"])) + ".",
        "",
        f"![confusion matrix]({name}-confusion.png)",
        "",
        "## Aggregation of slices into a track",
        "The learned aggregator is a softmax regression on each track's mean probability, mean",
        "log-probability and vote share, fitted on the training split's slice outputs only. Each aggregation",
        "is then calibrated on valid (next section); the calibrated columns are cross-validated: every track",
        "is scored by a calibration fitted on the other valid tracks.",
        "",
        *_table(["aggregation", "track accuracy", "balanced accuracy", "calibrated track accuracy",
                 "calibrated balanced accuracy", "calibrated ECE", "temperature"], [
            [m, c["track_accuracy"], c["balanced_accuracy"], c["calibrated_track_accuracy"],
             c["calibrated_balanced_accuracy"], c["calibrated_ece"], c["temperature"]]
            for m, c in report["aggregation_comparison"].items()]),
        "",
        f"Default: **{sidecar['aggregation']}** (best calibrated track accuracy, then balanced accuracy, then ECE;",
        "chosen by the cross-validated figures above, so the default's cross-validated accuracy below includes",
        "this pick of one aggregation among four).",
        "",
        "## Calibration",
        "Bias-corrected temperature scaling (Alexandari et al. 2020): the stored `genre_confidence` is",
        "softmax((z / T + b) / t) of the aggregated log-scores z, with a temperature T and one bias per genre",
        f"b (T = {sidecar['temperature']:.3f}) fitted on the validation split by class-balanced track-level",
        "negative log-likelihood. The bias undoes what the model under-predicts on artists it never heard (b: "
        + ", ".join(f"{g} {b:+.2f}" for g, b in zip(sidecar["labels"], sidecar.get("bias") or [])) + ").",
        f"Then t = {slice_t['one']:.3f} for a track heard through one slice (shorter than two slices) and",
        f"t = {slice_t['several']:.3f} for one heard through several, fitted on each group's tracks as they come,",
        "as the ECE counts them: the mean of several slices' probabilities is flatter than one slice's, so T",
        "alone leaves long tracks underconfident and short excerpts overconfident. t never changes the top genre.",
        "",
        *_table(["heard through", "tracks", "accuracy", "mean confidence", "ECE", "ECE, cross-validated"], [
            [heard, group["tracks"], group.get("accuracy", "-"), group.get("confidence", "-"), group.get("ece", "-"),
             valid["cross_validated"]["by_slices"][heard].get("ece", "-")]
            for heard, group in valid["by_slices"].items()]),
        "",
        "Its figures on valid, in-sample and cross-validated (leave one track out):",
        "",
        *_table(["", "in-sample", "cross-validated"], [
            ["track accuracy", valid["track_accuracy"], valid["cross_validated"]["track_accuracy"]],
            ["balanced accuracy", valid["balanced_accuracy"], valid["cross_validated"]["balanced_accuracy"]],
            ["ECE (10 bins)", valid["ece"], valid["cross_validated"]["ece"]],
        ]),
        "",
        "ECE on a few hundred tracks is mostly sampling noise: a perfectly calibrated model with these",
        f"confidences would show {valid['ece_if_calibrated']['mean']} on as many tracks on average, and more than "
        f"{valid['ece_if_calibrated']['p95']} in one",
        "draw in 20 (simulated: each track right with probability equal to its confidence). A measured ECE",
        "below that 95th percentile is consistent with calibration.",
        "",
        f"![reliability diagram]({name}-reliability.png)",
        "",
        "## Robustness",
        "Share of valid tracks whose predicted genre is unchanged when the file is re-encoded or its gain changed:",
        "",
        *_table(["condition", "agreement", "95% interval"],
                [[c, a, format_interval(valid["agreement_interval_95"][c])] for c, a in valid["agreement"].items()]),
        "",
        "The copies keep the file's sample rate (GTZAN's 22 050 Hz, where LAME cuts the top mel bands), except",
        "`mp3_128k_44.1kHz`: MP3 at 44.1 kHz, as CDs are ripped, whose lowpass lies above every band the model hears.",
        "",
        *([f"Copies made and decoded by {valid['encoder']}, on one machine. Encoding Opus, and decoding "
           "AAC and Opus, take SIMD code chosen by the CPU at run time, so those rows can differ by a track "
           "or two on another machine; the MP3 and gain copies of one track, checked on three CPUs (AVX-512, and "
           "AVX2 and SSE4.2 under qemu), came out bit-identical.", ""]
          if "encoder" in valid else []),
        "## Training",
        f"Seed {config['seed']}, "
        + (f"{config['pretrain_epochs']} epochs on the teacher's targets alone, then "
           if config.get("pretrain_epochs") and config.get("distill") else "")
        + f"{config['epochs']} epochs, batch {config['batch_size']}, Adam with cosine decay "
        f"from {config['learning_rate']}, label smoothing {config['label_smoothing']}; windows every "
        f"{config['window_hop_frames']} frames"
        + (f" (at least {config['min_windows']} a track: a shorter excerpt's shifted over its slack, or "
           "rotated through its repetition)" if config.get("min_windows", 1) > 1 else "")
        + (f" ({config['time_jitter']} frames longer, at a random sub-frame phase, and cropped at a random "
           "offset every epoch)" if config.get("time_jitter") else "")
        + ", each epoch in the original or a degraded copy "
        f"({', '.join(config['codecs']) or 'none'}); random gain +-{config['gain_db']} dB, spectral tilt +-{config['tilt']} ln units"
        + (" (on the mel power, under the log floor)" if config.get("gain_in_power") else "") + ", "
        + (f"pitch shift by up to {config['pitch_bands']} mel bands, " if config.get("pitch_bands") else "")
        + f"lowpass on {config.get('lowpass', 0.0):.0%} of the windows, "
        f"{config['time_masks']} time and {config['freq_masks']} frequency masks"
        + (f"; each window also in a second version, drawn and augmented on its own, with the Jensen-Shannon "
           f"divergence between the two genre predictions weighted {config['consistency_weight']:g} "
           "(AugMix's consistency loss, Hendrycks et al. 2020)" if config.get("consistency_weight") else "")
        + ". "
        "Architecture: " + (f"each slice's log-mels floored {config['top_db']:g} dB below its loudest, "
                            if config.get("top_db") else "")
        + ("each slice's mean log-mel subtracted (playback level drops out), "
           if config.get("centre_level") else "")
        + (_MUSICNN_ARCHITECTURE if config.get("architecture") == "musicnn" else
           f"conv3x3-BN-ReLU-maxpool blocks {tuple(config['widths'])} (first conv stride "
           f"{config.get('stem_stride', 1)}"
           + ("; the others depthwise-separable" if config.get("separable") else "") + "), conv, global "
           f"{'average and max' if config.get('pooling') == 'mean+max' else 'average'} pooling")
        + f", dropout {config['dropout']}, softmax. "
        f"Trained in {report['train_seconds'] / 60:.0f} minutes on 2 CPU cores.",
        "",
        *(_DISTILLATION.format(**config, target=_TEACHER_TARGETS[config.get("teacher_target", "embedding")])
          .splitlines() if config.get("distill") else []),
        *(_TEACHER_GENRES.format(**config, label_share=1 - config["teacher_genre_weight"]).splitlines()
          if config.get("distill") and config.get("teacher_genre_weight") else []),
        "Reproduce (2 CPU cores, from the repository root, `pip install '.[train]'` first"
        + (f"; the unlabelled music, as root: `{INSTALL_SOUNDTRACKS}`" if config.get("distill") else "") + "):",
        "",
        "```",
        command,
        "```",
        "",
    ]
    page = model.with_suffix(".md")
    page.write_text("\n".join(lines))
    return page
