"""Throughput benchmark of ``beet spectrogenre``: one command, one table.

Builds (or reuses) a corpus of real-length tracks in five formats, then measures
on the same files, interleaved round by round:

  (a) naive   full decode of each file to 22.05 kHz mono f32le, one file at a time;
  (b) floor   the plugin's length probe and seek-decode of the same 5 segments alone, N threads and 1;
  (c) plugin  ``beet spectrogenre -f -w`` end to end, default jobs and ``-j 1``.

The plugin's steady state excludes start-up: (c) on N tracks minus a one-track
run, over N - 1 tracks. It also reports start-up against ``beet ls``, the peak
RSS of (c) on the corpus and on 1 000 tracks, and ``beet ls`` on a 10 000-item
library with the plugin enabled and disabled. Run ``python bench/run.py --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from genre_model.audio import decode_full, decode_segments, find_ffmpeg, probe_duration  # noqa: E402
from genre_model.inference import DEFAULT_MODEL  # noqa: E402
from genre_model.slicing import slice_starts  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "gtzan"
DEMO_DIR = REPO / "examples" / "demo"
SOURCE_SR = 22_050  # GTZAN's and the demo recordings' rate: clips are read at this rate
MIN_TRACK_S, MAX_TRACK_S = 180, 300  # 3 to 5 minutes
EXCERPT_S = 15.0  # half of the pieces taken from a long clip are an excerpt this long
FORMATS = {  # extension: ffmpeg output options; tracks are encoded round-robin, in stereo
    "mp3": ["-ar", "44100", "-c:a", "libmp3lame", "-q:a", "2"],
    "flac": ["-ar", "44100", "-c:a", "flac"],
    "ogg": ["-ar", "44100", "-c:a", "libvorbis", "-q:a", "5"],
    "opus": ["-ar", "48000", "-c:a", "libopus", "-b:a", "128k"],
    "m4a": ["-ar", "44100", "-c:a", "aac", "-b:a", "192k"],
}
MEMORY_TRACKS = 1_000  # tracks tagged in the memory check: the corpus, added this many times over
LS_ITEMS = 10_000  # items in the library that ``beet ls`` is timed on
STARTUP_REPEATS = 5  # start-up: the median of this many one-track runs
LS_PAIRS = 24  # beet ls on the big library: this many on/off pairs; the median of their differences counts
TARGETS = {  # name: (description, check on the results)
    "c/a": ("steady state >= 6x full decode", lambda r: r["c/a"] >= 6),
    "c/b": ("steady state >= 0.8x seek-decode floor (same jobs)", lambda r: r["c/b"] >= 0.8),
    "startup": ("start-up <= 2x beet ls", lambda r: r["startup_sg"] <= 2 * r["startup_ls"]),
    "rss": (f"peak RSS <= 250 MB for {MEMORY_TRACKS} tracks", lambda r: r["rss_mem"] <= 250),
    "ls": ("beet ls with plugin <= 50 ms slower",
           lambda r: r["ls_only_merge"] and r["ls_startup_diff"] + r["ls_listing"] <= 0.050),
}


# -- corpus ---------------------------------------------------------------------


def source_clips(data: Path) -> dict[str, list[Path]]:
    """Audio to build tracks from, by group: GTZAN clips by genre, else each demo recording alone."""
    if data.is_dir():
        groups = {d.name: sorted(d.glob("*.flac")) for d in sorted(data.iterdir()) if d.is_dir()}
        groups = {name: clips for name, clips in groups.items() if clips}
        if groups:
            return groups
    print(f"no clips under {data}: building tracks from {DEMO_DIR}", file=sys.stderr)
    return {p.stem: [p] for p in sorted(DEMO_DIR.glob("*.ogg"))}


def track_plan(n_tracks: int, groups: list[str]) -> list[dict]:
    """Name, group, length and format of each track: deterministic, so a corpus can be reused.

    Groups and formats both go round-robin, the format shifted by one on every
    pass over the groups, so that every group is encoded in every format.
    """
    rng = random.Random(0)
    exts = list(FORMATS)
    return [{"name": f"{i:04d}-{groups[i % len(groups)]}.{exts[(i + i // len(groups)) % len(exts)]}",
             "group": groups[i % len(groups)], "seconds": rng.uniform(MIN_TRACK_S, MAX_TRACK_S),
             "seed": i} for i in range(n_tracks)]


def assemble(clips: list[np.ndarray], seconds: float, seed: int) -> np.ndarray:
    """A track of ``seconds`` made of random whole clips and 15 s excerpts of one group."""
    rng = random.Random(seed)
    want, pieces, have = int(seconds * SOURCE_SR), [], 0
    while have < want:
        clip = rng.choice(clips)
        if clip.size > EXCERPT_S * SOURCE_SR and rng.random() < 0.5:
            start = rng.randrange(clip.size - int(EXCERPT_S * SOURCE_SR))
            clip = clip[start:start + int(EXCERPT_S * SOURCE_SR)]
        pieces.append(clip)
        have += clip.size
    return np.concatenate(pieces)[:want]


def encode(y: np.ndarray, out: Path, artist: str, title: str) -> None:
    """Encode mono f32 audio at SOURCE_SR to ``out`` (format by extension), with tags."""
    tmp = out.with_name(".part-" + out.name)
    cmd = [find_ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-y",
           "-f", "f32le", "-ar", str(SOURCE_SR), "-ac", "1", "-i", "-",
           "-ac", "2", *FORMATS[out.suffix[1:]],
           "-metadata", f"artist={artist}", "-metadata", f"title={title}",
           "-f", {"m4a": "mp4", "opus": "ogg"}.get(out.suffix[1:], out.suffix[1:]), str(tmp)]
    subprocess.run(cmd, input=y.astype("<f4").tobytes(), check=True)
    tmp.replace(out)


def build_corpus(corpus: Path, n_tracks: int, data: Path, jobs: int) -> list[Path]:
    """Make the corpus's missing tracks (existing ones are reused) and return all their paths."""
    groups = source_clips(data)
    plan = track_plan(n_tracks, list(groups))
    corpus.mkdir(parents=True, exist_ok=True)
    todo = [t for t in plan if not (corpus / t["name"]).exists()]
    if todo:
        print(f"building {len(todo)} of {n_tracks} tracks in {corpus} ...", file=sys.stderr)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        for group in groups:
            mine = [t for t in todo if t["group"] == group]
            if not mine:
                continue
            clips = [decode_full(p, sr=SOURCE_SR) for p in groups[group]]
            list(pool.map(lambda t: encode(assemble(clips, t["seconds"], t["seed"]), corpus / t["name"],
                                           f"Bench {t['group']}", f"Track {t['name'][:4]}"), mine))
    if todo:
        print(f"built in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return [corpus / t["name"] for t in plan]


# -- beets libraries ------------------------------------------------------------


def beets_env(beetsdir: Path) -> dict[str, str]:
    """Environment for a ``beet`` run on the throwaway library in ``beetsdir``."""
    return dict(os.environ, BEETSDIR=str(beetsdir),
                PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


def make_beetsdir(beetsdir: Path, model: Path) -> Path:
    """A fresh, empty beets library and config; the plugin never tags on import."""
    shutil.rmtree(beetsdir, ignore_errors=True)
    beetsdir.mkdir(parents=True)
    (beetsdir / "config.yaml").write_text(
        f"directory: {beetsdir / 'music'}\n"
        f"library: {beetsdir / 'library.db'}\n"
        "plugins: [spectrogenre]\n"
        f"spectrogenre: {{auto: no, model: '{model}'}}\n"
        "import: {copy: no, move: no, write: no, log: null}\n", encoding="utf-8")
    return beetsdir


def set_plugins(beetsdir: Path, plugins: bool) -> None:
    """Enable or disable the plugin in an existing library's config."""
    config = beetsdir / "config.yaml"
    text = config.read_text(encoding="utf-8")
    on, off = "plugins: [spectrogenre]", "plugins: []"
    config.write_text(text.replace(off, on) if plugins else text.replace(on, off), encoding="utf-8")


# Runs the command given as arguments; prints its wall time (s), peak RSS (kB) and CPU time (s). Linux carries a
# process's RSS high-water mark across fork and exec, so a child of this (large) benchmark process
# would report at least the benchmark's own peak: the command is started from this small one instead.
MEASURE = ("import os, subprocess, sys, time; t = time.perf_counter(); "
           "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL); _, status, usage = os.wait4(p.pid, 0); "
           "print(time.perf_counter() - t, usage.ru_maxrss, usage.ru_utime + usage.ru_stime); sys.exit(os.waitstatus_to_exitcode(status))")


def beet(beetsdir: Path, *args: str) -> tuple[float, float, float]:
    """Run ``python -m beets ARGS``; return its wall time (s), peak RSS (MB) and CPU time (s).

    ffmpeg children count in the CPU time, and in the peak RSS as a maximum.
    """
    with tempfile.TemporaryFile() as err:
        proc = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "beets", *args],
                              env=beets_env(beetsdir), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=err, text=True, check=False)
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"beet {' '.join(args)} failed:\n{err.read().decode(errors='replace')}")
    wall, max_kb, cpu = proc.stdout.split()
    return float(wall), int(max_kb) / 1024, float(cpu)


def import_corpus(beetsdir: Path, corpus: Path) -> None:
    """Import the corpus as-is, as singletons, without copying or tagging (not timed)."""
    beet(beetsdir, "import", "-A", "-q", "-s", str(corpus))


def add_items(beetsdir: Path, items) -> None:
    """Add ``items`` (beets Items) to the library in one transaction."""
    from beets.library import Library

    with contextlib.redirect_stdout(None):  # beets announces its schema migrations of a new file
        lib = Library(str(beetsdir / "library.db"), str(beetsdir / "music"))
    with lib.transaction():
        for item in items:
            lib.add(item)
    lib._close()


def memory_library(beetsdir: Path, paths: list[Path], n_items: int) -> None:
    """A library of ``n_items`` real tracks: hard links to the corpus, under distinct paths."""
    from beets.library import Item

    links = beetsdir.parent / (beetsdir.name + "-links")
    shutil.rmtree(links, ignore_errors=True)
    templates = {p: Item.from_path(str(p)) for p in paths}
    items = []
    for i in range(n_items):
        src = paths[i % len(paths)]
        dst = links / f"copy{i // len(paths)}" / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, dst)
        item = templates[src].copy()
        item.id, item.path = None, os.fsencode(dst)
        items.append(item)
    add_items(beetsdir, items)


def big_library(beetsdir: Path, n_items: int) -> None:
    """A library of ``n_items`` rows with plausible tags and no audio, for timing ``beet ls``."""
    from beets.library import Item

    add_items(beetsdir, (Item(path=f"/nonexistent/{i:05d}.mp3".encode(), title=f"Title {i}",
                              artist=f"Artist {i % 500}", album=f"Album {i % 1000}", track=i % 12 + 1,
                              length=240.0, format="MP3", bitrate=192_000, year=1990 + i % 30)
                         for i in range(n_items)))


# -- measurements ---------------------------------------------------------------


class LoadSampler:
    """Samples the 1-minute load average every few seconds in a background thread."""

    def __init__(self, every: float = 5.0):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(every)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def naive(paths: list[Path]) -> float:
    """Seconds to fully decode every file to 22.05 kHz mono f32le, one after the other."""
    t0 = time.perf_counter()
    for path in paths:
        decode_full(path)
    return time.perf_counter() - t0


def cpu_seconds() -> float:
    """CPU time used so far by this process and its finished children (ffmpeg), user + system."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def floor(paths: list[Path], jobs: int) -> tuple[float, float]:
    """Wall and CPU seconds to probe each file's length and seek-decode its 5 slices as the plugin does,
    ``jobs`` files at once."""
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(lambda p: decode_segments(p, slice_starts(probe_duration(p))), paths))
    return time.perf_counter() - t0, cpu_seconds() - cpu0


def plugin(beetsdir: Path, jobs: int | None) -> tuple[float, float, float]:
    """Wall time, peak RSS and CPU time of ``beet spectrogenre -f -w`` over the whole library."""
    return beet(beetsdir, "spectrogenre", "-f", "-w", *(["-j", str(jobs)] if jobs else []))


def startup(beetsdir: Path) -> dict[str, float]:
    """Median wall and CPU times of one-track ``beet spectrogenre -f -w`` and ``beet ls`` runs, alternated."""
    runs = {"sg": [], "ls": []}
    for _ in range(STARTUP_REPEATS):
        runs["sg"].append(beet(beetsdir, "spectrogenre", "-f", "-w", "id:1"))
        runs["ls"].append(beet(beetsdir, "ls", "id:1"))
    return {f"startup_{name}{suffix}": statistics.median(run[i] for run in times)
            for name, times in runs.items() for suffix, i in (("", 0), ("_cpu", 2))}


def ls_overhead(beetsdir: Path) -> dict[str, float]:
    """``beet ls`` over the whole library, plugin enabled and disabled, end to end and in its two parts.

    End to end: pairs of runs, in the opposite order every other time; the
    median of the pairs' wall-time differences, with its quartiles. On a shared
    2-core machine single 2 s runs vary by a few hundred ms, so this median
    moves by about 100 ms from one batch of pairs to the next: it cannot
    resolve 50 ms. The two parts can, and they add up to the whole: start-up
    (``beet ls id:0``, which lists nothing: median of paired CPU-time
    differences) and the listing (:data:`LISTING`: the calls the plugin adds,
    counted over the whole library, times their cost).
    """
    runs = {"on": [], "off": []}
    startup = {"on": [], "off": []}
    for repeat in range(LS_PAIRS):
        for name in ("on", "off") if repeat % 2 == 0 else ("off", "on"):
            set_plugins(beetsdir, name == "on")
            runs[name].append(beet(beetsdir, "ls"))
            startup[name].append(beet(beetsdir, "ls", "id:0"))
    diff = sorted(on[0] - off[0] for on, off in zip(runs["on"], runs["off"]))
    set_plugins(beetsdir, True)
    listing = json.loads(subprocess.run([sys.executable, "-c", LISTING], env=beets_env(beetsdir), check=True,
                                        capture_output=True, text=True).stdout)
    per_call = listing["getters_s"]
    return {"ls_on": statistics.median(run[0] for run in runs["on"]),
            "ls_off": statistics.median(run[0] for run in runs["off"]),
            "ls_diff": statistics.median(diff), "ls_diff_q1": diff[len(diff) // 4],
            "ls_diff_q3": diff[3 * len(diff) // 4],
            "ls_startup_diff": statistics.median(on[2] - off[2] for on, off in zip(startup["on"], startup["off"])),
            "ls_added_calls": listing["added_calls_per_1000"], "ls_getters_calls": listing["getters_calls"],
            "ls_only_merge": all(f.split(":", 1)[0] in MERGE_MODULES for f in listing["added_calls_per_1000"]),
            "ls_listing": listing["getters_calls"] * (per_call["on"] - per_call["off"]),
            "ls_listing_empty": listing["getters_calls"] * (per_call["empty"] - per_call["off"]),
            "ls_getters_us": {name: t * 1e6 for name, t in per_call.items()},
            "ls_whole_listing": listing["listing_s"]}


# What the plugin adds to the listing loop of ``beet ls``, measured in steps that resolve milliseconds.
# 1. Profile a listing of the first 1 000 items with beets' plugin list holding the configured
#    plugins and holding nothing: the functions called a different number of times are all that the
#    plugin changes in the loop (beets' ``Item._getters``, which merges every plugin's template fields
#    on each field lookup).
#    The estimate below holds only when all of them are beets' (plugins.py) or builtins the merge runs
#    (``~``): a plugin that ran code per item would show its own functions here, and the target fails.
# 2. Count ``Item._getters`` calls (through the plugin merge each one runs) over a listing of the whole
#    library.
# 3. Time one ``Item._getters`` call with the configured plugins, with an empty BeetsPlugin (what
#    beets costs per plugin, whatever the plugin does) and with none: timeit, rotated, 15 rounds.
# 4. Time whole listings too (CPU, least of 5 each), for the record: they vary by ~10% between runs.
# Prints one JSON object.
MERGE_MODULES = ("plugins.py", "~")  # where the calls of beets' template-field merge live
LISTING = """
import cProfile, itertools, json, pstats, statistics, time, timeit
from beets import config, library, plugins
from beets.library import Item
config.read()
plugins.load_plugins()
states = {"on": list(plugins._instances), "empty": [plugins.BeetsPlugin("empty")], "off": []}
lib = library.Library(config["library"].as_filename())
template = config["format_item"].as_str()

def listing(n=None):
    for item in itertools.islice(lib.items(), n):  # fetched afresh, as beet ls does
        format(item, template)

listing(1)  # compiles the template once
calls = {}
for name in ("on", "off"):
    plugins._instances[:] = states[name]
    profile = cProfile.Profile()
    profile.runcall(listing, 1000)
    calls[name] = {f"{path.rsplit('/', 1)[-1]}:{function}": stat[1]
                   for (path, _, function), stat in pstats.Stats(profile).stats.items()}
added = {f: calls["on"].get(f, 0) - calls["off"].get(f, 0) for f in set(calls["on"]) | set(calls["off"])}
plugins._instances[:] = states["on"]
merge = plugins.item_field_getters  # what each Item._getters call runs
count = 0
def counted():
    global count
    count += 1
    return merge()
plugins.item_field_getters = counted
listing()
plugins.item_field_getters = merge
per_call = {name: [] for name in states}
whole = {name: [] for name in states}
for i in range(15):
    for name in list(states)[i % 3:] + list(states)[:i % 3]:
        plugins._instances[:] = states[name]
        per_call[name].append(min(timeit.repeat(Item._getters, number=20_000, repeat=3)) / 20_000)
        if i < 5:
            start = time.process_time()
            listing()
            whole[name].append(time.process_time() - start)
print(json.dumps({"added_calls_per_1000": {f: n for f, n in sorted(added.items()) if n},
                  "getters_calls": count,
                  "getters_s": {name: statistics.median(t) for name, t in per_call.items()},
                  "listing_s": {name: min(t) for name, t in whole.items()}}))
"""


# -- report ---------------------------------------------------------------------


def machine() -> str:
    """CPU count and model."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs, {model}"


def report(r: dict, n: int, jobs: int, rounds: int) -> None:
    """Print the results table and the targets, met or missed."""
    rate = lambda seconds, tracks=n: tracks / seconds  # noqa: E731
    rows = [
        ("(a) naive full decode, 1 file at a time", f"{rate(r['a']):.2f}", ""),
        (f"(b) seek-decode floor, {jobs} threads", f"{rate(r['b_n']):.2f}", ""),
        ("(b) seek-decode floor, 1 thread", f"{rate(r['b_1']):.2f}", ""),
        (f"(c) beet spectrogenre, default jobs ({jobs}), steady", f"{rate(r['c_n'], n - 1):.2f}",
         f"whole run {r['c_n_wall']:.1f} s"),
        ("(c) beet spectrogenre -j 1, steady", f"{rate(r['c_1'], n - 1):.2f}",
         f"whole run {r['c_1_wall']:.1f} s"),
    ]
    print(f"\nthroughput, {n} tracks, best of {rounds} round(s)\n")
    print(f"| {'measure':<48} | tracks/s | note")
    print(f"|{'-' * 50}|----------|------")
    for name, value, note in rows:
        print(f"| {name:<48} | {value:>8} | {note}")
    print("\n| ratio / measure | value | target | met")
    print("|---|---|---|---")
    lines = [
        ("c/a (default jobs vs naive)", f"{r['c/a']:.2f}x", "c/a"),
        (f"c/b ({jobs} jobs vs floor, {jobs} threads)", f"{r['c/b']:.2f}x", "c/b"),
        ("c/b (-j 1 vs floor, 1 thread)", f"{r['c/b_1']:.2f}x", None),
        ("CPU per track: floor / plugin steady (least of rounds)",
         f"{r['b_cpu_track'] * 1000:.0f} / {r['c_cpu_track'] * 1000:.0f} ms "
         f"({r['b_cpu_track'] / r['c_cpu_track']:.2f}x)", None),
        ("start-up: one-track beet spectrogenre (median)",
         f"{r['startup_sg']:.3f} s (CPU {r['startup_sg_cpu']:.3f} s)", "startup"),
        ("start-up: one-track beet ls (median)", f"{r['startup_ls']:.3f} s (CPU {r['startup_ls_cpu']:.3f} s)", None),
        (f"peak RSS, {n} tracks (default jobs)", f"{r['rss_n']:.0f} MB", None),
        (f"peak RSS, {r['mem_tracks']} tracks (default jobs)", f"{r['rss_mem']:.0f} MB", "rss"),
        (f"{r['mem_tracks']} tracks, default jobs, whole run", f"{r['mem_wall']:.1f} s "
         f"({r['mem_tracks'] / r['mem_wall']:.2f} tracks/s)", None),
        (f"beet ls, {LS_ITEMS} items, plugin on / off (median of {LS_PAIRS})",
         f"{r['ls_on'] * 1000:.0f} / {r['ls_off'] * 1000:.0f} ms", None),
        ("beet ls end to end, on minus off (median of pairs)",
         f"{r['ls_diff'] * 1000:+.0f} ms (quartiles {r['ls_diff_q1'] * 1000:+.0f}, {r['ls_diff_q3'] * 1000:+.0f})", None),
        ("beet ls in parts, on minus off: start-up + listing",
         f"{(r['ls_startup_diff'] + r['ls_listing']) * 1000:+.0f} ms "
         f"({r['ls_startup_diff'] * 1000:+.0f} + {r['ls_listing'] * 1000:+.0f})", "ls"),
        ("listing: calls the plugin adds per 1000 items",
         (", ".join(f"{f} {n:+d}" for f, n in r["ls_added_calls"].items()) or "none")
         + f" (only beets' template-field merge: {'yes' if r['ls_only_merge'] else 'NO'})", None),
        ("listing: Item._getters calls x cost on / empty plugin / off",
         f"{r['ls_getters_calls']} x " + " / ".join(f"{r['ls_getters_us'][k]:.3f}" for k in ("on", "empty", "off"))
         + f" us (empty plugin: {r['ls_listing_empty'] * 1000:+.0f} ms)", None),
        ("whole listing, CPU, on / empty / off (least of 5; for the record)",
         " / ".join(f"{r['ls_whole_listing'][k] * 1000:.0f}" for k in ("on", "empty", "off")) + " ms", None),
    ]
    for name, value, target in lines:
        desc, met = (TARGETS[target][0], "yes" if TARGETS[target][1](r) else "**NO**") if target else ("", "")
        print(f"| {name} | {value} | {desc} | {met}")
    print(f"\nmachine: {machine()}; load average (1 min) during the run: "
          f"min {r['load'][0]:.2f}, mean {r['load'][1]:.2f}, max {r['load'][2]:.2f}")


def measure(work: Path, model: Path, n: int, data: Path, rounds: int, jobs: int, memory_tracks: int) -> dict:
    """Build what is needed in ``work`` and run every measurement; times in s, RSS in MB."""
    paths = build_corpus(work / "corpus", n, data, jobs)
    lib = make_beetsdir(work / "lib", model)
    import_corpus(lib, work / "corpus")
    best: dict[str, float] = {}
    for i in range(rounds):
        print(f"round {i + 1}/{rounds} ...", file=sys.stderr)
        this = {"a": naive(paths)}
        this["b_n"], this["b_n_cpu"] = floor(paths, jobs)
        this["c_n_wall"], rss, this["c_n_cpu"] = plugin(lib, None)
        this["b_1"], _ = floor(paths, 1)
        this["c_1_wall"], _, _ = plugin(lib, 1)
        print("  seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in this.items())
              + f"; load {os.getloadavg()[0]:.1f}", file=sys.stderr)
        for key, value in this.items():
            best[key] = min(value, best.get(key, value))
        best["rss_n"] = max(rss, best.get("rss_n", 0))
    print("start-up ...", file=sys.stderr)
    r = dict(best, **startup(lib))
    r["c_n"], r["c_1"] = r["c_n_wall"] - r["startup_sg"], r["c_1_wall"] - r["startup_sg"]
    steady = lambda key: (n - 1) / r[key]  # noqa: E731
    r["c/a"] = steady("c_n") / (n / r["a"])
    r["c/b"] = steady("c_n") / (n / r["b_n"])
    r["c/b_1"] = steady("c_1") / (n / r["b_1"])
    r["b_cpu_track"] = r["b_n_cpu"] / n
    r["c_cpu_track"] = (r["c_n_cpu"] - r["startup_sg_cpu"]) / (n - 1)
    print(f"memory check, {memory_tracks} tracks ...", file=sys.stderr)
    memory_library(make_beetsdir(work / "libmem", model), paths, memory_tracks)
    r["mem_tracks"] = memory_tracks
    r["mem_wall"], r["rss_mem"], _ = plugin(work / "libmem", None)
    print(f"beet ls, {LS_ITEMS} items ...", file=sys.stderr)
    big_library(make_beetsdir(work / "lib10k", model), LS_ITEMS)
    r.update(ls_overhead(work / "lib10k"))
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--tracks", type=int, default=100, help="tracks in the corpus (3 to 5 minutes each)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="GTZAN folder (one sub-folder of FLAC clips per genre); "
                             "absent: the demo recordings")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                        help="the .tflite model to tag with (its .json sidecar beside it)")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the corpus (reused) and the libraries (none: a temporary folder, removed)")
    parser.add_argument("--memory-tracks", type=int, default=MEMORY_TRACKS,
                        help="tracks tagged in the memory check (the corpus, added over and over)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of (a), (b), (c); best is kept")
    args = parser.parse_args()
    if find_ffmpeg() is None:
        sys.exit("no ffmpeg found (install imageio-ffmpeg or put ffmpeg on PATH)")
    if not args.model.is_file():
        sys.exit(f"no model at {args.model}: build or name one with --model")
    if args.tracks < 2:
        sys.exit("--tracks must be at least 2")
    jobs = os.cpu_count() or 1
    work = args.work or Path(tempfile.mkdtemp(prefix="spectrogenre-bench-"))
    try:
        with LoadSampler() as load:
            results = measure(work.resolve(), args.model.resolve(), args.tracks, args.data, args.rounds, jobs, args.memory_tracks)
        results["load"] = (min(load.samples), statistics.fmean(load.samples), max(load.samples))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    report(results, args.tracks, jobs, args.rounds)


if __name__ == "__main__":
    main()
