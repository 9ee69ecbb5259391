"""spectrogenre demo: import the four demo recordings into a throwaway beets library.

Run ``python examples/demo.py`` after ``pip install .``. The library, its
config and the copied music live in a temporary folder that is removed at the
end; your own beets library and config are never read or touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECORDINGS = HERE / "demo"


def beet(beetsdir: Path, *args: str) -> str:
    """Run ``beet`` on the throwaway library and return what it printed (stdout, then stderr)."""
    env = dict(os.environ, BEETSDIR=str(beetsdir),
               PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "beets", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"beet {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout + proc.stderr


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="spectrogenre-demo-") as tmp:
        root = Path(tmp)
        (root / "config.yaml").write_text(
            f"directory: {root / 'music'}\n"
            f"library: {root / 'library.db'}\n"
            "plugins: [spectrogenre]\n"
            "import:\n  copy: yes\n  log: null\n",
            encoding="utf-8")
        print(f"Importing {len(list(RECORDINGS.glob('*.ogg')))} recordings from {RECORDINGS} ...")
        log = beet(root, "-v", "import", "-A", "-q", "-s", str(RECORDINGS))
        # -v shows the plugin's line per track, with the genre the file was tagged with before
        print("".join(line + "\n" for line in log.splitlines() if line.startswith("spectrogenre: ")))
        print("The library now holds:")
        print(beet(root, "ls", "-f", "$artist - $title: $genres $genre_confidence ($genre_model)"), end="")
        print("\nTracks at least 60% sure:")
        print(beet(root, "ls", "-f", "$title", "genre_confidence:0.6..") or "(none)\n", end="")


if __name__ == "__main__":
    main()
