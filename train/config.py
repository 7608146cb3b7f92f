"""A training run's settings: the typed form of its ``config.json`` (and of a card's ``training.config``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from .splits import LEGACY_SPLIT_METHOD

# The keys ``python -m train`` always writes, in config.json's order; the others appear when set.
BASE_KEYS = ("data", "classes", "arch", "name", "epochs", "batch_size", "lr", "weight_decay", "label_smoothing",
             "mixup", "class_weight", "drop", "val_fraction", "split_method", "seed", "precision", "strategy",
             "cpu_devices", "init_from", "teachers", "teacher_weight", "labels", "votes", "label_blend", "select",
             "prior_taus", "guard", "guard_margin", "command")
_BOOKKEEPING = ("extra", "key_order")


@dataclass
class RunConfig:
    """Every setting of a training run; the defaults are what older configs without the key implied."""

    data: str
    classes: list[str]
    arch: str = "edge"
    name: str = ""
    epochs: int = 40
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    mixup: float = 0.0
    class_weight: str = "sqrt"
    drop: list[str] = field(default_factory=list)
    val_fraction: float = 0.1
    split_method: str = LEGACY_SPLIT_METHOD
    seed: int = 1
    precision: str = "float32"
    strategy: str = "default"
    cpu_devices: int = 0
    init_from: str | None = None
    teachers: list[str] = field(default_factory=list)
    teacher_weight: float = 0.0
    #: each teacher also scores the mirrored face; the soft target is the mean of both views
    teacher_flip: bool = False
    #: ``online``: the teachers score every augmented batch; ``cached``: each training face once, before training
    teacher_targets: str = "online"
    labels: str = "fer2013"
    votes: str | None = None
    label_blend: float = 1.0
    select: str = "fer2013"
    prior_taus: list[float] = field(default_factory=lambda: [0.0])
    guard: str | None = None
    guard_margin: float = 2.0
    #: after the prior adjustment, one bias per class chosen on validation under the guard
    class_bias: bool = False
    command: str = ""
    # --weights, --resolution, --freeze-epochs of a transfer --arch (train.pretrained.transfer_config)
    weights: str = "none"
    resolution: int | None = None
    freeze_epochs: int = 0
    finetune_lr_factor: float | None = None
    weights_source: dict[str, Any] | None = None
    # the split carved over another class set (FER+ runs) or inherited from an --init-from source
    split_classes: list[str] | None = None
    split_seed: int | None = None
    # written by --resume
    resumed_with: str | None = None
    epochs_changed: list[dict[str, Any]] = field(default_factory=list)
    #: keys this version does not know, kept as they were
    extra: dict[str, Any] = field(default_factory=dict)
    #: the keys of the dict this config was read from, in its order (to_dict writes them back the same)
    key_order: tuple[str, ...] = field(default=BASE_KEYS, repr=False, compare=False)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RunConfig:
        """Read a config dict; missing keys take their defaults, unknown ones go to ``extra``."""
        names = {f.name for f in fields(cls)} - set(_BOOKKEEPING)
        known = {key: value for key, value in raw.items() if key in names}
        extra = {key: value for key, value in raw.items() if key not in names}
        return cls(**known, extra=extra, key_order=tuple(raw))

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON data: the keys it was read with, in their order, then the settings added since."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _BOOKKEEPING}
        out = {key: values[key] if key in values else self.extra[key] for key in self.key_order
               if key in values or key in self.extra}
        for f in fields(self):
            if f.name not in out and f.name not in _BOOKKEEPING and values[f.name] != _default(f):
                out[f.name] = values[f.name]
        out.update({key: value for key, value in self.extra.items() if key not in out})
        return out

    @property
    def class_names(self) -> tuple[str, ...]:
        """The run's classes, in output order."""
        return tuple(self.classes)


def _default(f: Field) -> Any:
    """A dataclass field's default value."""
    return f.default_factory() if f.default_factory is not MISSING else f.default
