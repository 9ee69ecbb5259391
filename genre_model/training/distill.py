"""Knowledge distillation targets from the musicnn teacher (training time only).

The student (our small CNN) learns, on every slice, to predict the teacher's
400-d embedding (or its 100 tag logits), and the genre distribution that a
linear probe on the teacher's embeddings gives: on unlabelled music that
distribution is the whole genre target; on labelled slices it is mixed with the
true genre, and comes from a probe that never saw the slice's track
(cross-fitted over tracks), so it carries what the teacher hears, not a copy of
the label.

Unlabelled music: Debian's free game soundtracks (~440 MB, ~9 h)::

    apt-get update && apt-get install -y --no-install-recommends \\
        wesnoth-1.16-music nexuiz-music warzone2100-music hyperrogue-music singularity-music

They land in
``/usr/share/games/{wesnoth/1.16/data/core/music,warzone2100/music,singularity/music}``
(.ogg/.opus), ``/usr/share/hyperrogue/music`` (.ogg; its ``sounds/`` are effects and
are skipped) and ``/usr/share/games/nexuiz/data/music.pk3`` (a zip of .ogg tracks,
extracted on first use by :func:`unlabelled_audio_files`). Three of hyperrogue's files
(``hr-savino-{caribbean,ivory,ocean}.ogg``) do not open in ffmpeg and are skipped.
"""

from __future__ import annotations

import logging
import shutil
import zipfile
from collections.abc import Iterable
from math import ceil
from pathlib import Path

import numpy as np

from ..aggregate import fit_softmax_regression, softmax, softmax_regression_logits
from ..analysis import track_slices
from ..audio import decode_full
from ..constants import HOP_LENGTH, N_MELS, SLICE_FRAMES, frontend_params
from ..dataset import AUDIO_SUFFIXES, LabelledTrack
from ..errors import DecodeError, ParameterError
from ..features import log_mel_spectrogram
from ..slicing import training_windows
from .cache import CACHE_ROOT, atomic_write
from .teacher import MusicnnTeacher, outputs_cached

DEFAULT_UNLABELLED_CACHE = CACHE_ROOT / "unlabelled"

INSTALL_SOUNDTRACKS = ("apt-get install --no-install-recommends wesnoth-1.16-music nexuiz-music "
                       "warzone2100-music hyperrogue-music singularity-music")
log = logging.getLogger(__name__)


def labelled_outputs(teacher: MusicnnTeacher, tracks: list[LabelledTrack], hop_frames: int,
                     min_windows: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Teacher embeddings and tag probabilities of every training window, in the order of ``train.build_dataset``.

    Returns
    -------
    E : np.ndarray [shape=(n_windows, 400)]
    T : np.ndarray [shape=(n_windows, 100)]
    """
    hop = hop_frames * HOP_LENGTH
    at_least = f"|min={min_windows}" if min_windows > 1 else ""
    outputs = [outputs_cached(teacher, f"{t.path.resolve()}|{t.path.stat().st_mtime_ns}|hop={hop}{at_least}",
                              lambda t=t: training_windows(decode_full(t.path), hop=hop, min_windows=min_windows))
               for t in tracks]
    return np.concatenate([e for e, _ in outputs]), np.concatenate([tags for _, tags in outputs])


def unlabelled_slices(teacher: MusicnnTeacher, n_slices: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """About ``n_slices`` slices spread over the unlabelled soundtracks, with their teacher outputs.

    Returns
    -------
    log_mels : np.ndarray [shape=(n, n_mels, slice_frames)]
    E : np.ndarray [shape=(n, 400)]
    T : np.ndarray [shape=(n, 100)]
    """
    files = require_unlabelled_music()
    per_file = ceil(n_slices / len(files))
    log_mels, embeddings, tags = [], [], []
    for path in files:
        try:
            windows = track_slices(path, frontend_params(), n_slices=per_file)
        except DecodeError as exc:
            log.warning("skipping unlabelled %s", exc)
            continue
        log_mels.append(log_mel_spectrogram(windows))
        stat = path.stat()
        e, t = outputs_cached(teacher, f"{path}|{stat.st_size}|{stat.st_mtime_ns}|slices={per_file}", windows)
        embeddings.append(e)
        tags.append(t)
    log.info("%d unlabelled slices from %d files", sum(map(len, log_mels)), len(files))
    return np.concatenate(log_mels), np.concatenate(embeddings), np.concatenate(tags)


def probe_genres(labelled: np.ndarray, targets: np.ndarray, n_genres: int, unlabelled: np.ndarray) -> np.ndarray:
    """Genre probabilities of unlabelled slices by a softmax regression on the teacher's embeddings.

    Returns
    -------
    P : np.ndarray [shape=(n_unlabelled, n_genres)]
    """
    probe = fit_softmax_regression(labelled, targets, n_genres, l2=1e-1, steps=500)
    return softmax(softmax_regression_logits(probe, unlabelled))


def cross_fitted_probe_genres(embeddings: np.ndarray, genres: np.ndarray, groups: np.ndarray, n_genres: int,
                              *, folds: int = 5) -> np.ndarray:
    """Each window's genre probabilities by a probe fitted on the other ``folds - 1`` folds of tracks.

    Returns
    -------
    P : np.ndarray [shape=(n_windows, n_genres)]
    """
    fold = groups % folds
    out = np.zeros((len(genres), n_genres))
    for k in range(folds):
        out[fold == k] = probe_genres(embeddings[fold != k], genres[fold != k], n_genres, embeddings[fold == k])
    return out


def tag_logits(tags: np.ndarray) -> np.ndarray:
    """The teacher's tag probabilities as logits, clipped at +-9 (a probability of 1e-4 from 0 or 1)."""
    p = np.clip(tags, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def distillation_set(tracks: list[LabelledTrack], window_genres: np.ndarray, window_tracks: np.ndarray,
                     n_genres: int, config):
    """Teacher targets for the labelled windows, and unlabelled slices with their targets.

    The student's second head learns the teacher's embedding (``config.teacher_target``
    "embedding") or its tag logits ("tags"), standardised per dimension; the
    genre probes always read the embedding.

    Returns the labelled windows' cross-fitted probe genre distributions
    (n_windows, n_genres) and standardised teacher targets (n_windows, d), the
    unlabelled log-mels (n, n_mels, frames) and their targets laid out as
    [probe genre distribution | teacher target | genre weight | target weight].
    """
    teacher = MusicnnTeacher()
    labelled, labelled_tags = labelled_outputs(teacher, tracks, config.window_hop_frames, config.min_windows)
    labelled_genres = cross_fitted_probe_genres(labelled, window_genres, window_tracks, n_genres)
    if config.unlabelled_slices > 0:
        unlabelled_x, unlabelled, unlabelled_tags = unlabelled_slices(teacher, config.unlabelled_slices)
        genres = probe_genres(labelled, window_genres, n_genres, unlabelled)
    else:
        unlabelled_x = np.zeros((0, N_MELS, SLICE_FRAMES), np.float32)
        unlabelled, unlabelled_tags = np.zeros((0, labelled.shape[1])), np.zeros((0, labelled_tags.shape[1]))
        genres = np.zeros((0, n_genres))
    if config.teacher_target == "tags":
        labelled, unlabelled = tag_logits(labelled_tags), tag_logits(unlabelled_tags)
    mean, std = labelled.mean(axis=0), labelled.std(axis=0) + 1e-6
    targets = np.concatenate([genres, (unlabelled - mean) / std,
                              np.full((len(genres), 1), config.unlabelled_weight), np.ones((len(genres), 1))],
                             axis=1)
    return labelled_genres, (labelled - mean) / std, unlabelled_x, targets


# --------------------------------------------------------------------------- unlabelled audio

def unlabelled_audio_files(roots: Iterable[str | Path] = ("/usr/share/games", "/usr/share/hyperrogue"),
                           *, min_bytes: int = 300_000,
                           extract_dir: str | Path = DEFAULT_UNLABELLED_CACHE) -> list[Path]:
    """Music files (no labels) under ``roots``: the Debian game soundtracks, sorted.

    Files under a ``sounds``/``sfx`` folder and files smaller than ``min_bytes``
    (effects, jingles) are skipped. Zip archives of game data (``*.pk3``, e.g. Nexuiz's
    ``music.pk3``) are searched too: their audio members are extracted once into
    ``extract_dir/<game>/<archive stem>/`` and listed from there, by absolute path (the
    teacher's cache is keyed by it).
    """
    extract_dir = Path(extract_dir).resolve()
    found: list[Path] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            if not path.is_file() or {"sounds", "sfx", "sound_effects"} & {p.lower() for p in path.parts}:
                continue
            suffix = path.suffix.lower()
            if suffix in AUDIO_SUFFIXES and path.stat().st_size >= min_bytes:
                found.append(path)
            elif suffix == ".pk3":
                found.extend(_extract_pk3_audio(path, extract_dir, min_bytes))
    return sorted(set(found))


def require_unlabelled_music() -> list[Path]:
    """:func:`unlabelled_audio_files`, or ParameterError naming the packages to install when there are none."""
    files = unlabelled_audio_files()
    if not files:
        raise ParameterError(f"--distill needs unlabelled music and none is installed: {INSTALL_SOUNDTRACKS}")
    return files


def _extract_pk3_audio(pk3: Path, extract_dir: Path, min_bytes: int) -> list[Path]:
    out: list[Path] = []
    dest = extract_dir / pk3.parent.parent.name / pk3.stem
    try:
        zf = zipfile.ZipFile(pk3)
    except (zipfile.BadZipFile, OSError):
        return out
    with zf:
        for info in zf.infolist():
            name = Path(info.filename)
            if (info.is_dir() or name.suffix.lower() not in AUDIO_SUFFIXES
                    or info.file_size < min_bytes or ".." in name.parts or name.is_absolute()):
                continue
            target = dest / name
            if not (target.is_file() and target.stat().st_size == info.file_size):
                with zf.open(info) as src, atomic_write(target) as dst:
                    shutil.copyfileobj(src, dst)
            out.append(target)
    return out
