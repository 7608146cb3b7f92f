"""Pick the TFLite interpreter: LiteRT first, then tflite_runtime, then TensorFlow's tf.lite."""

from __future__ import annotations

import importlib
import logging
from typing import Any

log = logging.getLogger(__name__)

# (module, attribute holding the Interpreter class), in order of preference.
RUNTIMES = (
    ("ai_edge_litert.interpreter", "Interpreter"),
    ("tflite_runtime.interpreter", "Interpreter"),
    ("tensorflow.lite", "Interpreter"),
)


def interpreter_class(prefer: str | None = None) -> tuple[type, str]:
    """Return ``(Interpreter class, runtime name)`` for the first runtime that imports.

    ``prefer`` names a module of ``RUNTIMES`` to try alone (e.g. ``"tensorflow.lite"``).
    TensorFlow is only imported when neither LiteRT nor tflite_runtime is installed.
    """
    candidates = [r for r in RUNTIMES if prefer is None or r[0].startswith(prefer)]
    errors = []
    for module_name, attr in candidates:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            errors.append(f"{module_name}: {exc}")
            continue
        name = module_name.split(".")[0]
        return getattr(module, attr), name
    raise RuntimeError("no TFLite runtime found (" + "; ".join(errors) + "); "
                       "install one: pip install ai-edge-litert")


def runtime_version(name: str) -> str:
    """Best-effort version string of a runtime package."""
    try:
        from importlib.metadata import version
        return version({"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime",
                        "tensorflow": "tensorflow"}.get(name, name))
    except Exception:  # version is informational only
        return "unknown"


def make_interpreter(model_path: str, num_threads: int | None = None, prefer: str | None = None) -> Any:
    """Load ``model_path`` once, allocate its tensors and return the interpreter.

    The runtime chosen is logged and stored on the interpreter as ``runtime_name``.
    """
    cls, name = interpreter_class(prefer)
    interpreter = cls(model_path=str(model_path), num_threads=num_threads)
    interpreter.allocate_tensors()
    try:
        interpreter.runtime_name = name
    except AttributeError:
        pass
    log.info("loaded %s with %s %s (threads=%s)", model_path, name, runtime_version(name), num_threads)
    return interpreter
