"""Train the genre CNN on labelled audio and ship it as a full-integer int8 TFLite model.

Reads like a recipe, top to bottom: decode the training split, cut slice-long
windows (with lossy-codec copies), log-mel them with the very front-end the
plugin uses, train a small CNN with log-mel augmentation, convert to int8 with a
representative dataset, evaluate both twins on the validation split, and write
``<out>.tflite``, ``<out>.float.tflite``, ``<out>.json`` and ``<out>.report.json``.

The validation split never picks epochs; it fits the calibration and picks the
aggregation (:func:`finish`), and is then evaluated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..audio import decode_full, decoder_identity
from ..constants import HOP_LENGTH, N_MELS, SLICE_FRAMES, frontend_params
from ..dataset import LabelledTrack, read_tracks
from ..errors import DecodeError, ParameterError
from ..aggregate import AGGREGATIONS, fit_aggregator
from ..calibration import fit_calibration
from ..evaluate import (classification_metrics, cross_validated, evaluate, run_split, split_log_mels,
                        split_track_scores)
from ..features import log_mel_spectrogram
from ..inference import GenreClassifier, float_twin_path, sha256_of, sidecar_path
from ..slicing import training_windows
from .augment import CLIP_DRIVE_DB, CODECS, augment_log_mels, degraded_copy, gain_db_to_log_offset, mixup
from .cache import CACHE_ROOT, atomic_write

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything that determines the trained model; stored in its report."""

    data: str
    out: str
    train_split: str = "train"
    valid_split: str | None = "valid"
    name: str = "gtzan-cnn"
    version: str | None = None  # None: "dev+" and the int8 model's sha256 (8 digits), never a release's
    seed: int = 0
    epochs: int = 40
    pretrain_epochs: int = 0  # with distill: epochs on the teacher's targets alone before the genre is trained
    batch_size: int = 32
    learning_rate: float = 1e-3
    label_smoothing: float = 0.1
    window_hop_frames: int = 32  # training windows every 0.64 s
    min_windows: int = 1  # windows per track at least: a short excerpt gets them shifted, or rotated with its seam
    time_jitter: int = 0  # frames: each window is cut this much longer and cropped at a random offset every epoch
    codecs: tuple[str, ...] = ("mp3", "opus")  # degraded copies of every training track (augment.COPIES)
    architecture: str = "cnn"  # "cnn": 3x3 conv blocks; "musicnn": musicnn's front-end and back-end, scaled down
    widths: tuple[int, ...] = (16, 32, 64, 128)  # of the "cnn" architecture
    separable: bool = False  # depthwise-separable convs after the stem: ~3x the width for the same size
    stem_stride: int = 1  # stride of the first conv: 2 makes the network 4x cheaper
    centre_level: bool = False  # subtract each slice's mean log-mel in the network: playback level drops out
    top_db: float = 0.0  # in the network, raise every log-mel to at least this far below the slice's loudest (0: off)
    pooling: str = "mean"  # over frequency and time: "mean", or "mean+max" (concatenated, as musicnn's back-end)
    dropout: float = 0.3
    gain_db: float = 26.0  # random gain in [-gain_db, +gain_db]
    gain_in_power: bool = False  # apply gain and tilt to the mel power under the log floor, as a real level change
    tilt: float = 4.3  # random spectral tilt (ln-power units across the mel axis)
    pitch_bands: int = 0  # random shift of each window by up to this many mel bands (~0.46 semitone each)
    lowpass: float = 0.0  # share of windows whose top mel bands are cut, as a lossy encoder's lowpass does
    time_masks: int = 2
    freq_masks: int = 2
    threads: int = 2
    distill: bool = False  # learn from the musicnn teacher too (training/distill.py)
    unlabelled_slices: int = 4000  # slices of unlabelled music for distillation
    teacher_target: str = "embedding"  # what the second head learns: "embedding" (400-d) or "tags" (100 logits)
    embed_weight: float = 1.0  # weight of the teacher-target loss
    unlabelled_weight: float = 0.2  # weight of an unlabelled slice's genre loss (a labelled one: ~1)
    teacher_genre_weight: float = 0.0  # share of the teacher probe's genre distribution in a labelled target
    consistency_weight: float = 0.0  # Jensen-Shannon term between two versions of a window (0: off)
    mixup: float = 0.0  # alpha of the Beta distribution of mixup's weights (0: off)
    cache_dir: str | None = str(CACHE_ROOT / "windows")  # prepared windows, reused across runs (None: off)

    def __post_init__(self):
        if self.mixup and self.consistency_weight:
            raise ValueError("mixup and the consistency term do not combine: pick one")
        if self.time_jitter and self.min_windows > 1:
            raise ValueError("time jitter and min_windows do not combine: pick one")
        if self.architecture not in ("cnn", "musicnn"):
            raise ValueError(f"unknown architecture {self.architecture!r}: 'cnn' or 'musicnn'")


def track_windows(track: LabelledTrack, config: TrainConfig) -> list[np.ndarray]:
    """Log-mel slices of a track and of its degraded copies (codecs, clipping)."""
    y = decode_full(track.path)
    seed = zlib.crc32(track.path.name.encode())  # the same every run
    rng = np.random.default_rng(seed)  # a clip's drive
    versions = [y] + [degraded_copy(y, kind, rng) for kind in config.codecs]
    hop = config.window_hop_frames * HOP_LENGTH
    try:
        if config.time_jitter:
            return [log_mel_spectrogram(jittered_windows(v, hop=hop, extra_frames=config.time_jitter,
                                                         rng=np.random.default_rng(seed + 1)))  # same phases
                    for v in versions]
        return [log_mel_spectrogram(training_windows(v, hop=hop, min_windows=config.min_windows)) for v in versions]
    except ParameterError as exc:  # too short to pad
        raise DecodeError(track.path, str(exc)) from None


def jittered_windows(y: np.ndarray, *, hop: int, extra_frames: int, rng: np.random.Generator) -> np.ndarray:
    """:func:`training_windows`, each ``extra_frames`` frames longer, to be cropped at a random offset.

    Each window also starts up to a frame later (a random sub-frame phase, fixed per
    window), and no later than the track's end allows, so a crop never reaches past it.
    A track shorter than a longer window is repeated to fill it: a crop moves its seam.
    """
    windows = training_windows(y, hop=hop)
    n_ext = windows.shape[1] + extra_frames * HOP_LENGTH
    if y.shape[-1] < n_ext:
        return np.tile(y, -(-n_ext // y.shape[-1]))[None, :n_ext].repeat(len(windows), axis=0)
    starts = np.minimum(np.arange(len(windows)) * hop + rng.integers(0, HOP_LENGTH, len(windows)),
                        y.shape[-1] - n_ext)
    return np.stack([y[s: s + n_ext] for s in starts])


def cached_windows(tracks: list[LabelledTrack], config: TrainConfig) -> list[np.ndarray]:
    """:func:`track_windows` of every track, stored as float16 in ``config.cache_dir``.

    The key covers the files (absolute path, size, mtime), the decoder, the copies (each codec's ffmpeg
    arguments, a clip's drive range), the hop, the windows per track and the front-end.
    """
    if not config.cache_dir:
        return [np.stack(track_windows(t, config)) for t in tracks]
    copies = [f"clip{CLIP_DRIVE_DB}" if kind == "clip" else CODECS[kind] for kind in config.codecs]
    key = json.dumps([[str(t.path.resolve()), t.path.stat().st_size, t.path.stat().st_mtime_ns] for t in tracks]
                     + [decoder_identity(), copies, config.window_hop_frames, frontend_params()]
                     + ([config.min_windows] if config.min_windows > 1 else [])
                     + ([f"jitter{config.time_jitter}"] if config.time_jitter else []))
    path = Path(config.cache_dir) / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if path.is_file():
        try:
            with np.load(path) as cached:
                return [cached[str(i)].astype(np.float32) for i in range(len(tracks))]
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:  # cut short, or empty: rebuilt
            log.warning("window cache %s unreadable (%s); building it again", path, exc)
    windows = [np.stack(track_windows(t, config)).astype(np.float16) for t in tracks]
    with atomic_write(path) as f:
        np.savez(f, **{str(i): w for i, w in enumerate(windows)})
    return [w.astype(np.float32) for w in windows]  # as a later run reads them back: the same inputs


def build_dataset(tracks: list[LabelledTrack], labels: list[str], config: TrainConfig):
    """The windows of all tracks, in every version, with their labels and sample weights.

    Returns ``x`` of shape (n_versions, n_windows, n_mels, frames): version 0 is
    the original audio, the others its lossy-codec copies, window for window;
    then each window's genre index, sample weight and track index.
    Every track weighs the same however long it is (its windows share a weight
    of 1), and every genre weighs the same however many tracks it has.
    """
    x, y, track_id = [], [], []
    for i, (track, windows) in enumerate(zip(tracks, cached_windows(tracks, config))):
        x.append(windows)
        y += [labels.index(track.genre)] * windows.shape[1]
        track_id += [i] * windows.shape[1]
    x = np.concatenate(x, axis=1)
    y, track_id = np.array(y), np.array(track_id)
    track_genre = np.array([labels.index(t.genre) for t in tracks])
    tracks_per_genre = np.bincount(track_genre, minlength=len(labels))
    weight = 1.0 / np.bincount(track_id)[track_id] / tracks_per_genre[y]
    return x, y, weight / weight.mean(), track_id


def build_model(n_labels: int, config: TrainConfig, *, embed_dim: int = 0, log_mel_std: float = 1.0):
    """Log-mel slices -> features (:func:`_cnn_features` or :func:`_musicnn_features`) -> dropout, softmax.

    Returns the model to ship (slices -> genre probabilities) and the model to
    train, whose output also holds ``embed_dim`` teacher-embedding predictions
    after the genre probabilities (the same model when ``embed_dim`` is 0 and
    there is no consistency term). With ``config.consistency_weight``, the
    model to train takes two versions of each window and appends the genre
    probabilities of the second, through the same weights.

    With ``config.centre_level`` the network first subtracts each slice's mean
    (normalised) log-mel: a gain adds the same constant to every log-mel above
    the floor, so playback level and mastering loudness (a production
    signature) no longer reach the genre.

    With ``config.top_db`` every log-mel below the slice's loudest by more
    than ``top_db`` decibels is raised to that level (librosa's ``top_db``;
    ``log_mel_std`` converts it to the normalised input): the floor then moves
    with the gain, and the quiet detail that lossy codecs drop or add is cut.
    """
    import keras
    from keras import layers, ops

    inputs = keras.Input((N_MELS, SLICE_FRAMES, 1), name="log_mel")
    x = inputs
    if config.top_db:
        floor = gain_db_to_log_offset(config.top_db) / log_mel_std
        x = layers.Lambda(lambda t: ops.maximum(t, ops.max(t, axis=(1, 2, 3), keepdims=True) - floor),
                          name="top_db")(x)
    if config.centre_level:  # two means of 128: LiteRT's XNNPACK int8 mean overflows on one of 16 384
        x = layers.Lambda(lambda t: t - ops.mean(ops.mean(t, axis=2, keepdims=True), axis=1, keepdims=True),
                          name="centre_level")(x)
    features = _musicnn_features(x) if config.architecture == "musicnn" else _cnn_features(x, config)
    genre = layers.Dense(n_labels, activation="softmax", name="genre")(layers.Dropout(config.dropout)(features))
    shipped = keras.Model(inputs, genre)
    trained = shipped
    if embed_dim:
        embedding = layers.Dense(embed_dim, name="teacher_embedding")(features)
        trained = keras.Model(inputs, layers.Concatenate()([genre, embedding]))
    if config.consistency_weight:
        other = keras.Input((N_MELS, SLICE_FRAMES, 1), name="log_mel_other_version")
        trained = keras.Model([inputs, other], layers.Concatenate()([trained(inputs), shipped(other)]))
    return shipped, trained


def _cnn_features(x, config: TrainConfig):
    """conv3x3-BN-ReLU-maxpool blocks, a 3x3 conv, global average (and max) pooling.

    With ``config.separable`` every conv after the first is depthwise-separable
    (MobileNet, Howard et al. 2017): a 3x3 per-channel conv then a 1x1 conv,
    about 9x fewer weights per layer, spent on wider layers.
    """
    from keras import layers

    conv = layers.SeparableConv2D if config.separable else layers.Conv2D
    for i, width in enumerate(config.widths):
        if i == 0:  # the stem stays a full conv: one input channel leaves nothing to separate
            x = layers.Conv2D(width, 3, strides=config.stem_stride, padding="same", use_bias=False)(x)
        else:
            x = conv(width, 3, padding="same", use_bias=False)(x)
        # momentum 0.9: with ~100 steps an epoch, 0.99 leaves the moving statistics far off
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
    x = conv(config.widths[-1], 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.ReLU()(x)
    features = layers.GlobalAveragePooling2D()(x)
    if config.pooling == "mean+max":
        features = layers.Concatenate()([features, layers.GlobalMaxPooling2D()(x)])
    return features


MUSICNN_TIMBRAL_SHARES = (0.4, 0.7)  # heights of the timbral filters, as shares of the mel bands
MUSICNN_TEMPORAL_SHARES = (1.0, 0.5, 0.25)  # lengths of the temporal filters, as shares of the frames


def _musicnn_features(x):
    """musicnn (Pons & Serra 2019), the teacher's own design, at a quarter of its width.

    Front-end: timbral filters 7 frames wide spanning 40% and 70% of the mel
    bands (32 each, max over the remaining bands), and temporal filters over
    the mel-averaged input spanning the whole slice, a half and a quarter
    (16 each); mid-end: three 1-D convs of 64 over time, residual on the last
    two; back-end: global max and mean over time of every layer's channels,
    BatchNorm, a dense layer of 128.
    """
    from keras import layers

    def conv_bn_relu(t, filters, kernel, padding="same"):
        t = layers.Conv2D(filters, kernel, padding=padding, use_bias=False)(t)
        return layers.ReLU()(layers.BatchNormalization(momentum=0.9)(t))

    branches = []
    for share in MUSICNN_TIMBRAL_SHARES:
        height = int(share * N_MELS)
        t = conv_bn_relu(layers.ZeroPadding2D(((0, 0), (3, 3)))(x), 32, (height, 7), padding="valid")
        branches.append(layers.MaxPooling2D((N_MELS - height + 1, 1))(t))
    averaged = layers.AveragePooling2D((N_MELS, 1))(x)
    branches += [conv_bn_relu(averaged, 16, (1, int(share * SLICE_FRAMES))) for share in MUSICNN_TEMPORAL_SHARES]
    front = layers.Concatenate()(branches)
    outputs, t = [front], front
    for i in range(3):
        mid = conv_bn_relu(t, 64, (1, 7))
        t = mid if i == 0 else layers.Add()([t, mid])
        outputs.append(t)
    t = layers.Concatenate()(outputs)
    pooled = layers.Concatenate()([layers.GlobalMaxPooling2D()(t), layers.GlobalAveragePooling2D()(t)])
    return layers.Dense(128, activation="relu")(layers.BatchNormalization(momentum=0.9)(pooled))


def genre_and_embedding_loss(n_labels: int, config: TrainConfig):
    """Loss on targets laid out as [genre distribution | teacher embedding | genre weight | embedding weight].

    Cross-entropy with label smoothing on the genre, plus ``embed_weight`` times
    the mean squared error of the (standardised) teacher embedding, plus
    ``consistency_weight`` times the Jensen-Shannon divergence between the genre
    probabilities of the window's two versions (the last ``n_labels`` outputs;
    the consistency loss of AugMix, Hendrycks et al. 2020): a codec copy, a
    gain or a mask should not move the genre.
    """
    from keras import ops

    smoothing = config.label_smoothing

    def loss(y_true, y_pred):
        embed_dim = y_true.shape[-1] - n_labels - 2
        p = y_pred[:, :n_labels]
        target = y_true[:, :n_labels] * (1 - smoothing) + smoothing / n_labels
        total = y_true[:, -2] * -ops.sum(target * ops.log(p + 1e-7), axis=-1)
        if embed_dim:
            error = ops.mean(ops.square(y_true[:, n_labels:-2] - y_pred[:, n_labels:n_labels + embed_dim]), axis=-1)
            total = total + config.embed_weight * y_true[:, -1] * error
        if config.consistency_weight:
            q = y_pred[:, -n_labels:]
            m = (p + q) / 2
            kl = lambda a: ops.sum(a * (ops.log(a + 1e-7) - ops.log(m + 1e-7)), axis=-1)  # noqa: E731
            total = total + config.consistency_weight * (kl(p) + kl(q)) / 2
        return total

    return loss


def training_stages(config: TrainConfig, targets: np.ndarray, embed_dim: int) -> list[tuple[str, int, np.ndarray]]:
    """(name, epochs, targets) of each stage: with a teacher, ``config.pretrain_epochs`` on its
    targets alone (every genre weight 0), then ``config.epochs`` on genre and teacher together."""
    stages = []
    if embed_dim and config.pretrain_epochs:
        teacher_only = targets.copy()
        teacher_only[:, -2] = 0.0
        stages.append(("pretrain", config.pretrain_epochs, teacher_only))
    return stages + [("train", config.epochs, targets)]


def convert(model, representative: np.ndarray) -> tuple[bytes, bytes]:
    """The float32 and full-integer int8 TFLite flatbuffers of a Keras model."""
    import tensorflow as tf

    float_model = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([r[None, ..., None]] for r in representative)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return float_model, converter.convert()


def train(config: TrainConfig) -> dict:
    """Train, convert, evaluate and write the model files; returns the report."""
    import keras
    import tensorflow as tf

    started = time.time()
    keras.utils.set_random_seed(config.seed)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(config.threads)
    except RuntimeError:  # TensorFlow already ran in this process: it keeps its thread pool
        log.info("TensorFlow already initialised; keeping its thread count")
    rng = np.random.default_rng(config.seed)
    tracks = read_tracks(config.data, config.train_split)
    labels = sorted({t.genre for t in tracks})
    if config.valid_split:  # checked now, not after the training it would end
        unknown = sorted({t.genre for t in read_tracks(config.data, config.valid_split)} - set(labels))
        if unknown:
            raise ParameterError(f"valid split genres with no training track: {', '.join(unknown)}")
    if config.distill and config.unlabelled_slices > 0:
        from .distill import require_unlabelled_music

        require_unlabelled_music()
    log.info("decoding %d training tracks", len(tracks))
    x, y, weight, track_id = build_dataset(tracks, labels, config)
    mean, std = float(x.mean()), float(x.std())
    x = (x - mean) / std
    log.info("%d training windows in %d versions, %.0f s", x.shape[1], len(x), time.time() - started)

    # targets: [genre distribution | teacher embedding | genre weight | embedding weight]
    targets = np.eye(len(labels), dtype=np.float32)[y]
    unlabelled_x = np.zeros((0, N_MELS, SLICE_FRAMES), dtype=np.float32)
    if config.distill:
        from .distill import distillation_set

        teacher_genres, embeddings, unlabelled_x, unlabelled_targets = distillation_set(
            tracks, y, track_id, len(labels), config)
        unlabelled_x = (unlabelled_x - mean) / std
        targets = (1 - config.teacher_genre_weight) * targets + config.teacher_genre_weight * teacher_genres
        targets = np.concatenate([targets, embeddings, weight[:, None], np.ones((len(y), 1))], axis=1)
        targets = np.concatenate([targets, unlabelled_targets]).astype(np.float32)
    else:
        targets = np.concatenate([targets, weight[:, None], np.ones((len(y), 1))], axis=1).astype(np.float32)
    embed_dim = targets.shape[1] - len(labels) - 2

    shipped, model = build_model(len(labels), config, embed_dim=embed_dim, log_mel_std=std)
    n_samples = x.shape[1] + len(unlabelled_x)

    def one_version() -> np.ndarray:
        version = rng.integers(0, len(x), x.shape[1])
        if config.time_jitter:  # each window cropped at a random offset
            offset = rng.integers(0, config.time_jitter + 1, x.shape[1])
            labelled = np.stack([x[v, i, :, o:o + SLICE_FRAMES] for i, (v, o) in enumerate(zip(version, offset))])
        else:
            labelled = x[version, np.arange(x.shape[1])]
        chosen = np.concatenate([labelled, unlabelled_x])
        return augment_log_mels(chosen, rng, config, mean, std)[..., None]

    for stage, epochs, stage_targets in training_stages(config, targets, embed_dim):
        schedule = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, epochs * int(np.ceil(n_samples / config.batch_size)))
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=genre_and_embedding_loss(len(labels), config))
        for epoch in range(epochs):
            # each window is seen once an epoch, in one of its versions (original or a codec copy), augmented;
            # with the consistency term also in a second one, drawn and augmented independently
            inputs = [one_version(), one_version()] if config.consistency_weight else one_version()
            epoch_targets = stage_targets
            if config.mixup:
                inputs, epoch_targets = mixup(inputs, stage_targets, rng, config.mixup, mean, std)
            history = model.fit(inputs, epoch_targets, batch_size=config.batch_size, epochs=1, shuffle=True,
                                verbose=0)
            log.info("%s epoch %d/%d loss %.3f", stage, epoch + 1, epochs, history.history["loss"][0])
    train_seconds = time.time() - started

    representative = x[0, rng.choice(x.shape[1], size=min(300, x.shape[1]), replace=False), :, :SLICE_FRAMES]
    float_bytes, int8_bytes = convert(shipped, representative)
    return write_model(config, labels, mean, std, float_bytes, int8_bytes, train_seconds)


def write_model(config: TrainConfig, labels: list[str], mean: float, std: float,
                float_bytes: bytes, int8_bytes: bytes, train_seconds: float) -> dict:
    """Write the twins and their sidecar, then aggregate, calibrate and report (:func:`finish`)."""
    out = Path(config.out).with_suffix(".tflite")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(int8_bytes)
    float_twin_path(out).write_bytes(float_bytes)
    digest = sha256_of(out)
    sidecar = {
        "name": config.name, "version": config.version or f"dev+{digest[:8]}", "labels": labels,
        "frontend": frontend_params(), "normalization": {"mean": mean, "std": std},
        "sha256": digest, "float_sha256": sha256_of(float_twin_path(out)),
        "aggregation": "mean", "temperature": 1.0, "bias": None, "metrics": {},
    }
    _write_json(sidecar_path(out), sidecar)
    return finish(config, out, {"size_bytes": len(int8_bytes), "float_size_bytes": len(float_bytes),
                                "train_seconds": round(train_seconds, 1)})


def finish(config: TrainConfig, out: Path, facts: dict) -> dict:
    """Fit the learned aggregator on the training split, pick the aggregation and calibrate it.

    The aggregator sees only the training split's slice outputs. The validation
    split fits each aggregation's calibration (temperature and per-genre bias)
    and picks the aggregation by its cross-validated (leave-one-track-out) track
    accuracy, so the choice rests on tracks the calibration did not see; the
    hidden test split checks that neither choice was optimistic.
    Writes the final sidecar and ``<out>.report.json``; returns the report.
    """
    classifier = GenreClassifier(out)
    labels = classifier.labels
    train_tracks = read_tracks(config.data, config.train_split)
    train_outputs = run_split(classifier, train_tracks, split_log_mels(train_tracks, classifier.frontend))
    aggregator = fit_aggregator(train_outputs.slice_probabilities, train_outputs.targets, len(labels))
    sidecar = json.loads(sidecar_path(out).read_text())
    sidecar["aggregator"] = aggregator
    report = {"config": asdict(config), **facts}
    if config.valid_split:
        valid_tracks = read_tracks(config.data, config.valid_split)
        valid_log_mels = split_log_mels(valid_tracks, classifier.frontend)
        valid = run_split(classifier, valid_tracks, valid_log_mels)
        comparison, calibrations = {}, {}
        for method in AGGREGATIONS:
            calibrations[method] = fit_calibration(valid.slice_probabilities, valid.targets, method, aggregator)
            predictions = split_track_scores(valid, method, aggregator=aggregator).argmax(axis=1)
            uncalibrated = classification_metrics(valid.targets, predictions, labels)
            held_out = cross_validated(valid, labels, method, aggregator, intervals=False)
            comparison[method] = {"track_accuracy": round(uncalibrated["accuracy"], 4),
                                  "balanced_accuracy": round(uncalibrated["balanced_accuracy"], 4),
                                  "calibrated_track_accuracy": held_out["track_accuracy"],
                                  "calibrated_balanced_accuracy": held_out["balanced_accuracy"],
                                  "calibrated_ece": held_out["ece"],
                                  "temperature": round(calibrations[method].temperature, 3)}
        # best cross-validated track accuracy, then balanced accuracy, then the best calibrated
        best = max(AGGREGATIONS, key=lambda m: (comparison[m]["calibrated_track_accuracy"],
                                                comparison[m]["calibrated_balanced_accuracy"],
                                                -comparison[m]["calibrated_ece"]))
        sidecar["aggregation"] = best
        sidecar.update(calibrations[best].as_json())
        # the float twin gets its own, fitted on its own outputs: each twin is compared as it would ship
        # (the evaluation also compares the bare networks, uncalibrated and slice by slice)
        float_valid = run_split(GenreClassifier(float_twin_path(out)), valid_tracks, valid_log_mels)
        sidecar["float_twin_calibration"] = fit_calibration(
            float_valid.slice_probabilities, float_valid.targets, best, aggregator).as_json()
        report["aggregation_comparison"] = comparison
    _write_json(sidecar_path(out), sidecar)
    if config.valid_split:
        record_validation(report, out, config.data, config.valid_split, valid_log_mels)
    _write_json(out.with_suffix(".report.json"), report)
    return report


def record_validation(report: dict, out: Path, data: str | Path, split: str,
                      log_mels: list[np.ndarray] | None = None) -> None:
    """Evaluate the calibrated model on ``split`` into ``report["valid"]`` and its sidecar's ``metrics``."""
    report["valid"] = valid = evaluate(data, out, split=split, calibration=True, with_robustness=True,
                                       log_mels=log_mels)
    sidecar = json.loads(sidecar_path(out).read_text())
    sidecar["metrics"] = {
        "split": split,
        **{k: valid[k] for k in ("track_accuracy", "balanced_accuracy", "interval_95", "slice_accuracy", "ece",
                                 "per_genre_recall", "agreement", "cross_validated")},
        "float_track_accuracy": valid.get("float", {}).get("track_accuracy"),
    }
    _write_json(sidecar_path(out), sidecar)


def _write_json(path: Path, data: dict) -> None:
    """``data`` as indented JSON, written whole or not at all: a sidecar cut short would stop the plugin."""
    with atomic_write(path) as f:
        f.write((json.dumps(data, indent=2) + "\n").encode())
