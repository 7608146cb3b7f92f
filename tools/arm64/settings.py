"""Settings of the emulated-ARM check: shared assets, Pi profiles, tolerances, probe stages."""

from __future__ import annotations

from pathlib import Path

from edge_runtime.detection.detectors import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
PINS_FILE = ROOT / "deploy" / "requirements-edge.txt"
DEFAULT_PHOTOS = ("obama-240p.jpg", "alex-lacamoire.png", "two_people.jpg")  # JPEG, PNG, 2 faces + downscale
VIDEO = Path("media") / "video" / "short_hamilton_clip.mp4"  # relative to the shared folder
BLAZEFACE = Path("models") / "face_detection" / "face_detection_short_range.tflite"
FER_TEST = Path("data") / "fer2013" / "test"
SCRIPT = Path("tools") / "arm64" / "make-arm64-python.sh"
DETECTORS = tuple(REGISTRY)  # every named detector of the runtime
#: Emulated Raspberry Pi profiles: the wrapper's RPI_MODEL selects the QEMU CPU.
PROFILES = {"pi4": {"RPI_MODEL": "4", "cpu": "cortex-a72"}, "pi5": {"RPI_MODEL": "5", "cpu": "cortex-a76"}}
REFERENCE = "x86_64"
BOX_TOLERANCE_PX = 1
JSON_ROUNDING = 1e-4  # the daemon writes scores with 4 decimals: two roundings differ by at most this
DETECTOR_SCORE_RTOL = 1e-3
NETWORK_ERRORS = ("Temporary failure resolving", "Could not resolve", "Failed to fetch", "Network is unreachable",
                  "Max retries exceeded", "Name or service not known", "Connection refused", "timed out",
                  "NewConnectionError", "ConnectionError", "Could not connect", "No route to host")
RUN_TIMEOUT_S = 900
#: What each probe stage holds (keys of the probe's arrays are ``stage|item``; per-frame stages end in
#: ``_photo`` or ``_video``).
STAGES = {
    "decode": "decoding: photos by cv2.imdecode (libjpeg-turbo, libpng); video by OpenCV's FFmpeg (H.264 "
              "decoder, then swscale's YUV to BGR conversion)",
    "decode_fer": "48x48 grayscale JPEG decoding (FER2013 test faces)",
    "gray": "BGR to grayscale (cv2.cvtColor)",
    "det_haar": "Haar cascade boxes and weights (float)",
    "det_blazeface": "BlazeFace boxes and scores after anchor decoding and weighted NMS (float)",
    "kp_blazeface": "BlazeFace keypoints (float)",
    "bf_in": "BlazeFace input tensor (letterbox, cv2.resize, scaling to -1..1)",
    "bf_out": "BlazeFace raw outputs (float32 model on LiteRT with XNNPACK)",
    "cls_in_haar": "classifier input of the Haar faces (square crop, cv2.resize to 48x48, int8)",
    "cls_in_blazeface": "classifier input of the BlazeFace faces",
    "cls_out_haar": "classifier raw output of the Haar faces (each side's own crops)",
    "cls_out_blazeface": "classifier raw output of the BlazeFace faces",
    "kernel_in": "kernel check inputs (FER2013 test faces + seeded noise), identical on every side",
    "kernel_out_xnnpack": "kernel check: classifier raw output, LiteRT default (XNNPACK) as the runtime uses it",
    "kernel_logits_xnnpack": "kernel check: the input of the final SOFTMAX (XNNPACK's part of the model; SOFTMAX runs "
                       "on LiteRT's own kernel)",
    "kernel_out_xnnpack_4_threads": "kernel check: the same with 4 interpreter threads (a Pi's default)",
    "kernel_out_builtin": "kernel check: classifier raw output, LiteRT built-in kernels (XNNPACK off)",
}
#: The raw int8 outputs of the runtime's own kernels on identical inputs may differ by at most this many steps.
KERNEL_MAX_STEPS = 1
#: Faces in frames whose decoded pixels differ between the sides must still overlap this much (IoU).
DECODED_MIN_IOU = 0.8



def stage_description(stage: str) -> str:
    """What a probe stage (``det_haar_video``, ``kout_xnnpack``...) holds."""
    base, _, kind = stage.rpartition("_")
    return STAGES.get(stage) or f"{STAGES.get(base, base)} ({kind}s)"


class CheckUnavailable(RuntimeError):
    """The check cannot run on this machine (the message says why and what to do)."""
