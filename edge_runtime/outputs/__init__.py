"""Where results go. Every output is a :class:`~edge_runtime.outputs.sink.Sink` built by
:func:`~edge_runtime.outputs.registry.build_sinks`: JSONL lines, the HTTP status endpoints, MQTT with
Home Assistant discovery, the live view and the annotated video."""
