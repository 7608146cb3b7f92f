"""Test helpers for edge_runtime: a tiny int8 model with its card, shared-media paths, a fake Picamera2.

The tiny model (tests/model_support.py) is converted to int8/float32 TFLite and carded by the
production converter and card builder (in a subprocess, so the test process never imports
TensorFlow) and cached in pytest's cache folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_runtime.paths import shared_dir

ROOT = Path(__file__).resolve().parents[1]
SHARED = shared_dir()
MEDIA = SHARED / "media"
VIDEO = MEDIA / "video" / "short_hamilton_clip.mp4"
PHOTOS = MEDIA / "photos"
REAL_MODEL = ROOT / "models" / "fer4_int8.tflite"
TINY_LABELS = ("happy", "neutral", "sad", "surprise")
TINY_VERSION = "5"  # bump to rebuild the cached tiny models

BUILD_SCRIPT = textwrap.dedent('''
    import sys
    from pathlib import Path

    import numpy as np

    out, labels, root = Path(sys.argv[1]), tuple(sys.argv[2].split(",")), sys.argv[3]
    sys.path.insert(0, root)
    from tests.model_support import convert_to, keras_card, pinned_representative, tiny_cnn, write_variant

    model = tiny_cnn(len(labels), "untrained")
    rng = np.random.default_rng(0)
    noise = pinned_representative(lambda: (rng.integers(0, 256, (48, 48)).astype(np.uint8) for _ in range(64)))
    card = keras_card("tiny", labels, model, face_margin=None)
    for variant, data in convert_to(model, out, ("int8", "float32"), noise).items():
        write_variant(out, card, variant, data)
''')


def build_tiny_models(folder: Path, labels: tuple[str, ...] = TINY_LABELS) -> dict[str, Path]:
    """Build (or reuse) ``tiny_int8.tflite`` and ``tiny_float32.tflite`` with their cards in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {v: folder / f"tiny_{v}.tflite" for v in ("int8", "float32")}
    stamp = folder / "version"
    if all(p.is_file() and p.with_suffix(".json").is_file() for p in paths.values()) and \
            stamp.is_file() and stamp.read_text() == TINY_VERSION:
        return paths
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([sys.executable, "-c", BUILD_SCRIPT, str(folder), ",".join(labels), str(ROOT)],
                          capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"building the tiny test model failed:\n{done.stderr[-3000:]}")
    stamp.write_text(TINY_VERSION)
    return paths


@pytest.fixture(scope="session")
def tiny_models(request) -> dict[str, Path]:
    """Paths of the tiny int8 and float32 models (cards beside them), cached across sessions."""
    return build_tiny_models(Path(request.config.cache.mkdir("edge_runtime_tiny_models")))


@pytest.fixture(scope="session")
def tiny_model(tiny_models) -> Path:
    """The tiny int8 model."""
    return tiny_models["int8"]


@pytest.fixture(scope="session")
def pipeline_model(tiny_model) -> Path:
    """The bundled model when it exists, else the tiny one (for tests of the whole pipeline)."""
    return REAL_MODEL if REAL_MODEL.is_file() and REAL_MODEL.with_suffix(".json").is_file() else tiny_model


def need(path: Path) -> Path:
    """Skip the test with a clear reason when a shared asset is missing."""
    if not path.exists():
        pytest.skip(f"{path} not found (shared assets; set FER_SHARED to their folder)")
    return path


def copy_model(model: Path, folder: Path, card_edit=None) -> Path:
    """Copy a model and its card into ``folder``, optionally editing the card dict in place."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / model.name
    target.write_bytes(model.read_bytes())
    card = json.loads(model.with_suffix(".json").read_text())
    if card_edit is not None:
        card_edit(card)
    target.with_suffix(".json").write_text(json.dumps(card))
    return target


def run_cli(*args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m edge_runtime ARGS`` from the project root."""
    return subprocess.run([sys.executable, "-m", "edge_runtime", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def read_jsonl(path: Path) -> list[dict]:
    """Every line of a JSONL file, parsed."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def open_fds() -> int:
    """How many file descriptors this process holds."""
    return len(os.listdir("/proc/self/fd"))


def make_clip(path: Path, frames: int = 12, size=(160, 90), fourcc: str = "MJPG") -> Path:
    """A short real video cut from the shared clip (or synthetic frames when it is absent)."""
    cap = cv2.VideoCapture(str(VIDEO))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 30.0, size)
    for i in range(frames):
        ok, image = cap.read()
        if not ok and i:  # past the end: start the clip again
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = cap.read()
        image = cv2.resize(image, size) if ok else np.full((size[1], size[0], 3), i % 256, np.uint8)
        writer.write(image)
    writer.release()
    cap.release()
    return path


class FakePicamera2:
    """A thin stand-in for ``picamera2.Picamera2``: serves ``frames`` (BGR or grayscale) as YUV420 lores buffers.

    Like the real one, ``capture_array("lores")`` returns a ``(h * 3 / 2, stride)`` array: ``h`` rows
    of Y, then U and V, each ``h / 2`` rows of ``stride / 2`` bytes, every row padded to the stride
    (``width + stride_pad``, e.g. 640 -> 768). The padding is 255, so a source that forgets the stride
    gets a visibly different frame; a grayscale frame gets neutral chroma (128). Width and height
    must be even, as libcamera makes them.
    """

    instances: list[FakePicamera2] = []

    def __init__(self, camera_num: int = 0, frames: list[np.ndarray] | None = None, stride_pad: int = 64,
                 fail_after: int | None = None) -> None:
        self.camera_num = camera_num
        self.frames = frames if frames is not None else FakePicamera2.default_frames
        self.stride_pad = stride_pad
        self.fail_after = fail_after
        self.started = self.closed = False
        self.captured = 0
        self.config: dict | None = None
        FakePicamera2.instances.append(self)

    default_frames: list[np.ndarray] = []

    def create_video_configuration(self, main=None, lores=None, controls=None, queue=True, **_):
        return {"main": dict(main or {}), "lores": dict(lores or {}), "controls": controls or {},
                "queue": queue}

    def configure(self, config: dict) -> None:
        height, width = self.frames[0].shape[:2]
        assert width % 2 == 0 and height % 2 == 0, "libcamera gives YUV420 streams an even size"
        config["lores"]["size"] = (width, height)
        config["lores"]["stride"] = width + self.stride_pad
        self.config = config

    def camera_configuration(self) -> dict:
        return self.config

    def start(self) -> None:
        self.started = True

    def capture_array(self, name: str = "main") -> np.ndarray:
        assert name == "lores" and self.started and not self.closed
        if self.fail_after is not None and self.captured >= self.fail_after:
            raise RuntimeError("camera unplugged")
        image = self.frames[self.captured % len(self.frames)]
        self.captured += 1
        height, width = image.shape[:2]
        stride = self.config["lores"]["stride"]
        if image.ndim == 2:
            y = image
            u = v = np.full((height // 2, width // 2), 128, np.uint8)
        else:  # OpenCV's planar I420: Y (h rows of w), then U and V (h/4 rows of w each = h/2 rows of w/2)
            i420 = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
            y = i420[:height]
            u = i420[height:height + height // 4].reshape(height // 2, width // 2)
            v = i420[height + height // 4:].reshape(height // 2, width // 2)
        buffer = np.full((height * 3 // 2, stride), 255, np.uint8)
        buffer[:height, :width] = y
        for plane, data in enumerate((u, v)):  # each chroma row is stride / 2 bytes
            start = height * stride + plane * (height // 2) * (stride // 2)
            rows = buffer.reshape(-1)[start:start + (height // 2) * (stride // 2)].reshape(height // 2, stride // 2)
            rows[:, :width // 2] = data
        return buffer

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True
