"""Tag the genre of tracks by listening to them with spectrogenre's CNN.

Decoding and log-mel features run in a bounded pool of worker threads (ffmpeg
does the work outside the GIL); inference (the slices of every track that is
ready, in one batch) and every database write happen on the calling thread, in
query order, so parallel and serial runs agree exactly.
The pool is the only parallelism: BLAS is held to one thread meanwhile, since
OpenBLAS's own threads spin between the small mel products and took the CPU
that ffmpeg needed (80 ms per track).
LiteRT and genre_model are imported only when ``beet spectrogenre`` runs or an
import starts with ``auto``, so loading the plugin costs other ``beet`` commands
nothing.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
from collections import Counter, deque
from contextlib import closing, contextmanager
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for

import mediafile
from beets import config, ui
from beets.dbcore import types
from beets.plugins import BeetsPlugin
from beets.util import displayable_path

CONFIDENCE_PLACES = 3  # digits kept in the database and in file tags alike
DEFAULT_NAMES = {"hiphop": "Hip-Hop"}  # other labels are title-cased
MAX_TIMEOUT = 24 * 3600  # seconds; far beyond any decode, and within what subprocess and threads accept


def _is_whole(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _label_key(name):
    """How genre_map keys are matched to labels: hip-hop, Hip_Hop and hiphop all name ``hiphop``."""
    return re.sub(r"[-_ ]", "", str(name).lower())


def _describe(artist, title, path):
    """``artist - title`` as log lines show a track or album, else its path."""
    return " - ".join(part for part in (artist, title) if part) or displayable_path(path)


@contextmanager
def interrupts_at_safe_points():
    """Turn Ctrl-C into a flag for the block; yield the check that raises KeyboardInterrupt once it is set.

    A KeyboardInterrupt raised wherever the main thread happens to be can land
    inside a lock's ``__enter__`` (``threading.Condition``'s, which every
    ``Future`` uses), leaving the lock held: a decoding thread then waits forever
    to hand over its result, and the pool's shutdown waits forever for it. So
    the run checks the flag between tracks and while it waits, and a track is
    never left half updated. Outside the main thread (a threaded import), where
    no handler can be set, the check does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    received = []

    def check():
        if received:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, lambda *_: received.append(True))
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)
    check()


@contextmanager
def ctrl_c_as_user_error():
    """Report Ctrl-C as beets' one-line "error: interrupted" instead of a traceback.

    Python 3.11 wraps an exception raised while a class body's descriptors are
    set up (a dataclass being imported, say) in a RuntimeError: such a Ctrl-C,
    landing during one of the plugin's lazy imports, is recognised by its cause.
    """
    try:
        yield
    except KeyboardInterrupt:
        raise ui.UserError("interrupted") from None
    except RuntimeError as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            raise ui.UserError("interrupted") from None
        raise


def _ready_prefix(pending):
    """Pop the first of ``pending`` (ready or not) and the ready ones that follow it."""
    group = [pending.popleft()]
    while pending and pending[0][1].done():
        group.append(pending.popleft())
    return group


class BatchedCommits:
    """Let the stores of consecutive tracks share one SQLite transaction.

    A commit per track costs more than the track's own database work. The
    transaction is committed after ``seconds`` at most, when a decoder keeps
    the run waiting (so a slow file never leaves the library locked), and at
    the end, Ctrl-C included.
    """

    def __init__(self, db, seconds=1.0):
        self.db, self.seconds = db, seconds
        self._transaction, self._since = None, 0.0

    def begin(self):
        if self._transaction is not None and time.monotonic() - self._since >= self.seconds:
            self.commit()
        if self._transaction is None:
            self._transaction = self.db.transaction()
            self._transaction.__enter__()
            self._since = time.monotonic()

    def commit(self):
        if self._transaction is not None:
            self._transaction.__exit__(None, None, None)
            self._transaction = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.commit()


class SpectrogenrePlugin(BeetsPlugin):
    item_types = {"genre_confidence": types.Float(CONFIDENCE_PLACES)}
    # an album field of a track field's name would be copied onto the tracks (``beet import -L``)
    album_types = {"album_genre_share": types.Float(CONFIDENCE_PLACES)}

    def __init__(self):
        super().__init__()
        self.config.add({
            "auto": True,
            "force": False,
            "keep_existing": False,
            "min_confidence": 0.0,
            "count": 1,
            "slices": 5,
            "aggregation": None,
            "model": None,
            "genre_map": {},
            "ffmpeg": None,
            "threads": 0,
            "timeout": 60.0,
        })
        self.add_media_field("genre_confidence", mediafile.MediaField(
            mediafile.MP3DescStorageStyle("GENRE_CONFIDENCE", float_places=CONFIDENCE_PLACES),
            mediafile.MP4StorageStyle("----:com.apple.iTunes:GENRE_CONFIDENCE", float_places=CONFIDENCE_PLACES),
            mediafile.StorageStyle("GENRE_CONFIDENCE", float_places=CONFIDENCE_PLACES),
            mediafile.ASFStorageStyle("spectrogenre/GenreConfidence", float_places=CONFIDENCE_PLACES),
            out_type=float,
        ))
        self._clf = None
        self._settings = None
        self._track_log = self._log.info  # beets shows an import stage's info lines with -v
        # registered whatever ``auto`` says: a bad value is reported by _prepare, not by a failed plugin load
        self.import_stages = [self.imported]
        self.register_listener("import_begin", self._prepare_import)

    # -- model and settings -------------------------------------------------

    @property
    def classifier(self):
        """The genre classifier, loaded on first use; a bad model is a UserError."""
        if self._clf is None:
            from genre_model.errors import ModelError
            from genre_model.inference import DEFAULT_MODEL, GenreClassifier

            path = self.config["model"].as_filename() if self.config["model"].get() else DEFAULT_MODEL
            try:
                self._clf = GenreClassifier(path)
            except ModelError as exc:
                raise ui.UserError(f"spectrogenre: {exc}") from None
        return self._clf

    def _prepare(self, jobs=None):
        """Load the model and check every setting: a bad one stops the run before any track is touched."""
        self.classifier  # noqa: B018
        self.config["auto"].get(bool)  # checked with the others; the import stage reads it itself
        settings = {
            "force": self.config["force"].get(bool),
            "keep_existing": self.config["keep_existing"].get(bool),
            "ffmpeg": self._ffmpeg(),
            "count": self.config["count"].get(),
            "slices": self.config["slices"].get(),
            "timeout": self.config["timeout"].as_number(),
            "min_confidence": self.config["min_confidence"].as_number(),
            "threads": self.config["threads"].get(),
            "names": self._genre_names(),
            "aggregation": self._aggregation(),
        }
        for name, bad, rule in (
            ("count", not _is_whole(settings["count"]) or settings["count"] < 1, "a whole number, at least 1"),
            ("slices", not _is_whole(settings["slices"]) or settings["slices"] < 1, "a whole number, at least 1"),
            ("timeout", isinstance(settings["timeout"], bool) or not 0 < settings["timeout"] <= MAX_TIMEOUT,
             f"a number of seconds above 0, at most {MAX_TIMEOUT} (a day)"),
            ("min_confidence", isinstance(settings["min_confidence"], bool)
             or not 0 <= settings["min_confidence"] <= 1, "a number between 0 and 1"),
            ("threads", not _is_whole(settings["threads"]) or settings["threads"] < 0,
             "a whole number, 0 (one per CPU) or more"),
            ("--jobs", jobs is not None and jobs < 1, "at least 1"),
        ):
            if bad:
                raise ui.UserError(f"spectrogenre: {name} must be {rule}")
        settings["jobs"] = jobs or settings["threads"] or os.cpu_count() or 1
        self._settings = settings

    def _prepare_import(self, session):
        if self.config["auto"].get(bool):
            self._prepare()

    def _ffmpeg(self):
        """The ffmpeg to decode with: the configured one, else ffmpeg on PATH, imageio-ffmpeg's, or None (audioread).

        A configured path has ``~`` expanded and a bare name is looked up on
        PATH; one that is missing or is not ffmpeg is a UserError.
        """
        from genre_model.audio import find_ffmpeg
        from genre_model.errors import ParameterError

        configured = self.config["ffmpeg"].get()
        try:
            return find_ffmpeg(os.path.expanduser(str(configured)) if configured else None)
        except ParameterError as exc:
            raise ui.UserError(f"spectrogenre: {exc}") from None

    def _genre_names(self):
        """The name stored for each model label: genre_map's, else the default; a bad map is a UserError."""
        labels = self.classifier.labels
        by_key = {_label_key(label): label for label in labels}
        names = {label: DEFAULT_NAMES.get(label) or label.title() for label in labels}
        mapped = set()
        for key, name in (self.config["genre_map"].get(dict) or {}).items():
            label = by_key.get(_label_key(key))
            if label is None:
                raise ui.UserError(f"spectrogenre: genre_map: {key!r} is none of the model's genres "
                                   f"({', '.join(labels)})")
            if label in mapped:
                raise ui.UserError(f"spectrogenre: genre_map names {label!r} twice")
            if not isinstance(name, str) or not name.strip():
                raise ui.UserError(f"spectrogenre: genre_map: the name for {key!r} must be a non-empty text")
            names[label] = name
            mapped.add(label)
        return names

    def _genre_name(self, label):
        return self._settings["names"][label]

    # -- command and import stage -------------------------------------------

    def commands(self):
        cmd = ui.Subcommand("spectrogenre", help="tag genres by listening to the audio")
        cmd.parser.add_option("-f", "--force", action="store_true", default=None,
                              help="re-analyse tracks already tagged and replace their genre")
        cmd.parser.add_option("-p", "--pretend", action="store_true", default=False,
                              help="show what would change, change nothing")
        cmd.parser.add_option("-a", "--album", action="store_true", default=False,
                              help="the query selects albums: tag their tracks, then set each album's "
                              "genre by consensus of its tracks")
        cmd.parser.add_option("-w", "--write", dest="write", action="store_true", default=None,
                              help="write tags to the files")
        cmd.parser.add_option("-W", "--nowrite", dest="write", action="store_false",
                              help="do not write tags to the files")
        cmd.parser.add_option("-j", "--jobs", type="int", default=None,
                              help="decoding threads (default: threads setting or CPU count)")
        cmd.func = self.command
        return [cmd]

    def command(self, lib, opts, args):
        self.config.set_args({"force": opts.force})
        self._track_log = self._log.debug  # and a command's debug lines with -v
        with ctrl_c_as_user_error():
            self._prepare(opts.jobs)
        write = ui.should_write(opts.write)
        counts = Counter()
        try:
            with ctrl_c_as_user_error(), interrupts_at_safe_points() as check_interrupt:
                if opts.album:
                    albums = [(album, list(album.items())) for album in lib.albums(args)]
                    total = sum(len(items) for _, items in albums)
                    for album, items in albums:
                        votes = self.tag_items(lib, items, write, opts.pretend, counts, check_interrupt, total=total)
                        self.tag_album(album, items, votes, opts.pretend)
                        check_interrupt()
                else:
                    items = lib.items(args)
                    self.tag_items(lib, items, write, opts.pretend, counts, check_interrupt, total=len(items))
        finally:
            ui.print_("spectrogenre: {analysed} analysed, {changed} changed, {skipped} skipped, "
                      "{failed} failed".format_map(counts))

    def imported(self, session, task):
        """Tag the imported tracks (with ``auto``); the importer writes the files afterwards if it writes tags.

        A genre given to the import (``--set genres=...``) is kept, as
        ``keep_existing`` keeps one: those tracks are not analysed.
        """
        if not self.config["auto"].get(bool):
            return
        if {"genre", "genres"} & set(config["import"]["set_fields"].keys()):  # from every config source
            self._log.debug("genres set by the import: not analysed")
            return
        with interrupts_at_safe_points() as check_interrupt:
            votes = self.tag_items(session.lib, task.imported_items(), write=False, pretend=False,
                                   counts=Counter(), check_interrupt=check_interrupt)
            if task.is_album:
                self.tag_album(task.album, list(task.album.items()), votes, pretend=False)

    # -- the work -----------------------------------------------------------

    def tag_items(self, lib, items, write, pretend, counts, check_interrupt, total=None):
        """Analyse and tag ``items``; ``counts`` gathers analysed/changed/skipped/failed.

        ``check_interrupt`` (from :func:`interrupts_at_safe_points`) is called
        between tracks and while waiting for a decoder.

        Returns each analysed item's top label and confidence (as stored) by item id.
        """
        from threadpoolctl import threadpool_limits

        from genre_model.analysis import predict_tracks
        from genre_model.errors import DecodeError

        progress = (total is not None and total > 1 and not pretend and sys.stderr.isatty()
                    and not self._log.isEnabledFor(logging.DEBUG))
        votes = {}
        with threadpool_limits(limits=1, user_api="blas"), \
                closing(self._features(self._unskipped(items, counts))) as analysed, \
                BatchedCommits(lib) as batch:
            for group in analysed:
                while wait_for([group[0][1]], timeout=0.2).not_done:
                    batch.commit()  # a slow decoder must not keep the library locked (a no-op once committed)
                    check_interrupt()
                check_interrupt()
                decoded = []
                for item, features in group:
                    try:
                        decoded.append((item, features.result()))
                    except DecodeError as exc:
                        if progress:
                            print("\r\033[K", end="", file=sys.stderr)
                        self._log.error("{}", exc)
                        counts["failed"] += 1
                if not decoded:
                    continue
                predictions = predict_tracks(self.classifier, [log_mels for _, log_mels in decoded],
                                             self._settings["aggregation"])
                for (item, _), prediction in zip(decoded, predictions):
                    if progress:
                        done = counts["analysed"] + counts["failed"] + counts["skipped"]
                        print(f"\rspectrogenre: {done + 1}/{total}", end="", file=sys.stderr)
                    batch.begin()
                    outcome = self._apply(item, prediction, write, pretend)
                    counts[outcome] += 1
                    if outcome != "failed":
                        counts["analysed"] += 1
                        votes[item.id] = (prediction.genre, round(prediction.confidence, CONFIDENCE_PLACES))
                    check_interrupt()
        if progress:
            print("\r\033[K", end="", file=sys.stderr)
        return votes

    def _unskipped(self, items, counts):
        for item in items:
            if self._should_skip(item):
                counts["skipped"] += 1
            else:
                yield item

    def _should_skip(self, item):
        if self._settings["force"]:
            return False
        return self._analysed(item) or (self._settings["keep_existing"] and bool(item.genres))

    def _analysed(self, item):
        """Whether the current model's analysis is still stored (``beet update`` resets the confidence to 0)."""
        return item.get("genre_model") == self.classifier.card.tag and item.get("genre_confidence", 0.0) > 0

    def _aggregation(self):
        """The configured aggregation (None: the model's own); a bad one is a UserError."""
        from genre_model.aggregate import AGGREGATIONS

        if self.config["aggregation"].get() is None:
            return None
        method = self.config["aggregation"].as_choice(AGGREGATIONS)
        if method == "learned" and self.classifier.card.aggregator is None:
            raise ui.UserError("spectrogenre: this model has no learned aggregator")
        return method

    def _features(self, items):
        """Yield lists of ``(item, future of its log-mel slices)`` in order, at most 2 * jobs in flight.

        A list is the next item and those after it whose features are ready, so their
        slices go through the CNN as one batch.
        """
        from genre_model.analysis import track_log_mels

        jobs = self._settings["jobs"]
        options = {
            "n_slices": self._settings["slices"],
            "ffmpeg": self._settings["ffmpeg"],
            "timeout": self._settings["timeout"],
        }
        frontend = self.classifier.frontend
        pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="spectrogenre")
        pending = deque()
        try:
            for item in items:
                # the length comes from ffmpeg, not from beets: tags count an MP3's or M4A's encoder
                # delay and padding (about 50 ms), which would move every slice off where `predict`,
                # `evaluate` and a copy in another format place them
                pending.append((item, pool.submit(track_log_mels, item.path, frontend, **options)))
                if len(pending) >= 2 * jobs:
                    yield _ready_prefix(pending)
            while pending:
                yield _ready_prefix(pending)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _apply(self, item, prediction, write, pretend):
        """Store (and write) one prediction; return "changed", "unchanged" or "failed"."""
        threshold = self._settings["min_confidence"]
        top = prediction.top(self._settings["count"])
        old = list(item.genres)
        # the threshold sees the confidence as stored, as the album vote and `beet ls` see it
        accepted = [self._genre_name(label) for label, score in top if round(score, CONFIDENCE_PLACES) >= threshold]
        new = accepted or old
        confidence = round(prediction.confidence, CONFIDENCE_PLACES)
        if not pretend:
            item.genres = new
            item.genre_confidence = confidence
            item.genre_model = self.classifier.card.tag
            item.genre_label = prediction.genre
            if write and not item.try_write():
                item.load()  # the file is unchanged, so the database stays as it was
                return "failed"
            item.store()
        shown = ", ".join(accepted) or f"{self._genre_name(prediction.genre)} below min_confidence"
        self._report(pretend, "{0}: {1} {2:.2f} (was: {3})", _describe(item.artist, item.title, item.path),
                     shown, confidence, ", ".join(old) or "no genre")
        return "changed" if new != old else "unchanged"

    def _report(self, pretend, template, *args):
        """One line per track: printed when pretending, else logged (shown with -v)."""
        if pretend:
            ui.print_(template.format(*args))
        else:
            self._track_log(template, *args)

    def tag_album(self, album, items, votes, pretend):
        """Set the album's genres by its tracks' top genres (the model's only) weighted by confidence.

        ``votes`` are this run's predictions of ``items``; the other items vote
        with the label and confidence the current model stored. A confidence
        below ``min_confidence`` does not vote. The share of the weights behind
        the winner is stored as ``album_genre_share``: an album field named as a
        track field would be copied onto the tracks (``beet import -L``).
        ``keep_existing`` keeps a genre the album already has, unless forced.
        """
        if self._settings["keep_existing"] and not self._settings["force"] and album.genres:
            return
        weights = Counter()
        for item in items:
            if item.id in votes:
                label, confidence = votes[item.id]
            elif self._analysed(item) and item.get("genre_label") in self._settings["names"]:
                label, confidence = item.genre_label, item.genre_confidence
            else:
                continue
            if confidence >= self._settings["min_confidence"]:
                weights[self._genre_name(label)] += confidence
        if not weights:
            return
        genres = [name for name, _ in weights.most_common(self._settings["count"])]
        share = round(weights[genres[0]] / sum(weights.values()), CONFIDENCE_PLACES)
        self._report(pretend, "album {0}: {1} {2:.2f} (was: {3})",
                     _describe(album.albumartist, album.album, os.path.dirname(items[0].path)),
                     ", ".join(genres), share, ", ".join(album.genres) or "no genre")
        if pretend:
            return
        album.genres = genres
        album.album_genre_share = share
        if "genre_confidence" in album:  # the share as earlier builds stored it: beets copies it onto the tracks
            del album["genre_confidence"]
        album.store(inherit=False)  # each track keeps its own genre and confidence
