"""A tiny end-to-end training run on generated audio yields a loadable int8 model."""

import json
import os
from dataclasses import replace

import numpy as np
import pytest

from audio_factory import DEMO_DIR, encode
from genre_model.analysis import analyse_file
from genre_model.audio import decode_full
from genre_model.constants import SLICE_SAMPLES
from genre_model.dataset import read_tracks
from genre_model.errors import DecodeError, ParameterError
from genre_model.evaluate import CONDITIONS, degrade, evaluate
from genre_model.inference import GenreClassifier, float_twin_path, sha256_of, sidecar_path

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

from genre_model.training.augment import CODECS, codec_round_trip  # noqa: E402
from genre_model.training.train import TrainConfig, cached_windows, train  # noqa: E402

TINY_NETWORK = TrainConfig(data="", out="", widths=(4, 8), stem_stride=2)  # builds and converts in seconds

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


def test_a_first_run_trains_on_the_windows_a_cached_run_reads_back(dataset, tmp_path, monkeypatch):
    tracks = read_tracks(dataset, "train")[:2]
    config = replace(TINY_NETWORK, codecs=(), cache_dir=str(tmp_path / "cache"))
    first = cached_windows(tracks, config)
    assert len(list((tmp_path / "cache").iterdir())) == 1

    def no_decoding(*_):
        raise AssertionError("a cached run decodes nothing")

    monkeypatch.setattr("genre_model.training.train.track_windows", no_decoding)
    for computed, cached in zip(first, cached_windows(tracks, config)):
        assert computed.dtype == cached.dtype == np.float32
        np.testing.assert_array_equal(computed, cached)


def test_a_track_named_by_another_path_to_the_same_file_reads_the_same_caches(dataset, tmp_path, monkeypatch):
    """Training from another directory, or with the data given as an absolute path, reuses the caches."""
    from genre_model.training import distill

    config = replace(TINY_NETWORK, codecs=(), cache_dir=str(tmp_path / "cache"))
    monkeypatch.chdir(dataset.parent)
    relative = read_tracks(dataset.name, "train")[:2]
    keys = []

    def teacher_outputs(teacher, key, windows):
        keys.append(key)
        return np.zeros((1, 400)), np.zeros((1, 100))

    monkeypatch.setattr(distill, "outputs_cached", teacher_outputs)
    distill.labelled_outputs(None, relative, hop_frames=32)
    cached_windows(relative, config)
    monkeypatch.chdir(tmp_path)
    absolute = read_tracks(dataset, "train")[:2]
    assert str(absolute[0].path) != str(relative[0].path)
    distill.labelled_outputs(None, absolute, hop_frames=32)
    monkeypatch.setattr("genre_model.training.train.track_windows", lambda *_: pytest.fail("decoded again"))
    cached_windows(absolute, config)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    assert keys[:2] == keys[2:]


def test_a_window_cache_write_cut_short_leaves_no_cache(dataset, tmp_path, monkeypatch):
    tracks = read_tracks(dataset, "train")[:1]
    config = replace(TINY_NETWORK, codecs=(), cache_dir=str(tmp_path))

    def interrupted(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cached_windows(tracks, config)
    assert list(tmp_path.iterdir()) == [], "neither the cache nor its temporary file"
    monkeypatch.undo()
    cached_windows(tracks, config)
    (cache,) = tmp_path.iterdir()
    assert cache.suffix == ".npz"
    umask = os.umask(0)
    os.umask(umask)
    assert cache.stat().st_mode & 0o777 == 0o666 & ~umask, "as any file the user writes"


def test_training_caches_live_under_the_working_directory(tmp_path, monkeypatch):
    """Not beside the package: installed, that is site-packages."""
    from pathlib import Path

    from genre_model.training import distill, teacher

    monkeypatch.chdir(tmp_path)
    for folder in (teacher.DEFAULT_CACHE_DIR, teacher.DEFAULT_EMBED_CACHE, distill.DEFAULT_UNLABELLED_CACHE,
                   Path(TrainConfig("data", "out.tflite").cache_dir)):
        assert folder.resolve().is_relative_to(tmp_path / "cache"), folder


def test_the_window_cache_is_keyed_by_the_codec_arguments(dataset, tmp_path, monkeypatch):
    tracks = read_tracks(dataset, "train")[:1]
    config = replace(TINY_NETWORK, codecs=("mp3",), cache_dir=str(tmp_path))
    cached_windows(tracks, config)
    suffix, options = CODECS["mp3"]
    monkeypatch.setitem(CODECS, "mp3", (suffix, [arg.replace("128k", "64k") for arg in options]))
    cached_windows(tracks, config)
    assert len(list(tmp_path.iterdir())) == 2, "other MP3 copies, another cache entry"

def test_the_window_cache_is_keyed_by_the_decoder(dataset, tmp_path, monkeypatch):
    tracks = read_tracks(dataset, "train")[:1]
    config = replace(TINY_NETWORK, codecs=(), cache_dir=str(tmp_path))
    cached_windows(tracks, config)
    monkeypatch.setattr("genre_model.training.train.decoder_identity", lambda: "ffmpeg version 4.4.2")
    cached_windows(tracks, config)
    assert len(list(tmp_path.iterdir())) == 2, "another ffmpeg decodes other samples: another cache entry"


def test_teacher_outputs_are_cached_per_decoder(tmp_path, monkeypatch):
    from genre_model.audio import decoder_identity
    from genre_model.training import teacher as teacher_mod

    here = teacher_mod._cache_paths("track.flac|1|hop=640", tmp_path)
    assert decoder_identity().startswith("ffmpeg version ")
    monkeypatch.setattr(teacher_mod, "decoder_identity", lambda: "audioread")
    assert teacher_mod._cache_paths("track.flac|1|hop=640", tmp_path)[0] != here[0]


def test_an_empty_teacher_output_file_is_computed_again(tmp_path):
    from genre_model.training import teacher as teacher_mod

    empty = tmp_path / "outputs.npy"
    empty.touch()  # renamed into place, then lost in a crash before it reached the disk
    assert teacher_mod._load_cached(empty, np.zeros((2, 400), np.float32)) is None


def test_unlabelled_music_is_found_and_extracted_from_game_archives(tmp_path):
    import zipfile

    from genre_model.training.distill import unlabelled_audio_files

    games = tmp_path / "games"
    for name, size in (("wesnoth/music/battle.ogg", 400_000), ("wesnoth/sounds/sword.ogg", 400_000),
                       ("wesnoth/music/jingle.ogg", 1_000), ("wesnoth/music/notes.txt", 400_000)):
        (games / name).parent.mkdir(parents=True, exist_ok=True)
        (games / name).write_bytes(b"\0" * size)
    (games / "nexuiz/data").mkdir(parents=True)
    with zipfile.ZipFile(games / "nexuiz/data/music.pk3", "w") as pk3:
        pk3.writestr("sound/cdtracks/theme.ogg", b"\1" * 400_000)
        pk3.writestr("../outside.ogg", b"\1" * 400_000)
        pk3.writestr("sound/tiny.ogg", b"\1" * 10)
    extract = tmp_path / "extracted"
    found = unlabelled_audio_files([games], extract_dir=extract)
    theme = extract / "nexuiz" / "music" / "sound" / "cdtracks" / "theme.ogg"
    assert found == sorted([games / "wesnoth/music/battle.ogg", theme])
    assert theme.read_bytes() == b"\1" * 400_000
    assert not (tmp_path / "outside.ogg").exists() and not (extract / "outside.ogg").exists()
    written = theme.stat().st_mtime_ns
    assert unlabelled_audio_files([games], extract_dir=extract) == found
    assert theme.stat().st_mtime_ns == written, "extracted once"


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_a_codec_copy_starts_where_the_original_does(codec):
    """Through a pipe, MP3 and AAC came back ~50 ms late: a gap at every seam of a repeated excerpt."""
    y = decode_full(DEMO_DIR / "macleod-vibe-ace.ogg")[5 * SR: 8 * SR]
    copy = codec_round_trip(y, codec)
    assert copy.size == y.size
    lags = np.arange(-200, 2000)
    middle = slice(4000, 4000 + SR)
    similarity = [np.dot(y[middle], copy[middle.start + lag: middle.stop + lag]) for lag in lags]
    assert abs(lags[int(np.argmax(similarity))]) <= 2


@pytest.mark.parametrize("kept", [1000, 0], ids=["cut short", "empty"])  # empty: renamed, then a crash
def test_a_window_cache_cut_short_is_built_again(dataset, tmp_path, kept):
    tracks = read_tracks(dataset, "train")[:2]
    config = replace(TINY_NETWORK, codecs=(), cache_dir=str(tmp_path))
    first = cached_windows(tracks, config)
    (cache,) = tmp_path.iterdir()
    cache.write_bytes(cache.read_bytes()[:kept])
    again = cached_windows(tracks, config)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == [cache.name]


def test_a_training_file_too_short_to_pad_is_named(dataset, tmp_path):
    short = encode(_track("tones", 9)[: SR].astype(np.float32), tmp_path / "tones" / "tones.9.flac")
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.txt").write_text("tones/tones.9.flac\n")
    with pytest.raises(DecodeError, match="tones.9.flac.*need at least 1.5 s"):
        cached_windows(read_tracks(tmp_path, "train"), replace(TINY_NETWORK, codecs=(), cache_dir=None))
    assert short.is_file()


def test_a_valid_genre_without_training_tracks_stops_training_before_it_starts(dataset, tmp_path):
    (tmp_path / "splits").mkdir()
    for split, names in (("train", ["tones/tones.0.flac", "noise/noise.0.flac"]),
                         ("valid", ["clicks/clicks.4.flac"])):
        (tmp_path / "splits" / f"{split}.txt").write_text("\n".join(names) + "\n")
    for name in ("tones/tones.0.flac", "noise/noise.0.flac", "clicks/clicks.4.flac"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes((dataset / name).read_bytes())
    out = tmp_path / "model.tflite"
    with pytest.raises(ParameterError, match="valid split genres with no training track: clicks"):
        train(replace(TINY_NETWORK, data=str(tmp_path), out=str(out), cache_dir=None))
    assert not out.exists()


def test_distillation_without_unlabelled_music_stops_before_decoding_and_names_the_packages(dataset, tmp_path,
                                                                                           monkeypatch):
    from genre_model.training import distill
    from genre_model.training import train as train_module

    monkeypatch.setattr(distill, "unlabelled_audio_files", lambda: [])
    monkeypatch.setattr(train_module, "build_dataset", lambda *args: pytest.fail("decoded before the check"))
    out = tmp_path / "model.tflite"
    with pytest.raises(ParameterError, match="none is installed: apt-get install .*wesnoth-1.16-music"):
        train(replace(TINY_NETWORK, data=str(dataset), out=str(out), distill=True, cache_dir=None))
    assert not out.exists()


def test_tiny_training_run_produces_a_loadable_int8_model(dataset, tmp_path):
    out = tmp_path / "tiny.tflite"
    config = TrainConfig(data=str(dataset), out=str(out), epochs=3, widths=(4, 8), codecs=("mp3",),
                         batch_size=8, cache_dir=None, name="tiny")
    report = train(config)

    classifier = GenreClassifier(out)
    assert classifier.labels == ["clicks", "noise", "tones"]
    # no --version: named by its weights, so tracks tagged by a release or another retrain are analysed again
    assert classifier.card.tag == f"tiny@dev+{sha256_of(out)[:8]}"
    assert not classifier.is_float and out.stat().st_size < 300_000
    assert GenreClassifier(float_twin_path(out)).is_float
    sidecar = json.loads(sidecar_path(out).read_text())
    assert sidecar["metrics"]["track_accuracy"] == report["valid"]["track_accuracy"]
    assert report["valid"]["n_tracks"] == 3
    # training hands evaluate the slices it already decoded: the same figures as decoding them again
    again = evaluate(dataset, out, split="valid", calibration=True)
    assert again["track_accuracy"] == report["valid"]["track_accuracy"] and again["ece"] == report["valid"]["ece"]
    # robustness: every condition; each agreement is the share of tracks not listed as flipped
    valid = report["valid"]
    assert set(valid["agreement"]) == set(CONDITIONS) == set(valid["flipped"])
    assert valid["encoder"].startswith("ffmpeg version ")
    for condition, agreement in valid["agreement"].items():
        assert agreement == pytest.approx(1 - len(valid["flipped"][condition]) / 3, abs=1e-4)
    tracks = read_tracks(dataset, "valid")
    by_hand = [str(t.path) for t in tracks
               if analyse_file(degrade(t.path, "mp3_128k", tmp_path), classifier).genre
               != analyse_file(t.path, classifier).genre]
    assert valid["flipped"]["mp3_128k"] == by_hand
    assert set(report["valid"]["confusion"]["labels"]) == {"clicks", "noise", "tones"}
    p = classifier.predict_proba(np.zeros((2, 128, 128), dtype=np.float32))
    assert p.shape == (2, 3) and np.allclose(p.sum(axis=1), 1.0, atol=0.05)

    # the model card: its tables from the report, the encoder that made the copies, both figures
    from genre_model.training.card import write_model_card

    page = write_model_card(report, out, "python -m genre_model train DATA").read_text()
    assert page.startswith(f"# Model card: tiny dev+{sha256_of(out)[:8]}\n")
    for condition, agreement in valid["agreement"].items():
        assert f"| {condition} | {agreement} |" in page
    assert f"Copies made and decoded by {valid['encoder']}, on one machine." in page
    assert "```\npython -m genre_model train DATA\n```" in page
    assert (tmp_path / "tiny-confusion.png").stat().st_size > 0 and (tmp_path / "tiny-reliability.png").is_file()
    assert "apt-get" not in page, "no distillation, no unlabelled music to install"
    distilled = write_model_card(dict(report, config={**report["config"], "distill": True}), out, "train").read_text()
    assert "the unlabelled music, as root: `apt-get install --no-install-recommends wesnoth-1.16-music" in distilled


def test_distillation_head_is_dropped_from_the_shipped_model_and_its_loss_counts():
    from genre_model.training.train import build_model, genre_and_embedding_loss

    config = replace(TINY_NETWORK, embed_weight=2.0, label_smoothing=0.0)
    shipped, trained = build_model(3, config, embed_dim=5)
    x = np.zeros((2, 128, 128, 1), dtype=np.float32)
    assert shipped(x).shape == (2, 3) and trained(x).shape == (2, 8)
    loss = genre_and_embedding_loss(3, config)
    # genre (1, 0, 0) predicted with 0.5; embedding off by 1 in every dimension; weights 1 and 0.5
    y_true = np.array([[1, 0, 0, 0, 0, 0, 0, 0, 1.0, 0.5]], dtype=np.float32)
    y_pred = np.array([[0.5, 0.25, 0.25, 1, 1, 1, 1, 1]], dtype=np.float32)
    expected = -np.log(0.5) + 2.0 * 0.5 * 1.0
    assert float(np.asarray(loss(y_true, y_pred))[0]) == pytest.approx(expected, rel=1e-4)


def test_pretraining_stage_learns_the_teacher_alone_then_the_genre_joins():
    from genre_model.training.train import training_stages

    # [genre (3) | teacher embedding (2) | genre weight | embedding weight]
    targets = np.array([[1, 0, 0, 0.5, -0.5, 1.0, 1.0], [0, 0.3, 0.7, 1.0, 2.0, 0.2, 1.0]], dtype=np.float32)
    config = TrainConfig(data="", out="", epochs=5, pretrain_epochs=3)
    (first, n_first, pretrain), (second, n_second, joint) = training_stages(config, targets, embed_dim=2)
    assert (first, n_first, second, n_second) == ("pretrain", 3, "train", 5)
    assert np.all(pretrain[:, -2] == 0) and np.array_equal(pretrain[:, :-2], targets[:, :-2])
    assert np.array_equal(pretrain[:, -1], targets[:, -1]) and np.array_equal(joint, targets)
    assert [s[0] for s in training_stages(config, targets[:, [0, 1, 2, 5, 6]], embed_dim=0)] == ["train"]


def test_mean_and_max_pooling_feeds_both_statistics_of_every_channel_to_the_genre_head():
    from genre_model.training.train import build_model

    mean_only, _ = build_model(3, TINY_NETWORK)
    both, _ = build_model(3, replace(TINY_NETWORK, pooling="mean+max"))
    assert mean_only.get_layer("genre").kernel.shape == (8, 3)
    assert both.get_layer("genre").kernel.shape == (16, 3)


def test_separable_convolutions_buy_three_times_the_width_for_about_the_same_weights():
    from genre_model.training.train import build_model

    standard, _ = build_model(10, TrainConfig(data="", out="", stem_stride=2))
    separable, _ = build_model(10, TrainConfig(data="", out="", stem_stride=2, separable=True,
                                               widths=(32, 96, 192, 384)))

    def layer_kinds(model):
        return {type(layer).__name__ for layer in model.layers}

    assert "SeparableConv2D" in layer_kinds(separable) and "SeparableConv2D" not in layer_kinds(standard)
    assert separable.get_layer("genre").kernel.shape == (384, 10)
    assert 0.9 < separable.count_params() / standard.count_params() < 1.1


def test_musicnn_architecture_has_the_teachers_filter_shapes_within_the_size_budget():
    from genre_model.training.train import build_model

    shipped, trained = build_model(10, TrainConfig(data="", out="", architecture="musicnn"), embed_dim=400)
    kernels = {layer.kernel.shape[:2] for layer in shipped.layers if type(layer).__name__ == "Conv2D"}
    assert {(51, 7), (89, 7)} <= kernels  # timbral: 40% and 70% of the 128 mel bands
    assert {(1, 128), (1, 64), (1, 32)} <= kernels  # temporal: the slice, a half, a quarter
    assert shipped.output_shape == (None, 10) and trained.output_shape == (None, 410)
    assert shipped.count_params() < 300_000  # int8: about a byte a weight, within the shipped model's 300 KB
    with pytest.raises(ValueError, match="unknown architecture"):
        TrainConfig(data="", out="", architecture="resnet")


def _int8_classifier(shipped, representative: np.ndarray, tmp_path) -> GenreClassifier:
    """``shipped`` converted to int8 and loaded as the plugin loads a model (on normalised input)."""
    from genre_model.constants import frontend_params
    from genre_model.inference import sha256_of
    from genre_model.training.train import convert

    _, int8_bytes = convert(shipped, representative)
    model = tmp_path / "small.tflite"
    model.write_bytes(int8_bytes)
    sidecar_path(model).write_text(json.dumps({
        "name": "small", "version": "0", "labels": ["a", "b", "c"], "frontend": frontend_params(),
        "normalization": {"mean": 0.0, "std": 1.0}, "sha256": sha256_of(model)}))
    return GenreClassifier(model)


def test_centred_level_makes_the_int8_model_deaf_to_a_gain_change(tmp_path):
    import keras

    from genre_model.training.train import build_model

    keras.utils.set_random_seed(0)  # the overflow's trace in the output depends on the weights
    shipped, _ = build_model(3, replace(TINY_NETWORK, centre_level=True))
    x = np.random.default_rng(0).standard_normal((6, 128, 128)).astype(np.float32)
    louder = x + 0.8  # +0.8 std of the normalised log-mels: about +15 dB
    quiet = np.clip(x * 0.5 - 1.8, -2, None)  # mostly at the floor: XNNPACK's int8 mean of 16 384 overflowed here
    float_out = np.asarray(shipped(x[..., None]))
    assert np.allclose(float_out, np.asarray(shipped(louder[..., None])), atol=1e-5)
    int8 = _int8_classifier(shipped, np.concatenate([quiet, x + 1]), tmp_path)

    assert np.abs(int8.predict_proba(x) - float_out).max() < 0.05
    # with the overflowing one-step mean, 0.016-0.048 over six initialisations; with two steps, under 0.004
    assert np.abs(int8.predict_proba(quiet) - np.asarray(shipped(quiet[..., None]))).max() < 0.01
    assert np.abs(int8.predict_proba(louder) - int8.predict_proba(x)).max() < 0.02


def test_top_db_floor_follows_the_slice_so_a_gain_reaches_no_log_mel(tmp_path):
    import keras

    from genre_model.training.train import build_model

    keras.utils.set_random_seed(0)
    config = replace(TINY_NETWORK, centre_level=True, top_db=30.0)
    shipped, _ = build_model(3, config, log_mel_std=2.0)  # 30 dB = 6.9 ln units = 3.45 normalised units
    rng = np.random.default_rng(0)
    music = rng.standard_normal((4, 128, 128)).astype(np.float32)
    absolute_floor = -2.5  # silence: log(LOG_FLOOR), normalised; a gain does not move it
    quiet = np.maximum(music, absolute_floor)
    louder = np.maximum(music + 1.5, absolute_floor)  # +13 dB: more of the music clears the absolute floor
    floored = np.asarray(shipped.get_layer("top_db")(quiet[..., None]))
    assert np.allclose(floored.min(axis=(1, 2, 3)), quiet.max(axis=(1, 2)) - 3 * np.log(10) / 2, atol=1e-5)
    assert np.allclose(np.asarray(shipped(quiet[..., None])), np.asarray(shipped(louder[..., None])), atol=1e-5)
    int8 = _int8_classifier(shipped, np.concatenate([quiet, louder]), tmp_path)
    # the int8 layers (REDUCE_MAX, MAXIMUM) follow the float ones: 0.002 here, where slices differ by 0.05
    assert np.abs(int8.predict_proba(quiet) - np.asarray(shipped(quiet[..., None]))).max() < 0.01
    assert np.abs(int8.predict_proba(louder) - int8.predict_proba(quiet)).max() < 0.01
    untouched, _ = build_model(3, replace(config, top_db=0.0))
    assert not np.allclose(np.asarray(untouched(quiet[..., None])), np.asarray(untouched(louder[..., None])),
                           atol=1e-3)


def test_mixup_mixes_windows_as_audio_power_and_targets_by_the_same_weight():
    from genre_model.features import log_mel_spectrogram
    from genre_model.constants import LOG_FLOOR
    from genre_model.training.augment import mixup

    rng = np.random.default_rng(1)
    y = rng.standard_normal((2, SLICE_SAMPLES)).astype(np.float32) * np.array([[0.3], [0.01]], dtype=np.float32)
    log_mels = log_mel_spectrogram(y)
    mean, std = float(log_mels.mean()), float(log_mels.std())
    targets = np.eye(2, dtype=np.float32)
    mixed, mixed_targets = mixup((log_mels - mean) / std, targets, np.random.default_rng(1), 0.4, mean, std)
    lam = mixed_targets[0, 0]
    assert 0 < lam < 1 and mixed_targets[1, 0] > 0  # each window got the other as its partner
    power = np.exp(log_mels) - LOG_FLOOR
    expected = np.log(LOG_FLOOR + lam * power[0] + (1 - lam) * power[1])
    np.testing.assert_allclose(mixed[0] * std + mean, expected, atol=1e-3)
    same, _ = mixup(np.repeat((log_mels[:1] - mean) / std, 2, axis=0), targets, np.random.default_rng(0), 0.4,
                    mean, std)
    np.testing.assert_allclose(same[0], (log_mels[0] - mean) / std, atol=1e-4)  # a window mixed with itself


def test_consistency_term_compares_two_versions_through_the_same_weights():
    from genre_model.training.train import build_model, genre_and_embedding_loss

    config = replace(TINY_NETWORK, label_smoothing=0.0, consistency_weight=2.0)
    shipped, trained = build_model(3, config, embed_dim=5)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 2, 128, 128, 1)).astype(np.float32)
    out = np.asarray(trained([a, b]))
    assert out.shape == (2, 3 + 5 + 3) and len(trained.weights) == len(shipped.weights) + 2  # + embedding head
    np.testing.assert_allclose(out[:, -3:], np.asarray(shipped(b)), atol=1e-6)
    np.testing.assert_allclose(out[:, :3], np.asarray(shipped(a)), atol=1e-6)
    loss = genre_and_embedding_loss(3, config)
    y_true = np.array([[1, 0, 0, 0, 0, 0, 0, 0, 1.0, 0.0]], dtype=np.float32)  # embedding weight 0
    agree = np.array([[0.5, 0.25, 0.25, 1, 1, 1, 1, 1, 0.5, 0.25, 0.25]], dtype=np.float32)
    differ = np.array([[0.5, 0.25, 0.25, 1, 1, 1, 1, 1, 0.25, 0.5, 0.25]], dtype=np.float32)
    assert float(np.asarray(loss(y_true, agree))[0]) == pytest.approx(-np.log(0.5), rel=1e-4)
    m = np.array([0.375, 0.375, 0.25])
    js = (np.sum(agree[0, :3] * np.log(agree[0, :3] / m)) + np.sum(differ[0, -3:] * np.log(differ[0, -3:] / m))) / 2
    assert float(np.asarray(loss(y_true, differ))[0]) == pytest.approx(-np.log(0.5) + 2.0 * js, rel=1e-4)


def test_cross_fitted_probe_never_sees_the_track_it_labels():
    from genre_model.training.distill import cross_fitted_probe_genres

    rng = np.random.default_rng(0)
    genres = np.repeat(np.arange(3), 20)
    embeddings = rng.standard_normal((60, 4)) + np.eye(3, 4)[genres] * 3  # separable genres
    tracks = np.arange(60) // 2  # two windows a track
    p = cross_fitted_probe_genres(embeddings, genres, tracks, 3)
    assert p.shape == (60, 3) and np.allclose(p.sum(axis=1), 1.0)
    assert (p.argmax(axis=1) == genres).mean() > 0.9
    # relabelling one track changes the probe's view of the other tracks only, not its own windows
    flipped = genres.copy()
    flipped[tracks == 0] = 2
    q = cross_fitted_probe_genres(embeddings, flipped, tracks, 3)
    assert np.allclose(q[tracks == 0], p[tracks == 0])


def test_teacher_tag_logits_invert_the_sigmoid_and_stay_finite_at_certainty():
    from genre_model.training.distill import tag_logits

    logits = np.array([[-3.0, 0.0, 2.5]])
    np.testing.assert_allclose(tag_logits(1 / (1 + np.exp(-logits))), logits, atol=1e-6)
    certain = tag_logits(np.array([[0.0, 1.0]]))
    assert np.all(np.isfinite(certain)) and certain[0, 0] == pytest.approx(-certain[0, 1]) and certain[0, 1] > 9


def test_augmentation_gain_is_in_ln_power_units_and_lowpass_cuts_only_the_top_bands():
    from genre_model.training.augment import gain_db_to_log_offset
    from genre_model.training.augment import augment_log_mels

    x = np.random.default_rng(1).normal(size=(64, 128, 128)).astype(np.float32)
    std = 4.0
    gain_only = TrainConfig(data="", out="", gain_db=10.0, tilt=0.0, time_masks=0, freq_masks=0)
    offset = (augment_log_mels(x.copy(), np.random.default_rng(0), gain_only, 0.0, std) - x)[:, 0, 0] * std
    assert np.abs(offset).max() <= gain_db_to_log_offset(10.0) + 1e-5
    assert np.abs(offset).max() > 0.8 * gain_db_to_log_offset(10.0)

    cut_all = TrainConfig(data="", out="", gain_db=0.0, tilt=0.0, time_masks=0, freq_masks=0, lowpass=1.0)
    y = augment_log_mels(x.copy(), np.random.default_rng(0), cut_all, 0.0, std)
    changed = (y != x).any(axis=2)  # (windows, bands)
    assert not changed[:, : 128 * 5 // 6].any()
    assert changed[:, -1].all()
    assert np.all(y[:, -1] == x.min(axis=(1, 2))[:, None])


def test_pitch_shift_moves_each_window_by_whole_bands_within_the_limit_repeating_the_edge():
    from genre_model.training.augment import augment_log_mels

    x = np.random.default_rng(2).normal(size=(200, 128, 128)).astype(np.float32)
    shift_only = TrainConfig(data="", out="", gain_db=0.0, tilt=0.0, time_masks=0, freq_masks=0, pitch_bands=3)
    y = augment_log_mels(x.copy(), np.random.default_rng(0), shift_only, 0.0, 4.0)
    shifts = []
    for before, after in zip(x, y):
        (k,) = [k for k in range(-3, 4) if np.array_equal(after[max(k, 0): 128 + min(k, 0)],
                                                          before[max(-k, 0): 128 + min(-k, 0)])]
        edge = after[:k] if k > 0 else after[128 + k:]
        assert np.all(edge == (before[0] if k > 0 else before[-1]))
        shifts.append(k)
    assert set(shifts) == set(range(-3, 4))


def test_gain_in_power_equals_turning_the_audio_up_or_down_under_the_log_floor():
    from genre_model.features import log_mel_spectrogram
    from genre_model.training.augment import augment_log_mels

    t = np.arange(2 * SLICE_SAMPLES) / SR
    y = (1e-4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # so quiet that the log floor shapes its log-mel
    y[: y.size // 2] *= 1e3
    windows = np.stack([y[:SLICE_SAMPLES], y[SLICE_SAMPLES // 2: SLICE_SAMPLES * 3 // 2], y[-SLICE_SAMPLES:]])
    mean, std = -5.0, 4.0
    x = (log_mel_spectrogram(windows) - mean) / std
    config = TrainConfig(data="", out="", gain_db=20.0, tilt=0.0, time_masks=0, freq_masks=0, gain_in_power=True)
    gain_db = np.random.default_rng(0).uniform(-20.0, 20.0, len(windows))  # augment's first draw

    turned = augment_log_mels(x.copy(), np.random.default_rng(0), config, mean, std) * std + mean
    expected = log_mel_spectrogram(windows * 10 ** (gain_db[:, None] / 20))
    np.testing.assert_allclose(turned, expected, atol=2e-2)
    shifted = augment_log_mels(x.copy(), np.random.default_rng(0), replace(config, gain_in_power=False), mean, std)
    assert np.abs(shifted * std + mean - expected).max() > 1.0  # a plain shift moves the floor too


def test_clip_copy_is_the_audio_driven_into_full_scale_clipping():
    from genre_model.training.augment import CLIP_DRIVE_DB, degraded_copy

    y = (0.8 * np.sin(2 * np.pi * 220 * np.arange(SR) / SR)).astype(np.float32)
    clipped = degraded_copy(y, "clip", np.random.default_rng(3))
    drive_db = np.random.default_rng(3).uniform(*CLIP_DRIVE_DB)
    assert clipped.shape == y.shape and np.abs(clipped).max() == pytest.approx(1.0)
    np.testing.assert_allclose(clipped, np.clip(y * 10 ** (drive_db / 20), -1, 1), atol=1e-6)
    assert np.mean(np.abs(clipped) == 1.0) > 0.1  # 0.8 driven by >= 3 dB passes full scale


def test_jittered_windows_are_the_training_windows_longer_and_within_the_track():
    """Every window a crop offset longer, from up to a frame after its start, never past the end."""
    from genre_model.constants import HOP_LENGTH
    from genre_model.slicing import pad_to_slice, training_windows
    from genre_model.training.train import jittered_windows

    hop, extra = 32 * HOP_LENGTH, 16
    y = np.arange(20 * SR, dtype=np.float32)  # each sample its own index: a window says where it starts
    plain = training_windows(y, hop=hop)
    jittered = jittered_windows(y, hop=hop, extra_frames=extra, rng=np.random.default_rng(0))
    assert jittered.shape == (len(plain), SLICE_SAMPLES + extra * HOP_LENGTH)
    starts = jittered[:, 0].astype(int)
    np.testing.assert_array_equal(jittered, starts[:, None] + np.arange(jittered.shape[1]))  # contiguous audio
    plain_starts = np.arange(len(plain)) * hop
    fits = plain_starts + HOP_LENGTH + jittered.shape[1] <= y.size  # else moved back to end with the track
    assert ((starts >= plain_starts) & (starts < plain_starts + HOP_LENGTH))[fits].all()
    assert (starts[~fits] == y.size - jittered.shape[1]).all() and (~fits).sum() == 1
    assert len(set(starts % HOP_LENGTH)) > 1, "random sub-frame phases"
    np.testing.assert_array_equal(jittered, jittered_windows(y, hop=hop, extra_frames=extra,
                                                             rng=np.random.default_rng(0)))

    excerpt = y[: 2 * SR]  # shorter than a slice: its repetition, which at offset 0 is training's window
    (window,) = jittered_windows(excerpt, hop=hop, extra_frames=extra, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(window[:SLICE_SAMPLES], pad_to_slice(excerpt))
    np.testing.assert_array_equal(window, np.resize(excerpt, window.size))


def test_time_jitter_trains_on_slice_long_crops_and_does_not_combine_with_min_windows(dataset, tmp_path):
    out = tmp_path / "jitter.tflite"
    train(TrainConfig(data=str(dataset), out=str(out), valid_split=None, epochs=1, widths=(4, 8), codecs=("mp3",),
                      batch_size=8, cache_dir=None, name="jitter", time_jitter=4))
    p = GenreClassifier(out).predict_proba(np.zeros((2, 128, 128), dtype=np.float32))
    assert p.shape == (2, 3) and np.allclose(p.sum(axis=1), 1.0, atol=0.05)
    with pytest.raises(ValueError, match="min_windows"):
        TrainConfig(data="", out="", time_jitter=4, min_windows=2)
