"""The daemon's configuration: every block validated once when built, resolved values ready, and frozen."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.service.config import (
    DaemonConfig,
    HttpOptions,
    MqttOptions,
    OutputOptions,
    RecognizerOptions,
    SourceOptions,
)

BAD = [
    (lambda: SourceOptions(" "), "--source is empty"),
    (lambda: SourceOptions("0", max_fps=0), "--max-fps must be > 0 (got 0)"),
    (lambda: SourceOptions("0", max_frames=-1), "--max-frames must be > 0"),
    (lambda: SourceOptions("0", size=(640, 0)), "--size must be WIDTHxHEIGHT"),
    (lambda: SourceOptions("0", wait_for_source=-1), "--wait-for-source must be 0 or more (got -1)"),
    (lambda: SourceOptions("0", backoff_initial=5, backoff_max=1), "0 < initial <= max"),
    (lambda: RecognizerOptions(detector="yolo"), "--detector 'yolo': choose one of"),
    (lambda: RecognizerOptions(tta="rotate"), "--tta 'rotate': choose one of"),
    (lambda: RecognizerOptions(threads=0), "--threads must be between 1 and 64 (got 0)"),
    (lambda: RecognizerOptions(margin=-0.1), "--margin must be 0 or more"),
    (lambda: RecognizerOptions(min_confidence=1.5), "--min-confidence must be between 0 and 1"),
    (lambda: RecognizerOptions(smoothing=0), "--smoothing must be > 0 and <= 1"),
    (lambda: RecognizerOptions(detect_max_side=-5), "--detect-max-side must be 0 or more (got -5)"),
    (lambda: OutputOptions(rotate_mb=1), "--rotate-mb needs --output FILE"),
    (lambda: OutputOptions("r.jsonl", keep=3), "--keep needs --rotate-mb"),
    (lambda: OutputOptions("r.jsonl", rotate_mb=1, keep=0), "--keep 0: keep between 1 and 1000"),
    (lambda: HttpOptions("host:port"), "bad --http address"),
    (lambda: HttpOptions("0.0.0.0:80"), "--http-allow-remote"),
    (lambda: HttpOptions(live=True), "--live needs --http"),
    (lambda: HttpOptions("0", live_fps=2), "--live-fps needs --live"),
    (lambda: HttpOptions("0", live=True, live_fps=0), "--live-fps must be > 0"),
    (lambda: MqttOptions(every=5), "--mqtt-every needs --mqtt"),
    (lambda: MqttOptions(device_name="hall"), "--device-name needs --mqtt"),
    (lambda: MqttOptions("mqtt://h", every=-1), "--mqtt-every must be 0 or more"),
    (lambda: MqttOptions("mqtt://h", heartbeat=0), "--mqtt-heartbeat must be > 0"),
    (lambda: DaemonConfig(SourceOptions("0", max_fps=0.5), http=HttpOptions(stale_after=1)),
     "--stale-after 1 is not longer than one frame at --max-fps 0.5"),
    (lambda: DaemonConfig(SourceOptions("0"), mqtt=MqttOptions("mqtt://h/a/#")), "bad --mqtt topic prefix"),
    (lambda: DaemonConfig(SourceOptions("0"), mqtt=MqttOptions("mqtt://h", ca="ca.pem")), "needs an mqtts:// URL"),
    # nan fails every comparison and inf every bound: the library path refuses them as the command line does
    (lambda: SourceOptions("0", max_fps=math.nan), "--max-fps must be a number (got nan)"),
    (lambda: SourceOptions("0", max_fps=math.inf), "--max-fps must be at most 1000 (got inf)"),
    (lambda: SourceOptions("0", wait_for_source=math.nan), "--wait-for-source must be a number (got nan)"),
    (lambda: RecognizerOptions(margin=math.nan), "--margin must be a number (got nan)"),
    (lambda: RecognizerOptions(threads=1000), "--threads must be at most 64 (got 1000)"),
    (lambda: OutputOptions("r.jsonl", rotate_mb=math.nan), "--rotate-mb must be a number"),
    (lambda: OutputOptions("r.jsonl", rotate_mb=1, keep=10**9), "--keep 1000000000: keep between 1 and 1000"),
    (lambda: OutputOptions(annotate="/nonexistent-folder/x.mp4"), "the folder /nonexistent-folder does not exist"),
    (lambda: HttpOptions("0", stale_after=math.nan), "--stale-after must be a number"),
    (lambda: MqttOptions("mqtt://h", heartbeat=math.inf), "--mqtt-heartbeat must be at most"),
]


@pytest.mark.parametrize(("build", "message"), BAD, ids=[m for _, m in BAD])
def test_a_bad_option_is_refused_when_its_block_is_built(build, message):
    with pytest.raises(EdgeRuntimeError, match=re.escape(message)) as info:  # ConfigError, or the URL parser's
        build()
    assert "\n" not in str(info.value)


def test_resolved_values_are_ready_and_blocks_are_frozen():
    config = DaemonConfig(SourceOptions("picamera2", max_fps=0.1, backoff_max=12.0),
                          output=OutputOptions("r.jsonl", rotate_mb=0.5),
                          http=HttpOptions("8765", live=True),
                          mqtt=MqttOptions("mqtts://u:p@broker/home", every=0, device_name="Hall Pi"))
    assert config.http.address == ("127.0.0.1", 8765) and config.http.stream_fps == 5.0
    assert config.output.rotate_bytes == 524288 and config.output.kept == 5
    assert config.stale_after == pytest.approx(30.0)  # three frame intervals at 0.1 fps
    mqtt = config.with_labels(("happy", "sad"))
    assert (mqtt.host, mqtt.port, mqtt.tls, mqtt.prefix, mqtt.device) == ("broker", 8883, True, "home", "hall_pi")
    assert (mqtt.every, mqtt.backoff_max, mqtt.labels) == (0, 12.0, ("happy", "sad"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.source.max_fps = 30  # type: ignore[misc]
    assert DaemonConfig("photo.jpg").source == SourceOptions("photo.jpg"), "a plain source spec is enough"
