"""A tiny end-to-end training run on generated audio yields a loadable int8 model."""

import json

import numpy as np
import pytest

from audio_factory import encode
from genre_model.inference import GenreClassifier, float_twin_path, sidecar_path

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

from genre_model.training.train import TrainConfig, train  # noqa: E402

SR = 22_050


def _track(kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(5 * SR) / SR
    if kind == "tones":
        return 0.3 * np.sin(2 * np.pi * rng.uniform(200, 800) * t)
    if kind == "noise":
        return 0.1 * rng.standard_normal(t.size)
    clicks = np.zeros(t.size)
    clicks[:: int(SR * rng.uniform(0.2, 0.5))] = 0.9
    return clicks


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("generated")
    (root / "splits").mkdir()
    listing = {"train": [], "valid": []}
    for kind in ("clicks", "noise", "tones"):
        (root / kind).mkdir()
        for i in range(5):
            name = f"{kind}/{kind}.{i}.flac"
            encode(_track(kind, i).astype(np.float32), root / name)
            listing["valid" if i == 4 else "train"].append(name)
    for split, names in listing.items():
        (root / "splits" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


def test_tiny_training_run_produces_a_loadable_int8_model(dataset, tmp_path):
    out = tmp_path / "tiny.tflite"
    config = TrainConfig(data=str(dataset), out=str(out), epochs=3, widths=(4, 8), codecs=("mp3",),
                         batch_size=8, cache_dir=None, name="tiny", version="0.0.1")
    report = train(config)

    classifier = GenreClassifier(out)
    assert classifier.labels == ["clicks", "noise", "tones"]
    assert classifier.card.tag == "tiny@0.0.1"
    assert not classifier.is_float and out.stat().st_size < 300_000
    assert GenreClassifier(float_twin_path(out)).is_float
    sidecar = json.loads(sidecar_path(out).read_text())
    assert sidecar["metrics"]["track_accuracy"] == report["valid"]["track_accuracy"]
    assert report["valid"]["n_tracks"] == 3
    assert set(report["valid"]["confusion"]["labels"]) == {"clicks", "noise", "tones"}
    p = classifier.predict_proba(np.zeros((2, 128, 128), dtype=np.float32))
    assert p.shape == (2, 3) and np.allclose(p.sum(axis=1), 1.0, atol=0.05)
