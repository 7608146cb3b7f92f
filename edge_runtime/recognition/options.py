"""The recognizer's options (``--model`` ... ``--profile``): one frozen block, validated once.

:meth:`FaceRecognizer.create_from_options <edge_runtime.recognition.recognizer.FaceRecognizer.create_from_options>`
takes it as it is.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from edge_runtime.detection.alignment import DEFAULT_ALIGN
from edge_runtime.detection.detectors import DEFAULT_DETECTOR, DETECTORS
from edge_runtime.model.classifier import TTA_MODES
from edge_runtime.options import ConfigError, at_least_zero, check, in_range, option

#: Test-time augmentation of the recognizer, the daemon and the benchmark.
DEFAULT_TTA = "none"
#: Interpreter threads when none are asked for: the CPU count, at most 4.
DEFAULT_THREADS = min(4, os.cpu_count() or 1)
DEFAULT_DETECT_MAX_SIDE = 640
DEFAULT_SMOOTHING = 0.5
MAX_THREADS = 64
MAX_MARGIN = 1.0
MAX_SIDE = 20000


@dataclass(frozen=True)
class RecognizerOptions:
    """The model, the detector and how faces are classified."""

    model: str | None = option(flag="--model", help="the .tflite model, its card (.json) beside it, or a bundled "
                                                    "model's name (default: fer4, models/fer4_int8.tflite)")
    card: str | None = option(flag="--card", help="the model card, when it is not beside the model")
    detector: str = option(DEFAULT_DETECTOR, flag="--detector", choices=DETECTORS, help="face detector")
    detector_model: str | None = option(
        flag="--detector-model", aliases=("--blazeface-model",),
        help="the detector's model file (Haar .xml or BlazeFace .tflite) if not the default")
    threads: int = option(DEFAULT_THREADS, flag="--threads", type=int, show_default=False,
                          help=f"interpreter threads, 1 to {MAX_THREADS} (default: the CPU count, at most 4)")
    margin: float | None = option(flag="--margin", type=float,
                                  help="face crop margin, fraction of the box per side (default: the card's, else "
                                       "measured per detector)")
    min_confidence: float = option(0.0, flag="--min-confidence", type=float,
                                   help="report label null below this top probability")
    tta: str = option(DEFAULT_TTA, flag="--tta", choices=TTA_MODES,
                      help="flip: average each face's scores with its mirror image's (two classifier runs per face)")
    align: bool = option(DEFAULT_ALIGN, flag="--align", action=argparse.BooleanOptionalAction,
                         help=f"rotate each BlazeFace crop so the eyes are level (Haar: no effect; default: "
                              f"{'--align' if DEFAULT_ALIGN else '--no-align'})")
    smoothing: float = option(DEFAULT_SMOOTHING, flag="--smoothing", type=float,
                              help="video: EMA weight of the newest frame's scores, 1 = none")
    detect_max_side: int = option(DEFAULT_DETECT_MAX_SIDE, flag="--detect-max-side", type=int, metavar="PIXELS",
                                  help="detect faces on frames downscaled to this longer side (0 = never); smaller "
                                       "is faster but misses small faces")
    profile: str | None = option(flag="--profile", metavar="FILE",
                                 help="a personal profile from `fer-edge enrol`: the largest face of each frame is "
                                      "read against that person's neutral face (its record carries profile and "
                                      "raw_scores; docs/calibration.md)")

    def __post_init__(self) -> None:
        if self.model and Path(self.model).is_dir():
            models = sorted(Path(self.model).glob("*.tflite"),
                            key=lambda p: (not p.name.endswith("_int8.tflite"), p))
            hint = f", e.g. --model {models[0]}" if models else ""
            raise ConfigError(f"--model {self.model} is a folder; give a .tflite file{hint}")
        check(self.detector in DETECTORS, f"--detector {self.detector!r}: choose one of {', '.join(DETECTORS)}")
        check(self.tta in TTA_MODES, f"--tta {self.tta!r}: choose one of {', '.join(TTA_MODES)}")
        check(isinstance(self.align, bool), f"--align must be True or False (got {self.align!r})")
        in_range("--threads", self.threads, 1, MAX_THREADS)
        at_least_zero("--margin", self.margin, MAX_MARGIN)
        check(0.0 <= self.min_confidence <= 1.0,
              f"--min-confidence must be between 0 and 1 (got {self.min_confidence:g})")
        check(0.0 < self.smoothing <= 1.0, f"--smoothing must be > 0 and <= 1 (got {self.smoothing:g})")
        at_least_zero("--detect-max-side", self.detect_max_side, MAX_SIDE)
