"""Convert one trained Keras model into its verified .tflite variants and their cards.

Each variant carries TFLite Model Metadata written from its card (:mod:`convert.metadata`).
Everything is converted and verified in a temporary folder first; only when every
variant has passed are the files published to the output folder (each written
atomically, the .tflite before its card), so a failure leaves no new file behind.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edge_runtime.atomic_io import atomic_write_bytes
from edge_runtime.labelled_faces.scoring import held_out_split, trained_on_test
from edge_runtime.model.card import (
    ModelCard,
    ModelCardError,
    Quantization,
    card_json,
    card_path_for,
    card_section,
    file_sha256,
    load_card,
    parse_card,
    write_card,
)
from edge_runtime.model.card_schema import to_json

from . import calibration, cards, eval_faces, metadata, quantize, verify
from .errors import ConvertError
from .records import CalibrationAttempt, CalibrationRecord, QuantizationRecord

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
# Calibration sizes tried in turn (multiples of --calibration-samples) while int8 loses too much.
CALIBRATION_GROWTH = (1, 4, 16)
# Share of train held out to check int8 when the model's card records no validation split.
FALLBACK_HOLDOUT_FRACTION = 0.1


@dataclass
class Options:
    """Settings of one conversion (the CLI's arguments)."""

    calibration_samples: int = 500
    seed: int = 0
    variants: tuple[str, ...] = quantize.VARIANTS
    max_int8_drop_pt: float = 0.5
    max_int8_bytes: int = 2 * 1024 * 1024
    batch_size: int = 64
    threads: int | None = 2


@dataclass
class Converted:
    """One verified variant, ready to publish."""

    variant: str
    data: bytes
    card: ModelCard
    predicted: np.ndarray = field(repr=False)
    holdout_accuracy: float | None = None


def prepare_out_dir(out: str | Path) -> Path:
    """Create ``out`` if needed and prove it is writable (by writing a temporary file)."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise ConvertError(f"output directory {out} is not writable ({exc.strerror or exc}); "
                        "choose another --out") from exc
    return out


def check_model_file(model_path: str | Path) -> Path:
    """The model file must exist and be a ``.keras`` file."""
    path = Path(model_path)
    if not path.is_file():
        raise ConvertError(f"model file {path} not found; train it first (python -m train) or fix --model")
    if path.suffix != ".keras":
        raise ConvertError(f"{path} is not a Keras model (.keras file); give the .keras file training wrote")
    return path


def read_keras_card(model_path: Path) -> ModelCard:
    """The card training wrote beside the Keras model (labels, input contract)."""
    card_path = card_path_for(model_path)
    if not card_path.is_file():
        raise ConvertError(f"model card {card_path} not found: the Keras model needs the card training wrote "
                        "beside it (same name, .json) for its labels and input contract")
    try:
        card = load_card(card_path)
    except ModelCardError as exc:
        raise ConvertError(str(exc).splitlines()[0]) from exc
    if card.variant != "keras":
        raise ConvertError(f"model card {card_path} is for variant {card.variant!r}, not a Keras model")
    return card


def check_data(data: str | Path, labels: tuple[str, ...]) -> None:
    """A folder-per-class tree must hold a train/ and test/ folder for every label."""
    data = Path(data)
    if not data.exists():
        raise ConvertError(f"--data {data} does not exist; give the FER2013 folder (train/, test/) "
                        "or fer2013.csv")
    if data.is_file():
        return
    for split in SPLITS:
        split_dir = data / split
        present = sorted(p.name for p in split_dir.iterdir() if p.is_dir()) if split_dir.is_dir() else []
        missing = [name for name in labels if name not in present]
        if missing:
            raise ConvertError(f"the classes in {split_dir} do not match the model's labels: no folder for "
                            f"{', '.join(missing)} (model labels: {', '.join(labels)}; found: "
                            f"{', '.join(present) or 'nothing'}); give --data with a folder per label")


def load_images(data: str | Path, split: str, labels: tuple[str, ...], size: tuple[int, int]):
    """Load one split as a ``edge_runtime.labelled_faces.loading.FaceSet`` resized to the model's ``size`` (h, w)."""
    import cv2

    from edge_runtime.labelled_faces.loading import load_split

    faces = load_split(data, split, labels)
    if faces.images.shape[1:3] != size:
        faces.images = np.stack([cv2.resize(im, size[::-1], interpolation=cv2.INTER_AREA)
                                 for im in faces.images])
    return faces


def load_keras_model(path: Path, card: ModelCard):
    """Load the Keras model and check it against its card (input shape, one output per label)."""
    import keras

    try:
        model = keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # Keras raises many types for a bad file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConvertError(f"{path} is not a loadable Keras model ({reason[:200]}); give the .keras file "
                        "training wrote") from exc
    spec = card.input
    want = (spec.height, spec.width, spec.channels)
    if tuple(model.input_shape[1:]) != want or model.output_shape[-1] != len(card.labels):
        raise ConvertError(f"{path} (input {model.input_shape}, output {model.output_shape}) does not match "
                        f"its card (input {want}, {len(card.labels)} labels); re-export the model "
                        "with its card")
    return model


def split_holdout(train, test, card: ModelCard, seed: int, data: str | None = None):
    """``(calibration pool, validation images)`` from the training split.

    When the card records the training run's options (drop, validation fraction, seed),
    this is that run's own split, so calibration draws only from images the model was
    fitted on and the int8 check uses images it was not. Otherwise a seeded stratified
    10 % of train is held out.
    """
    from train.splits import carve_run_split, records_split, stratified_split

    config = dict(card.training_config)
    if records_split(config):
        config.setdefault("classes", list(card.labels))
        if eval_faces.label_source(card) == "ferplus":
            config["classes"] = list(train.classes)      # FER+ runs carve over every folder they loaded
        fit, holdout, _ = carve_run_split(config, train, test, data)
        log.info("int8 calibration from %d training images, checked on the run's %d validation images",
                 len(fit), len(holdout))
    else:
        fit_idx, holdout_idx = stratified_split(train.labels, FALLBACK_HOLDOUT_FRACTION, seed)
        fit, holdout = train.subset(fit_idx), train.subset(holdout_idx)
        log.info("the card records no validation split; holding out %d of %d training images for the int8 "
                 "check", len(holdout), len(train))
    return fit, holdout


def calibration_sizes(requested: int, available: int) -> list[int]:
    """Calibration sizes to try: ``requested``, then larger ones while the int8 model loses too much."""
    sizes = []
    for factor in CALIBRATION_GROWTH:
        n = min(requested * factor, available)
        if n not in sizes:
            sizes.append(n)
    return sizes


class Converter:
    """Converts and verifies the variants of one Keras model (see :func:`convert_model`)."""

    def __init__(self, model_path: Path, keras_card: ModelCard, data: str, options: Options, workdir: Path,
                 holdout=None):
        self.model_path = model_path
        self.keras_card = keras_card
        self.labels = keras_card.labels
        self.data = data
        self.options = options
        self.workdir = workdir
        self.stem = model_path.stem
        self.source_sha256 = file_sha256(model_path)
        self.reference: tuple[np.ndarray, float] | None = None
        self.holdout = holdout                 # validation images: int8 calibration is tuned on them
        self.holdout_reference: float | None = None
        self.report_split = held_out_split(keras_card.training_config)   # what the cards' figures are on

    def file_name(self, variant: str) -> str:
        return f"{self.stem}_{variant}.tflite"

    def verify(self, variant: str, data: bytes, test, quantization: QuantizationRecord,
               calibration_summary: CalibrationRecord | None) -> Converted:
        """Load the flatbuffer with LiteRT, check it, measure it, and build its card."""
        path = self.workdir / self.file_name(variant)
        path.write_bytes(data)
        interpreter = verify.load(str(path), self.options.threads)
        io = verify.io_details(interpreter)
        ops = verify.op_report(interpreter)
        if variant == "int8":
            if ops.float_ops or ops.not_builtin:
                raise verify.ContractError(f"{path.name} is not full-integer: float ops {ops.float_ops}, "
                                           f"non-builtin ops {list(ops.not_builtin)}")
            quantization = replace(quantization, weights=("int8 per channel" if verify.per_channel_weights(interpreter)
                                                          else "int8 per tensor"))
        predicted = verify.predict(interpreter, test.images, self.options.batch_size).argmax(1)
        ref_pred, ref_acc = self.reference if self.reference else (None, None)
        mask = test.mask
        metrics = verify.metrics(predicted[mask], test.labels[mask], self.labels,
                                 None if ref_pred is None else ref_pred[mask], ref_acc)
        metrics = replace(metrics, split=self.report_split, label_source=eval_faces.label_source(self.keras_card),
                          extra=test.by_label_set(predicted))
        if variant == "float32":
            metrics = replace(metrics, float32_accuracy=metrics.accuracy, accuracy_delta_pt=0.0,
                              agreement_with_float32=1.0)
        facts = cards.VariantFacts(variant, path.name, data, io, ops, metrics, quantization, calibration_summary)
        card = cards.build_card(self.keras_card, facts, folder=self.workdir, source_file=self.model_path.name,
                                source_sha256=self.source_sha256)
        data = metadata.stamp(data, card)           # TFLite Model Metadata, written from the card
        card = metadata.record_in_card(card, data)   # publish() re-checks the stamped file
        verify.check_contract(interpreter, card)
        log.info("verified %s", cards.summary_line(card))
        holdout_accuracy = None
        if self.holdout is not None and variant in ("float32", "int8"):
            holdout_pred = verify.predict(interpreter, self.holdout.images, self.options.batch_size).argmax(1)
            holdout_accuracy = self.holdout.accuracy(holdout_pred)
        return Converted(variant, data, card, predicted, holdout_accuracy)

    def convert_plain(self, saved_model: Path, variant: str, test) -> Converted:
        data = quantize.convert(saved_model, variant)
        quantization = QuantizationRecord(method=quantize.METHODS[variant])
        unused = CalibrationRecord(used=False, reason=f"the {variant} variant needs no representative data")
        converted = self.verify(variant, data, test, quantization, unused)
        if variant == "float32":
            accuracy = test.accuracy(converted.predicted)
            self.reference = (converted.predicted, accuracy)
            self.holdout_reference = converted.holdout_accuracy
            keras_accuracy = self.keras_card.metrics.accuracy
            if keras_accuracy is not None and abs(keras_accuracy - accuracy) > 0.002:
                log.warning("float32 .tflite %s accuracy %.4f differs from the Keras card's %.4f: "
                            "different data, or a conversion problem", self.report_split, accuracy, keras_accuracy)
        return converted

    def convert_int8(self, saved_model: Path, train, test) -> Converted:
        """Full-integer conversion; more calibration images while it loses more than allowed.

        The loss that decides whether to grow the calibration set is measured on the
        validation images (``holdout``), never on test; test is only reported and checked.
        """
        opts = self.options
        attempts: list[CalibrationAttempt] = []
        converted = None
        for n in calibration_sizes(opts.calibration_samples, len(train)):
            index = calibration.stratified_sample(train.labels, n, opts.seed)
            images, pinned = calibration.pin_extremes(train.images[index])
            summary = calibration.summary(train.labels[index], self.labels, [train.ids[i] for i in index],
                                          images, requested=opts.calibration_samples, seed=opts.seed,
                                          data=str(self.data), pinned=pinned)
            data = quantize.convert(saved_model, "int8", calibration.representative_dataset(images))
            quantization = QuantizationRecord(method=quantize.METHODS["int8"], activations="int8",
                                              max_accuracy_drop_pt=opts.max_int8_drop_pt)
            converted = self.verify("int8", data, test, quantization, summary)
            m = converted.card.metrics
            attempt = CalibrationAttempt(samples=n, accuracy=m.accuracy, accuracy_delta_pt=m.accuracy_delta_pt,
                                         agreement_with_float32=m.agreement_with_float32)
            judged_delta_pt = m.accuracy_delta_pt  # the int8 drop the attempt is judged on
            if converted.holdout_accuracy is not None and self.holdout_reference is not None:
                judged_delta_pt = round((converted.holdout_accuracy - self.holdout_reference) * 100, 2)
                attempt = replace(attempt, validation_accuracy=round(converted.holdout_accuracy, 4),
                                  validation_delta_pt=judged_delta_pt)
            attempts.append(attempt)
            log.info("int8 with %d calibration images: %+.2f pt vs float32 on %s", n, judged_delta_pt,
                     "validation" if attempt.validation_delta_pt is not None else "test")
            if judged_delta_pt >= -opts.max_int8_drop_pt:
                break
        assert converted is not None
        card, last = converted.card, attempts[-1]
        for split, delta in (("validation", last.validation_delta_pt), (self.report_split, last.accuracy_delta_pt)):
            if delta is not None and delta < -opts.max_int8_drop_pt:
                raise ConvertError(f"{self.file_name('int8')} loses {-delta:.2f} pt of {split} accuracy against "
                                f"float32 (allowed: {opts.max_int8_drop_pt} pt) even with "
                                f"{last.samples} calibration images; retrain (e.g. "
                                "quantization-aware) or raise --max-int8-drop")
        fix = ("none needed: the first calibration met the accuracy bound" if len(attempts) == 1 else
               f"calibration grown from {attempts[0].samples} to {last.samples} images to meet the accuracy bound")
        q = card.input.quantization
        pixel_minus_128 = q == Quantization(1.0, -128)
        if not pixel_minus_128:
            log.warning("int8 input quantization is %s, not scale 1.0 / zero point -128", q)
        if len(converted.data) > opts.max_int8_bytes:
            raise ConvertError(f"{self.file_name('int8')} is {len(converted.data)} bytes, more than the "
                            f"{opts.max_int8_bytes} allowed; use a smaller architecture")
        decided_on = "validation" if last.validation_delta_pt is not None else "test"
        calibrated = replace(card_section(card, "calibration", CalibrationRecord), attempts=tuple(attempts),
                             decided_on=decided_on)
        quantized = replace(card_section(card, "quantization", QuantizationRecord), fix=fix,
                            input_is_pixel_minus_128=pixel_minus_128)
        card = replace(card, calibration=to_json(calibrated), quantization=to_json(quantized))
        return replace(converted, card=card)


def publish(out_dir: Path, converted: list[Converted]) -> list[ModelCard]:
    """Write each verified variant and its card atomically into ``out_dir``; re-check the written pair.

    Returns the cards as written."""
    cards = [replace(item.card, path=card_path_for(out_dir / item.card.file)) for item in converted]
    for card in cards:                     # the runtime must be able to read every card
        parse_card(card_json(card), card.path)
    for item, card in zip(converted, cards, strict=True):
        atomic_write_bytes(card.model_path, item.data)
        write_card(card)
    for card in cards:                     # the published files, as the runtime will see them
        written = load_card(card.path)
        if file_sha256(written.model_path) != written.sha256:
            raise ConvertError(f"{written.model_path} does not match the sha256 of its card; re-run the conversion")
        verify.check_contract(verify.load(str(written.model_path), 1), written)
    return cards


def convert_model(model_path: str | Path, data: str | Path, out_dir: str | Path,
                  options: Options | None = None) -> list[ModelCard]:
    """Convert ``model_path`` (a .keras with its card) to every requested variant in ``out_dir``.

    Returns the cards written. Raises a :class:`~edge_runtime.errors.FerEdgeError` on bad input or
    when a variant fails verification (then nothing is written).
    """
    options = options or Options()
    model_path = check_model_file(model_path)
    keras_card = read_keras_card(model_path)
    labels = keras_card.labels
    unknown = [v for v in options.variants if v not in quantize.VARIANTS]
    if unknown:
        raise ConvertError(f"unknown variant(s) {', '.join(unknown)}; "
                        f"choose from {', '.join(quantize.VARIANTS)}")
    if options.calibration_samples < calibration.MIN_SAMPLES:
        raise ConvertError(f"too few calibration images: --calibration-samples {options.calibration_samples} is "
                        f"below the minimum of {calibration.MIN_SAMPLES}")
    votes = eval_faces.load_votes(keras_card, data)
    folders = eval_faces.folders_to_load(keras_card)
    check_data(data, folders)
    out = prepare_out_dir(out_dir)
    size = (keras_card.input.height, keras_card.input.width)
    train = load_images(data, "train", folders, size)
    pool = eval_faces.calibration_pool(train, keras_card, votes)
    calibration.allocate(np.bincount(pool.labels, minlength=len(labels)), options.calibration_samples)
    test = load_images(data, "test", folders, size)
    fit, holdout = split_holdout(train, test, keras_card, options.seed, data)
    train = eval_faces.calibration_pool(fit, keras_card, votes)
    holdout = eval_faces.eval_faces(holdout, keras_card, votes)
    if trained_on_test(keras_card.training_config):
        log.info("%s trained on the test split: its cards report the %d validation faces", model_path.name,
                 len(holdout.images))
        test = holdout
    else:
        test = eval_faces.eval_faces(test, keras_card, votes)
    model = load_keras_model(model_path, keras_card)

    with tempfile.TemporaryDirectory(prefix="convert-") as tmp:
        workdir = Path(tmp)
        saved_model = quantize.export_saved_model(model, workdir / "saved_model")
        converter = Converter(model_path, keras_card, str(data), options, workdir, holdout)
        results = {"float32": converter.convert_plain(saved_model, "float32", test)}
        for variant in quantize.VARIANTS:
            if variant in options.variants and variant not in results:
                results[variant] = (converter.convert_int8(saved_model, train, test) if variant == "int8"
                                    else converter.convert_plain(saved_model, variant, test))
        written = publish(out, [results[v] for v in quantize.VARIANTS if v in options.variants])
    for card in written:
        log.info("wrote %s", cards.summary_line(card))
    return written
