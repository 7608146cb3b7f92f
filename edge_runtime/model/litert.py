"""Pick the TFLite interpreter: LiteRT first, then tflite_runtime, then TensorFlow's tf.lite."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Iterator
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


@contextlib.contextmanager
def native_info_silenced(silence: bool = True) -> Iterator[None]:
    """Send the native runtime's stderr to /dev/null while the block runs (when ``silence``).

    LiteRT prints lines such as "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." straight to
    file descriptor 2, past Python's logging; below ``--log-level info`` they are not wanted."""
    if not silence:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def make_interpreter(model_path: str, num_threads: int | None = None, prefer: str | None = None) -> Any:
    """Load ``model_path`` once, allocate its tensors and return the interpreter.

    The runtime chosen is logged and stored on the interpreter as ``runtime_name``.
    """
    cls, name = interpreter_class(prefer)
    with native_info_silenced(not log.isEnabledFor(logging.INFO)):
        interpreter = cls(model_path=str(model_path), num_threads=num_threads)
        interpreter.allocate_tensors()
    try:
        interpreter.runtime_name = name
    except AttributeError:
        pass
    log.info("loaded %s with %s %s (threads=%s)", model_path, name, runtime_version(name), num_threads)
    return interpreter
