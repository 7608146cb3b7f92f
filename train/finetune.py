"""Fine-tuning a pretrained backbone: a frozen warm-up, then every layer at a lower learning rate.

For the first ``freeze_epochs`` epochs only the head learns (the backbone's BatchNorm layers keep
their ImageNet statistics); from then on every layer learns, at ``lr_factor`` times the schedule.
Both follow the epoch, so a run resumed with ``--resume`` continues in the right phase.
"""

from __future__ import annotations

import logging

import keras

from . import models
from .records import Backbone

log = logging.getLogger(__name__)
#: The published name of each pretrained backbone, by ``--arch`` (the card's ``backbone.architecture``).
BACKBONE_NAMES = {"lite0": "EfficientNet-Lite0", "vgg16": "VGG16", "resnet50": "ResNet50",
                  "efficientnetb0": "EfficientNetB0"}


def model_options(config: dict) -> dict:
    """``models.build_model``'s options for a run: its weights and resolution (none for other architectures)."""
    if config["arch"] not in models.TRANSFER_ARCHITECTURES:
        return {}
    return {"weights": config.get("weights", "none"), "resolution": config.get("resolution")}


def phased(schedule, config: dict, steps_per_epoch: int):
    """The run's schedule, lowered by ``finetune_lr_factor`` after the frozen warm-up (if any)."""
    freeze = config.get("freeze_epochs", 0)
    return PhasedSchedule(schedule, freeze * steps_per_epoch, config["finetune_lr_factor"]) if freeze else schedule


def callbacks(config: dict) -> list[keras.callbacks.Callback]:
    """``FreezeBackbone`` when the run has a frozen warm-up."""
    freeze = config.get("freeze_epochs", 0)
    return [FreezeBackbone(freeze, models.HEAD_LAYERS)] if freeze else []


def backbone(config: dict) -> Backbone | None:
    """The card's ``backbone``: architecture, internal resolution, weights and their source (none for
    other architectures)."""
    if config["arch"] not in models.TRANSFER_ARCHITECTURES:
        return None
    return Backbone(architecture=BACKBONE_NAMES[config["arch"]], resolution=config.get("resolution"),
                    weights=config.get("weights_source") or {"weights": config.get("weights", "none")},
                    freeze_epochs=config.get("freeze_epochs", 0),
                    finetune_lr_factor=config.get("finetune_lr_factor"))


@keras.saving.register_keras_serializable("fer_edge")
class PhasedSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``base`` until ``boundary_step``, then ``factor`` x ``base``."""

    def __init__(self, base: keras.optimizers.schedules.LearningRateSchedule, boundary_step: int, factor: float):
        self.base = base
        self.boundary_step = int(boundary_step)
        self.factor = float(factor)

    def __call__(self, step):
        lr = self.base(step)
        scale = keras.ops.where(keras.ops.cast(step, "int64") >= self.boundary_step, self.factor, 1.0)
        return lr * keras.ops.cast(scale, lr.dtype)

    def get_config(self) -> dict:
        return {"base": keras.saving.serialize_keras_object(self.base), "boundary_step": self.boundary_step,
                "factor": self.factor}

    @classmethod
    def from_config(cls, config: dict) -> PhasedSchedule:
        return cls(keras.saving.deserialize_keras_object(config["base"]), config["boundary_step"], config["factor"])


def backbone_layers(model: keras.Model, head: tuple[str, ...]) -> list[keras.layers.Layer]:
    """The layers with weights that are not in ``head``."""
    return [layer for layer in model.layers if layer.weights and layer.name not in head]


class FreezeBackbone(keras.callbacks.Callback):
    """Freezes the backbone for the epochs before ``freeze_epochs``, and unfreezes it after.

    The optimizer is built over every layer before the first epoch (so its state, saved by
    BackupAndRestore, has the same variables in both phases); a change of phase re-traces the
    training step over the layers that learn.
    """

    def __init__(self, freeze_epochs: int, head: tuple[str, ...]):
        super().__init__()
        self.freeze_epochs = freeze_epochs
        self.head = head
        self._frozen: bool | None = None

    def on_train_begin(self, logs=None):
        for layer in backbone_layers(self.model, self.head):
            layer.trainable = True
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self._frozen = False

    def on_epoch_begin(self, epoch, logs=None):
        frozen = epoch < self.freeze_epochs
        if frozen == self._frozen:
            return
        for layer in backbone_layers(self.model, self.head):
            layer.trainable = not frozen
        self.model.make_train_function(force=True)
        self._frozen = frozen
        log.info("epoch %d: backbone %s (%d trainable weights)", epoch + 1, "frozen" if frozen else "learning",
                 len(self.model.trainable_weights))
