"""The daemon's outputs, built from its configuration in one place.

:func:`build_sinks` returns them as :class:`Outputs`: the live view (the HTTP output serves it), the HTTP
endpoints, MQTT and the annotated output in start order, and the JSONL results apart, because they
**open last**: an existing results file is replaced only once every other output came up (a bad option
or a taken port elsewhere leaves it as it was). Adding an output is one class in
:mod:`edge_runtime.outputs` and one line here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge_runtime.outputs.annotate import Annotator
from edge_runtime.outputs.jsonl import JsonlSink, OutputConfig
from edge_runtime.outputs.live_view import FrameHub
from edge_runtime.outputs.metrics import Metrics
from edge_runtime.outputs.mqtt import MqttSink
from edge_runtime.outputs.sink import Sink
from edge_runtime.outputs.status_http import StatusSink
from edge_runtime.service.config import DaemonConfig

#: Seconds the start waits for the MQTT broker before going on without it (it is waited for).
MQTT_CONNECT_WAIT = 2.0


@dataclass(frozen=True)
class Outputs:
    """The configured outputs: ``first`` in start order, then ``results``, the JSONL file, opened last."""

    first: list[Sink]
    results: JsonlSink

    def start_order(self, extra: Sequence[Sink] = ()) -> list[Sink]:
        """Every output in the order they start: ``first``, outputs of your own, the results file last."""
        return [*self.first, *extra, self.results]


def build_sinks(config: DaemonConfig, metrics: Metrics, labels: tuple[str, ...],
                source_fps: float | None = None) -> Outputs:
    """The outputs ``config`` asks for, constructed (not started); their metrics join ``metrics``.

    ``labels`` are the model's (MQTT announces them); ``source_fps`` sets the annotated video's rate
    when ``--max-fps`` does not.
    """
    sinks: list[Sink] = []
    live = FrameHub(max_fps=config.http.stream_fps) if config.http.live else None
    if live is not None:
        sinks.append(live)
    if config.http.address is not None:
        sinks.append(StatusSink(metrics, config.http.address, stale_after=config.stale_after, live=live))
    if config.mqtt_config is not None:
        sinks.append(MqttSink(config.with_labels(labels), connect_wait=MQTT_CONNECT_WAIT))
    if config.output.annotate:
        sinks.append(Annotator(config.output.annotate, fps=config.source.max_fps or source_fps))
    out = config.output
    results = JsonlSink(OutputConfig(out.target, out.append, out.rotate_bytes, out.kept))
    for sink in [*sinks, results]:
        metrics.register(sink)
    return Outputs(sinks, results)
