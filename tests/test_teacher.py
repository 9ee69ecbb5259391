"""The musicnn teacher (training only). Skipped unless TensorFlow is importable and the
musicnn wheel (or its unzipped checkpoints) is already in the cache: never downloads."""

from __future__ import annotations

import numpy as np
import pytest

from genre_model.constants import SAMPLE_RATE, SLICE_SAMPLES

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

from genre_model.training import teacher as teacher_mod  # noqa: E402



@pytest.fixture(scope="module")
def teacher():
    if not teacher_mod.musicnn_available():
        pytest.skip(f"musicnn wheel not in {teacher_mod.DEFAULT_CACHE_DIR} "
                    "(pip download --no-deps musicnn==0.1.0 -d cache/musicnn)")
    return teacher_mod.MusicnnTeacher()


def test_fused_layers_match_plain_keras():
    """TemporalBlock / BandMaxBN == Conv2D('same', relu) -> BatchNorm -> max over bands,
    with random weights including negative gammas (no checkpoint needed)."""
    import keras

    rng = np.random.default_rng(0)
    band_max_bn, temporal_block = teacher_mod._layer_classes()
    x = rng.standard_normal((2, 37, 11, 1)).astype(np.float32)
    kernel = rng.standard_normal((16, 5)).astype(np.float32)
    bias, beta, mean = (rng.standard_normal(5).astype(np.float32) for _ in range(3))
    gamma = np.array([1.0, -0.5, 2.0, -1.5, 0.3], np.float32)
    var = rng.uniform(0.5, 2.0, 5).astype(np.float32)

    conv = keras.layers.Conv2D(5, (16, 1), padding="same", activation="relu")
    bn = keras.layers.BatchNormalization(epsilon=1e-3)
    conv.build(x.shape)
    bn.build((None, None, None, 5))
    conv.set_weights([kernel[:, None, None, :], bias])
    bn.set_weights([gamma, beta, mean, var])
    expected = np.max(bn(conv(x), training=False), axis=2)

    block = temporal_block(5, 16, phases=3)
    block.build(x.shape)
    block.set_weights([kernel, bias, gamma, beta, mean, var])
    np.testing.assert_allclose(block(x), expected, rtol=1e-5, atol=1e-5)

    plain = keras.layers.Conv2D(5, (16, 1), padding="same", use_bias=False)
    plain.build(x.shape)
    plain.set_weights([kernel[:, None, None, :]])
    pool = band_max_bn(axis=2)
    pool.build((None, 37, 11, 5))
    pool.set_weights([bias, gamma, beta, mean, var])
    np.testing.assert_allclose(pool(plain(x)), expected, rtol=1e-5, atol=1e-5)


def _sine(freq: float = 440.0) -> np.ndarray:
    t = np.arange(SLICE_SAMPLES) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _noise(seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(SLICE_SAMPLES)).astype(np.float32)


def test_shapes_and_determinism(teacher):
    windows = np.stack([_sine(), _noise(), _sine()])
    emb, tags = teacher.embed_and_tag(windows)
    assert emb.shape == (3, 400) and emb.dtype == np.float32
    assert tags.shape == (3, 100) and tags.dtype == np.float32
    assert np.isfinite(emb).all()
    assert ((tags >= 0) & (tags <= 1)).all()
    assert len(teacher.tag_names) == 100
    np.testing.assert_allclose(emb[0], emb[2], rtol=0, atol=1e-5)  # same window, same embedding


@pytest.mark.parametrize("recording, tag", [("brahms-hungarian-dance-5", "mtt:classical"),
                                            ("macleod-vibe-ace", "msd:jazz"),
                                            ("hobbs-lets-go-fishin", "mtt:guitar")])
def test_the_checkpoints_hear_real_music_as_musicnn_does(teacher, recording, tag):
    """A weight loaded into the wrong layer still gives finite outputs; it does not name the music."""
    from audio_factory import DEMO_DIR
    from genre_model.audio import decode_full
    from genre_model.slicing import training_windows

    windows = training_windows(decode_full(DEMO_DIR / f"{recording}.ogg"), hop=SLICE_SAMPLES)
    _, tags = teacher.embed_and_tag(windows)
    top = [teacher.tag_names[j] for j in np.argsort(-tags.mean(axis=0))[:3]]
    assert tag == top[0], top


def test_batching_does_not_change_results(teacher):
    windows = np.stack([_noise(s) for s in range(5)])
    full, _ = teacher.embed_and_tag(windows)
    old = teacher.batch_size
    teacher.batch_size = 2
    try:
        chunked, _ = teacher.embed_and_tag(windows)
    finally:
        teacher.batch_size = old
    np.testing.assert_allclose(full, chunked, rtol=1e-4, atol=1e-4)


def test_sine_and_noise_differ(teacher):
    emb, _ = teacher.embed_and_tag(np.stack([_sine(), _noise()]))
    cos = emb[0] @ emb[1] / (np.linalg.norm(emb[0]) * np.linalg.norm(emb[1]))
    assert np.abs(emb[0] - emb[1]).max() > 0.1
    assert cos < 0.99


def test_loud_input_stays_finite(teacher):
    """The reference's float16 front-end overflows on loud clips; ours must not."""
    loud = np.clip(_noise() * 10, -1, 1)
    x = teacher.logmel(loud[None])
    assert x.shape == (1, 1 + 40_960 // 256, 96)
    assert np.isfinite(x).all()
    assert np.isfinite(teacher.embed_and_tag(loud[None])[0]).all()


def test_outputs_cached(teacher, tmp_path):
    windows = np.stack([_noise(1), _sine(220.0)])
    first_emb, first_tags = teacher_mod.outputs_cached(teacher, "k1", windows, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 2  # embeddings and tags
    assert first_emb.shape == (2, 400) and first_tags.shape == (2, 100)

    def boom():
        raise AssertionError("cached result must not recompute")

    emb, tags = teacher_mod.outputs_cached(teacher, "k1", boom, cache_dir=tmp_path)
    np.testing.assert_array_equal(emb, first_emb)
    np.testing.assert_array_equal(tags, first_tags)
    # a different number of windows is computed afresh
    other, _ = teacher_mod.outputs_cached(teacher, "k1", windows[:1], cache_dir=tmp_path)
    np.testing.assert_allclose(other, first_emb[:1], atol=1e-5)
    # embeddings cached without their tags (older caches) are computed again, both together
    teacher_mod._cache_paths("k1", tmp_path)[1].unlink()
    emb, tags = teacher_mod.outputs_cached(teacher, "k1", windows[:1], cache_dir=tmp_path)
    assert tags.shape == (1, 100) and teacher_mod._cache_paths("k1", tmp_path)[1].is_file()


def test_mel_filterbank_matches_librosa_shape_and_norm():
    fb = teacher_mod.mel_filterbank()
    assert fb.shape == (96, 257)
    assert (fb >= 0).all() and (fb.sum(axis=1) > 0).all()
    # Slaney norm: each triangle has unit area in Hz (2 / bandwidth peak height)
    hz_per_bin = teacher_mod.TEACHER_SR / teacher_mod.TEACHER_N_FFT
    np.testing.assert_allclose(fb.sum(axis=1) * hz_per_bin, 1.0, rtol=0.25)
