"""Where results go. Every output is a :class:`~edge_runtime.outputs.sink.Sink` (JSONL lines, the HTTP
status endpoints, MQTT with Home Assistant discovery, the live view, the annotated video), built from the
daemon's configuration by :func:`edge_runtime.service.sinks.build_sinks`."""
