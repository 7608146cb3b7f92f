"""A training run's settings: the typed form of its ``config.json`` (and of a card's ``training.config``).

Every read goes through :meth:`RunConfig.from_dict`, which validates each setting (:mod:`train.config_rules`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from .config_rules import first_problem, option
from .errors import UserError
from .splits import LEGACY_SPLIT_METHOD

if TYPE_CHECKING:
    from edge_runtime.model.card import ModelCard

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
    #: ``train+test``: the test faces (less any equal to a validation face) are fitted too; figures on validation
    train_on: str = "train"
    seed: int = 1
    precision: str = "float32"
    strategy: str = "default"
    cpu_devices: int = 0
    init_from: str | None = None
    teachers: list[str] = field(default_factory=list)
    teacher_weight: float = 0.0
    #: each teacher also scores the mirrored face; the soft target is the mean of both views
    teacher_flip: bool = False
    #: each teacher also scores the face's centre enlarged this many times (and its mirror, with teacher_flip)
    teacher_zoom: float | None = None
    #: ``online``: the teachers score every augmented batch; ``cached``: each training face once, before training
    teacher_targets: str = "online"
    #: the teachers' output shifted by one bias per class, chosen on validation under the guard
    teacher_bias: bool = False
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
    def from_dict(cls, raw: Mapping[str, Any], source: str | None = None, fix: str = "") -> RunConfig:
        """Read and validate a config dict; missing keys take their defaults, unknown ones go to ``extra``.

        ``source`` names where the dict was read (a file), and ``fix`` what to do about a bad setting;
        without them an error names the settings as options of ``python -m train``.
        """
        names = {f.name for f in fields(cls)} - set(_BOOKKEEPING)
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [name for name in required if name not in raw]
        if missing:
            where, remedy = source or "the run config", fix or f"give {option(missing[0])}"
            raise UserError(f"{where}: {missing[0]} is missing; {remedy}")
        known = {key: value for key, value in raw.items() if key in names}
        extra = {key: value for key, value in raw.items() if key not in names}
        config = cls(**known, extra=extra, key_order=tuple(raw))
        config.validate(source, fix)
        return config

    def validate(self, source: str | None = None, fix: str = "") -> None:
        """Raise a one-line :class:`UserError` naming the first setting of the wrong type, out of its range or
        choices, or inconsistent with another, and what it must be (see :func:`RunConfig.from_dict`)."""
        problem = first_problem(self)
        if problem is None:
            return
        name, requirement = problem
        names = {f.name: f.name if source else option(f.name) for f in fields(self)}
        text = f"{names[name]} {requirement.format(**names)} (got {getattr(self, name)!r})"
        raise UserError(f"{source}: {text}; {fix}" if source else text)

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


def card_config(card: ModelCard, role: str) -> RunConfig | None:
    """The validated settings of the run that trained ``card``'s model (``None`` when the card records none);
    ``role`` says how the model is used (``--init-from PATH``) in an error."""
    if not card.training_config:
        return None
    return RunConfig.from_dict(card.training_config, f"{role}: its card {card.path}, training.config",
                               "retrain that model, or correct its card")


def _default(f: Field) -> Any:
    """A dataclass field's default value."""
    return f.default_factory() if f.default_factory is not MISSING else f.default
