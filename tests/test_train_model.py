"""The model I/O contract: raw 0..255 grayscale in, one probability per label out."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from train.models import ARCHITECTURES, build_model, count_macs  # noqa: E402


@pytest.mark.parametrize("arch", ["edge-small", "edge"])
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
    assert set(ARCHITECTURES) >= {"edge", "baseline"}
    with pytest.raises(ValueError, match="unknown --arch"):
        build_model("resnet", 4)
