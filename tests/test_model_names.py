"""``--model NAME``: a bare name is a bundled model (``fer4_accurate`` -> ``fer4_accurate_int8.tflite``)."""

from __future__ import annotations

import pytest

from edge_runtime.errors import ModelError
from edge_runtime.model.classifier import resolve_model_path
from edge_runtime.paths import bundled_models_dir


def test_a_bare_model_name_resolves_to_the_bundled_int8_file(tmp_path, monkeypatch):
    assert resolve_model_path("fer4") == bundled_models_dir() / "fer4_int8.tflite"
    assert resolve_model_path("fer4_accurate") == bundled_models_dir() / "fer4_accurate_int8.tflite"
    with pytest.raises(ModelError, match="fer9_int8.tflite not found.*bundled model's name"):
        resolve_model_path("fer9")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fer4").write_bytes(b"a file of that name wins")
    assert resolve_model_path("fer4").resolve() == tmp_path / "fer4"
