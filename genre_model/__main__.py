"""``python -m genre_model train|evaluate|predict``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .aggregate import AGGREGATIONS
from .constants import N_SLICES
from .errors import GenreModelError
from .inference import DEFAULT_MODEL


def _parser() -> argparse.ArgumentParser:
    under_m = Path(sys.argv[0]).name == "__main__.py"  # else argparse names the script: spectrogenre-model
    parser = argparse.ArgumentParser(prog="python -m genre_model" if under_m else None,
                                     description="Train, evaluate and run the genre model of spectrogenre.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model on labelled audio (needs the [train] extra)",
                           description="Train the CNN on <DATA>/<genre>/<file> (or a split list), "
                           "convert it to int8 TFLite and evaluate it on the validation split.")
    train.add_argument("data", help="folder with <genre>/<file> audio and splits/<name>.txt lists")
    train.add_argument("--out", default=str(DEFAULT_MODEL), help="model path to write (default: %(default)s)")
    train.add_argument("--split", default="train", help="training split (default: %(default)s)")
    train.add_argument("--valid-split", default="valid", help="split to evaluate on ('' for none)")
    train.add_argument("--epochs", type=int, default=40)
    train.add_argument("--pretrain-epochs", type=int, default=0,
                       help="with --distill, epochs on the teacher's targets alone before the genre "
                       "is trained (default: %(default)s)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--version", help="model version stored in the sidecar (default: 'dev+' and the first "
                       "8 hex digits of the int8 model's sha256, so that tracks tagged by another model are "
                       "analysed again)")
    train.add_argument("--distill", action="store_true",
                       help="also learn from the musicnn teacher on labelled and unlabelled music")
    train.add_argument("--unlabelled-weight", type=float, default=0.2,
                       help="weight of the teacher probe's genre on unlabelled slices (default: %(default)s)")
    train.add_argument("--teacher-genre-weight", type=float, default=0.0,
                       help="with --distill, share of the teacher probe's genre distribution in a labelled "
                       "slice's target (default: %(default)s)")
    train.add_argument("--teacher-target", default="embedding", choices=("embedding", "tags"),
                       help="with --distill, what the student learns of the teacher on every slice: its 400-d "
                       "embedding or its 100 tag logits (default: %(default)s)")
    train.add_argument("--embed-weight", type=float, default=1.0,
                       help="with --distill, weight of the loss on the teacher's embedding or tags against "
                       "the genre's cross-entropy (default: %(default)s)")
    train.add_argument("--stem-stride", type=int, default=1, choices=(1, 2),
                       help="stride of the first convolution: 2 trains 4x faster (default: %(default)s)")
    train.add_argument("--architecture", default="cnn", choices=("cnn", "musicnn"),
                       help="3x3 conv blocks, or the musicnn teacher's own design scaled down to a quarter of "
                       "its width (default: %(default)s)")
    train.add_argument("--widths", default="16,32,64,128",
                       help="channels of the four conv blocks of the cnn, comma-separated (default: %(default)s)")
    train.add_argument("--separable", action="store_true",
                       help="depthwise-separable convolutions after the first, for wider layers at the same size")
    train.add_argument("--centre-level", action="store_true",
                       help="subtract each slice's mean log-mel inside the network, so that playback level "
                       "and mastering loudness do not reach the genre")
    train.add_argument("--top-db", type=float, default=0.0,
                       help="inside the network, raise every log-mel to at least TOP_DB decibels below the "
                       "slice's loudest, so that the floor moves with the level; 0 for none (default: %(default)s)")
    train.add_argument("--pooling", default="mean", choices=("mean", "mean+max"),
                       help="global pooling of the last feature map: average, or average and maximum "
                       "concatenated (default: %(default)s)")
    train.add_argument("--unlabelled-slices", type=int, default=4000,
                       help="slices of unlabelled music for --distill (default: %(default)s)")
    train.add_argument("--codecs", default="mp3,opus",
                       help="degraded copies of every training track, comma-separated, from mp3, opus, aac "
                       "and clip (driven 3-12 dB into clipping); '' for none (default: %(default)s)")
    train.add_argument("--gain-in-power", action="store_true",
                       help="apply the random gain and tilt to the mel power under the log floor, as a real "
                       "level change does (default: shift the log-mels, floor included)")
    train.add_argument("--consistency-weight", type=float, default=0.0,
                       help="weight of the Jensen-Shannon divergence between the genre predictions of two "
                       "versions of each window (codec copy, gain, masks); 0 for none (default: %(default)s)")
    train.add_argument("--mixup", type=float, default=0.0,
                       help="mix every training window with another (as audio, targets alike) by a weight drawn "
                       "from Beta(ALPHA, ALPHA); 0 for none (default: %(default)s)", metavar="ALPHA")
    train.add_argument("--pitch-bands", type=int, default=0,
                       help="shift each training window up or down by up to this many mel bands (about half "
                       "a semitone each above 1 kHz); 0 for none (default: %(default)s)")
    train.add_argument("--min-windows", type=int, default=1,
                       help="training windows per track at least: an excerpt too short for them gets them "
                       "shifted over its slack, or, when shorter than a slice, rotated so that the seam of "
                       "its repetition moves (default: %(default)s)")
    train.add_argument("--time-jitter", type=int, default=0, metavar="FRAMES",
                       help="cut each training window this many frames longer and crop it at a random offset "
                       "every epoch, each window also at a random sub-frame phase (default: %(default)s)")
    train.add_argument("--lowpass", type=float, default=0.0,
                       help="share of training windows whose top mel bands are cut, as by a lossy "
                       "encoder's lowpass (default: %(default)s)")

    ev = sub.add_parser("evaluate", help="track-level accuracy of a model on a labelled split",
                        description="Evaluate a model (and its float twin, when present) at track level.")
    ev.add_argument("data", help="folder with <genre>/<file> audio and splits/<name>.txt lists")
    ev.add_argument("--model", default=str(DEFAULT_MODEL), help="the .tflite (default: the shipped model)")
    ev.add_argument("--split", default="valid", help="split list to evaluate ('' for every file)")
    ev.add_argument("--slices", type=int, default=N_SLICES, help="slices per track (default: %(default)s)")
    ev.add_argument("--aggregation", choices=AGGREGATIONS, help="default: the model's own")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--plot", metavar="FILE.png", help="draw the confusion matrix (needs matplotlib: pip install '.[plot]')")
    ev.add_argument("--calibration", action="store_true",
                    help="add the expected calibration error (10 bins), the reliability bins, the figures "
                    "of the tracks heard through one slice and through several, and those of a calibration "
                    "refitted without each track in turn")
    ev.add_argument("--reliability-plot", metavar="FILE.png", help="draw the reliability diagram (implies --calibration; needs matplotlib)")
    ev.add_argument("--robustness", action="store_true",
                    help="add the agreement under MP3 (at the file's rate and at 44.1 kHz), Opus and AAC re-encoding "
                    "and -10/+6 dB gain "
                    "(the JSON also lists the tracks each condition flips)")

    pr = sub.add_parser("predict", help="print the genre of audio files",
                        description="Print genre, confidence and the top 3 genres of each file.")
    pr.add_argument("files", nargs="+", help="audio files (any format ffmpeg decodes)")
    pr.add_argument("--model", default=str(DEFAULT_MODEL), help="the .tflite (default: the shipped model)")
    pr.add_argument("--slices", type=int, default=N_SLICES, help="slices per track (default: %(default)s)")
    pr.add_argument("--aggregation", choices=AGGREGATIONS, help="default: the model's own")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    package_log = logging.getLogger("genre_model")
    package_log.addHandler(handler)
    package_log.setLevel(logging.INFO)
    package_log.propagate = False
    try:
        if args.command == "train":
            return _train(args, argv)
        if args.command == "evaluate":
            return _evaluate(args)
        return _predict(args)
    except GenreModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _train(args, argv: list[str] | None) -> int:
    try:
        import keras  # noqa: F401  (train.py imports it when training starts: checked here, before any work)

        from .training.train import TrainConfig, train
    except ImportError as exc:
        print(f"error: training needs the [train] extra (pip install '.[train]'): {exc}", file=sys.stderr)
        return 1
    from .training.augment import COPIES
    from .training.card import write_model_card

    codecs = tuple(c for c in args.codecs.split(",") if c)
    if set(codecs) - set(COPIES):
        print(f"error: --codecs must be among {', '.join(COPIES)}, got {args.codecs}", file=sys.stderr)
        return 1

    try:
        config = TrainConfig(data=args.data, out=args.out, train_split=args.split,
                             valid_split=args.valid_split or None, epochs=args.epochs,
                             pretrain_epochs=args.pretrain_epochs,
                             seed=args.seed, version=args.version, distill=args.distill,
                             unlabelled_slices=args.unlabelled_slices, stem_stride=args.stem_stride,
                             pooling=args.pooling, unlabelled_weight=args.unlabelled_weight,
                             teacher_genre_weight=args.teacher_genre_weight, lowpass=args.lowpass,
                             teacher_target=args.teacher_target, embed_weight=args.embed_weight,
                             consistency_weight=args.consistency_weight, mixup=args.mixup,
                             gain_in_power=args.gain_in_power, separable=args.separable,
                             centre_level=args.centre_level, top_db=args.top_db, pitch_bands=args.pitch_bands,
                             min_windows=args.min_windows, time_jitter=args.time_jitter, architecture=args.architecture,
                             widths=tuple(int(w) for w in args.widths.split(",")),
                             codecs=codecs)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report = train(config)
    if "valid" in report:
        command = "python -m genre_model " + " ".join(sys.argv[1:] if argv is None else argv)
        page = write_model_card(report, Path(args.out).with_suffix(".tflite"), command)
        print(f"model card: {page}")
    return 0


def _evaluate(args) -> int:
    from .evaluate import evaluate, format_interval

    report = evaluate(args.data, args.model, split=args.split or None, n_slices=args.slices,
                      aggregation=args.aggregation, calibration=args.calibration or bool(args.reliability_plot),
                      with_robustness=args.robustness)
    title = f"{report['model']} on {args.split or 'every track'}"
    if args.plot:
        from .plots import plot_confusion

        plot_confusion(report["confusion"], args.plot, title=title)
    if args.reliability_plot:
        from .plots import plot_reliability

        plot_reliability(report["reliability"], args.reliability_plot, title=f"{title}, ECE {report['ece']:.3f}")
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{title}: {report['n_tracks']} tracks")
        print("  (95% bootstrap intervals over tracks in brackets)")
        for key in ("track_accuracy", "balanced_accuracy", "slice_accuracy"):
            twin = report.get("float", {}).get(key)
            interval = report["interval_95"].get(key)
            print(f"  {key:18} {report[key]:.3f}" + (f" {format_interval(interval)}" if interval else "")
                  + (f"   float twin {twin:.3f}" if twin is not None else ""))
        for genre, recall in report["per_genre_recall"].items():
            print(f"  recall {genre:11} {recall:.3f}")
        if "ece" in report:
            noise = report["ece_if_calibrated"]
            print(f"  ECE (10 bins)      {report['ece']:.3f} at temperature {report['temperature']:.2f}; "
                  f"a perfectly calibrated model shows {noise['mean']:.3f} (95th percentile {noise['p95']:.3f}) "
                  "on as many tracks")
            held_out = report["cross_validated"]
            print(f"  calibration refitted without each track: track_accuracy {held_out['track_accuracy']:.3f} "
                  f"{format_interval(held_out['interval_95']['track_accuracy'])}, "
                  f"balanced_accuracy {held_out['balanced_accuracy']:.3f}, ECE {held_out['ece']:.3f}")
            for heard, t in report["slice_temperatures"].items():
                group, cv = report["by_slices"][heard], held_out["by_slices"][heard]
                if group["tracks"]:
                    print(f"  heard through {heard} slice{'s' if heard == 'several' else ''}: {group['tracks']} tracks, "
                          f"accuracy {group['accuracy']:.3f}, mean confidence {group['confidence']:.3f}, "
                          f"ECE {group['ece']:.3f} (refitted without each track {cv['ece']:.3f}), "
                          f"slice temperature {t:.2f}")
        for condition, agreement in report.get("agreement", {}).items():
            print(f"  agreement {condition:18} {agreement:.3f} "
                  + format_interval(report["agreement_interval_95"][condition]))
        if "encoder" in report:
            print(f"  copies made by {report['encoder']}")
    return 0


def _predict(args) -> int:
    from .analysis import analyse_file
    from .errors import DecodeError
    from .inference import GenreClassifier

    classifier = GenreClassifier(args.model)
    status = 0
    for path in args.files:
        try:
            p = analyse_file(path, classifier, n_slices=args.slices, aggregation=args.aggregation)
        except DecodeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
            continue
        top = ", ".join(f"{g} {s:.2f}" for g, s in p.top(3))
        print(f"{path}: {p.genre} {p.confidence:.2f} (top 3: {top})")
    return status


if __name__ == "__main__":
    sys.exit(main())
