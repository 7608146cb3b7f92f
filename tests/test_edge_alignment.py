"""Face alignment: the eye-line angle, the rotated crop, the recognizer option and the --align flag."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from benchmarks.alignment import rotate
from edge_runtime import FaceRecognizer
from edge_runtime.detection.alignment import aligned_crop, eye_angle, rotated_crop
from edge_runtime.detection.detectors import detect_scaled, make_detector
from edge_runtime.model.preprocessing import crop_face
from edge_runtime.recognition.recognizer import RecognizeTrace
from edge_runtime.service.cli import build_parser, config_from_args
from edge_runtime.service.daemon import Daemon
from tests.edge_support import PHOTOS, REAL_MODEL, need


def rotate_frame(frame: np.ndarray, angle: float) -> np.ndarray:
    """``frame`` rotated ``angle`` degrees counter-clockwise on screen around its centre (same size)."""
    return rotate(frame, angle)[0]


@pytest.fixture(scope="module")
def blazeface():
    return make_detector("blazeface", num_threads=1)


@pytest.fixture(scope="module")
def obama() -> np.ndarray:
    return cv2.imread(str(need(PHOTOS / "obama.jpg")))


def test_eye_angle_follows_image_coordinates():
    assert eye_angle([(10.0, 10.0), (20.0, 10.0)]) == 0.0
    assert eye_angle([(10.0, 10.0), (20.0, 20.0)]) == pytest.approx(45.0)  # the eye on the right is lower
    assert eye_angle([(10.0, 10.0), (20.0, 0.0)]) == pytest.approx(-45.0)
    assert eye_angle([]) is None and eye_angle([(1.0, 1.0), (1.0, 1.0)]) is None


def test_zero_angle_and_no_keypoints_give_the_plain_crop():
    image = np.random.default_rng(0).integers(0, 256, (120, 160), dtype=np.uint8)
    box = (30, 20, 50, 60)
    plain = crop_face(image, box, 0.1)
    assert np.array_equal(aligned_crop(image, box, 0.1, ()), plain)
    assert np.array_equal(aligned_crop(image, box, 0.1, [(50.0, 40.0), (70.0, 40.0)]), plain)
    warped = rotated_crop(image, box, 0.1, 1e-9)  # through warpAffine: the same pixels
    assert warped.shape == plain.shape and np.abs(warped.astype(int) - plain).max() <= 1


@pytest.mark.parametrize("angle", [20.0, -20.0])
def test_alignment_levels_a_rotated_photo(blazeface, obama, angle):
    upright = eye_angle(detect_scaled(blazeface, obama)[0].keypoints)
    rotated = rotate_frame(obama, angle)
    face = detect_scaled(blazeface, rotated)[0]
    tilt = eye_angle(face.keypoints)
    # a counter-clockwise rotation on screen raises the eye on the image's right: the angle drops
    assert abs(tilt - (upright - angle)) < 5.0, (upright, tilt)
    box = tuple(int(round(v)) for v in face.box)
    crop = aligned_crop(rotated, box, 0.5, face.keypoints)  # a wide crop, so the face is found again
    again = detect_scaled(blazeface, crop)
    assert again, "no face in the aligned crop"
    assert abs(tilt) > 15.0 and abs(eye_angle(again[0].keypoints)) < 8.0  # about 20 degrees, then level
    unaligned = detect_scaled(blazeface, crop_face(rotated, box, 0.5))[0]
    assert abs(eye_angle(unaligned.keypoints)) > 15.0  # the plain crop keeps the tilt


def test_recognizer_aligns_blazeface_crops_only(obama):
    rotated = rotate_frame(obama, 20.0)
    crops = {}
    for detector in ("blazeface", "haar"):
        for align in (False, True):
            trace = RecognizeTrace()
            recognizer = FaceRecognizer(REAL_MODEL, detector=detector, num_threads=1, align=align)
            faces = recognizer.recognize(rotated, trace=trace)
            assert faces and recognizer.align is align
            crops[detector, align] = trace.crops[0]
            if align and detector == "blazeface":
                assert np.array_equal(recognizer.crop(rotated, faces[0].box, faces[0].keypoints), trace.crops[0])
    assert np.array_equal(crops["haar", True], crops["haar", False])  # no keypoints: unchanged
    assert crops["blazeface", True].shape == crops["blazeface", False].shape
    assert not np.array_equal(crops["blazeface", True], crops["blazeface", False])


def test_recognizer_refuses_a_non_boolean_align():
    with pytest.raises(ValueError, match="align must be True or False"):
        FaceRecognizer(REAL_MODEL, num_threads=1, align="yes")


@pytest.mark.parametrize(("flag", "expected"), [("--align", True), ("--no-align", False)])
def test_align_flag_reaches_the_recognizer(flag, expected, tmp_path):
    args = build_parser().parse_args(["--source", str(need(PHOTOS / "obama.jpg")), "--model", str(REAL_MODEL),
                                      "--output", str(tmp_path / "out.jsonl"), "--threads", "1", flag])
    daemon = Daemon(config_from_args(args))
    daemon.prepare()
    try:
        assert daemon.config.recognizer.align is expected and daemon.recognizer.align is expected
    finally:
        daemon._release()
