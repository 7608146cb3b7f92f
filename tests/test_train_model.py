"""The model I/O contract: raw 0..255 grayscale in, one probability per label out."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from train.models import ARCHITECTURES, build_model, count_macs  # noqa: E402


@pytest.mark.parametrize("arch", ["edge-small", "edge", "edge-sep"])
def test_io_contract(arch):
    model = build_model(arch, 4)
    assert tuple(model.input_shape) == (None, 48, 48, 1)
    assert tuple(model.output_shape) == (None, 4)
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1)).astype(np.float32)
    probs = np.asarray(model(x, training=False))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # Normalization lives in the graph: the first layer after the input maps 0..255 to [-1, 1].
    normalize = model.get_layer("normalize")
    out = np.asarray(normalize(np.array([[0.0, 127.5, 255.0]])))
    np.testing.assert_allclose(out, [[-1.0, 0.0, 1.0]], atol=1e-6)


def test_same_answer_alone_and_in_a_batch():
    model = build_model("edge-small", 4)
    x = np.random.default_rng(1).integers(0, 256, (5, 48, 48, 1)).astype(np.float32)
    batch = np.asarray(model(x, training=False))
    alone = np.concatenate([np.asarray(model(x[i:i + 1], training=False)) for i in range(5)])
    np.testing.assert_allclose(batch, alone, atol=1e-5)


def test_macs_and_sizes():
    edge, baseline = build_model("edge", 4), build_model("baseline", 4)
    # s1: 48*48*32*(1*9 + 32*9); s2..s4 likewise; dense 256*4
    expected = sum(hw * hw * c * (cin * 9 + c * 9) for hw, cin, c in
                   ((48, 1, 32), (24, 32, 64), (12, 64, 128), (6, 128, 256))) + 256 * 4
    assert count_macs(edge) == expected
    assert 5_000_000 < baseline.count_params() < 7_000_000     # the ~6M "custom CNN" family
    assert count_macs(baseline) > 3 * count_macs(edge)
    from train.cli import ARCHITECTURE_NAMES

    assert set(ARCHITECTURES) == set(ARCHITECTURE_NAMES)          # the CLI checks names before importing Keras
    fast = build_model("edge-fast", 4)                             # half the width: about a quarter of the MACs
    assert 0.2 < count_macs(fast) / count_macs(edge) < 0.3
    with pytest.raises(ValueError, match="unknown --arch"):
        build_model("resnet", 4)


def test_edge_sep_is_depthwise_separable():
    """Every 3x3 filter after the stem is depthwise; its MACs are a third of edge's, counted layer by layer."""
    sep, edge = build_model("edge-sep", 7), build_model("edge", 7)
    depthwise = [layer for layer in sep.layers if isinstance(layer, keras.layers.DepthwiseConv2D)]
    full = [layer for layer in sep.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [layer.name for layer in full if layer.kernel_size != (1, 1)] == ["stem_conv"]
    assert len(depthwise) == 8 and all(layer.kernel_size == (3, 3) for layer in depthwise)
    w = 48
    blocks = ((48, w, w), (48, w, w), (24, w, 2 * w), (24, 2 * w, 2 * w), (12, 2 * w, 4 * w), (12, 4 * w, 4 * w),
              (6, 4 * w, 8 * w), (6, 8 * w, 8 * w))                   # (side, channels in, channels out)
    separable = sum(hw * hw * cin * (9 + cout) for hw, cin, cout in blocks)
    assert count_macs(sep) == 48 * 48 * 9 * w + separable + 8 * w * 7
    assert 0.3 < count_macs(sep) / count_macs(edge) < 0.4
    assert sep.count_params() < edge.count_params() / 3


def test_warm_start_from_another_architecture_is_one_error_naming_its_arch(tmp_path):
    """--init-from an edge-sep model into the default edge model shares no layer: an error naming the fix,
    not a run that silently starts from scratch."""
    from edge_runtime.model.card import write_card
    from train.errors import UserError
    from train.labels import FER2013_CLASSES
    from train.model_card import keras_card
    from train.records import TrainingRecord
    from train.training import init_weights_from

    source = build_model("edge-sep", 7)
    path = tmp_path / "fer7_sep.keras"
    source.save(path)
    config = {"data": "fer2013", "classes": list(FER2013_CLASSES), "name": "fer7_sep", "arch": "edge-sep"}
    write_card(keras_card(tmp_path / "fer7_sep.json", FER2013_CLASSES, source, TrainingRecord(config=config)))
    with pytest.raises(UserError, match=r"none of its layers fit .*trained with --arch edge-sep: give --arch edge-sep"):
        init_weights_from(build_model("edge", 4), str(path), ("happy", "neutral", "sad", "surprise"))


def test_warm_start_slices_the_output_layer_by_label_name_and_records_its_source(tmp_path):
    """--init-from: a 7-class model starts a 2-class one; every layer is copied and the output
    columns are picked by name (happy is column 3 of 7, surprise column 6), not by position."""
    from edge_runtime.model.card import file_sha256, write_card
    from train.labels import FER2013_CLASSES
    from train.model_card import keras_card, source_model_record
    from train.records import TrainingRecord
    from train.training import init_weights_from

    source = build_model("edge-small", 7)
    source.set_weights([np.random.default_rng(i).normal(size=w.shape).astype(np.float32)
                        for i, w in enumerate(source.get_weights())])
    path = tmp_path / "fer7.keras"
    source.save(path)
    config = {"data": "fer2013", "classes": list(FER2013_CLASSES), "name": "fer7", "arch": "edge-small",
              "command": "python -m train ..."}
    write_card(keras_card(tmp_path / "fer7.json", FER2013_CLASSES, source, TrainingRecord(config=config, epochs_run=3)))

    target = build_model("edge-small", 2)
    copied = init_weights_from(target, str(path), ("happy", "surprise"))
    assert copied == len([layer for layer in source.layers if layer.get_weights()])
    kernel, bias = target.get_layer("probabilities").get_weights()
    src_kernel, src_bias = source.get_layer("probabilities").get_weights()
    cols = [FER2013_CLASSES.index("happy"), FER2013_CLASSES.index("surprise")]
    np.testing.assert_array_equal(kernel, src_kernel[:, cols])
    np.testing.assert_array_equal(bias, src_bias[cols])
    first_conv = next(layer for layer in source.layers if "conv" in layer.name)
    np.testing.assert_array_equal(target.get_layer(first_conv.name).get_weights()[0],
                                  first_conv.get_weights()[0])

    record = source_model_record(path)
    assert record.sha256 == file_sha256(path) and record.name == "fer7"
    assert record.command == "python -m train ..." and record.epochs_run == 3
    assert record.labels == FER2013_CLASSES
