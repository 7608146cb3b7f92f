"""The daemon's configuration: the components' option blocks, and the rules that span them.

Each component owns its options, declared once with their flags and validated when built:
:class:`~edge_runtime.sources.options.SourceOptions`,
:class:`~edge_runtime.recognition.options.RecognizerOptions`, and
:class:`~edge_runtime.outputs.options.OutputOptions`, :class:`~edge_runtime.outputs.options.HttpOptions`,
:class:`~edge_runtime.outputs.options.MqttOptions` (see :mod:`edge_runtime.options`). Only what needs
two blocks lives here: the health threshold (``--stale-after`` against ``--max-fps``) and the MQTT
settings (the URL with the source's backoff). Errors are :class:`ConfigError`: one line that names the
option and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from edge_runtime.options import ConfigError
from edge_runtime.outputs.mqtt import MqttConfig
from edge_runtime.outputs.options import (
    DEFAULT_KEEP,
    DEFAULT_LIVE_FPS,
    MQTT_ENV,
    HttpOptions,
    MqttOptions,
    OutputOptions,
    check_bind,
    parse_bind,
)
from edge_runtime.outputs.status_http import STALE_AFTER
from edge_runtime.recognition.options import DEFAULT_DETECT_MAX_SIDE, RecognizerOptions
from edge_runtime.sources.options import SourceOptions

#: The blocks and the names they are known by, re-exported for callers that build a DaemonConfig.
__all__ = ["DEFAULT_DETECT_MAX_SIDE", "DEFAULT_KEEP", "DEFAULT_LIVE_FPS", "MQTT_ENV", "ConfigError", "DaemonConfig",
           "HttpOptions", "MqttOptions", "OutputOptions", "RecognizerOptions", "SourceOptions", "check_bind",
           "parse_bind"]


@dataclass(frozen=True)
class DaemonConfig:
    """Everything ``python -m edge_runtime`` sets, in blocks; valid once constructed.

    ``stale_after`` and ``mqtt_config`` are resolved from more than one block.
    """

    source: SourceOptions
    recognizer: RecognizerOptions = field(default_factory=RecognizerOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    http: HttpOptions = field(default_factory=HttpOptions)
    mqtt: MqttOptions = field(default_factory=MqttOptions)
    stale_after: float = field(init=False, default=STALE_AFTER)
    mqtt_config: MqttConfig | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if isinstance(self.source, str):
            object.__setattr__(self, "source", SourceOptions(self.source))
        interval = self.source.frame_interval
        threshold = self.http.stale_after
        if threshold is None:
            threshold = max(STALE_AFTER, 3 * interval)
        if threshold <= interval:
            raise ConfigError(f"--stale-after {threshold:g} is not longer than one frame at --max-fps "
                              f"{self.source.max_fps:g} ({interval:g} s); give more than {interval:g}")
        object.__setattr__(self, "stale_after", threshold)
        if self.mqtt.url:
            beat = {} if self.mqtt.heartbeat is None else {"heartbeat": self.mqtt.heartbeat}
            every = {} if self.mqtt.every is None else {"every": self.mqtt.every}
            mqtt = MqttConfig.from_url(self.mqtt.url, device=self.mqtt.device_name, ca_file=self.mqtt.ca,
                                       url_origin=self.mqtt.url_origin,
                                       backoff_max=self.source.backoff_max, **every, **beat)
            object.__setattr__(self, "mqtt_config", mqtt)

    def with_labels(self, labels: tuple[str, ...]) -> MqttConfig | None:
        """The MQTT settings with the model's labels (known once the model is loaded)."""
        return None if self.mqtt_config is None else replace(self.mqtt_config, labels=tuple(labels))
