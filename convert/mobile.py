"""``python -m convert.mobile``: the ``mobile`` variant of a trained Keras model, for standard mobile tooling.

MediaPipe Tasks' ImageClassifier and the TFLite Task Library feed a ``1 x H x W x 3`` uint8 RGB
image and read float32 or uint8 scores. The mobile variant is the Keras model wrapped as
``RGB -> grey (BT.601 weights, a fixed 1x1 convolution) -> model``, fully integer-quantized
(int8 inside, calibrated like the int8 variant) with uint8 input (pixels as they are: scale 1,
zero point 0) and uint8 probabilities, stamped with TFLite Model Metadata from its card.
It is verified on the test split against its own float32 conversion and the int8 variant.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge_runtime.command_line import CommandParser, add_log_level, run_command
from edge_runtime.model.card import MOBILE_VARIANT, ModelCard, Quantization
from edge_runtime.paths import shared_dir

from . import calibration, cards, conversion, eval_faces, metadata, quantize, verify
from .errors import ConvertError
from .records import CalibrationAttempt, QuantizationRecord

log = logging.getLogger(__name__)

#: ITU-R BT.601 luma weights of R, G, B (OpenCV's and Pillow's RGB -> grey).
GREY_WEIGHTS = (0.299, 0.587, 0.114)


def wrap_rgb(model):
    """``model`` (grey ``H x W x 1`` input) behind a fixed RGB -> grey 1x1 convolution."""
    import keras

    height, width = (int(v) for v in model.input_shape[1:3])
    rgb = keras.Input((height, width, 3), name="rgb")
    grey_layer = keras.layers.Conv2D(1, 1, use_bias=False, trainable=False, name="rgb_to_grey")
    grey = grey_layer(rgb)
    grey_layer.set_weights([np.array(GREY_WEIGHTS, dtype=np.float32).reshape(1, 1, 3, 1)])
    return keras.Model(rgb, model(grey), name=f"{model.name}_mobile")


def as_rgb(images: np.ndarray) -> np.ndarray:
    """Grey ``N x H x W`` uint8 faces as ``N x H x W x 3`` RGB (the channel replicated)."""
    return np.repeat(images[..., None], 3, axis=-1)


def _agreement_with_int8(out_dir: Path, stem: str, rgb_test: np.ndarray, predicted: np.ndarray,
                         test, batch_size: int) -> dict[str, float]:
    """Accuracy of the published int8 variant on the same faces and its top-1 agreement with mobile
    (the ``CardMetrics`` fields ``int8_accuracy``, ``accuracy_delta_vs_int8_pt``, ``agreement_with_int8``)."""
    path = out_dir / f"{stem}_int8.tflite"
    if not path.is_file():
        log.warning("no %s beside the output: the mobile variant is not compared with int8", path.name)
        return {}
    int8_pred = verify.predict(verify.load(str(path), 2), rgb_test[..., 0], batch_size).argmax(1)
    mask = test.mask
    int8_accuracy, accuracy = test.accuracy(int8_pred), test.accuracy(predicted)
    return {"int8_accuracy": round(int8_accuracy, 5),
            "accuracy_delta_vs_int8_pt": round((accuracy - int8_accuracy) * 100, 3),
            "agreement_with_int8": round(float((int8_pred[mask] == predicted[mask]).mean()), 5)}


def convert_mobile(model_path: str | Path, data: str | Path, out_dir: str | Path,
                   options: conversion.Options | None = None) -> ModelCard:
    """Write ``<stem>_mobile.tflite`` and its card to ``out_dir``; return the card.

    Calibration follows the int8 variant (same seeded sample, grown while the validation
    accuracy drops more than ``options.max_int8_drop_pt`` against float32).
    """
    options = options or conversion.Options()
    model_path = conversion.check_model_file(model_path)
    keras_card = conversion.read_keras_card(model_path)
    labels = keras_card.labels
    votes = eval_faces.load_votes(keras_card, data)
    folders = eval_faces.folders_to_load(keras_card)
    conversion.check_data(data, folders)
    out = conversion.prepare_out_dir(out_dir)
    size = (keras_card.input.height, keras_card.input.width)
    train = conversion.load_images(data, "train", folders, size)
    test = conversion.load_images(data, "test", folders, size)
    fit, holdout = conversion.split_holdout(train, test, keras_card, options.seed, data)
    pool = eval_faces.calibration_pool(fit, keras_card, votes)
    holdout = eval_faces.eval_faces(holdout, keras_card, votes)
    test = eval_faces.eval_faces(test, keras_card, votes)
    rgb_test, rgb_holdout = as_rgb(test.images), as_rgb(holdout.images)
    model = wrap_rgb(conversion.load_keras_model(model_path, keras_card))
    file_name = f"{model_path.stem}_{MOBILE_VARIANT}.tflite"

    with tempfile.TemporaryDirectory(prefix="convert-mobile-") as tmp:
        work = Path(tmp)
        saved = quantize.export_saved_model(model, work / "saved_model")
        (work / "float32.tflite").write_bytes(quantize.convert(saved, "float32"))
        reference = verify.load(str(work / "float32.tflite"), options.threads)
        ref_pred = verify.predict(reference, rgb_test, options.batch_size).argmax(1)
        ref_holdout = holdout.accuracy(verify.predict(reference, rgb_holdout, options.batch_size).argmax(1))
        attempts = []
        for n in conversion.calibration_sizes(options.calibration_samples, len(pool)):
            index = calibration.stratified_sample(pool.labels, n, options.seed)
            images, pinned = calibration.pin_extremes(pool.images[index])
            summary = calibration.summary(pool.labels[index], labels, [pool.ids[i] for i in index], images,
                                          requested=options.calibration_samples, seed=options.seed,
                                          data=str(data), pinned=pinned)
            model_bytes = quantize.convert(saved, MOBILE_VARIANT, calibration.representative_dataset(as_rgb(images)))
            attempt_path = work / f"{n}_{file_name}"     # LiteRT maps the file: one per attempt
            attempt_path.write_bytes(model_bytes)
            interpreter = verify.load(str(attempt_path), options.threads)
            predicted = verify.predict(interpreter, rgb_test, options.batch_size).argmax(1)
            val_delta = round((holdout.accuracy(verify.predict(interpreter, rgb_holdout, options.batch_size)
                                                .argmax(1)) - ref_holdout) * 100, 2)
            attempts.append(CalibrationAttempt(samples=n, validation_delta_pt=val_delta))
            log.info("mobile with %d calibration images: %+.2f pt vs float32 on validation", n, val_delta)
            if val_delta >= -options.max_int8_drop_pt:
                break
        if val_delta < -options.max_int8_drop_pt:
            raise ConvertError(f"{file_name} loses {-val_delta:.2f} pt of validation "
                               f"accuracy against float32 (allowed: {options.max_int8_drop_pt} pt); raise "
                               "--max-int8-drop or retrain")
        io, ops = verify.io_details(interpreter), verify.op_report(interpreter)
        if ops.float_ops or ops.not_builtin:
            raise ConvertError(f"{file_name} is not full-integer: float ops {ops.float_ops}, "
                               f"non-builtin ops {list(ops.not_builtin)}")
        if io["input"].quantization != Quantization(1.0, 0):
            raise ConvertError(f"{file_name}: input quantization {io['input'].quantization} is not "
                               "scale 1 / zero point 0, so MediaPipe's raw pixels would be misread")
        mask = test.mask
        metrics = verify.metrics(predicted[mask], test.labels[mask], labels, ref_pred[mask],
                                 test.accuracy(ref_pred))
        metrics = replace(metrics, label_source=eval_faces.label_source(keras_card), extra=test.by_label_set(predicted),
                          **_agreement_with_int8(out, model_path.stem, rgb_test, predicted, test, options.batch_size))
        quantization = QuantizationRecord(
            method=quantize.METHODS[MOBILE_VARIANT], activations="int8",
            weights="int8 per channel" if verify.per_channel_weights(interpreter) else "int8 per tensor",
            max_accuracy_drop_pt=options.max_int8_drop_pt, grey_weights_rgb=GREY_WEIGHTS, input_is_pixel=True)
        summary = replace(summary, attempts=tuple(attempts))
        facts = cards.VariantFacts(MOBILE_VARIANT, file_name, model_bytes, io, ops, metrics, quantization, summary)
        card = cards.build_card(keras_card, facts, folder=work, source_file=model_path.name,
                                source_sha256=cards.sha256_bytes(model_path.read_bytes()))
        model_bytes = metadata.stamp(model_bytes, card)
        card = metadata.record_in_card(card, model_bytes)
        verify.check_contract(interpreter, card)
        (card,) = conversion.publish(out, [conversion.Converted(MOBILE_VARIANT, model_bytes, card, predicted)])
    log.info("wrote %s", cards.summary_line(card))
    return card


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m convert.mobile``."""
    p = CommandParser(prog="python -m convert.mobile", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, nargs="+", metavar="KERAS",
                   help="trained .keras model(s), each with its card (.json) beside it")
    p.add_argument("--data", default=str(shared_dir() / "data" / "fer2013"),
                   help="FER2013 folder (train/<class>/, test/<class>/) (default: %(default)s)")
    p.add_argument("--out", help="output folder (default: the model's folder)")
    p.add_argument("--calibration-samples", type=int, default=500, metavar="N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-int8-drop", type=float, default=0.5,
                   help="largest validation accuracy loss against float32, in points (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="LiteRT threads for the evaluation")
    add_log_level(p)
    return p


def convert_all(args: argparse.Namespace) -> int:
    """Convert each ``--model`` and print one line per variant written."""
    options = conversion.Options(calibration_samples=args.calibration_samples, seed=args.seed,
                                 max_int8_drop_pt=args.max_int8_drop, threads=args.threads)
    for model in args.model:
        out = Path(args.out or Path(model).parent)
        card = convert_mobile(model, args.data, out, options)
        m = card.metrics
        print(f"{card.model_path}\t{card.size_bytes} bytes\taccuracy {m.accuracy:.4f}"
              f"\t{m.accuracy_delta_pt:+.2f} pt vs float32"
              + (f"\tagreement with int8 {m.agreement_with_int8:.4f}" if m.agreement_with_int8 is not None else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Convert each ``--model``; 0 when all were written, 2 with one ``error:`` line on bad input or a failed check."""
    return run_command(build_parser(), convert_all, argv, log_format="%(asctime)s %(levelname)s %(message)s")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
