"""``fer-edge enrol``: record one person's neutral face as a personal profile.

Reads any source the daemon reads (a camera for a few seconds, a video, an image, a folder of images),
takes the largest face of each frame, and writes the mean of the model's floored log-scores as a small
JSON profile (mode 0600, no pixels) for ``fer-edge run --profile`` (see
:mod:`edge_runtime.recognition.calibration`). Enrol with the camera, the light and the model the
profile will be used with, the person looking at the camera with a relaxed, neutral face.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_runtime.command_line import CommandParser, add_log_level, run_command
from edge_runtime.model.card import file_sha256
from edge_runtime.options import add_options, from_args
from edge_runtime.recognition.calibration import (
    Calibration,
    ProfileError,
    make_profile,
    profile_summary,
    write_profile,
)
from edge_runtime.recognition.options import RecognizerOptions
from edge_runtime.recognition.recognizer import FaceRecognizer
from edge_runtime.results import Face
from edge_runtime.sources.capture import SOURCE_HELP, open_source

log = logging.getLogger(__name__)

PROG = "python -m edge_runtime.service.enrol"
#: Frames taken from a camera, a stream or a video when --frames is not given (a few seconds of a camera).
DEFAULT_LIVE_FRAMES = 30
#: A second face at least this share of the largest face's area means two people in view.
SIMILAR_SIZE = 0.6
#: Frames read, per frame wanted, before a camera or video with too few faces is given up on.
READ_BUDGET = 5
NEUTRAL = "neutral"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The command line of ``fer-edge enrol``."""
    p = CommandParser(prog=prog, description="Record one person's neutral face as a personal profile for "
                                             "`fer-edge run --profile`.")
    p.add_argument("--source", required=True, help=f"where the face is; {SOURCE_HELP}")
    p.add_argument("--profile", required=True, metavar="FILE", help="the profile to write (JSON, mode 0600)")
    p.add_argument("--name", help="the profile's name in every calibrated record (default: FILE's stem)")
    p.add_argument("--frames", type=int, metavar="N",
                   help=f"frames with a face to average (default: {DEFAULT_LIVE_FRAMES} from a camera, stream or "
                        "video; every image of a file or folder)")
    add_options(p, RecognizerOptions, "recognition (as `fer-edge run` will use it)", exclude=("profile",))
    add_log_level(p, default="warning")
    return p


def largest_face(faces: list[Face], where: str) -> Face | None:
    """The largest face; ``None`` without one; :class:`ProfileError` when a second is of similar size."""
    if not faces:
        return None
    ranked = sorted(faces, key=lambda f: f.box[2] * f.box[3], reverse=True)
    if len(ranked) > 1 and ranked[1].box[2] * ranked[1].box[3] >= SIMILAR_SIZE * ranked[0].box[2] * ranked[0].box[3]:
        raise ProfileError(f"two faces of similar size in {where}; enrol one person at a time, alone in view "
                           "(or nearest the camera)")
    return ranked[0]


def collect(recognizer: FaceRecognizer, spec: str, wanted: int | None) -> tuple[np.ndarray, int, bool]:
    """The raw scores of the largest face of each frame (up to ``wanted``), the frames read, and whether the
    source is a camera, stream or video."""
    rows: list[list[float]] = []
    read = 0
    with open_source(spec) as source:
        moving = source.live or source.video or source.reconnect
        if moving and wanted is None:
            wanted = DEFAULT_LIVE_FRAMES
        while wanted is None or len(rows) < wanted:
            if moving and read >= READ_BUDGET * wanted:
                break
            frame = source.read()
            if frame is None:
                break
            read += 1
            face = largest_face(recognizer.recognize(frame.image, gray=frame.gray), f"frame {frame.index} of "
                                f"{frame.source}")
            if face is None:
                log.info("no face in frame %d of %s; skipped", frame.index, frame.source)
                continue
            rows.append([face.scores[k] for k in recognizer.labels])
    return np.array(rows, dtype=np.float64).reshape(-1, len(recognizer.labels)), read, moving


def enrol(args: argparse.Namespace) -> int:
    """Write the profile and print its summary as one JSON line."""
    if args.frames is not None and not 1 <= args.frames <= 10_000:
        raise ProfileError(f"--frames must be between 1 and 10000 (got {args.frames})")
    options = from_args(RecognizerOptions, args, profile=None)
    target = Path(args.profile)
    if not target.parent.is_dir():
        raise ProfileError(f"cannot write --profile {target} (the folder {target.parent} does not exist; "
                           "create it first)")
    recognizer = FaceRecognizer.create_from_options(options)
    sha256 = file_sha256(recognizer.classifier.model_path)
    scores, read, moving = collect(recognizer, args.source, args.frames)
    if len(scores) == 0:
        raise ProfileError(f"no face found in {args.source} ({read} frames read); face the camera, in good light")
    needed = math.ceil((args.frames or (DEFAULT_LIVE_FRAMES if moving else len(scores))) / 2) if moving else 1
    if len(scores) < needed:
        raise ProfileError(f"too few frames with a face in {args.source}: {len(scores)} of {read} read, "
                           f"{needed} needed; stay in view, facing the camera, or lower --frames")
    profile = make_profile(scores, tuple(recognizer.labels), sha256, args.name or target.stem, tta=options.tta)
    Calibration(profile, recognizer.card, sha256)  # the model can use it: its card has a neutral reference
    label, share = profile.reads_as
    if label != NEUTRAL:
        log.warning("the enrolled face reads as %s (%.0f %%), not %s: the profile then holds that expression "
                    "and will read it as neutral; enrol again with a relaxed face if that is not this person's "
                    "resting face", label, share * 100, NEUTRAL)
    write_profile(profile, target)
    print(json.dumps(profile_summary(profile)))
    return 0


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Entry point (``fer-edge enrol``); 2 with one ``error:`` line on bad input."""
    return run_command(build_parser(prog), enrol, argv)


if __name__ == "__main__":
    sys.exit(main())
