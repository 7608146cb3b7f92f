"""edge_runtime runs where TensorFlow cannot be installed: it never imports it."""

from __future__ import annotations

import subprocess
import sys

from tests.edge_support import ROOT

CHECK = """
import sys
import numpy as np
import edge_runtime
from edge_runtime import FaceRecognizer, HaarDetector, BlazeFaceDetector, open_source, Face
import edge_runtime.service.cli, edge_runtime.service.daemon
recognizer = FaceRecognizer(sys.argv[1], num_threads=1)
recognizer.classify_face(np.zeros((48, 48), np.uint8))
recognizer.recognize(np.zeros((120, 160, 3), np.uint8))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
print(recognizer.runtime_name, loaded)
assert not loaded, loaded
"""

BLOCKED = """
import sys
class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ImportError("TensorFlow is not installed on this device")
sys.meta_path.insert(0, NoTensorFlow())
import numpy as np
from edge_runtime import FaceRecognizer
print(FaceRecognizer(sys.argv[1]).classify_face(np.zeros((48, 48), np.uint8)).label)
"""


def test_importing_and_running_edge_runtime_never_imports_tensorflow(tiny_model):
    done = subprocess.run([sys.executable, "-c", CHECK, str(tiny_model)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ai_edge_litert []")


def test_works_when_tensorflow_cannot_be_imported(tiny_model):
    done = subprocess.run([sys.executable, "-c", BLOCKED, str(tiny_model)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("happy", "neutral", "sad", "surprise")


def test_public_api_names():
    import edge_runtime

    for name in ("FaceRecognizer", "HaarDetector", "BlazeFaceDetector", "open_source", "Face", "Expression",
                 "Detection", "IoUTracker", "Daemon", "DaemonConfig", "ModelError", "SourceError"):
        assert hasattr(edge_runtime, name), name
        assert name in edge_runtime.__doc__, f"{name} is not documented in edge_runtime's docstring"
    assert edge_runtime.DEFAULT_MODEL == ROOT / "models" / "fer4_int8.tflite"


LIGHT = """
import sys
import edge_runtime
assert not [m for m in sys.modules if m.startswith("edge_runtime.")], "import edge_runtime loads nothing else"
from edge_runtime import FaceRecognizer
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("prometheus_client", "paho", "http")
               or m in ("edge_runtime.outputs.status_http", "edge_runtime.outputs.mqtt", "edge_runtime.service.daemon"))
print(heavy)
"""


def test_the_library_face_loads_no_http_mqtt_or_prometheus_module():
    done = subprocess.run([sys.executable, "-c", LIGHT], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_every_public_name_resolves_and_is_listed():
    import edge_runtime

    for name in edge_runtime.__all__:
        assert getattr(edge_runtime, name) is not None, name
    assert set(edge_runtime.__all__) <= set(dir(edge_runtime))
    assert sorted(edge_runtime.__all__) == sorted(edge_runtime._EXPORTS)
