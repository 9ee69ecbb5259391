"""What the resampler costs: front-end CPU per track with ffmpeg's default filter, ``RESAMPLER`` and a longer one.

Encodes the demo recordings at CD and Opus rates (44.1 and 48 kHz, five formats), then
times ``track_log_mels`` (seek-decode of five slices, resampling, log-mel) on every file
with each filter, interleaved in rounds, and prints the least CPU time (this process and
its ffmpeg children) per track and the ratios to the default::

    python bench/resampler.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from run import FORMATS, REPO, cpu_seconds  # bench/run.py, which also puts the repository on sys.path

from genre_model import audio
from genre_model.analysis import track_log_mels
from genre_model.constants import frontend_params

FILTERS = {"ffmpeg's default (32 taps, cutoff 0.97)": "filter_size=32:cutoff=0.97",
           f"RESAMPLER ({audio.RESAMPLER})": audio.RESAMPLER,
           "256 taps, cutoff 0.995 (flat to the top)": "filter_size=256:cutoff=0.995"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    frontend = frontend_params()
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for source in sorted((REPO / "examples" / "demo").glob("*.ogg")):
            for suffix, options in FORMATS.items():
                out = Path(tmp) / f"{source.stem}.{suffix}"
                subprocess.run([audio.find_ffmpeg(), "-v", "error", "-i", f"file:{source}", "-vn", "-ac", "2", *options,
                                f"file:{out}"], check=True)
                files.append((out, audio.probe_duration(out)))
        cpu_ms = {name: [] for name in FILTERS}
        for _ in range(args.rounds):
            for name, setting in FILTERS.items():
                audio.RESAMPLER = setting
                start = cpu_seconds()
                for path, duration in files:
                    track_log_mels(path, frontend, duration=duration)
                cpu_ms[name].append(1000 * (cpu_seconds() - start) / len(files))
    least = {name: min(times) for name, times in cpu_ms.items()}
    print(f"{len(files)} files (4 recordings x {len(FORMATS)} formats), {args.rounds} interleaved rounds")
    for name, times in cpu_ms.items():
        print(f"  {name:40s} {least[name]:6.1f} ms CPU per track (rounds: {', '.join(f'{t:.1f}' for t in times)})")
    default = least[next(iter(FILTERS))]
    for name in list(FILTERS)[1:]:
        print(f"  {name} / default: {least[name] / default:.2f}x")


if __name__ == "__main__":
    main()
