"""Front-end constants shared by training and inference.

Each value is also written into a model's sidecar and read back at inference,
so a model always runs with the front-end it was trained with.
"""

from __future__ import annotations

SAMPLE_RATE = 22_050  # Hz, GTZAN's rate; mono
N_FFT = 1_024  # 46 ms Hann window
HOP_LENGTH = 441  # 20 ms at 22 050 Hz
N_MELS = 128  # mel bands: the slice height
FMIN = 0.0  # Hz
FMAX = 11_025.0  # Hz, Nyquist
LOG_FLOOR = 1e-6  # log(LOG_FLOOR + mel power) keeps silence finite
SLICE_FRAMES = 128  # frames per slice: the slice width
SLICE_SAMPLES = SLICE_FRAMES * HOP_LENGTH  # 56 448 samples = 2.56 s
SLICE_SECONDS = SLICE_SAMPLES / SAMPLE_RATE  # 2.56 s
MIN_SECONDS = 1.5  # shorter audio is refused; 1.5..2.56 s is padded to one slice
N_SLICES = 5  # slices analysed per track at inference
EDGE_FRACTION = 0.1  # share of a long track skipped at each end (intro, outro)

FRONTEND_KEYS = (
    "sample_rate",
    "n_fft",
    "hop_length",
    "n_mels",
    "fmin",
    "fmax",
    "log_floor",
    "slice_frames",
)


def frontend_params() -> dict[str, float | int]:
    """The front-end parameters as stored in a model's sidecar."""
    return {
        "sample_rate": SAMPLE_RATE,
        "n_fft": N_FFT,
        "hop_length": HOP_LENGTH,
        "n_mels": N_MELS,
        "fmin": FMIN,
        "fmax": FMAX,
        "log_floor": LOG_FLOOR,
        "slice_frames": SLICE_FRAMES,
    }
