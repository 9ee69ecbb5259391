"""The shipped int8 model and the loader's refusals."""

import hashlib
import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy.io import wavfile

from audio_factory import DEMO_DIR, encode
from genre_model.aggregate import aggregate
from genre_model import analysis, audio
from genre_model.analysis import analyse_file, predict_tracks, track_log_mels
from genre_model.audio import decode_full, decoded_duration, find_ffmpeg, probe_duration
from genre_model.constants import SLICE_SAMPLES, frontend_params
from genre_model.errors import DecodeError, ModelError
from genre_model.features import log_mel_spectrogram
from genre_model.inference import DEFAULT_MODEL, GenreClassifier, float_twin_path, sidecar_path
from genre_model.slicing import training_windows


@pytest.fixture(scope="module")
def classifier():
    return GenreClassifier(DEFAULT_MODEL)


def test_shipped_model_is_a_small_full_int8_model(classifier):
    assert DEFAULT_MODEL.stat().st_size <= 300_000
    assert classifier.labels == ["blues", "classical", "country", "disco", "hiphop",
                                 "jazz", "metal", "pop", "reggae", "rock"]
    assert classifier.frontend == frontend_params()
    assert not classifier.is_float


def test_slice_probabilities_are_distributions(classifier):
    log_mels = track_log_mels(DEMO_DIR / "macleod-vibe-ace.ogg", classifier.frontend, n_slices=7)
    p = classifier.predict_proba(log_mels)
    assert p.shape == (7, 10)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=0.05)
    # batching does not change a slice's result
    np.testing.assert_array_equal(classifier.predict_proba(log_mels[2:3]), p[2:3])


def test_a_track_gets_the_same_prediction_alone_or_batched_with_others(classifier):
    tracks = [track_log_mels(DEMO_DIR / f"{stem}.ogg", classifier.frontend, n_slices=n)
              for stem, n in (("macleod-vibe-ace", 5), ("brahms-hungarian-dance-5", 3), ("hobbs-lets-go-fishin", 1))]
    together = predict_tracks(classifier, tracks)
    alone = [predict_tracks(classifier, [t])[0] for t in tracks]
    assert together == alone
    assert len({p.genre for p in together}) > 1  # distinct answers, so a misplaced track boundary shows


def test_string_orchestra_is_heard_as_classical(classifier):
    prediction = analyse_file(DEMO_DIR / "brahms-hungarian-dance-5.ogg", classifier)
    assert prediction.genre == "classical"
    assert 0.0 <= prediction.confidence <= 1.0



@pytest.mark.parametrize(("fmt", "sr"), [("flac", 44_100), ("mp3", 44_100), ("opus", 48_000)])
def test_a_cd_rate_copy_gets_the_genre_of_the_native_recording(classifier, tmp_path, fmt, sr):
    """This recording is pop (0.53) before country (0.40) at its native 22.05 kHz; resampled by ffmpeg's
    default filter, which dulls 9.7-11 kHz, its 44.1 kHz FLAC and MP3 copies were heard as country."""
    source = DEMO_DIR / "hobbs-lets-go-fishin.ogg"
    native = analyse_file(source, classifier)
    copy = analyse_file(encode(source, tmp_path / f"copy.{fmt}", extra=["-ar", str(sr), "-ac", "2"]), classifier)
    assert copy.genre == native.genre
    assert copy.confidence == pytest.approx(native.confidence, abs=0.03)


def test_a_length_that_tags_overstate_is_recounted_and_the_slices_placed_again(classifier, tmp_path):
    """A stated length can exceed the audio (a VBR MP3 without a length header, a cut-short file)."""
    path = encode(DEMO_DIR / "macleod-vibe-ace.ogg", tmp_path / "vibe.mp3", duration=20.0)
    # placed over the audio that decodes: ffmpeg before 9 probes LAME's padding too (20.06 s)
    heard = track_log_mels(path, classifier.frontend, duration=decoded_duration(path))
    np.testing.assert_array_equal(track_log_mels(path, classifier.frontend, duration=300.0), heard)
    assert len(heard) == 5

def test_a_track_shorter_than_a_slice_is_repeated_from_its_exact_length_as_in_training(classifier, tmp_path):
    """Not from its probed length, which ffmpeg rounds to 10 ms: up to 5 ms of silence, or as much
    audio lost, at every seam of the repetition."""
    path = encode(DEMO_DIR / "macleod-vibe-ace.ogg", tmp_path / "excerpt.flac", start=40.0, duration=2.1037)
    f = classifier.frontend
    training = log_mel_spectrogram(training_windows(decode_full(path), hop=SLICE_SAMPLES))  # as train.py has it
    assert probe_duration(path) * f["sample_rate"] != decode_full(path).size
    np.testing.assert_array_equal(track_log_mels(path, f), training)
    np.testing.assert_array_equal(track_log_mels(path, f, duration=2.1), training)
    for said in (2.6, 2.9, 5.0):  # a stored or estimated length can overstate it by up to a slice
        np.testing.assert_array_equal(track_log_mels(path, f, duration=said), training)


def test_a_short_vbr_mp3_whose_length_is_estimated_too_long_is_repeated_too(classifier, tmp_path):
    """Without a length header, ffmpeg estimates from the first frames: quiet ones make the file longer."""
    y = decode_full(DEMO_DIR / "macleod-vibe-ace.ogg")[30 * 22_050: 32 * 22_050 + 22_050 * 2 // 5].copy()
    y[: 22_050 // 2] = 0.0
    path = encode(y, tmp_path / "jingle.mp3", extra=["-q:a", "0", "-write_xing", "0"])
    assert decode_full(path).size < SLICE_SAMPLES <= probe_duration(path) * 22_050
    training = log_mel_spectrogram(training_windows(decode_full(path), hop=SLICE_SAMPLES))
    np.testing.assert_array_equal(track_log_mels(path, classifier.frontend), training)


def test_a_track_a_little_longer_than_a_slice_said_to_be_longer_still_is_sliced_by_its_audio(classifier,
                                                                                              tmp_path):
    """Slices placed by the overstated length would end in zeros that training never shows the network."""
    path = encode(DEMO_DIR / "macleod-vibe-ace.ogg", tmp_path / "jingle.wav", start=30.0, duration=2.7)
    heard = track_log_mels(path, classifier.frontend, duration=decode_full(path).size / 22_050)
    for said in (3.1, 4.0):
        np.testing.assert_array_equal(track_log_mels(path, classifier.frontend, duration=said), heard)


@pytest.mark.parametrize("fmt", ["mp3", "flac"])
def test_a_cut_short_download_is_heard_from_the_audio_it_has(classifier, tmp_path, fmt):
    """Its header still claims the full length, so slices placed by it fall mostly on silence."""
    whole = encode(DEMO_DIR / "macleod-vibe-ace.ogg", tmp_path / f"whole.{fmt}", duration=30.0)
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 6])
    there = decoded_duration(cut)
    assert 2.6 < there < 10.0 and probe_duration(cut) > 25.0
    for duration in (None, 30.0):  # probed, or as a caller states it
        assert len(track_log_mels(cut, classifier.frontend, duration=duration)) == int(there / 2.56)
    assert analyse_file(cut, classifier).genre in classifier.labels


def test_a_matroska_file_whose_timestamps_start_late_is_heard_to_its_end(classifier, tmp_path):
    """Matroska's length counts from timestamp 0, while seeking counts from the file's first sample."""
    flac = encode(DEMO_DIR / "macleod-vibe-ace.ogg", tmp_path / "music.flac", duration=30.0)
    late = tmp_path / "late.mka"
    subprocess.run([find_ffmpeg(), "-v", "error", "-i", flac, "-c", "copy", "-output_ts_offset", "20", late],
                   check=True)
    assert probe_duration(late) == pytest.approx(50.0, abs=0.1)
    log_mels = track_log_mels(late, classifier.frontend)
    # the slices of the audio's own 30 s, less the millisecond of Matroska's timestamps
    heard = track_log_mels(flac, classifier.frontend, duration=decoded_duration(late))
    assert log_mels.shape == heard.shape == (5, 128, 128)
    # a slice placed 2 ms off differs by about 0.2 on average; ffmpeg 4.2 to 9.0 give 0.038 to 0.050 here
    assert np.abs(log_mels - heard).mean(axis=(1, 2)).max() < 0.1


def test_stereo_whose_channels_cancel_in_mono_is_heard_from_its_first_channel(classifier, tmp_path):
    """One channel in opposite phase (a miswired microphone or cable): the mix to mono is silence."""
    y = decode_full(DEMO_DIR / "brahms-hungarian-dance-5.ogg")[: 30 * 22_050]
    antiphase = tmp_path / "antiphase.flac"
    subprocess.run([find_ffmpeg(), "-v", "error", "-f", "f32le", "-ac", "2", "-ar", "22050", "-i", "-",
                    "-c:a", "flac", antiphase], input=np.stack([y, -y], axis=1).astype("<f4").tobytes(), check=True)
    assert np.abs(decode_full(antiphase)).max() < 1e-6  # below -80 dBFS: "silent"
    np.testing.assert_array_equal(track_log_mels(antiphase, classifier.frontend),
                                  track_log_mels(encode(y, tmp_path / "left.flac"), classifier.frontend))
    assert analyse_file(antiphase, classifier).genre == "classical"


def test_a_stored_length_too_short_to_analyse_is_checked_against_the_file(classifier, tmp_path):
    """A stated length of a file since emptied or deleted must not hide why it fails."""
    (tmp_path / "emptied.mp3").write_bytes(b"")
    for name, reason in (("emptied.mp3", "empty file"), ("deleted.mp3", "No such file")):
        with pytest.raises(DecodeError, match=reason):
            track_log_mels(tmp_path / name, classifier.frontend, duration=0.3)


def _music_with_silence(tmp_path, name, silent_from, silent_to, seconds=30.0):
    """Vibe Ace for ``seconds``, silent from ``silent_from`` to ``silent_to`` s, as FLAC."""
    y = decode_full(DEMO_DIR / "macleod-vibe-ace.ogg")[: int(seconds * 22_050)].copy()
    y[int(silent_from * 22_050): int(silent_to * 22_050)] = 0.0
    return encode(y, tmp_path / name)


def test_a_silent_slice_with_music_after_it_is_dropped_without_decoding_the_whole_file(classifier, tmp_path,
                                                                                        monkeypatch):
    """Silence between movements cannot mean a cut-short file: only a silent end is measured."""
    path = _music_with_silence(tmp_path, "pause.flac", 12.0, 18.0)  # the middle of 5 slices, 13.7-16.3 s
    monkeypatch.setattr(analysis, "decoded_duration", lambda *a, **k: pytest.fail("decoded the whole file"))
    assert len(track_log_mels(path, classifier.frontend)) == 4


def test_a_silent_end_that_cannot_be_measured_in_time_keeps_the_slices_heard(classifier, tmp_path, monkeypatch):
    path = _music_with_silence(tmp_path, "fade.flac", 20.0, 30.0)  # the last slice, 22.3-24.9 s

    def too_slow(p, **kwargs):
        raise DecodeError(p, "decoding took longer than 60 s")

    monkeypatch.setattr(analysis, "decoded_duration", too_slow)
    assert len(track_log_mels(path, classifier.frontend)) == 4


def test_a_long_file_stored_as_shorter_than_a_slice_is_probed_and_sliced_as_usual(classifier, tmp_path,
                                                                                   monkeypatch):
    """A stated length of a file replaced since: decoding it whole to pad it would cost minutes."""
    path = encode(DEMO_DIR / "macleod-vibe-ace.ogg", tmp_path / "long.mp3", duration=40.0)
    probed = track_log_mels(path, classifier.frontend)
    decoded_bytes, run = [], audio._run
    monkeypatch.setattr(audio, "_run", lambda *a, **k: (out := run(*a, **k), decoded_bytes.append(len(out[1])))[0])
    np.testing.assert_array_equal(track_log_mels(path, classifier.frontend, duration=2.0), probed)
    assert sum(decoded_bytes) <= 7 * SLICE_SAMPLES * 4, "two slices from the start and the five slices, as float32"


@pytest.mark.parametrize("bad, reason", [(np.nan, "non-finite samples"), (np.inf, "non-finite samples"),
                                         (1e30, "too large")])
def test_a_float_file_with_broken_samples_is_one_clear_line(classifier, tmp_path, bad, reason):
    y = (np.random.default_rng(0).standard_normal(6 * 22_050) * 0.1).astype(np.float32)
    y[::1000] = bad
    path = tmp_path / "broken.wav"
    wavfile.write(path, 22_050, y)
    with pytest.raises(DecodeError, match=reason):
        analyse_file(path, classifier)


def test_one_classifier_serves_several_threads(classifier):
    log_mels = track_log_mels(DEMO_DIR / "macleod-vibe-ace.ogg", classifier.frontend, n_slices=8)
    expected = [classifier.predict_proba(log_mels[i:]) for i in range(8)]
    calls = list(range(8)) * 40  # batch sizes that differ, so each call resizes the interpreter
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: classifier.predict_proba(log_mels[i:]), calls))
    for i, result in zip(calls, results):
        np.testing.assert_array_equal(result, expected[i])


@pytest.fixture
def model_copy(tmp_path):
    target = tmp_path / "m.tflite"
    shutil.copy(DEFAULT_MODEL, target)
    shutil.copy(sidecar_path(DEFAULT_MODEL), sidecar_path(target))
    return target


def _edit_sidecar(model, **changes):
    side = sidecar_path(model)
    data = json.loads(side.read_text())
    data.update(changes)
    side.write_text(json.dumps(data))


def _replace_model(model, content: bytes):
    model.write_bytes(content)
    _edit_sidecar(model, sha256=hashlib.sha256(content).hexdigest())


def test_copy_loads(model_copy):
    assert GenreClassifier(model_copy).card.tag == GenreClassifier(DEFAULT_MODEL).card.tag


def test_corrupt_model_fails_its_checksum(model_copy):
    content = bytearray(model_copy.read_bytes())
    content[len(content) // 2] ^= 0xFF
    model_copy.write_bytes(bytes(content))
    with pytest.raises(ModelError, match="sha256"):
        GenreClassifier(model_copy)


@pytest.mark.parametrize("content", [b"", b"not a flatbuffer" * 100, "truncated"])
def test_truncated_or_foreign_file_is_not_loadable(model_copy, content):
    if content == "truncated":
        content = model_copy.read_bytes()[:5000]
    _replace_model(model_copy, content)
    with pytest.raises(ModelError, match="not a loadable TFLite model"):
        GenreClassifier(model_copy)


def test_a_model_path_that_is_a_directory_says_so(tmp_path):
    with pytest.raises(ModelError, match="is a directory"):
        GenreClassifier(tmp_path)


def test_missing_model_and_missing_sidecar(model_copy):
    sidecar_path(model_copy).unlink()
    with pytest.raises(ModelError, match="sidecar .* not found"):
        GenreClassifier(model_copy)
    model_copy.unlink()
    with pytest.raises(ModelError, match="model file .* not found"):
        GenreClassifier(model_copy)


def test_sidecar_that_is_not_json(model_copy):
    sidecar_path(model_copy).write_text("{labels: oops")
    with pytest.raises(ModelError, match="not valid JSON"):
        GenreClassifier(model_copy)


def test_labels_that_do_not_match_the_outputs(model_copy):
    labels = GenreClassifier(model_copy).labels
    _edit_sidecar(model_copy, labels=labels[:-1], bias=None, float_twin_calibration=None)
    with pytest.raises(ModelError, match="9 labels"):
        GenreClassifier(model_copy)


def test_front_end_that_differs_from_this_version(model_copy):
    _edit_sidecar(model_copy, frontend={**frontend_params(), "n_mels": 96})
    with pytest.raises(ModelError, match="front-end"):
        GenreClassifier(model_copy)


def test_incomplete_sidecar(model_copy):
    _edit_sidecar(model_copy, normalization=None)
    with pytest.raises(ModelError, match="incomplete"):
        GenreClassifier(model_copy)


@pytest.mark.parametrize("bias", [[0.5] * 9, [0.0] * 9 + [float("nan")]])
def test_calibration_bias_that_is_not_one_finite_number_per_label(model_copy, bias):
    _edit_sidecar(model_copy, bias=bias)
    with pytest.raises(ModelError, match="bias"):
        GenreClassifier(model_copy)



@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), 0.0])
def test_temperature_that_is_not_a_positive_number(model_copy, temperature):
    _edit_sidecar(model_copy, temperature=temperature)
    with pytest.raises(ModelError, match="temperature"):
        GenreClassifier(model_copy)


@pytest.mark.parametrize("twin", [{"bias": None}, {"temperature": 0.0, "bias": None},
                                  {"temperature": 1.0, "bias": [0.1] * 9}, "not an object"])
def test_float_twin_calibration_that_is_not_a_temperature_and_a_bias_per_label(model_copy, twin):
    _edit_sidecar(model_copy, float_twin_calibration=twin)
    with pytest.raises(ModelError, match="float_twin_calibration"):
        GenreClassifier(model_copy)


@pytest.mark.parametrize("damage", ["empty", "wrong shape"])
def test_aggregator_that_does_not_fit_the_labels(model_copy, damage):
    stored = json.loads(sidecar_path(model_copy).read_text())["aggregator"]
    aggregator = {} if damage == "empty" else {**stored, "bias": stored["bias"][:-1]}
    _edit_sidecar(model_copy, aggregation="learned", aggregator=aggregator)
    with pytest.raises(ModelError, match="aggregator parameters do not fit 10 labels"):
        GenreClassifier(model_copy)

def test_stored_calibration_belongs_to_the_default_aggregation_and_each_twin_has_its_own(model_copy):
    _edit_sidecar(model_copy, aggregation="mean", temperature=2.0, bias=[0.1] * 10,
                  float_twin_calibration={"temperature": 3.0, "bias": None})
    card = GenreClassifier(model_copy).card
    assert card.calibration("mean").temperature == 2.0 and card.calibration("mean").bias.shape == (10,)
    twin = card.calibration("mean", float_twin=True)
    assert twin.temperature == 3.0 and twin.bias is None
    other = card.calibration("logsum")
    assert other.temperature == 1.0 and other.bias is None


@pytest.mark.parametrize("stored", [{"one": 0.0, "several": 1.0}, {"one": 1.0}, {"one": float("nan"), "several": 1.0},
                                    {"one": "x", "several": 1.0}, [1.0, 1.0]])
@pytest.mark.parametrize("where", ["model", "float twin"])
def test_slice_temperatures_that_are_not_two_positive_numbers(model_copy, stored, where):
    if where == "model":
        _edit_sidecar(model_copy, slice_temperatures=stored)
    else:
        _edit_sidecar(model_copy, float_twin_calibration={"temperature": 1.0, "slice_temperatures": stored})
    with pytest.raises(ModelError, match=("float_twin_calibration: " if where != "model" else "") + "slice_temperatures"):
        GenreClassifier(model_copy)


def test_a_sidecar_without_slice_temperatures_keeps_the_common_temperature(model_copy):
    data = json.loads(sidecar_path(model_copy).read_text())
    data.pop("slice_temperatures", None)
    sidecar_path(model_copy).write_text(json.dumps(data))
    assert GenreClassifier(model_copy).card.calibration(data["aggregation"]).slice_temperatures == (1.0, 1.0)


def test_each_track_gets_the_slice_temperature_of_how_many_slices_were_heard(model_copy):
    _edit_sidecar(model_copy, aggregation="mean", temperature=1.0, bias=None,
                  slice_temperatures={"one": 2.0, "several": 0.5})
    model = GenreClassifier(model_copy)
    several = track_log_mels(DEMO_DIR / "macleod-vibe-ace.ogg", model.frontend)
    one = several[:1]
    assert len(several) > 1
    calibrated = predict_tracks(model, [several, one])
    plain = [aggregate(model.predict_proba(s), model.labels, "mean") for s in (several, one)]
    assert [p.genre for p in calibrated] == [p.genre for p in plain]
    assert calibrated[0].confidence > plain[0].confidence and calibrated[1].confidence < plain[1].confidence
    assert calibrated[1] == aggregate(model.predict_proba(one), model.labels, "mean", slice_temperatures=(2.0, 0.5))


def test_a_float_twin_calibration_without_a_bias_has_none(model_copy):
    """Accepted by the sidecar check, it used to fail later, when the twin predicted (KeyError: 'bias')."""
    _edit_sidecar(model_copy, aggregation="mean", float_twin_calibration={"temperature": 0.8})
    twin = GenreClassifier(model_copy).card.calibration("mean", float_twin=True)
    assert twin.temperature == 0.8 and twin.bias is None


def test_the_float_twin_predicts_with_its_own_calibration(model_copy, classifier):
    shutil.copy(float_twin_path(DEFAULT_MODEL), float_twin_path(model_copy))
    _edit_sidecar(model_copy, aggregation="mean", temperature=2.0, bias=None,
                  float_twin_calibration={"temperature": 0.5, "bias": None})
    twin = GenreClassifier(float_twin_path(model_copy))
    log_mels = track_log_mels(DEMO_DIR / "macleod-vibe-ace.ogg", twin.frontend)
    expected = aggregate(twin.predict_proba(log_mels), twin.labels, "mean", temperature=0.5)
    assert predict_tracks(twin, [log_mels])[0] == expected
