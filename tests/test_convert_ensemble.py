"""The fused ensemble graph (``convert.ensemble``): members on the face and its mirror, averaged inside one
int8 file; each shipped ``*_accurate`` preset checked against its members on real faces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.model_support import convert_to, pinned_representative

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
PRESETS = sorted(MODELS.glob("*_accurate_int8.tflite"))


def run_int8(path: Path, faces: np.ndarray) -> np.ndarray:
    """Probabilities of an int8 .tflite for raw 48x48 uint8 faces, one face per invoke."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(path), num_threads=2)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    (in_scale, in_zero), (out_scale, out_zero) = inp["quantization"], out["quantization"]
    rows = []
    for face in faces:
        q = np.round(face.astype(np.float32) / in_scale + in_zero).clip(-128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], q[None, :, :, None])
        interpreter.invoke()
        rows.append((interpreter.get_tensor(out["index"])[0].astype(np.float32) - out_zero) * out_scale)
    return np.stack(rows)


def half_face_model(side: str):
    """A 3-class model that looks at one half of the face only, so the mirror image changes its answer."""
    import keras
    from keras import layers

    inputs = keras.Input((48, 48, 1))
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = layers.Cropping2D(((0, 0), (0, 24) if side == "left" else (24, 0)))(x)
    x = layers.GlobalAveragePooling2D()(x)
    dense = layers.Dense(3, activation="softmax", name="probabilities")
    model = keras.Model(inputs, dense(x))
    dense.set_weights([np.array([[4.0, -4.0, 1.0]], np.float32), np.zeros(3, np.float32)])
    return model


def test_weight_grid_covers_the_simplex():
    from convert.ensemble import weight_grid

    grid = weight_grid(3, 0.05)
    assert len(grid) == 231 and len(set(grid)) == 231                       # C(22, 2)
    assert all(abs(sum(w) - 1) < 1e-9 and min(w) >= 0 for w in grid)
    assert (1.0, 0.0, 0.0) in grid and (0.35, 0.4, 0.25) in grid


def test_the_zoomed_view_is_the_enlarged_centre():
    """``--zoom 1.09`` on a 48 px face: its centre 44 px, enlarged bilinearly as OpenCV does it."""
    import cv2

    from convert.ensemble_graph import view_images

    faces = np.random.default_rng(1).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    face, mirror, centre, centre_mirror = view_images(faces, 1.09)
    np.testing.assert_array_equal(face, faces)
    np.testing.assert_array_equal(mirror, faces[:, :, ::-1])
    opencv = np.stack([cv2.resize(f[2:46, 2:46], (48, 48), interpolation=cv2.INTER_LINEAR) for f in faces])
    assert np.abs(centre - opencv).max() <= 1.0                     # OpenCV rounds to uint8
    np.testing.assert_allclose(centre_mirror, centre[:, :, ::-1])
    assert len(view_images(faces, None)) == 2


@pytest.mark.parametrize("zoom", ["1", "0.9", "3"])  # nan: the parser refuses every non-finite number
def test_a_zoom_outside_1_to_2_is_one_error_line(zoom, tmp_path, capsys):
    from convert.ensemble import main

    assert main(["--member", "models/fer4.keras", "--name", "x", "--zoom", zoom, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m convert.ensemble: error: --zoom"), err
    assert "above 1 and at most 2" in err[0]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("zoom", [None, 1.09])
def test_fused_graph_is_the_weighted_mean_of_every_view_in_int8(tmp_path, zoom):
    """A fused graph of two tiny members, converted to int8, outputs the weighted (and class-biased) mean of
    the members' outputs on every view of the faces (mirror; with a zoom, the enlarged centre and its mirror),
    which the face alone does not give."""
    from convert.ensemble_graph import blend, build_fused, view_images

    members = [half_face_model("left"), half_face_model("right")]
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (40, 48, 48), dtype=np.uint8)
    faces[:, :, :16] //= 4                                         # left side dark: mirroring changes the face
    faces[:, 12:36, 12:36] = 255                                   # a bright centre: enlarging it changes the face
    x = faces.astype(np.float32)[..., None]
    views = [tuple(m.predict(v[..., None], verbose=0) for v in view_images(faces, zoom)) for m in members]
    weights, bias = (0.7, 0.3), (0.0, 0.5, -0.5)
    expected = blend(views, weights, bias)
    one_view = blend([(v[0],) for v in views], weights, bias)
    assert np.abs(expected - one_view).mean() > 0.05               # the other views matter on these faces
    if zoom is not None:
        face_and_mirror = blend([v[:2] for v in views], weights, bias)
        assert np.abs(expected - face_and_mirror).mean() > 0.005   # and the enlarged centre too

    fused = build_fused(members, weights, bias, "tiny_accurate", zoom)
    np.testing.assert_allclose(fused.predict(x, verbose=0), expected, atol=1e-5)
    int8 = convert_to(fused, tmp_path, ("int8",), pinned_representative(lambda: iter(faces[:30])))["int8"]
    (tmp_path / "fused.tflite").write_bytes(int8)
    got = run_int8(tmp_path / "fused.tflite", faces)
    assert np.abs(got - expected).max() < 0.06 and np.abs(got - expected).mean() < 0.015
    assert np.abs(got - expected).mean() < np.abs(got - one_view).mean() / 3
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=0.03)


def test_members_on_the_same_split_match_however_their_cards_record_its_seed():
    """fer7 records the split seed it inherited (1); fer7_sep, trained from scratch with --seed 1, records none.
    Both validate on the same faces; a member on another seed does not."""
    from dataclasses import replace

    from convert.ensemble import split_of
    from edge_runtime.model.card import load_card

    fer7, sep = load_card(MODELS / "fer7.json"), load_card(MODELS / "fer7_sep.json")
    assert fer7.training_config["split_seed"] == 1 and "split_seed" not in sep.training_config
    assert split_of(fer7) == split_of(sep)
    other = replace(sep, training={**sep.training, "config": {**sep.training_config, "seed": 2}})
    assert split_of(other) != split_of(fer7)


def test_fer4_accurate_ships():
    """Scripts load it by this name (``--model fer4_accurate``)."""
    assert MODELS / "fer4_accurate_int8.tflite" in PRESETS


@pytest.fixture(scope="module", params=PRESETS, ids=lambda p: p.name.removesuffix("_int8.tflite"))
def accurate(request) -> tuple[Path, dict]:
    """A shipped preset and its card."""
    return request.param, json.loads(request.param.with_suffix(".json").read_text())


def test_the_card_lists_every_member_by_sha256_and_weight(accurate):
    from edge_runtime.model.card import file_sha256

    path, accurate_card = accurate
    ensemble = accurate_card["training"]["ensemble"]
    members = ensemble["members"]
    assert len(members) >= 2 and all((MODELS / f"{m['name']}_int8.tflite").is_file() for m in members)
    assert sum(m["weight"] for m in members) == pytest.approx(1.0)
    for member in members:
        assert file_sha256(ROOT / member["file"]) == member["sha256"], member["file"]
    assert ensemble["chosen_on"] == "validation" and ensemble["command"].startswith("python -m convert.ensemble")
    assert set(ensemble["class_bias"]) == set(accurate_card["labels"])


def test_each_preset_is_its_members_mean_on_real_faces(accurate, shared_dir):
    """A shipped fused file against its members' own int8 files, each run on the faces and on the
    mirrored faces and mixed by the card's weights and bias: equal within quantization error."""
    from convert.ensemble_graph import blend, view_images
    from edge_runtime.labelled_faces.loading import load_split

    path, accurate_card = accurate
    faces = load_split(shared_dir / "data" / "fer2013", "test", tuple(accurate_card["labels"])).images[::12]
    ensemble = accurate_card["training"]["ensemble"]
    views = [tuple(run_int8(MODELS / f"{m['name']}_int8.tflite", v) for v in view_images(faces, ensemble.get("zoom")))
             for m in ensemble["members"]]
    weights = [m["weight"] for m in ensemble["members"]]
    bias = [ensemble["class_bias"][c] for c in accurate_card["labels"]]
    expected, one_view = blend(views, weights, bias), blend([v[:1] for v in views], weights, bias)
    got = run_int8(path, faces)
    error = np.abs(got - expected)
    assert error.mean() < 0.01 and np.quantile(error, 0.99) < 0.05
    assert (got.argmax(1) == expected.argmax(1)).mean() > 0.98
    assert error.mean() < np.abs(got - one_view).mean() / 3           # the other views are really used
    mirrored = run_int8(path, faces[:, :, ::-1])
    assert np.abs(mirrored - got).mean() < 0.005                      # both views, equal weight: symmetric
