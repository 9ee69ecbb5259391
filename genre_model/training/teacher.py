"""musicnn as a training-time teacher: embeddings and tag probabilities for distillation.

It labels the training windows and unlabelled music (:mod:`.distill` finds it).
Nothing at inference imports this module (it needs TensorFlow); it labels training
audio once, and :func:`outputs_cached` keeps the result on disk.

What it does
------------
* Gets the ``musicnn`` 0.1.0 wheel from PyPI **without installing it** (its code and
  pins are from 2019): ``pip download --no-deps musicnn==0.1.0``, unzips only the
  ``MSD_musicnn`` and ``MTT_musicnn`` checkpoints into a cache folder (default
  ``cache/musicnn`` in the working directory, ignored by git) and reads them with
  ``tf.compat.v1.train.NewCheckpointReader("<dir>/")``.
* Rebuilds musicnn (Pons & Serra, "musicnn: pre-trained convolutional neural
  networks for music audio tagging", ISMIR 2019 LBD) in Keras 3 and copies the
  64 tensors per model by name. Logits and embeddings agree with the original TF1
  graph to 4e-6 (checked once by importing its MetaGraph).
* Reproduces its front-end in numpy/scipy: 16 kHz, n_fft 512, hop 256, 96 Slaney
  mel bands with Slaney norm, centred (reflect-padded, as librosa 0.7) frames,
  ``log10(10000 x + 1)`` computed in float32 (the reference casts to float16 first
  and overflows on loud clips); equal to librosa's to 2e-5. Our 2.56 s slices at
  22 050 Hz are resampled with ``scipy.signal.resample_poly(y, 320, 441)``:
  56 448 -> 40 960 samples -> 161 frames, one patch per slice (musicnn pools
  globally over time, so a 161-frame patch is as valid as its native 187).

Cost and quality (2-core CPU, both models): ~120 CPU-ms per slice, 0.2 s of wall
time per slice on a machine shared with a training run; peak memory ~1.4 GB at batch
32. A linear probe on the mean 400-d embedding of a track's slices reaches 0.72
accuracy / 0.74 balanced accuracy on the artist-filtered GTZAN valid split.

Public API
----------
``MusicnnTeacher(cache_dir).embed_and_tag(windows)`` -> ((n, 400) MSD 200-d then MTT
200-d penultimate embeddings, (n, 100) MSD 50 then MTT 50 sigmoid tag probabilities,
named in ``MusicnnTeacher.tag_names``); ``outputs_cached(teacher, key, windows)``;
``musicnn_logmel(y16k)``.

Licence of the weights (they are downloaded, never committed): musicnn is under the
ISC licence::

    Copyright (c) Music Technology Group, Universitat Pompeu Fabra 2019. Code developed
    by Jordi Pons (www.jordipons.me).

    Permission to use, copy, modify, and/or distribute this software for any purpose
    with or without fee is hereby granted, provided that the above copyright notice
    and this permission notice appear in all copies.

    THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES WITH
    REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY AND
    FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR ANY SPECIAL, DIRECT, INDIRECT,
    OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES WHATSOEVER RESULTING FROM LOSS OF USE, DATA
    OR PROFITS, WHETHER IN AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION,
    ARISING OUT OF OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.signal
from scipy.signal import resample_poly

from .. import features
from ..audio import decoder_identity
from ..constants import SAMPLE_RATE
from .cache import CACHE_ROOT, atomic_write

DEFAULT_CACHE_DIR = CACHE_ROOT / "musicnn"
DEFAULT_EMBED_CACHE = CACHE_ROOT / "teacher"

MUSICNN_VERSION = "0.1.0"
MODELS = ("MSD_musicnn", "MTT_musicnn")
# Bump when the front-end or network changes: it is part of every cache key.
TEACHER_VERSION = "musicnn-0.1.0/keras3/v1"

# musicnn front-end
TEACHER_SR = 16_000
TEACHER_N_FFT = 512
TEACHER_HOP = 256
TEACHER_N_MELS = 96
EMBED_DIM = 200
N_TAGS = 50

MSD_LABELS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
    "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
    "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental",
    "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
    "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop",
    "sad", "House", "happy",
)
MTT_LABELS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
)


# --------------------------------------------------------------------------- wheel

def ensure_musicnn(cache_dir: str | Path = DEFAULT_CACHE_DIR) -> Path:
    """Folder holding ``MSD_musicnn/`` and ``MTT_musicnn/`` checkpoints; fetched on first use.

    Looks for an already unzipped copy in ``cache_dir``, else a wheel in ``cache_dir``
    or ``/tmp/musicnn``, else runs ``pip download --no-deps musicnn==0.1.0``. Only the
    two checkpoints and the licence are unzipped; the package's code is never imported.
    """
    cache_dir = Path(cache_dir)
    if _checkpoints_unzipped(cache_dir):
        return cache_dir
    wheel = find_wheel(cache_dir)
    if wheel is None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
             f"musicnn=={MUSICNN_VERSION}", "-d", str(cache_dir)],
            check=True,
        )
        wheel = find_wheel(cache_dir)
        if wheel is None:
            raise FileNotFoundError(f"pip download left no musicnn wheel in {cache_dir}")
    _unzip_checkpoints(wheel, cache_dir)
    return cache_dir


def find_wheel(cache_dir: str | Path = DEFAULT_CACHE_DIR) -> Path | None:
    """A downloaded musicnn wheel in ``cache_dir`` or ``/tmp/musicnn``, or None."""
    name = f"musicnn-{MUSICNN_VERSION}-py3-none-any.whl"
    for folder in (Path(cache_dir), Path("/tmp/musicnn")):
        if (folder / name).is_file():
            return folder / name
    return None


def _checkpoints_unzipped(cache_dir: Path) -> bool:
    return all((cache_dir / m / ".index").is_file() for m in MODELS)


def musicnn_available(cache_dir: str | Path = DEFAULT_CACHE_DIR) -> bool:
    """True when :func:`ensure_musicnn` needs no download: checkpoints unzipped, or a wheel found."""
    return _checkpoints_unzipped(Path(cache_dir)) or find_wheel(cache_dir) is not None


def _unzip_checkpoints(wheel: Path, cache_dir: Path) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            parts = info.filename.split("/")
            if len(parts) == 3 and parts[0] == "musicnn" and parts[1] in MODELS and parts[2]:
                target = cache_dir / parts[1] / parts[2]
            elif parts[-1] == "LICENSE.md":
                target = cache_dir / "LICENSE.md"
            else:
                continue
            with zf.open(info) as src, atomic_write(target) as dst:
                shutil.copyfileobj(src, dst)


# --------------------------------------------------------------------------- front-end

def mel_filterbank() -> np.ndarray:
    """librosa's default mel filterbank (Slaney scale and area norm) at musicnn's settings.

    Returns
    -------
    weights : np.ndarray [shape=(96, 257), dtype=float32]
    """
    return features.mel_filterbank(sr=TEACHER_SR, n_fft=TEACHER_N_FFT, n_mels=TEACHER_N_MELS,
                                   fmin=0.0, fmax=TEACHER_SR / 2)


@functools.lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    """Periodic Hann window, as librosa uses."""
    return scipy.signal.get_window("hann", TEACHER_N_FFT, fftbins=True).astype(np.float32)


def to_teacher_rate(windows: np.ndarray) -> np.ndarray:
    """Resample (n, samples) audio at our 22 050 Hz to 16 kHz along the last axis (polyphase filter)."""
    g = np.gcd(SAMPLE_RATE, TEACHER_SR)
    return resample_poly(np.asarray(windows, dtype=np.float32), TEACHER_SR // g, SAMPLE_RATE // g,
                         axis=-1).astype(np.float32)


def musicnn_logmel(y16k: np.ndarray) -> np.ndarray:
    """musicnn's input: log-compressed mel power spectrogram of 16 kHz audio.

    Equal to ``log10(10000 * librosa.feature.melspectrogram(y, sr=16000, n_fft=512,
    hop_length=256, n_mels=96) + 1)`` with librosa 0.7's defaults (centred frames,
    reflect padding, periodic Hann, power 2), but in float32 throughout.

    Parameters
    ----------
    y16k : np.ndarray [shape=(n, samples) or (samples,)], mono audio at 16 kHz

    Returns
    -------
    logmel : np.ndarray [shape=(n, 1 + samples // 256, 96), dtype=float32], time first
    """
    y = np.asarray(y16k, dtype=np.float32)
    squeeze = y.ndim == 1
    y = np.atleast_2d(y)
    pad = TEACHER_N_FFT // 2
    y = np.pad(y, ((0, 0), (pad, pad)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(y, TEACHER_N_FFT, axis=-1)[:, ::TEACHER_HOP]
    spec = scipy.fft.rfft(frames * _hann(), axis=-1, workers=-1)  # complex64
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    mel = (power.reshape(-1, power.shape[-1]) @ mel_filterbank().T).reshape(*power.shape[:2], -1)
    out = np.log10(np.float32(10_000.0) * mel + np.float32(1.0)).astype(np.float32)
    return out[0] if squeeze else out


# --------------------------------------------------------------------------- network
#
# musicnn applies "conv -> ReLU -> BatchNorm -> max over all mel bands" to large maps
# (up to 96 bands x 161 frames x 204 filters per slice). For each channel, bias + ReLU +
# BatchNorm is monotone (non-increasing where gamma < 0), so the band maximum of it is
# that function of the band maximum (or minimum) of the raw convolution: pooling first
# gives the same numbers with a fraction of the memory traffic (:class:`BandMaxBN`).

def _band_max_bn(hi, lo, bias, gamma, beta, mean, variance, epsilon):
    """max over bands of BN(relu(y + bias)), from ``hi``/``lo`` = max/min of y over the bands."""
    import tensorflow as tf

    scale = gamma * tf.math.rsqrt(variance + epsilon)
    shift = beta - mean * scale
    hi = tf.nn.relu(hi + bias) * scale + shift
    lo = tf.nn.relu(lo + bias) * scale + shift
    return tf.where(scale >= 0, hi, lo)


def _add_bias_and_batchnorm(layer, channels: int) -> None:
    """Give ``layer`` the weights :func:`_band_max_bn` needs, named as in the checkpoint."""
    for name, initializer in (("bias", "zeros"), ("gamma", "ones"), ("beta", "zeros"),
                              ("moving_mean", "zeros"), ("moving_variance", "ones")):
        setattr(layer, name, layer.add_weight(name=name, shape=(channels,), initializer=initializer))


@functools.lru_cache(maxsize=None)
def _layer_classes():
    """The two custom layers, defined on first use so that importing this module needs no Keras."""
    import keras
    import tensorflow as tf

    class BandMaxBN(keras.layers.Layer):
        """``max(BatchNorm(relu(x + bias)), axis)`` of a bias-free convolution's output, exactly.

        Weights: ``bias`` (the convolution's) and the BatchNorm's ``gamma, beta,
        moving_mean, moving_variance``; the pooled axis disappears.
        """

        def __init__(self, axis: int, epsilon: float = 1e-3, **kwargs):
            super().__init__(**kwargs)
            self.axis, self.epsilon = int(axis), float(epsilon)

        def build(self, input_shape):
            _add_bias_and_batchnorm(self, input_shape[-1])

        def call(self, x):
            return _band_max_bn(tf.reduce_max(x, self.axis), tf.reduce_min(x, self.axis), self.bias,
                                self.gamma, self.beta, self.moving_mean, self.moving_variance,
                                self.epsilon)

        def compute_output_shape(self, input_shape):
            return tuple(d for i, d in enumerate(input_shape) if i != self.axis % len(input_shape))

    class TemporalBlock(keras.layers.Layer):
        """musicnn's temporal branch: 'same' convolutions along time shared by every mel band,
        then ReLU, BatchNorm and max over the bands. Input (B, T, F, 1), output (B, T, filters).

        The three kernels (128, 64 and 32 taps, 51 filters each) are stored as one 128-tap
        kernel of 153 filters, the shorter ones centred in zeros (TF's 'same' puts
        ``(taps - 1) // 2`` frames before). A one-channel 128-tap convolution makes a poor
        matrix product, so time is cut into blocks of ``phases`` frames: then it is a
        ``ceil((taps + phases - 1) / phases)``-tap Conv1D with ``phases`` input channels and
        ``phases * filters`` output channels (one per output phase and filter).
        """

        def __init__(self, filters: int, taps: int, phases: int = 8, epsilon: float = 1e-3,
                     **kwargs):
            super().__init__(**kwargs)
            self.filters, self.taps, self.phases = int(filters), int(taps), int(phases)
            self.epsilon = float(epsilon)
            self.blocks = -(-(self.taps + self.phases - 1) // self.phases)
            # polyphase kernel W[b, p, r] = kernel[phases * b + p - r] where that tap exists
            b, p, r = np.meshgrid(*(np.arange(n) for n in (self.blocks, self.phases, self.phases)),
                                  indexing="ij")
            tap = self.phases * b + p - r
            self._tap = np.clip(tap, 0, self.taps - 1).astype(np.int32)
            self._valid = ((tap >= 0) & (tap < self.taps)).astype(np.float32)[..., None]

        def build(self, input_shape):
            self.kernel = self.add_weight(name="kernel", shape=(self.taps, self.filters))
            _add_bias_and_batchnorm(self, self.filters)

        def call(self, x):
            s, nb = self.phases, self.blocks
            shape = tf.shape(x)
            batch, frames, bands = shape[0], shape[1], shape[2]
            w = tf.gather(self.kernel, self._tap) * self._valid  # (nb, s, s, filters)
            w = tf.reshape(w, (nb, s, s * self.filters))
            n_out = (frames + s - 1) // s
            before = (self.taps - 1) // 2
            after = s * (n_out + nb - 1) - before - frames
            x = tf.transpose(x[..., 0], (0, 2, 1))  # (B, F, T)
            x = tf.pad(x, ((0, 0), (0, 0), (before, after)))
            x = tf.reshape(x, (-1, n_out + nb - 1, s))  # (B*F, blocks, phases)
            y = tf.nn.conv1d(x, w, 1, "VALID")  # (B*F, n_out, phases * filters)
            y = tf.reshape(y, (batch, bands, n_out * s, self.filters))
            hi = tf.reduce_max(y, axis=1)[:, :frames]
            lo = tf.reduce_min(y, axis=1)[:, :frames]
            return _band_max_bn(hi, lo, self.bias, self.gamma, self.beta, self.moving_mean,
                                self.moving_variance, self.epsilon)

        def compute_output_shape(self, input_shape):
            return (input_shape[0], input_shape[1], self.filters)

    return BandMaxBN, TemporalBlock


# The three temporal convolutions + BatchNorms of the checkpoint (conv2d_2..4,
# batch_normalization_3..5) are one TemporalBlock; (index, taps) of each.
TEMPORAL_BLOCK = "temporal_conv2d_2_3_4"
_TEMPORAL_PARTS = ((2, 128), (3, 64), (4, 32))
_BN_KEYS = ("gamma", "beta", "moving_mean", "moving_variance")


def build_musicnn(n_tags: int = N_TAGS, name: str = "musicnn"):
    """musicnn (``build_musicnn`` of the reference, MSD/MTT variant) as a Keras 3 model.

    Input: (batch, frames, 96) log-mel. Outputs: the 200-d penultimate embedding (after
    its BatchNorm, as the reference's ``penultimate``) and the ``n_tags`` logits.
    Layer names are the TF1 checkpoint's variable scopes, so :func:`load_musicnn`
    copies weights by name. Inference only: no dropout, BatchNorm uses moving statistics.
    """
    import keras
    from keras import layers, ops

    BandMaxBN, TemporalBlock = _layer_classes()
    x_in = keras.Input(shape=(None, TEACHER_N_MELS), name="logmel")
    x = layers.Reshape((-1, TEACHER_N_MELS, 1))(x_in)
    x = layers.BatchNormalization(epsilon=1e-3, name="batch_normalization")(x)

    # front-end: timbral convolutions (7x38, 7x67; 'same' in time only) and temporal ones
    # (128x1, 64x1, 32x1, 'same'), each ReLU'd, BatchNorm'd and max-pooled over all bands
    x_pad = layers.ZeroPadding2D(((3, 3), (0, 0)))(x)
    branches = []
    for i, kernel in enumerate([(7, 38), (7, 67)]):
        h = layers.Conv2D(204, kernel, padding="valid", use_bias=False,
                          name="conv2d" if i == 0 else f"conv2d_{i}")(x_pad)
        branches.append(BandMaxBN(axis=2, name=f"batch_normalization_{i + 1}")(h))
    branches.append(TemporalBlock(3 * 51, 128, name=TEMPORAL_BLOCK)(x))
    front = layers.Concatenate(axis=-1)(branches)  # (B, T, 204 + 204 + 3 * 51 = 561)

    # mid-end: three 1-D convolutions over time (kernel 7), residual on the last two
    def midend_conv(h, i):
        h = layers.ZeroPadding1D(3)(h)
        h = layers.Conv1D(64, 7, padding="valid", activation="relu", name=f"conv2d_{i}")(h)
        return layers.BatchNormalization(epsilon=1e-3, name=f"batch_normalization_{i + 1}")(h)

    m1 = midend_conv(front, 5)
    m2 = layers.Add()([midend_conv(m1, 6), m1])
    m3 = layers.Add()([midend_conv(m2, 7), m2])
    mid = layers.Concatenate(axis=-1)([front, m1, m2, m3])  # (B, T, 753)

    # back-end: max and mean over time, INTERLEAVED (max0, mean0, max1, mean1, ...)
    pooled = ops.stack([ops.max(mid, axis=1), ops.mean(mid, axis=1)], axis=-1)  # (B, 753, 2)
    flat = layers.Reshape((-1,))(pooled)  # (B, 1506)
    flat = layers.BatchNormalization(epsilon=1e-3, name="batch_normalization_9")(flat)
    dense = layers.Dense(EMBED_DIM, activation="relu", name="dense")(flat)
    penultimate = layers.BatchNormalization(epsilon=1e-3, name="batch_normalization_10")(dense)
    logits = layers.Dense(n_tags, name="dense_1")(penultimate)
    return keras.Model(x_in, [penultimate, logits], name=name)


def _checkpoint_weights(get, layer) -> list[np.ndarray]:
    """The checkpoint tensors of one Keras layer, in ``layer.weights`` order (``get(name)``)."""
    import keras

    BandMaxBN, TemporalBlock = _layer_classes()
    if isinstance(layer, TemporalBlock):
        kernel = np.zeros((128, 3 * 51), np.float32)
        for j, (i, taps) in enumerate(_TEMPORAL_PARTS):
            start = 63 - (taps - 1) // 2
            kernel[start:start + taps, 51 * j:51 * (j + 1)] = get(f"conv2d_{i}/kernel")[:, 0, 0]
        rest = [np.concatenate([get(f"{scope}_{i + k}/{key}") for i, _ in _TEMPORAL_PARTS])
                for scope, k, key in [("conv2d", 0, "bias")]
                + [("batch_normalization", 1, key) for key in _BN_KEYS]]
        return [kernel, *rest]
    if isinstance(layer, BandMaxBN):  # batch_normalization_k pools conv2d_{k-1}
        k = int(layer.name.rsplit("_", 1)[1])
        conv = "conv2d" if k == 1 else f"conv2d_{k - 1}"
        return [get(f"{conv}/bias")] + [get(f"{layer.name}/{key}") for key in _BN_KEYS]
    if isinstance(layer, keras.layers.BatchNormalization):
        return [get(f"{layer.name}/{key}") for key in _BN_KEYS]
    values = [get(f"{layer.name}/kernel")] + ([get(f"{layer.name}/bias")] if layer.use_bias else [])
    if values[0].ndim == 4 and len(layer.weights[0].shape) == 3:
        # mid-end: TF1 conv2d kernel (7, C, 1, 64) over a (T, C, 1) map == Conv1D (7, C, 64)
        values[0] = values[0][:, :, 0, :]
    return values


def load_musicnn(ckpt_dir: str | Path, name: str | None = None):
    """Build musicnn and copy the 64 tensors of the TF1 checkpoint in ``ckpt_dir``.

    The checkpoint prefix is the folder itself with a trailing slash (files ``.index``,
    ``.data-00000-of-00001``); its ``checkpoint`` file points to a stale absolute path
    and is not used. Raises ValueError unless every model tensor is used exactly once.
    """
    import tensorflow as tf

    ckpt_dir = Path(ckpt_dir)
    reader = tf.compat.v1.train.NewCheckpointReader(str(ckpt_dir) + "/")
    wanted = {k for k in reader.get_variable_to_shape_map()
              if "/Adam" not in k and not k.startswith("beta")}
    used: list[str] = []

    def get(key: str) -> np.ndarray:
        used.append(key)
        return reader.get_tensor(key)

    model = build_musicnn(name=name or ckpt_dir.name)
    for layer in model.layers:
        if not layer.weights:
            continue
        values = _checkpoint_weights(get, layer)
        for var, val in zip(layer.weights, values, strict=True):
            if tuple(var.shape) != val.shape:
                raise ValueError(f"{ckpt_dir.name}: {layer.name} {var.shape} vs checkpoint {val.shape}")
        layer.set_weights(values)
    if sorted(used) != sorted(wanted) or len(used) != 64:
        raise ValueError(f"{ckpt_dir.name}: copied {len(used)} tensors; unused "
                         f"{sorted(wanted - set(used))}, unknown {sorted(set(used) - wanted)}")
    return model


# --------------------------------------------------------------------------- teacher

class MusicnnTeacher:
    """MSD_musicnn + MTT_musicnn on our 2.56 s slices (22 050 Hz): embeddings and tags.

    Parameters
    ----------
    cache_dir : folder for the wheel and the unzipped checkpoints (fetched on first use).
    batch_size : slices per forward pass (peak memory ~1.4 GB at 32, ~2 GB at 64).
    """

    tag_names = tuple(f"msd:{t}" for t in MSD_LABELS) + tuple(f"mtt:{t}" for t in MTT_LABELS)

    def __init__(self, cache_dir: str | Path = DEFAULT_CACHE_DIR, *, batch_size: int = 32):
        import tensorflow as tf

        folder = ensure_musicnn(cache_dir)
        self.models = {m: load_musicnn(folder / m, name=m) for m in MODELS}
        self.batch_size = int(batch_size)
        msd, mtt = self.models["MSD_musicnn"], self.models["MTT_musicnn"]

        @tf.function(input_signature=[tf.TensorSpec([None, None, TEACHER_N_MELS], tf.float32)],
                     reduce_retracing=True)
        def _forward(x):
            e1, l1 = msd(x, training=False)
            e2, l2 = mtt(x, training=False)
            return tf.concat([e1, e2], axis=-1), tf.sigmoid(tf.concat([l1, l2], axis=-1))

        self._forward = _forward

    def logmel(self, windows: np.ndarray) -> np.ndarray:
        """(n, samples) audio at 22 050 Hz -> (n, frames, 96) musicnn input."""
        return musicnn_logmel(to_teacher_rate(windows))

    def embed_and_tag(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both outputs in one pass: ((n, 400) embeddings, (n, 100) tag probabilities)."""
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim == 1:
            windows = windows[None]
        if windows.ndim != 2:
            raise ValueError(f"windows must be (n, samples), got shape {windows.shape}")
        n = windows.shape[0]
        emb = np.empty((n, 2 * EMBED_DIM), np.float32)
        tags = np.empty((n, 2 * N_TAGS), np.float32)
        for i in range(0, n, self.batch_size):
            x = self.logmel(windows[i:i + self.batch_size])
            e, t = self._forward(x)
            emb[i:i + len(x)], tags[i:i + len(x)] = e.numpy(), t.numpy()
        return emb, tags


# --------------------------------------------------------------------------- caching

def _cache_paths(key: str, cache_dir: str | Path) -> tuple[Path, Path]:
    digest = hashlib.sha1(f"{TEACHER_VERSION}\n{decoder_identity()}\n{key}".encode()).hexdigest()
    return Path(cache_dir) / f"{digest}.npy", Path(cache_dir) / f"{digest}.tags.npy"


def _load_cached(path: Path, windows) -> np.ndarray | None:
    """The cached array at ``path`` if it exists, reads, and has one row per window."""
    try:
        array = np.load(path)
    except (OSError, ValueError, EOFError):  # EOFError: an empty file (a write lost in a crash)
        return None
    return array if callable(windows) or len(array) == len(windows) else None


def outputs_cached(teacher: MusicnnTeacher, key: str,
                   windows: np.ndarray | Callable[[], np.ndarray],
                   cache_dir: str | Path = DEFAULT_EMBED_CACHE) -> tuple[np.ndarray, np.ndarray]:
    """``teacher.embed_and_tag(windows)``, stored on disk: ((n, 400), (n, 100)) float32.

    Files: ``<cache_dir>/<sha1(TEACHER_VERSION, decoder, key)>.npy`` (embeddings) and ``….tags.npy``.
    ``key`` must identify the windows given the decoder (e.g. ``f"{path}|{mtime}|hop={hop}"``).
    ``windows`` may be a zero-argument callable, so decoding is skipped when the result
    is cached; the key alone then identifies the windows. Given an array, a cached result
    whose row count differs from ``len(windows)`` is recomputed.
    Written whole or not at all (:func:`.cache.atomic_write`): parallel runs never read half a file.
    """
    paths = _cache_paths(key, cache_dir)
    emb, tags = (_load_cached(p, windows) for p in paths)
    if emb is not None and tags is not None and len(emb) == len(tags):
        return emb, tags
    if callable(windows):
        windows = windows()
    outputs = teacher.embed_and_tag(windows)
    for path, array in zip(paths, outputs):
        with atomic_write(path) as f:
            np.save(f, array)
    return outputs
