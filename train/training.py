"""One training run: data, model, fit with per-epoch checkpoints, final float32 model and report."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from edge_runtime.atomic_io import atomic_write_json, atomic_write_with
from edge_runtime.labelled_faces import scoring
from edge_runtime.labelled_faces.loading import load_split
from edge_runtime.model.card import file_sha256, write_card

from . import (
    checkpoints,
    data_checks,
    datasets,
    distillation,
    finetune,
    label_sources,
    model_card,
    models,
    multiworker,
    reports,
    run_store,
    selection,
    splits,
    workers,
)
from .config import RunConfig
from .errors import UserError
from .records import GuardRecord, PriorAdjustment, TrainingRecord

log = logging.getLogger(__name__)


class EpochLogger(keras.callbacks.Callback):
    """One log line per epoch: its number, wall time, learning rate and metrics. With ``record_seconds``
    the wall time also goes into the epoch's logs as ``epoch_seconds`` (so into history.csv, and a
    resumed run's ``train_seconds`` counts every epoch)."""

    def __init__(self, record_seconds: bool = True) -> None:
        super().__init__()
        self.record_seconds = record_seconds

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        seconds = time.perf_counter() - self._start
        lr = self.model.optimizer.learning_rate
        lr = float(lr.numpy() if hasattr(lr, "numpy") else lr)
        metrics = " ".join(f"{k}={v:.4f}" for k, v in logs.items() if k != "learning_rate")
        log.info("epoch %d/%d %.0fs lr=%.2e %s", epoch + 1, self.params["epochs"], seconds, lr, metrics)
        if self.record_seconds:
            logs["epoch_seconds"] = round(seconds, 1)


def make_strategy(name: str, cpu_devices: int = 0) -> tf.distribute.Strategy:
    """``default`` (one device), ``mirrored`` (all local GPUs, or all logical CPUs) or ``multiworker`` (TF_CONFIG)."""
    if cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        return multiworker.KerasMultiWorkerStrategy()
    raise UserError(f"unknown --strategy {name!r}; use default, mirrored or multiworker")


def init_weights_from(model: keras.Model, source_path: str, labels: tuple[str, ...]) -> int:
    """Copy weights layer by layer (by name) from a saved model; the output layer is sliced to ``labels``.

    The source's card must list labels that include ours: a 7-class model warm-starts a
    4-class one with the 4 matching output columns. Returns the number of layers copied; a source whose
    layers all differ (another ``--arch``) is a :class:`UserError`, not a silent start from scratch.
    """
    from edge_runtime.model.card import ModelCardError, load_card

    try:
        source = keras.models.load_model(source_path, compile=False)
        card = load_card(source_path)
    except (OSError, ValueError, ModelCardError) as exc:
        raise UserError(f"--init-from {source_path}: {exc}") from exc
    copied = 0
    for layer in model.layers:
        try:
            src = source.get_layer(layer.name)
        except ValueError:
            continue
        weights = src.get_weights()
        if not weights:                        # input, pooling, dropout...: nothing to copy
            continue
        if layer.name == "probabilities":
            missing = [name for name in labels if name not in card.labels]
            if missing:
                raise UserError(f"--init-from model has no output for {', '.join(missing)}")
            cols = [card.labels.index(name) for name in labels]
            weights = [w[..., cols] for w in weights]
        if [w.shape for w in weights] == [w.shape for w in layer.get_weights()]:
            layer.set_weights(weights)
            copied += 1
    if not copied:
        arch = card.architecture
        fix = f"it was trained with --arch {arch}: give --arch {arch}" if arch else "give its --arch"
        raise UserError(f"--init-from {source_path}: none of its layers fit the model this run builds; {fix}")
    return copied


@dataclass
class RunData:
    """A run's data: what it fits, the faces it validates and tests on, and the data report. ``test`` is
    ``None`` for a run that fits the test faces (``--train-on train+test``): it reports on validation."""

    train: label_sources.TrainingSet
    val: scoring.ScoredFaces
    test: scoring.ScoredFaces | None
    report: dict

    @property
    def held_out(self) -> tuple[str, scoring.ScoredFaces]:
        """The split the run's figures are reported on, and its faces."""
        return ("test", self.test) if self.test is not None else ("validation", self.val)


@dataclass
class FitInputs:
    """What fitting needs besides the model: the training batches, the class prior, the prior
    adjustments to choose from on validation, and the ``--guard`` recall floor."""

    batches: tf.data.Dataset
    prior: np.ndarray
    taus: tuple[float, ...]
    guard: selection.RecallGuard | None
    teacher_bias: np.ndarray | None = None
    randomness: datasets.EpochRandomness | None = None


def run(config: RunConfig, run_dir: Path, resume: bool) -> dict:
    """Train per ``config`` into ``run_dir``; return the report on test (validation when it fitted test).
    Resumable per epoch."""
    strategy, config, run_dir = setup(config, run_dir)

    data = load_data(config)
    atomic_write_json(run_dir / "data_report.json", data.report)
    inputs = fit_inputs(config, data, run_dir, resume)

    keras.mixed_precision.set_global_policy(config.precision)
    with strategy.scope():
        model = compile_model(config, int(np.ceil(len(data.train) / config.batch_size)), run_dir, resume)
    log.info("model %s: %d parameters, %.1fM MACs per face; %d train / %d val / %s test images",
             config.arch, model.count_params(), models.count_macs(model) / 1e6, len(data.train),
             len(data.val), "no" if data.test is None else len(data.test))

    train_seconds = fit(model, config, run_dir, data.val, inputs, resume)
    if not workers.is_chief(config.strategy):
        return {}

    final, history, record = best_model(model, config, run_dir, inputs, train_seconds, data.val)
    return publish(final, config, run_dir, data, history, record)


def setup(config: RunConfig, run_dir: Path) -> tuple[tf.distribute.Strategy, RunConfig, Path]:
    """The distribution strategy, the config every worker shares, the seed, and where this worker writes."""
    strategy = make_strategy(config.strategy, config.cpu_devices)
    config = RunConfig.from_dict(multiworker.share_config(strategy, config.to_dict()))
    keras.utils.set_random_seed(config.seed)
    return strategy, config, workers.output_dir(run_dir, config.strategy)


def load_data(config: RunConfig) -> RunData:
    """Load train and test, validate, drop what was asked, carve the validation split, make the targets.

    With ``--labels ferplus`` every FER2013 folder is loaded (a fear-folder face may be FER+ neutral)
    and the targets come from the votes; either way validation and test are scored against both label
    sets where votes are available.
    """
    votes = scoring.resolve_votes(config.data, config.votes, required=config.labels == "ferplus")
    classes = config.class_names
    raw = config.to_dict()
    split_classes = splits.split_settings(raw)["classes"]    # the run's classes, or its source's
    train_all = load_split(config.data, "train", split_classes)
    test_all = load_split(config.data, "test", split_classes)
    carve_config = {**raw, "classes": list(split_classes)} if config.labels == "ferplus" else raw
    train, val, report = splits.carve_run_split(carve_config, train_all, test_all)
    test_faces = None
    if scoring.trained_on_test(raw):
        train, report["split"]["from_test"] = splits.with_test_faces(train, val, test_all)
    else:   # scored like `python -m train.evaluate`: every folder when votes are given, whatever the split's classes
        test_faces = scoring.load_scored_split(config.data, "test", classes, votes)
    train_set, kept = label_sources.training_set(train, classes, votes, config.labels, config.label_blend)
    report["split"]["train_targets"] = kept
    val_faces = scoring.scored_faces(val, classes, votes)
    report["split"].update(validation=len(val_faces), test=None if test_faces is None else len(test_faces))
    if votes is not None:
        report["ferplus"] = label_sources.coverage(train_all, test_all, votes)
    for line in data_checks.summary_lines(report, report["applied"]):
        log.info("data: %s", line)
    return RunData(train_set, val_faces, test_faces, report)


def fit_inputs(config: RunConfig, data: RunData, run_dir: Path, resume: bool) -> FitInputs:
    """The training batches (class-weighted, mixed up and distilled as configured), prior, taus and guard."""
    weights = datasets.class_weights(data.train.labels, len(config.classes), config.class_weight)
    teachers = config.teachers or []
    if teachers:
        model_card.record_teachers(run_dir, teachers, resume)
        log.info("distilling from %s (teacher weight %g%s)", ", ".join(teachers), config.teacher_weight,
                 (", faces and their mirror images" if config.teacher_flip else "")
                 + (f", and their centres enlarged {config.teacher_zoom:g} times" if config.teacher_zoom else ""))
    guard = recall_guard(config, data.val)
    targets, teacher, teacher_bias = distillation.teaching(config, data.train.images, data.train.targets, run_dir,
                                                           data.val, guard)
    randomness = datasets.EpochRandomness(config.seed)
    options = datasets.DatasetOptions(
        config.batch_size, training=True, seed=config.seed, mixup_alpha=config.mixup,
        teacher=teacher, teacher_weight=config.teacher_weight, randomness=randomness)
    batches = datasets.make_dataset(data.train.images, targets, options,
                                    None if weights is None else weights[data.train.labels])
    return FitInputs(batches, selection.class_prior(data.train.targets),
                     tuple(config.prior_taus or (0.0,)), guard, teacher_bias, randomness)


def recall_guard(config: RunConfig, val: scoring.ScoredFaces) -> selection.RecallGuard | None:
    """The ``--guard`` model's per-class consensus recall on our validation faces, as the floor to keep."""
    if not config.guard:
        return None
    reference = distillation.load_teachers([config.guard], config.class_names)
    probs = np.asarray(reference(val.images.astype(np.float32)[..., None]))
    recalls = selection.consensus_recalls(probs.argmax(1), val)
    log.info("guard %s: consensus recall on validation %s (floor: %g points below)", config.guard,
             ", ".join(f"{c} {r:.3f}" for c, r in zip(config.classes, recalls, strict=True)),
             config.guard_margin)
    return selection.RecallGuard(recalls, config.guard_margin / 100)


def compile_model(config: RunConfig, steps_per_epoch: int, run_dir: Path, resume: bool) -> keras.Model:
    """Build (or warm-start) the model with AdamW on a warm-up + cosine schedule spanning the whole run."""
    raw = config.to_dict()
    steps = steps_per_epoch * config.epochs
    model = models.build_model(config.arch, len(config.classes), **finetune.model_options(raw))
    if config.init_from and not resume:
        log.info("initialised %d layers from %s", init_weights_from(model, config.init_from, config.class_names),
                 config.init_from)
        model_card.write_records(run_dir / model_card.WARM_START_FILE, model_card.source_model_record(config.init_from))
    warmup = min(steps // 10, steps_per_epoch * 3)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(steps - warmup, 1), warmup_target=config.lr, warmup_steps=warmup, alpha=0.01)
    schedule = finetune.phased(schedule, raw, steps_per_epoch)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"])
    return model


def fit(model: keras.Model, config: RunConfig, run_dir: Path, val: scoring.ScoredFaces, inputs: FitInputs,
        resume: bool) -> float:
    """Fit with a checkpoint per epoch (resumable) and the best validation epoch kept; return the seconds
    spent in epochs, over every resume of the run."""
    if resume:                      # an epoch logged after the last checkpoint is run again
        run_store.trim_history(run_dir, run_store.epochs_done(run_dir))
    before = read_history(run_dir / "history.csv")
    best_so_far = max(before.get("val_accuracy", [None]) or [None], key=lambda v: v or 0)
    timed = not before or "epoch_seconds" in before  # a history written without the column keeps its header
    backup = checkpoints.AtomicBackup(run_dir / run_store.BACKUP_DIR)
    callbacks = [
        *([inputs.randomness.callback()] if inputs.randomness else []),
        multiworker.AverageMovingStatistics(),
        selection.LabelSetValidation(val, inputs.prior, inputs.taus, config.select, inputs.guard,
                                            float32_twin=lambda: float32_model(config)),
        backup,                                  # restores before StartFromChief shares the weights
        multiworker.StartFromChief(),
        checkpoints.BestWeights(run_dir / "best.weights.h5", best=best_so_far if resume else None),
        EpochLogger(record_seconds=timed),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        *finetune.callbacks(config.to_dict()),
        backup.saver(),
    ]
    started = time.perf_counter()
    model.fit(inputs.batches, epochs=config.epochs, callbacks=callbacks, verbose=0)
    train_seconds = time.perf_counter() - started
    log.info("final weights sha256 %s", multiworker.weights_digest(model))
    epochs = read_history(run_dir / "history.csv").get("epoch_seconds", [])
    return float(sum(epochs)) if timed and epochs else train_seconds


def float32_model(config: RunConfig) -> keras.Model:
    """A new model of the run's architecture in float32, whatever the global precision policy."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        return models.build_model(config.arch, len(config.class_names), **finetune.model_options(config.to_dict()))
    finally:
        keras.mixed_precision.set_global_policy(policy)


def best_model(model: keras.Model, config: RunConfig, run_dir: Path, inputs: FitInputs,
               train_seconds: float, val: scoring.ScoredFaces) -> tuple[keras.Model, dict, TrainingRecord]:
    """The shipped model, its history and its training record.

    The model is the best validation epoch, rebuilt in float32 (converts cleanly after bf16
    training), with the prior adjustment of that epoch folded into its output layer, and with
    ``--class-bias`` one bias per class chosen on ``val`` under the guard folded in after it.
    """
    labels = config.class_names
    model.load_weights(str(run_dir / "best.weights.h5"))
    keras.mixed_precision.set_global_policy("float32")
    final = float32_model(config)
    final.set_weights(model.get_weights())
    history = read_history(run_dir / "history.csv")
    best_epoch = int(np.argmax(history["val_accuracy"]))
    tau = float(history.get("val_prior_tau", [0.0] * (best_epoch + 1))[best_epoch])
    selection.fold_into_bias(final, inputs.prior, tau)
    adjustment = PriorAdjustment(tau=tau, prior=dict(zip(labels, np.round(inputs.prior, 4).tolist(), strict=True)))
    shortfall = float(history.get("val_guard_shortfall", [1.0] * (best_epoch + 1))[best_epoch])
    if config.class_bias:
        bias, kept = selection.apply_class_bias(final, val, config.select, inputs.guard)
        adjustment = replace(adjustment, class_bias=dict(zip(labels, np.round(bias, 2).tolist(), strict=True)))
        shortfall = shortfall if kept is None else kept
    guard = None
    if inputs.guard:
        guard = GuardRecord(model=config.guard, sha256=file_sha256(config.guard), met=shortfall == 0.0,
                            margin_pt=config.guard_margin,
                            reference_consensus_recall=dict(zip(labels, np.round(inputs.guard.reference, 4).tolist(),
                                                                strict=True)))
    teacher_bias = None if inputs.teacher_bias is None else dict(
        zip(labels, np.round(inputs.teacher_bias, 2).tolist(), strict=True))
    record = TrainingRecord(best_epoch=best_epoch + 1, train_seconds=round(train_seconds, 1),
                            prior_adjustment=adjustment, guard=guard, teacher_bias=teacher_bias)
    return final, history, record


def publish(final: keras.Model, config: RunConfig, run_dir: Path, data: RunData, history: dict,
            record: TrainingRecord) -> dict:
    """Evaluate the final model on validation and test (validation only when it fitted test), write it with
    its card, report and plots."""
    labels = config.class_names
    name = config.name
    reports.plot_history(history, run_dir / "history.png")
    val_report = reports.label_set_report(reports.predict_probabilities(final, data.val.images), data.val,
                                             config.labels)
    split, faces = data.held_out
    report = val_report if faces is data.val else reports.label_set_report(
        reports.predict_probabilities(final, faces.images), faces, config.labels)
    report = {**report, "split": split, "data": str(config.data), "model": f"{name}.keras"}
    atomic_write_with(run_dir / f"{name}.keras", final.save)
    reports.write_reports(report, run_dir, name, f"{name} (Keras float32) on the {split} split")
    record = replace(record, config=config.to_dict(),
                     data_report={k: data.report[k] for k in ("applied", "split") if k in data.report},
                     best_val_accuracy=round(val_report["accuracy"], 4),
                     best_val_accuracy_by_label_set={k: v["accuracy"] for k, v in val_report["label_sets"].items()},
                     epochs_run=len(history.get("loss", [])),
                     **model_card.learned_from(run_dir, bool(config.teachers)))
    write_card(model_card.keras_card(run_dir / f"{name}.json", labels, final, record, reports.card_metrics(report)))
    log.info("%s accuracy %s (n=%d); wrote %s", split, reports.accuracy_summary(report), report["n"],
             run_dir / f"{name}.keras")
    return report


def read_history(path: Path) -> dict[str, list[float]]:
    """The CSVLogger history as ``{metric: [value per epoch]}``."""
    import csv

    history: dict[str, list[float]] = {}
    if not path.exists():
        return history
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            for key, value in row.items():
                if key != "epoch" and value not in ("", None):
                    history.setdefault(key, []).append(float(value))
    return history
