"""End-to-end tests of the beets plugin: real files, a real library, the shipped model."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import closing

import mutagen
import pytest
from mutagen.asf import ASF
from mutagen.id3 import ID3
from mutagen.mp4 import MP4
from conftest import FFMPEG, MODEL, REPO, RECORDINGS, Beets, requires_model

pytestmark = requires_model
LABEL_NAMES = {"Blues", "Classical", "Country", "Disco", "Hip-Hop", "Jazz", "Metal", "Pop", "Reggae", "Rock"}
MODEL_NAME = json.loads(MODEL.with_suffix(".json").read_text())["name"] if MODEL.is_file() else ""
TITLES = sorted(title for _, title in RECORDINGS.values())


def summary(output: str) -> str:
    (line,) = [ln for ln in output.splitlines() if ln.startswith("spectrogenre: ") and "analysed" in ln]
    return line.removeprefix("spectrogenre: ")


def tagged(beets: Beets, key: str = "title") -> dict[str, tuple[str, str]]:
    """key (title): (genres, confidence) of every item the model has analysed."""
    return {row[key] if key != "title" else title: (row["genres"], row["genre_confidence"])
            for title, row in beets.items().items() if row["genre_model"]}


def file_tags(path: str) -> tuple[list[str], float | None]:
    """Genres and confidence as stored in the file's own tag format; ``([], None)`` where absent."""
    f = mutagen.File(path)
    tags = f.tags or {}
    if isinstance(f, ASF):
        confidence = tags.get("spectrogenre/GenreConfidence")
        return [str(g) for g in tags.get("WM/Genre", [])], float(str(confidence[0])) if confidence else None
    if isinstance(f.tags, ID3):  # MP3, WAV and AIFF
        confidence = tags.get("TXXX:GENRE_CONFIDENCE")
        return (list(tags["TCON"].text) if "TCON" in tags else [],
                float(confidence.text[0]) if confidence else None)
    if isinstance(f, MP4):
        confidence = tags.get("----:com.apple.iTunes:GENRE_CONFIDENCE")
        return list(tags.get("\xa9gen", [])), float(confidence[0].decode()) if confidence else None
    confidence = tags.get("genre_confidence")  # Vorbis comments
    return list(tags.get("genre", [])), float(confidence[0]) if confidence else None


def file_matches_row(row: dict) -> bool:
    """The file holds the row's genre and confidence, or, for a track not analysed, neither."""
    if row["genre_model"]:
        return file_tags(row["path"]) == ([row["genres"]], float(row["genre_confidence"]))
    return file_tags(row["path"]) == ([], None)


@pytest.fixture
def album(beets, audio) -> Beets:
    """The four demo recordings imported as one album, without analysis."""
    beets.configure(auto="no")
    beets("import", "-A", "-q", str(audio / "album"))
    return beets


def test_import_tags_every_format_and_tags_round_trip(beets, audio, tmp_path):
    beets("import", "-A", "-q", "-s", str(audio / "formats"))
    tags = tagged(beets, key="format")
    assert sorted(tags) == ["AAC", "AIFF", "FLAC", "MP3", "OGG", "Opus", "WAVE", "Windows Media"]
    for genres, confidence in tags.values():
        assert genres in LABEL_NAMES and 0 < float(confidence) <= 1
    # the same audio in eight formats: the same genre, each with the confidence `predict` gives its file
    assert len({genres for genres, _ in tags.values()}) == 1
    assert {title: row["genre_confidence"] for title, row in beets.items().items()} == {
        title: f"{best[0][1]:.3f}" for title, best in model_top(beets, 1).items()}

    assert "8 analysed" in summary(beets("spectrogenre", "--force", "--write"))
    for row in beets.items().values():
        assert file_tags(row["path"]) == ([row["genres"]], float(row["genre_confidence"])), row["path"]

    again = Beets(tmp_path / "again", "  auto: no\n")
    again("import", "-A", "-q", "-s", str(beets.music))
    assert tagged(again) == {}
    assert sorted((row["genres"], row["genre_confidence"]) for row in again.items().values()) == sorted(
        tags.values()), "genre and confidence are read back on import"
    assert again.ls("genre_confidence:0.001..") == again.ls()


def test_import_tags_tracks_and_album_and_goes_on_past_a_silent_file(beets, audio):
    beets("import", "-A", "-q", str(audio / "album"))
    out = beets("import", "-A", "-q", "-s", str(audio / "bad"))
    assert sum("silence.flac" in line and "silent (" in line for line in out.splitlines()) == 1
    assert beets.fields("Silence")["genre_model"] == ""
    tags = tagged(beets)
    assert sorted(tags) == TITLES

    weights = Counter()
    for genres, confidence in tags.values():
        weights[genres] += float(confidence)
    (album_genre,) = beets.ls(album=True, fmt="$genres")
    assert album_genre == weights.most_common(1)[0][0], "album genre: tracks' genres weighted by confidence"
    share = weights[album_genre] / sum(weights.values())
    assert beets.ls(album=True, fmt="$album_genre_share") == [f"{share:.3f}"], "the share behind it"
    assert beets.ls(f"genre:{album_genre}", album=True, fmt="$album") == ["Demo Sampler"], "genre: maps to genres"

    for genre in set(weights):
        assert beets.ls(f"genres:{genre}") == sorted(t for t, (g, _) in tags.items() if g == genre)
    confidences = sorted(float(conf) for _, conf in tags.values())
    threshold = confidences[len(confidences) // 2]
    expected = sorted(t for t, (_, conf) in tags.items() if float(conf) >= threshold)
    assert beets.ls(f"genre_confidence:{threshold}..") == expected
    assert beets.ls("genre_confidence:1.001..") == []



def test_configured_ffmpeg_path_may_start_with_a_tilde(album):
    (album.root / "bin").mkdir()
    (album.root / "bin" / "ffmpeg").symlink_to(FFMPEG)
    album.configure(ffmpeg="~/bin/ffmpeg")  # the tests' HOME is the library's folder
    assert summary(album("spectrogenre")) == "4 analysed, 4 changed, 0 skipped, 0 failed"

def test_skipping_forcing_and_parallel_runs(album):
    album("spectrogenre", "--jobs", "1")
    serial = tagged(album)
    assert summary(album("spectrogenre")) == "0 analysed, 0 changed, 4 skipped, 0 failed"
    album("modify", "-y", "title:Vibe Ace", f"genre_model={MODEL_NAME}@0.0.0-old")
    assert summary(album("spectrogenre")).startswith("1 analysed, 0 changed, 3 skipped")
    assert summary(album("spectrogenre", "--force", "--jobs", "4")).startswith("4 analysed, 0 changed, 0 skipped")
    assert tagged(album) == serial, "parallel and serial runs write the same genres and confidences"


def test_tracks_whose_genre_update_reverted_are_analysed_again(beets, audio):
    beets("import", "-A", "-q", str(audio / "album"))  # as-is: the genres are in the library, not in the files
    analysed = tagged(beets)
    beets("update")  # reads the files' empty genre and confidence back; genre_model stays
    assert set(tagged(beets).values()) == {("", "0.000")}
    assert summary(beets("spectrogenre")) == "4 analysed, 4 changed, 0 skipped, 0 failed"
    assert tagged(beets) == analysed


def test_pretend_changes_neither_database_nor_files(album):
    before = album.snapshot()
    out = album("spectrogenre", "--pretend", "--write", "--album")
    assert summary(out) == "4 analysed, 4 changed, 0 skipped, 0 failed"
    assert sum(" (was: no genre)" in line for line in out.splitlines()) == 5
    assert sum(line.startswith("album Various Artists - Demo Sampler: ") for line in out.splitlines()) == 1
    assert album.snapshot() == before


def test_keep_existing_leaves_genred_tracks_alone(album):
    album("modify", "-y", "title:Vibe Ace", "genres=Rock")
    album.configure(keep_existing="yes")
    assert summary(album("spectrogenre")).endswith("1 skipped, 0 failed")
    assert album.fields("Vibe Ace")["genres"] == "Rock"
    assert album.fields("Vibe Ace")["genre_model"] == ""
    album("spectrogenre", "--force")
    assert album.fields("Vibe Ace")["genre_model"].startswith(f"{MODEL_NAME}@")


@pytest.mark.parametrize("in_config", [False, True])
def test_a_genre_set_by_the_import_is_kept(beets, audio, in_config):
    """Given with --set, or in the config file's import.set_fields while --set gives another field."""
    if in_config:
        with open(beets.root / "config.yaml", "a", encoding="utf-8") as f:
            f.write("import:\n  set_fields:\n    genres: Polka\n")
        beets("import", "-A", "-q", "--set", "year=1999", str(audio / "album"))
    else:
        beets("import", "-A", "-q", "--set", "genres=Polka", str(audio / "album"))
    assert beets.ls(fmt="$genres") == ["Polka"] * 4
    assert tagged(beets) == {}, "not analysed"
    assert beets.ls(album=True, fmt="$genres") == ["Polka"]


def test_keep_existing_keeps_an_albums_genre_unless_forced(album):
    album("modify", "-a", "-y", "genres=Polka")  # the album, and its tracks inherit it
    album("modify", "-y", "genres=")  # the tracks only
    album.configure(keep_existing="yes")
    assert summary(album("spectrogenre", "--album")) == "4 analysed, 4 changed, 0 skipped, 0 failed"
    assert album.ls(album=True, fmt="$genres") == ["Polka"]
    album("spectrogenre", "--album", "--force")
    (genres,) = album.ls(album=True, fmt="$genres")
    assert genres in LABEL_NAMES


def test_min_confidence_keeps_genre_but_stores_confidence(album):
    album("modify", "-y", "title:Vibe Ace", "genres=Rock")
    album.configure(min_confidence="1")
    album("spectrogenre")
    tags = tagged(album)
    assert tags["Vibe Ace"][0] == "Rock"
    assert all(genres == "" for title, (genres, _) in tags.items() if title != "Vibe Ace")
    assert all(0 < float(conf) <= 1 for _, conf in tags.values())


def test_album_genre_is_voted_by_accepted_genres_only_and_holds_on_a_rerun(album):
    album("spectrogenre")
    tags = tagged(album)
    surest = max(tags, key=lambda title: float(tags[title][1]))
    album.configure(min_confidence=tags[surest][1])  # the other tracks' genres are now refused
    album("spectrogenre", "--album", "--force")
    voted = album.ls(album=True, fmt="$genres $album_genre_share")
    album("spectrogenre", "--album")  # every track skipped: the stored genres vote
    assert album.ls(album=True, fmt="$genres $album_genre_share") == voted == [f"{tags[surest][0]} 1.000"]


def test_reimporting_an_album_keeps_each_tracks_own_confidence(album):
    """The album's share was once stored as its genre_confidence, which beets copies onto the tracks."""
    album("spectrogenre", "--album")
    tags, share = tagged(album), album.ls(album=True, fmt="$album_genre_share")
    assert len({confidence for _, confidence in tags.values()}) > 1
    album("import", "-L", "-A", "-q")
    assert tagged(album) == tags
    assert album.ls(album=True, fmt="$album_genre_share") == share


def test_the_album_share_as_earlier_builds_stored_it_is_removed(album):
    """An album-level genre_confidence, left by a build before album_genre_share, would reach the tracks."""
    album("spectrogenre", "--album")
    tags = tagged(album)
    with sqlite3.connect(album.db) as con:
        (album_id,) = con.execute("SELECT id FROM albums").fetchone()
        con.execute("INSERT INTO album_attributes (entity_id, key, value) VALUES (?, 'genre_confidence', '0.5')",
                    (album_id,))
    album("spectrogenre", "--album")
    with sqlite3.connect(album.db) as con:
        assert con.execute("SELECT key FROM album_attributes WHERE key = 'genre_confidence'").fetchall() == []
    album("import", "-L", "-A", "-q")
    assert tagged(album) == tags


def test_album_genre_is_voted_by_the_models_labels_not_by_genres_it_refused(album):
    album("modify", "-y", "genres=Polka")  # the user's genre, not one the model knows
    album.configure(min_confidence="1")
    album("spectrogenre")  # every genre refused: the tracks keep Polka
    assert {genres for genres, _ in tagged(album).values()} == {"Polka"}
    weights = Counter()
    for line in album.ls(fmt="$genre_label $genre_confidence"):
        label, confidence = line.split()
        weights[label] += float(confidence)
    (winner, weight), = weights.most_common(1)
    album.configure(min_confidence="0", genre_map=f"{{{winner}: Renamed}}")
    assert summary(album("spectrogenre", "--album")).endswith("4 skipped, 0 failed")
    assert album.ls(album=True, fmt="$genres $album_genre_share") == [
        f"Renamed {weight / sum(weights.values()):.3f}"], "the stored labels vote, named as configured now"


def test_min_confidence_judges_the_confidence_as_stored_for_tracks_and_album_alike(album):
    """One slice, voted: a share of 1 - 1e-7 is stored as 1.000, so min_confidence 1 accepts it everywhere."""
    album.configure(aggregation="vote", slices="1", min_confidence="1")
    album("spectrogenre", "--album")
    tracks = tagged(album)
    assert all(genres in LABEL_NAMES and confidence == "1.000" for genres, confidence in tracks.values()), tracks
    (genres,) = album.ls(album=True, fmt="$genres")
    assert genres in {g for g, _ in tracks.values()}


def model_top(beets: Beets, k: int) -> dict[str, list[tuple[str, float]]]:
    """title: the shipped model's ``k`` best genres and scores for each library item, computed directly."""
    from genre_model.analysis import analyse_file
    from genre_model.inference import GenreClassifier

    classifier = GenreClassifier(MODEL)
    return {title: analyse_file(row["path"], classifier).top(k) for title, row in beets.items().items()}


def test_count_keeps_top_genres_best_first_and_maps_their_names(album):
    names = {"country": "Country & Western", "hiphop": "Rap"}
    top = model_top(album, 3)
    album.configure(count="3", genre_map="{Country: Country & Western, hip_hop: Rap}")  # case, - and _ ignored
    album("spectrogenre")
    expected = {title: "; ".join(names.get(label, label.title()) for label, _ in best) for title, best in top.items()}
    assert {title: genres for title, (genres, _) in tagged(album).items()} == expected
    assert any("Country & Western" in genres for genres in expected.values())

    threshold = 0.3  # with min_confidence too: the top genres that reach it, or the old genres if none
    album.configure(min_confidence=str(threshold))
    album("spectrogenre", "--force")
    for title, (genres, _) in tagged(album).items():
        kept = [names.get(label, label.title()) for label, score in top[title] if score >= threshold]
        assert genres == "; ".join(kept or expected[title].split("; ")), title


def test_settings_for_write_force_aggregation_and_slices_are_honoured(album):
    before = album.snapshot()[2]
    album("spectrogenre", "-W")
    assert album.snapshot()[2] == before, "-W: no file written"
    assert len(tagged(album)) == 4

    album.configure(force="yes")
    assert summary(album("spectrogenre")).startswith("4 analysed"), "force: in the config, as --force"

    album.configure(aggregation="vote")
    album("spectrogenre")
    assert any(conf != "1.000" for _, conf in tagged(album).values()), "five slices can split their vote"
    album.configure(slices="1")
    album("spectrogenre")
    assert all(conf == "1.000" for _, conf in tagged(album).values()), "one slice: a unanimous vote"


def test_broken_files_are_logged_and_left_untouched(album, audio):
    album("import", "-A", "-q", "-s", str(audio / "bad"))
    corrupt = album.fields("Vibe Ace")["path"]
    with open(corrupt, "r+b") as f:  # keep the tag header, replace the audio by junk
        f.truncate(1024)
        f.seek(1024)
        f.write(bytes(range(256)) * 256)
    silent = album.fields("Silence")["path"]
    before = {title: album.state(title) for title in ("Vibe Ace", "Silence")}

    out = album("spectrogenre", "--write")
    assert summary(out) == "3 analysed, 3 changed, 0 skipped, 2 failed"
    assert sum(corrupt in line for line in out.splitlines()) == 1
    assert sum(silent in line and "silent (" in line for line in out.splitlines()) == 1
    assert "Traceback" not in out
    assert {title: album.state(title) for title in before} == before
    assert len(tagged(album)) == 3


def test_write_failure_leaves_database_as_file(album):
    path = album.fields("Vibe Ace")["path"]
    # ADTS AAC: ffmpeg decodes it, mutagen cannot tag it
    subprocess.run([FFMPEG, "-v", "error", "-y", "-i", path, "-c:a", "aac", "-f", "adts", path + ".aac"],
                   check=True)
    shutil.move(path + ".aac", path)
    before = album.state("Vibe Ace")
    out = album("spectrogenre", "--write")
    assert summary(out) == "3 analysed, 3 changed, 0 skipped, 1 failed"
    assert sum(path in line for line in out.splitlines()) == 1
    assert album.state("Vibe Ace") == before


def test_a_track_without_artist_or_title_is_shown_by_its_path(album):
    path = album.fields("Vibe Ace")["path"]
    album("modify", "-y", "-M", "title:Vibe Ace", "artist=", "title=")
    out = album("spectrogenre", "--pretend")
    assert sum(line.startswith(f"{path}: ") for line in out.splitlines()) == 1, out


def test_timeout_is_a_logged_failure(album):
    album.configure(timeout="0.001")
    out = album("spectrogenre")
    assert summary(out) == "0 analysed, 0 changed, 0 skipped, 4 failed"
    assert sum("took longer than" in line for line in out.splitlines()) == 4


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_bad_model_stops_before_any_track(album, tmp_path, damage):
    model = tmp_path / "models" / "broken.tflite"
    if damage == "corrupt":
        model.parent.mkdir()
        shutil.copy(MODEL.with_suffix(".json"), model.with_suffix(".json"))
        model.write_bytes(MODEL.read_bytes()[:1000])
    album.configure(model=str(model))
    before = album.snapshot()
    proc = album.run("spectrogenre", check=False)
    assert proc.returncode == 1
    (line,) = proc.output.strip().splitlines()
    assert line.startswith("error: spectrogenre: ") and str(model) in line
    assert album.snapshot() == before


@pytest.mark.parametrize("args", [[], ["--album"]], ids=["items", "albums"])
def test_progress_counter_is_drawn_on_a_terminal_only(album, args):
    primary, terminal = pty.openpty()
    proc = album.popen("spectrogenre", *args, stderr=terminal)
    os.close(terminal)
    drawn = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    os.close(primary)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, drawn
    assert summary(out) == "4 analysed, 4 changed, 0 skipped, 0 failed"
    drawn = drawn.decode()
    assert re.findall(r"\rspectrogenre: (\d+)/4", drawn) == ["1", "2", "3", "4"]
    assert drawn.endswith("\r\033[K"), "the counter is cleared at the end"
    piped = album("spectrogenre", "-f", *args)
    assert summary(piped).startswith("4 analysed") and not re.search(r"spectrogenre: \d+/4", piped)


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt(), RuntimeError("Error calling __set_name__")],
                         ids=["plain", "wrapped-by-a-class-body"])
def test_ctrl_c_becomes_one_error_line_even_when_python_wraps_it(interrupt):
    from beets.ui import UserError

    from beetsplug.spectrogenre import ctrl_c_as_user_error

    if isinstance(interrupt, RuntimeError):
        interrupt.__cause__ = KeyboardInterrupt()
    with pytest.raises(UserError, match="^interrupted$"), ctrl_c_as_user_error():
        raise interrupt
    with pytest.raises(RuntimeError, match="unrelated"), ctrl_c_as_user_error():
        raise RuntimeError("unrelated")


def test_ctrl_c_during_a_run_is_raised_only_where_the_run_checks_for_it():
    # raised anywhere, it can leave a Future's lock held and the decoder pool's shutdown waiting forever
    from beetsplug.spectrogenre import interrupts_at_safe_points

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with interrupts_at_safe_points() as check_interrupt:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)  # signal handlers run in between; a plain KeyboardInterrupt would fire here
            reached_the_check = True
            check_interrupt()
    assert reached_the_check
    assert signal.getsignal(signal.SIGINT) is before
    with pytest.raises(KeyboardInterrupt), interrupts_at_safe_points():  # a Ctrl-C after the last check
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
    outside_main = []

    def check_outside_main():
        with interrupts_at_safe_points() as check_interrupt:
            outside_main.append(check_interrupt())

    worker = threading.Thread(target=check_outside_main)
    worker.start()
    worker.join()
    assert outside_main == [None]  # no handler can be set there: the check does nothing


def test_batched_commits_share_one_transaction_until_their_time_is_up(tmp_path):
    from beets.library import Item, Library

    from beetsplug.spectrogenre import BatchedCommits

    lib = Library(str(tmp_path / "library.db"))

    def committed() -> set[str]:  # what another connection, such as a second beet, sees
        with closing(sqlite3.connect(tmp_path / "library.db")) as other:
            return {title for (title,) in other.execute("SELECT title FROM items")}

    with BatchedCommits(lib, seconds=3600) as batch:
        for title in ("a", "b"):
            batch.begin()
            lib.add(Item(title=title))
        assert committed() == set()
    assert committed() == {"a", "b"}, "committed at the end"
    with BatchedCommits(lib, seconds=0) as batch:
        batch.begin()
        lib.add(Item(title="c"))
        batch.begin()
        assert committed() == {"a", "b", "c"}, "committed once its time is up"
        lib.add(Item(title="d"))
        assert "d" not in committed()
    assert committed() == {"a", "b", "c", "d"}


def test_loading_the_plugin_imports_no_numpy_or_model():
    """What beets does with a plugin on every command: create it and ask for its commands."""
    code = ("import sys, beets.plugins, beetsplug.spectrogenre as m; m.SpectrogenrePlugin().commands();"
            "print(sorted({'numpy', 'genre_model', 'ai_edge_litert'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_command_decodes_with_ctrl_c_turned_into_a_flag(album):
    """A Ctrl-C raised wherever the main thread is can leave a lock held: the run checks a flag instead."""
    code = """
import signal, sys
import genre_model.analysis as analysis
from beets import ui
handlers, real = [], analysis.track_log_mels
def spy(*args, **kwargs):
    handlers.append(signal.getsignal(signal.SIGINT))
    return real(*args, **kwargs)
analysis.track_log_mels = spy
try:
    ui.main(["spectrogenre"])
finally:
    print(len(handlers), sum(h is signal.default_int_handler for h in handlers))
"""
    out = subprocess.run([sys.executable, "-c", code], env=album.env, capture_output=True, text=True, timeout=300)
    assert out.stdout.split()[-2:] == ["4", "0"], out.stdout + out.stderr


def test_ctrl_c_stops_promptly_and_leaves_no_half_tagged_track(album, audio):
    album("import", "-A", "-q", "-s", str(audio / "formats"))
    proc = album.popen("-v", "spectrogenre", "--jobs", "1")
    for line in proc.stderr:
        if " (was: " in line:  # the first track is done
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "interrupted" in err
    rows = album.items().values()
    assert 1 <= sum(bool(row["genre_model"]) for row in rows) < len(rows), "stopped within the run"
    for row in rows:  # all three fields, or none (files without the tag read as confidence 0), in file and row
        assert bool(row["genre_model"]) == bool(row["genres"]) == (float(row["genre_confidence"]) > 0), row
        assert file_matches_row(row), row


BAD_SETTINGS = [("aggregation", "median"), ("slices", "0"), ("auto", "maybe"), ("force", "maybe"),
                ("keep_existing", "maybe"), ("count", "0"), ("count", "2.5"), ("count", ".inf"),
                ("timeout", "-5"), ("timeout", ".inf"), ("timeout", "100000000"), ("timeout", "yes"),
                ("min_confidence", "1.5"), ("min_confidence", "yes"),
                ("threads", "many"), ("ffmpeg", "/nonexistent/ffmpeg"), ("ffmpeg", sys.executable),
                ("genre_map", "{rap: Rap}"), ("genre_map", "{jazz: [Cool, Hot]}")]


@pytest.mark.parametrize("setting, value", BAD_SETTINGS + [("--jobs", "0")])
def test_bad_setting_stops_before_any_track(album, setting, value):
    if setting.startswith("--"):
        args = ["spectrogenre", setting, value]
    else:
        args = ["spectrogenre"]
        album.configure(**{setting: value})
    before = album.snapshot()
    proc = album.run(*args, check=False)
    (line,) = proc.output.strip().splitlines()
    assert proc.returncode != 0 and setting in line, "one line naming the setting, and no summary"
    assert album.snapshot() == before


@pytest.mark.parametrize("setting, value", BAD_SETTINGS[:3])
def test_bad_setting_stops_import_before_any_track(beets, audio, setting, value):
    beets.configure(**{setting: value})
    proc = beets.run("import", "-A", "-q", str(audio / "album"), check=False)
    assert proc.returncode != 0 and setting in proc.output and "Traceback" not in proc.output
    assert beets.ls() == [], "not even added at its source path"
