"""Home Assistant MQTT discovery: the retained sensor configs that make a device appear with no YAML.

Every sensor reads the daemon's state message (the JSONL record) through a ``value_template``:
the dominant expression (the label of the largest face), the face count, and one score per label
for the largest face (in %). The score sensors are disabled by default (``enabled_by_default``: a
user enables the ones wanted), so the recorder stores only the expression and the face count.
A score template renders ``None`` when there is no face, which Home
Assistant's numeric MQTT sensors take as "unknown"; the expression says ``no_face`` instead.
"""

from __future__ import annotations

import re
import socket
from importlib import metadata

from edge_runtime.errors import EdgeRuntimeError

DISCOVERY_PREFIX = "homeassistant"
#: Values of the expression sensor besides the model's labels.
EXPRESSION_EXTRA = ("uncertain", "no_face")

# Jinja: pick the face with the largest box area (w * h) into ns.f.
_LARGEST = ("{% set ns = namespace(a=-1, f=none) %}"
            "{% for f in value_json.faces %}{% if f.box[2] * f.box[3] > ns.a %}"
            "{% set ns.a = f.box[2] * f.box[3] %}{% set ns.f = f %}{% endif %}{% endfor %}")


def sanitize_name(name: str) -> str:
    """A device name usable in MQTT topics and Home Assistant ids: ``[a-z0-9_-]``, at most 64 characters."""
    cleaned = re.sub(r"[^a-z0-9_-]+", "_", name.strip().lower()).strip("_-")[:64]
    if not cleaned:
        raise EdgeRuntimeError(f"bad --device-name {name!r}; use letters, digits, '-' or '_'")
    return cleaned


def default_device_name() -> str:
    """This machine's hostname, sanitized (``fer-edge`` if it has none usable)."""
    try:
        return sanitize_name(socket.gethostname())
    except EdgeRuntimeError:
        return "fer-edge"


def _version() -> str:
    try:
        return metadata.version("fer-edge")
    except metadata.PackageNotFoundError:
        return "unknown"


def expression_template() -> str:
    """The dominant expression: the largest face's label, ``uncertain`` below ``--min-confidence``,
    ``no_face`` without a face (Home Assistant keeps a text sensor's ``None`` as the word)."""
    return (_LARGEST + "{{ 'no_face' if ns.f is none else ns.f.label if ns.f.label is not none "
            "else 'uncertain' }}")


def faces_template() -> str:
    """The number of faces in the frame."""
    return "{{ value_json.faces | length }}"


def score_template(label: str) -> str:
    """The largest face's score for ``label``, in % with one decimal; ``None`` without a face."""
    return (_LARGEST + "{{ ((ns.f.scores['" + label + "'] or 0) * 100) | round(1) "
            "if ns.f is not none else 'None' }}")


def discovery_configs(device: str, state_topic: str, availability_topic: str,
                      labels: tuple[str, ...] | list[str] = (),
                      prefix: str = DISCOVERY_PREFIX) -> dict[str, dict]:
    """``{config topic: payload}`` for the expression, face-count and per-label score sensors."""
    block = {"identifiers": [f"fer_edge_{device}"], "name": f"fer-edge {device}", "manufacturer": "fer-edge",
             "model": "facial expression recognition", "sw_version": _version()}
    common = {"state_topic": state_topic, "availability_topic": availability_topic,
              "payload_available": "online", "payload_not_available": "offline", "device": block}
    sensors: dict[str, dict] = {
        "expression": {"name": "Expression", "value_template": expression_template(), "icon": "mdi:emoticon"},
        "faces": {"name": "Faces", "value_template": faces_template(), "state_class": "measurement",
                  "icon": "mdi:face-recognition"},
    }
    if labels:
        sensors["expression"].update(device_class="enum", options=[*labels, *EXPRESSION_EXTRA])
    for label in labels:
        object_id = "score_" + sanitize_name(label)
        sensors[object_id] = {"name": f"{label.capitalize()} score", "value_template": score_template(label),
                              "unit_of_measurement": "%", "state_class": "measurement",
                              "suggested_display_precision": 0, "enabled_by_default": False}
    out = {}
    for object_id, sensor in sensors.items():
        out[f"{prefix}/sensor/{device}/{object_id}/config"] = {
            **sensor, **common, "unique_id": f"fer_edge_{device}_{object_id}",
            "default_entity_id": "sensor." + f"fer_edge_{device}_{object_id}".replace("-", "_")}
    return out
