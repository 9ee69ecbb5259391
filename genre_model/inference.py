"""The int8 TFLite genre classifier and its sidecar.

A model is two files: ``<name>.tflite`` and ``<name>.json``. The sidecar holds the
labels, the front-end parameters the model was trained with, the input
normalisation, the default aggregation and its calibration (temperature and
per-genre bias), the version, the sha256 of the .tflite and the validation metrics. Anything missing, corrupt
or inconsistent raises :class:`ModelError` at load, before any track is analysed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .aggregate import AGGREGATIONS, aggregator_fits
from .calibration import Calibration
from .constants import FRONTEND_KEYS, frontend_params
from .errors import ModelError

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_MODEL = MODELS_DIR / "gtzan-cnn.tflite"
BATCH_SIZE = 32  # slices per interpreter call


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


FLOAT_SUFFIX = ".float.tflite"  # the float twin of <name>.tflite is <name>.float.tflite


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """The sidecar of ``<name>.tflite`` (and of its float twin) is ``<name>.json`` beside it."""
    path = Path(model_path)
    if path.name.endswith(FLOAT_SUFFIX):
        return path.with_name(path.name[: -len(FLOAT_SUFFIX)] + ".json")
    return path.with_suffix(".json")


def float_twin_path(model_path: str | os.PathLike) -> Path:
    """Where the float32 twin of an int8 model lies (it may not exist)."""
    path = Path(model_path)
    return path.with_name(path.stem + FLOAT_SUFFIX)


@dataclass(frozen=True)
class ModelCard:
    """The parsed, validated sidecar of a model."""

    name: str
    version: str
    labels: list[str]
    frontend: dict[str, Any]
    mean: float
    std: float
    sha256: str
    float_sha256: str | None = None
    aggregation: str = "mean"
    temperature: float = 1.0
    bias: list[float] | None = None
    slice_temperatures: tuple[float, float] = (1.0, 1.0)  # of a track heard through one slice, and several
    float_twin_calibration: Calibration | None = None  # the float twin's own calibration
    aggregator: dict[str, Any] | None = None

    @property
    def tag(self) -> str:
        """``name@version``, stored with every prediction so re-analysis can be skipped."""
        return f"{self.name}@{self.version}"

    def calibration(self, method: str, *, float_twin: bool = False) -> Calibration:
        """The stored calibration of the int8 model, or of its float twin (fitted on the twin's own outputs).

        It belongs to the default aggregation; any other gets the identity.
        """
        if method != self.aggregation:
            return Calibration()
        if float_twin and self.float_twin_calibration is not None:
            return self.float_twin_calibration
        return Calibration(self.temperature, None if self.bias is None else np.asarray(self.bias, dtype=np.float64),
                           self.slice_temperatures)

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str) -> ModelCard:
        try:
            card = cls(
                name=str(data["name"]),
                version=str(data["version"]),
                labels=[str(x) for x in data["labels"]],
                frontend=dict(data["frontend"]),
                mean=float(data["normalization"]["mean"]),
                std=float(data["normalization"]["std"]),
                sha256=str(data["sha256"]),
                float_sha256=data.get("float_sha256"),
                aggregation=str(data.get("aggregation", "mean")),
                temperature=float(data.get("temperature", 1.0)),
                bias=None if data.get("bias") is None else [float(b) for b in data["bias"]],
                slice_temperatures=_slice_temperatures(data.get("slice_temperatures"), source),
                aggregator=data.get("aggregator"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"sidecar {source} is incomplete: {type(exc).__name__} {exc}") from None
        if len(card.labels) < 2 or len(set(card.labels)) != len(card.labels):
            raise ModelError(f"sidecar {source}: labels must be at least two distinct names")
        if set(card.frontend) != set(FRONTEND_KEYS):
            raise ModelError(f"sidecar {source}: front-end parameters must be exactly {', '.join(FRONTEND_KEYS)}")
        if card.frontend != frontend_params():
            raise ModelError(f"sidecar {source}: front-end {card.frontend} differs from this version's {frontend_params()}")
        if (card.aggregation not in AGGREGATIONS or not np.isfinite([card.mean, card.std, card.temperature]).all()
                or card.std <= 0 or card.temperature <= 0):
            raise ModelError(f"sidecar {source}: bad aggregation, normalisation or temperature")
        if not _fits_labels(card.temperature, card.bias, len(card.labels)):
            raise ModelError(f"sidecar {source}: bias must be one finite number per label")
        twin = data.get("float_twin_calibration")
        if twin is not None:  # parsed here, once: the twin's predictions use exactly what was checked
            try:
                twin_temperature = float(twin["temperature"])
                twin_bias = None if twin.get("bias") is None else [float(b) for b in twin["bias"]]
                twin_slice_temperatures = _slice_temperatures(twin.get("slice_temperatures"),
                                                               f"{source} float_twin_calibration")
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ModelError(f"sidecar {source}: float_twin_calibration is incomplete: {exc!r}") from None
            if not _fits_labels(twin_temperature, twin_bias, len(card.labels)):
                raise ModelError(f"sidecar {source}: float_twin_calibration needs a positive temperature "
                                 "and one finite bias per label")
            card = replace(card, float_twin_calibration=Calibration(
                twin_temperature, None if twin_bias is None else np.asarray(twin_bias, dtype=np.float64),
                twin_slice_temperatures))
        if card.aggregation == "learned" and card.aggregator is None:
            raise ModelError(f"sidecar {source}: learned aggregation without aggregator parameters")
        if card.aggregator is not None and not aggregator_fits(card.aggregator, len(card.labels)):
            raise ModelError(f"sidecar {source}: aggregator parameters do not fit {len(card.labels)} labels")
        return card


def _slice_temperatures(stored: Any, source: str) -> tuple[float, float]:
    """``{"one": t, "several": t}`` as a pair of positive finite floats; absent (older sidecars): (1, 1)."""
    if stored is None:
        return 1.0, 1.0
    try:
        pair = float(stored["one"]), float(stored["several"])
    except (KeyError, TypeError, ValueError):
        pair = (float("nan"),) * 2
    if not all(np.isfinite(t) and t > 0 for t in pair):
        raise ModelError(f"sidecar {source}: slice_temperatures needs positive numbers 'one' and 'several'")
    return pair


def _fits_labels(temperature: float, bias: list[float] | None, n_labels: int) -> bool:
    """Whether a calibration is a positive finite temperature and no bias or one finite bias per label."""
    bias_fits = bias is None or (len(bias) == n_labels and bool(np.all(np.isfinite(bias))))
    return bool(np.isfinite(temperature) and temperature > 0 and bias_fits)


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send what native code writes to file descriptor 2 to /dev/null for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class GenreClassifier:
    """An int8 TFLite CNN that maps log-mel slices to genre probabilities.

    Parameters
    ----------
    model_path : path of the ``.tflite``; its ``.json`` sidecar lies beside it.
        The float twin ``<name>.float.tflite`` (for evaluation) loads the same way.
    num_threads : threads of the TFLite interpreter.
    """

    def __init__(self, model_path: str | os.PathLike = DEFAULT_MODEL, *, num_threads: int = 1):
        self.path = Path(model_path)
        self.card = self._read_card()
        self.is_float = self.path.name.endswith(FLOAT_SUFFIX)
        content = self.path.read_bytes()
        expected = self.card.float_sha256 if self.is_float else self.card.sha256
        if hashlib.sha256(content).hexdigest() != expected:
            raise ModelError(f"{self.path} does not match the sha256 in its sidecar (corrupt or replaced)")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
                raise KeyboardInterrupt from None  # Ctrl-C while LiteRT's native module loaded
            raise ModelError(f"cannot load the TFLite runtime (ai-edge-litert): {exc}") from None

        try:
            self._interpreter = Interpreter(model_content=content, num_threads=max(1, num_threads))
            with _native_stderr_silenced():  # LiteRT announces its XNNPACK delegate on stderr
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.path} is not a loadable TFLite model: {exc}") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._check_signature()
        self._batch = int(self._input["shape"][0])
        self._lock = threading.Lock()  # one interpreter: one batch at a time

    @property
    def labels(self) -> list[str]:
        return self.card.labels

    @property
    def frontend(self) -> dict[str, Any]:
        return self.card.frontend

    def _read_card(self) -> ModelCard:
        side = sidecar_path(self.path)
        if self.path.is_dir():
            raise ModelError(f"model {self.path} is a directory, not a .tflite file")
        if not self.path.is_file():
            raise ModelError(f"model file {self.path} not found")
        if not side.is_file():
            raise ModelError(f"model sidecar {side} not found")
        try:
            data = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"sidecar {side} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ModelError(f"sidecar {side} is not a JSON object")
        return ModelCard.from_json(data, str(side))

    def _check_signature(self) -> None:
        shape = tuple(int(x) for x in self._input["shape"][1:])
        expected = (self.frontend["n_mels"], self.frontend["slice_frames"], 1)
        if shape != expected:
            raise ModelError(f"{self.path} takes input {shape}, its sidecar's front-end gives {expected}")
        dtype, kind = (np.float32, "float32") if self.is_float else (np.int8, "full-integer int8")
        if self._input["dtype"] != dtype or self._output["dtype"] != dtype:
            raise ModelError(f"{self.path} is not a {kind} model")
        if int(self._output["shape"][-1]) != len(self.labels):
            raise ModelError(f"{self.path} has {self._output['shape'][-1]} outputs for {len(self.labels)} labels")

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], [batch, *self._input["shape"][1:]])
            self._interpreter.allocate_tensors()
            self._batch = batch

    def predict_proba(self, log_mels: np.ndarray) -> np.ndarray:
        """Genre probabilities of each slice; safe to call from several threads (one runs at a time).

        Parameters
        ----------
        log_mels : np.ndarray [shape=(n_slices, n_mels, slice_frames)]
            Output of :func:`genre_model.features.log_mel_spectrogram`.

        Returns
        -------
        P : np.ndarray [shape=(n_slices, n_labels), dtype=float32], rows sum to ~1
        """
        x = (np.asarray(log_mels, dtype=np.float32) - self.card.mean) / self.card.std
        if self.is_float:
            q, (out_scale, out_zero) = x[..., None], (1.0, 0.0)
        else:
            scale, zero = self._input["quantization"]
            q = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)[..., None]
            out_scale, out_zero = self._output["quantization"]
        result = np.empty((q.shape[0], len(self.labels)), dtype=np.float32)
        with self._lock:
            for lo in range(0, q.shape[0], BATCH_SIZE):
                chunk = q[lo : lo + BATCH_SIZE]
                self._resize(chunk.shape[0])
                self._interpreter.set_tensor(self._input["index"], chunk)
                self._interpreter.invoke()
                raw = self._interpreter.get_tensor(self._output["index"]).astype(np.float32)
                result[lo : lo + chunk.shape[0]] = (raw - out_zero) * out_scale
        return result
