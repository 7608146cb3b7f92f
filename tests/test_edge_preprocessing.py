"""Frame colour handling, face framing and the model input tensor (driven by the card)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_runtime.model.card import InputSpec, Quantization
from edge_runtime.model.preprocessing import as_uint8, crop_box, crop_face, input_tensor, to_gray, to_rgb

RNG = np.random.default_rng(0)
BGR = RNG.integers(0, 256, (30, 40, 3), dtype=np.uint8)


def test_to_gray_accepts_gray_bgr_bgra_and_single_channel():
    gray = cv2.cvtColor(BGR, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(BGR, cv2.COLOR_BGR2BGRA)
    assert np.array_equal(to_gray(BGR), gray)
    assert np.array_equal(to_gray(bgra), gray)
    assert np.array_equal(to_gray(gray), gray)
    assert np.array_equal(to_gray(gray[:, :, None]), gray)
    assert np.array_equal(to_rgb(BGR), BGR[:, :, ::-1])
    assert np.array_equal(to_rgb(gray)[:, :, 1], gray)


@pytest.mark.parametrize("shape", [(10, 10, 2), (10, 10, 5), (10,), (0, 10), (2, 3, 4, 3)])
def test_bad_frame_shapes_are_refused_with_a_clear_message(shape):
    with pytest.raises(ValueError, match="frame"):
        to_gray(np.zeros(shape, np.uint8))


def test_as_uint8_converts_16_bit_and_float_frames():
    assert as_uint8(np.array([[65535, 256]], np.uint16)).tolist() == [[255, 1]]
    assert as_uint8(np.array([[1.0, 0.5]], np.float32)).tolist() == [[255, 127]]
    assert as_uint8(np.array([[300.0, 20.0]], np.float64)).tolist() == [[255, 20]]


def test_crop_box_is_a_square_centred_on_the_face_box():
    assert crop_box((10, 20, 40, 40), 0.0) == (10, 20, 40, 40)
    assert crop_box((10, 20, 40, 40), 0.25) == (0, 10, 60, 60)
    x, y, w, h = crop_box((100, 50, 30, 60), 0.1)  # not square: the longer side wins
    assert w == h == 72 and (2 * x + w, 2 * y + h) == (2 * 100 + 30, 2 * 50 + 60)


def test_crop_face_replicates_the_border_outside_the_frame():
    image = np.arange(100, dtype=np.uint8).reshape(10, 10)
    crop = crop_face(image, (0, 0, 4, 4), 0.5)  # region (-2, -2, 8, 8)
    assert crop.shape == (8, 8)
    assert np.array_equal(crop[2:, 2:], image[:6, :6])
    assert np.array_equal(crop[0], crop[2]) and crop[0, 0] == image[0, 0]
    far = crop_face(image, (50, 50, 4, 4), 0.0)  # entirely outside: nearest pixel, no crash
    assert far.size and far.max() == image[9, 9]


def test_input_tensor_follows_the_cards_quantization_and_value_range():
    face = np.full((96, 96), 200, np.uint8)
    int8 = InputSpec(height=48, width=48, channels=1, dtype="int8", quantization=Quantization(1.0, -128))
    tensor = input_tensor(face, int8)
    assert tensor.shape == (1, 48, 48, 1) and tensor.dtype == np.int8 and int(tensor.max()) == 72
    other = InputSpec(height=32, width=40, channels=1, dtype="int8", quantization=Quantization(2.0, 10))
    tensor = input_tensor(face, other)
    assert tensor.shape == (1, 32, 40, 1) and int(tensor[0, 0, 0, 0]) == 110
    floats = InputSpec(height=64, width=64, channels=1, dtype="float32", value_range=(-1, 1))
    tensor = input_tensor(np.full((5, 5, 3), 255, np.uint8), floats)
    assert tensor.dtype == np.float32 and np.allclose(tensor, 1.0)
    with pytest.raises(ValueError, match="quantization"):
        input_tensor(face, InputSpec(height=48, width=48, channels=1, dtype="int8"))


def test_an_rgb_card_gets_rgb_pixels_in_rgb_order():
    spec = InputSpec(height=4, width=4, channels=3, color="rgb", dtype="uint8", quantization=Quantization(1.0, 0))
    blue_bgr = np.zeros((8, 8, 3), np.uint8)
    blue_bgr[..., 0] = 200                                   # OpenCV frames are BGR: blue is channel 0
    tensor = input_tensor(blue_bgr, spec)
    assert tensor.shape == (1, 4, 4, 3) and tensor.dtype == np.uint8
    assert (tensor[..., 0] == 0).all() and (tensor[..., 1] == 0).all() and (tensor[..., 2] == 200).all()
    grey = input_tensor(np.full((8, 8), 77, np.uint8), spec)  # a grey crop: the same value in R, G and B
    assert (grey == 77).all()
