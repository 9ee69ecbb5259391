"""Bad files, hostile names, interruptions and broken models never lose data.

The corpus comes from ``bad_corpus``; the library and ``beet`` runner from conftest.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import mutagen
import pytest
from bad_corpus import EITHER, FAILED, TAGGED, bad_files, hostile_names, release, spoil, two_hour_mp3
from conftest import MODEL, Beets, requires_model
from test_plugin import LABEL_NAMES, file_matches_row, file_tags, summary

from genre_model.audio import decode_full

pytestmark = requires_model
SEED = 20240611


def analysed_by_model(row: dict) -> bool:
    return bool(row["genre_model"])


def log_lines(output: str, path: str) -> list[str]:
    return [line for line in output.splitlines() if path in line]


@pytest.fixture
def corpus(beets, tmp_path):
    """The bad-file corpus imported in place (-C), then spoiled: {title: Case}."""
    cases = bad_files(tmp_path / "corpus", SEED)
    beets.configure(auto="no")
    beets("import", "-A", "-C", "-q", "-s", str(tmp_path / "corpus"))
    rng = random.Random(SEED)
    try:
        for case in cases:
            if case.spoil:
                spoil(case, rng)
        yield {case.name: case for case in cases}
    finally:
        release(cases)


def test_bad_files_fail_cleanly_and_the_rest_is_tagged(beets, corpus):
    assert sorted(beets.items()) == sorted(corpus), "every case has a library row"
    before = {title: beets.state(title) if title != "gone" else None for title in corpus}
    with_rows = beets.snapshot()[0]

    out = beets.run("spectrogenre", "--write").output
    assert "Traceback" not in out
    rows = beets.items()
    failed = 0
    for title, case in corpus.items():
        row, lines = rows[title], log_lines(out, str(case.path))
        tagged = analysed_by_model(row)
        if case.expect == TAGGED or (case.expect == EITHER and tagged):
            assert tagged and row["genres"] in LABEL_NAMES, (title, lines)
            assert file_tags(row["path"]) == ([row["genres"]], float(row["genre_confidence"])), title
        else:
            failed += 1
            assert case.expect in (FAILED, EITHER) and not tagged, title
            assert len(lines) == 1, (title, out)  # one line naming the file, with a reason after it
            assert lines[0].split(str(case.path), 1)[1].strip(" ':\"").strip(), lines
            if title != "gone":
                assert beets.state(title) == before[title], f"{title}: row or file changed"
    assert summary(out) == f"{len(corpus) - failed} analysed, {len(corpus) - failed} changed, 0 skipped, {failed} failed"
    assert failed >= 7
    assert len(beets.snapshot()[0]) == len(with_rows), "no row lost"
    for title in ("gone",):  # the row of a vanished file is still there, as it was
        assert rows[title]["genre_model"] == "" and not Path(rows[title]["path"]).exists()
    assert "too short" in log_lines(out, str(corpus["short-1s"].path))[0]
    assert "silent" in log_lines(out, str(corpus["silence"].path))[0]
    assert "empty file" in log_lines(out, str(corpus["empty"].path))[0]


def test_hostile_file_names_are_tagged(beets, tmp_path):
    files = hostile_names(tmp_path / "names")
    beets.configure(auto="no")
    beets("import", "-A", "-C", "-q", "-s", str(tmp_path / "names"))
    assert sorted(beets.items()) == sorted(files)
    cwd = Path.cwd()
    out = beets("spectrogenre", "--write")
    assert summary(out) == f"{len(files)} analysed, {len(files)} changed, 0 skipped, 0 failed"
    for title, row in beets.items().items():
        assert row["genres"] in LABEL_NAMES, title
        assert os.fsencode(row["path"]) == os.fsencode(files[title])
        assert file_tags(files[title]) == ([row["genres"]], float(row["genre_confidence"])), title
    assert not list(tmp_path.rglob("pwned")) and not (cwd / "pwned").exists()


def test_two_hour_file_is_analysed_without_decoding_it_all(tmp_path, monkeypatch):
    from genre_model import audio
    from genre_model.analysis import track_log_mels
    from genre_model.inference import GenreClassifier

    path = two_hour_mp3(tmp_path / "two hours.mp3")
    frontend = GenreClassifier(MODEL).frontend
    decoded_bytes = []
    run = audio._run

    def counting_run(*args, **kwargs):
        returncode, stdout, stderr = run(*args, **kwargs)
        decoded_bytes.append(len(stdout))
        return returncode, stdout, stderr

    monkeypatch.setattr(audio, "_run", counting_run)
    log_mels = track_log_mels(path, frontend)
    assert log_mels.shape == (5, frontend["n_mels"], frontend["slice_frames"])
    slice_bytes = frontend["slice_frames"] * frontend["hop_length"] * 4  # float32 samples
    assert sum(decoded_bytes) == 5 * slice_bytes, "five slices decoded, nothing more"


@pytest.fixture
def small_library(beets, audio) -> Beets:
    """The demo recording in every test format, imported without analysis."""
    beets.configure(auto="no")
    beets("import", "-A", "-q", "-s", str(audio / "formats"))
    return beets


@pytest.mark.parametrize("damage", ["labels", "frontend", "foreign"])
def test_mismatched_model_stops_before_any_track(small_library, tmp_path, damage):
    model = tmp_path / "models" / f"{damage}.tflite"
    model.parent.mkdir()
    card = json.loads(MODEL.with_suffix(".json").read_text())
    if damage == "labels":
        card["labels"] = card["labels"][:-1]
    elif damage == "frontend":
        card["frontend"]["n_mels"] = 96
    shutil.copy(MODEL, model)
    if damage == "foreign":  # some other file, named .tflite
        model.write_bytes(Path(mutagen.__file__).read_bytes())
    model.with_suffix(".json").write_text(json.dumps(card))
    small_library.configure(model=str(model))
    before = small_library.snapshot()
    proc = small_library.run("spectrogenre", "--force", "--write", check=False)
    assert proc.returncode == 1
    (line,) = proc.output.strip().splitlines()
    assert line.startswith("error: spectrogenre: ") and str(model.parent) in line, line
    assert {"labels": "labels", "frontend": "front-end", "foreign": "sha256"}[damage] in line, line
    assert small_library.snapshot() == before


def ffmpeg_processes(marker: str) -> list[int]:
    """Ids of running processes whose command line mentions ``marker`` (a library path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"ffmpeg" in cmdline and os.fsencode(marker) in cmdline:
            found.append(int(entry.name))
    return found


def test_ctrl_c_at_random_points_never_leaves_a_broken_file_or_row(small_library, monkeypatch):
    monkeypatch.setenv("PYTHONFAULTHANDLER", "1")  # so that a hung run can show where each thread waits
    rng = random.Random(SEED)
    titles = sorted(small_library.items())
    outcomes, digests = [], {}
    for attempt in range(20):
        proc = small_library.popen("-v", "spectrogenre", "--force", "--write", "--jobs", "2")
        for line in proc.stderr:
            if "library database" in line:  # beets is configured, the command is about to start
                break
        time.sleep(rng.uniform(0.0, 1.2))
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
            _, err = proc.communicate(timeout=30)
            pytest.fail(f"attempt {attempt}: still running 30 s after Ctrl-C\n{err[-8000:]}")
        # finished (0), stopped with "error: interrupted" (1), or hit before or after the command (-SIGINT)
        assert proc.returncode in (0, 1, -signal.SIGINT), (attempt, err)
        if proc.returncode == 1:
            assert err.rstrip().endswith("error: interrupted"), (attempt, err)
        assert "Traceback" not in err or err.rstrip().endswith("KeyboardInterrupt"), (attempt, err)
        outcomes.append(proc.returncode)
        time.sleep(0.1)
        assert ffmpeg_processes(str(small_library.music)) == [], attempt
        rows = small_library.items()
        assert sorted(rows) == titles
        for title, row in rows.items():
            digest = small_library.digest(row["path"])
            if digests.get(title) != digest:  # rewritten: it must still decode and its tags parse
                assert decode_full(row["path"]).size > 0 and mutagen.File(row["path"]) is not None
                digests[title] = digest
            assert file_matches_row(row), (attempt, title)  # fully updated or untouched, in file and row
            if not analysed_by_model(row):
                assert row["genres"] == "", (attempt, title)
    assert 1 in outcomes, "some interrupts land in the middle of the run"
