"""spectrogenre's genre model: audio front-end, int8 TFLite CNN, aggregation, training.

Modules, one job each: :mod:`.audio` (seek-decoding with ffmpeg), :mod:`.features`
(log-mel spectrogram), :mod:`.slicing` (where slices are taken), :mod:`.inference`
(the TFLite classifier and its sidecar), :mod:`.aggregate` (slices to a track),
:mod:`.calibration` (temperature, bias, ECE), :mod:`.analysis` (one file end to
end), :mod:`.dataset` (labelled splits), :mod:`.evaluate` (figures on a split),
:mod:`.plots` (the model card's figures), :mod:`.constants` and :mod:`.errors`;
:mod:`.training` (TensorFlow, optional).
"""

__version__ = "0.1.0"
