"""``python -m genre_model``: help, predict, and evaluate on the real validation split."""

import json
import shutil
import subprocess
import sys

import pytest

from audio_factory import DEMO_DIR, REPO, SHARED_DATA, encode, sine
from genre_model import evaluate
from genre_model.errors import ParameterError
from genre_model.evaluate import CONDITIONS, degrade
from genre_model.inference import DEFAULT_MODEL


def run(*args, check=True):
    return subprocess.run([sys.executable, "-m", "genre_model", *args], cwd=REPO, capture_output=True,
                          text=True, check=check)


def test_help_names_every_command():
    out = run("--help").stdout
    assert out.startswith("usage: python -m genre_model ")
    assert all(c in out for c in ("train", "evaluate", "predict"))
    assert "--calibration" in run("evaluate", "--help").stdout


def test_the_console_script_names_itself_in_its_usage(monkeypatch):
    from genre_model.__main__ import _parser

    monkeypatch.setattr(sys, "argv", ["/venv/bin/spectrogenre-model", "--help"])
    assert _parser().format_usage().startswith("usage: spectrogenre-model ")


def test_predict_prints_genre_confidence_and_top_3(tmp_path):
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"\x00" * 1000)
    proc = run("predict", str(bad), str(DEMO_DIR / "brahms-hungarian-dance-5.ogg"), check=False)
    assert proc.returncode == 1
    (line,) = proc.stdout.strip().splitlines()  # the run went on past the broken file
    assert "brahms-hungarian-dance-5.ogg: classical" in line and "top 3:" in line
    (error,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert "broken.mp3" in error


def test_train_without_the_train_extra_is_one_line_naming_it(tmp_path):
    """A runtime-only install has no Keras: one line, before any file is read or written."""
    script = ("import sys; sys.modules['keras'] = None; from genre_model.__main__ import main; "
              f"sys.exit(main(['train', {str(tmp_path)!r}, '--out', {str(tmp_path / 'm.tflite')!r}]))")
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: training needs the [train] extra (pip install '.[train]')")
    assert len(proc.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_evaluate_without_the_data_is_one_clear_error(tmp_path):
    proc = run("evaluate", str(tmp_path), check=False)
    assert proc.returncode == 1 and "split list" in proc.stderr



def test_evaluate_refuses_a_genre_the_model_does_not_know_before_decoding(tmp_path):
    for genre, stem in (("classical", "brahms-hungarian-dance-5"), ("folk", "hobbs-lets-go-fishin")):
        (tmp_path / genre).mkdir()
        shutil.copy(DEMO_DIR / f"{stem}.ogg", tmp_path / genre)
    proc = run("evaluate", str(tmp_path), "--split", "", check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == (
        "error: genres the model does not know: folk (it knows blues, classical, country, disco, hiphop, jazz, "
        "metal, pop, reggae, rock)")
    shutil.rmtree(tmp_path / "folk")
    assert run("evaluate", str(tmp_path), "--split", "").stdout.startswith("gtzan-cnn@1.1.2 on every track: 1 tracks")


def test_evaluate_robustness_without_any_ffmpeg_says_what_it_needs_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluate, "find_ffmpeg", lambda configured=None: None)
    with pytest.raises(ParameterError, match="--robustness needs ffmpeg"):
        evaluate.evaluate(tmp_path, DEFAULT_MODEL, split=None, with_robustness=True)


def test_evaluate_robustness_prints_every_condition_and_the_encoder(tmp_path):
    (tmp_path / "classical").mkdir()
    shutil.copy(DEMO_DIR / "brahms-hungarian-dance-5.ogg", tmp_path / "classical")
    out = run("evaluate", str(tmp_path), "--split", "", "--robustness").stdout
    for condition in CONDITIONS:
        assert f"  agreement {condition:18} " in out
    (encoder,) = [ln for ln in out.splitlines() if "copies made by" in ln]
    assert encoder.startswith("  copies made by ffmpeg version ")


def test_robustness_copies_keep_a_22khz_file_rate_except_the_mp3_ripped_at_44khz(tmp_path):
    import mutagen

    source = encode(sine(440, 3.0), tmp_path / "gtzan-like.flac")
    rates = {c: mutagen.File(degrade(source, c, tmp_path)).info.sample_rate
             for c in CONDITIONS if c != "opus_64k"}  # Opus has one rate, 48 kHz
    assert rates == {"mp3_128k": 22_050, "aac_96k": 22_050, "gain_-10dB": 22_050, "gain_+6dB_clipped": 22_050,
                     "mp3_128k_44.1kHz": 44_100}


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared GTZAN data not present")
def test_evaluate_reproduces_the_shipped_model_card():
    recorded = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())["metrics"]
    report = json.loads(run("evaluate", str(SHARED_DATA), "--split", "valid", "--json", "--calibration").stdout)
    assert report["n_tracks"] == 118
    for key in ("track_accuracy", "balanced_accuracy", "slice_accuracy", "ece"):
        assert report[key] == pytest.approx(recorded[key], abs=1e-4), key
    assert report["float"]["track_accuracy"] == pytest.approx(recorded["float_track_accuracy"], abs=1e-4)
    assert report["track_accuracy"] > 0.5  # far above chance (0.1) on artists never heard
    assert abs(report["track_accuracy"] - report["float"]["track_accuracy"]) <= 0.01
    # the bare networks too: quantisation moves few slices, and few tracks before calibration
    assert report["int8_float_slice_agreement"] >= 0.95 and report["int8_float_agreement_uncalibrated"] >= 0.9
    assert set(report["confusion"]["labels"]) >= set(report["per_genre_recall"])
    assert len(report["reliability"]) == 10
    lo, hi = report["interval_95"]["track_accuracy"]
    assert lo < report["track_accuracy"] < hi
    noise = report["ece_if_calibrated"]
    assert 0 < noise["mean"] < noise["p95"] < 0.5
    # the calibration was fitted on valid: its held-out figures are there and meet issue 3's bar
    # (refitted 117 times by an optimiser: another BLAS may move a borderline track, hence two tracks' slack)
    held_out = report["cross_validated"]
    for key in ("track_accuracy", "balanced_accuracy", "ece"):
        assert held_out[key] == pytest.approx(recorded["cross_validated"][key], abs=0.02), key
    assert held_out["track_accuracy"] >= 0.60
