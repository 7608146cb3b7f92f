"""When the MQTT output publishes: on a change of state, plus a heartbeat (``--mqtt-every``, ``--mqtt-heartbeat``).

A Home Assistant recorder writes a row for every state change of every enabled entity, so a state per
frame (10 a second, scores moving on almost every one) is too much. A record is published when:

- it is the first, or the expression (the largest face's label) or the number of faces changed: at once;
- a score of the largest face changed after rounding to ``decimals`` (2: whole percent), once ``every``
  seconds passed since the last message (default 5: smoothed scores move on almost every frame, so
  without a limit nearly every frame would still go out);
- nothing changed for ``heartbeat`` seconds (default 60), so a subscriber sees the daemon is alive.

Published records carry their scores rounded to ``decimals`` (the JSONL output keeps full precision).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Seconds between messages whose only change is the scores.
DEFAULT_EVERY = 5.0
#: Seconds after which an unchanged state is published again.
DEFAULT_HEARTBEAT = 60.0
#: Decimals the published scores keep (2: whole percent).
DEFAULT_DECIMALS = 2


def largest_face(record: dict[str, Any]) -> dict[str, Any] | None:
    """The face with the largest box of a record (``None`` without faces)."""
    faces = record.get("faces") or []
    return max(faces, key=lambda f: f["box"][2] * f["box"][3]) if faces else None


def rounded(record: dict[str, Any], decimals: int = DEFAULT_DECIMALS) -> dict[str, Any]:
    """A copy of ``record`` whose faces' scores (and raw scores, with a profile) are rounded to ``decimals``
    (the record is not changed)."""
    def rounded_face(face: dict[str, Any]) -> dict[str, Any]:
        return {**face, **{key: {k: round(v, decimals) for k, v in face[key].items()}
                           for key in ("scores", "raw_scores") if face.get(key)}}

    return {**record, "faces": [rounded_face(f) for f in record.get("faces") or []]}


@dataclass
class PublishPolicy:
    """Decides which records go out (see the module docstring); :meth:`decide` is constant time."""

    every: float = DEFAULT_EVERY
    heartbeat: float = DEFAULT_HEARTBEAT
    decimals: int = DEFAULT_DECIMALS
    _last_time: float | None = field(default=None, init=False)
    _last_key: tuple | None = field(default=None, init=False)

    def key(self, record: dict[str, Any]) -> tuple:
        """(expression, face count, rounded scores of the largest face): what a change is measured on."""
        face = largest_face(record)
        scores = tuple(sorted((face.get("scores") or {}).items())) if face else ()
        return (face.get("label") if face else None, len(record.get("faces") or []), scores)

    def decide(self, record: dict[str, Any], now: float) -> dict[str, Any] | None:
        """The record to publish now (scores rounded), or ``None`` to skip this one."""
        out = rounded(record, self.decimals)
        key = self.key(out)
        last, since = self._last_key, None if self._last_time is None else now - self._last_time
        if last is None or since is None or key[:2] != last[:2]:
            due = True
        elif key != last:
            due = since >= self.every
        else:
            due = since >= self.heartbeat
        if not due:
            return None
        self._last_time, self._last_key = now, key
        return out
