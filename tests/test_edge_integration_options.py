"""The MQTT and live-view options of ``python -m edge_runtime``: every mistake is one ``error:`` line with
exit 2, found before the model is loaded, with no credential in it."""

from __future__ import annotations

import logging

import pytest

from edge_runtime.redact import RedactingFormatter
from edge_runtime.service import cli

SECRET = "pw-s3cret"
MISTAKES = {
    ("--live",): "--live needs --http",
    ("--live-fps", "2"): "--live-fps needs --live",
    ("--http", "0", "--live", "--live-fps", "0"): "--live-fps must be > 0 (got 0)",
    ("--live", "--http", "0.0.0.0:0"): "--http-allow-remote",
    ("--mqtt-ca", "ca.pem"): "--mqtt-ca needs --mqtt",
    ("--mqtt-every", "5"): "--mqtt-every needs --mqtt",
    ("--device-name", "hall"): "--device-name needs --mqtt",
    ("--mqtt", f"mqtt://u:{SECRET}@host:99999"): "bad --mqtt URL 'mqtt://u:***@host:99999'",
    ("--mqtt", f"http://u:{SECRET}@host"): "with USER:PASSWORD@ before HOST for a login",
    ("--mqtt", f"mqtt://u:{SECRET}@h", "--mqtt-ca", "ca.pem"): "--mqtt-ca needs an mqtts:// URL",
    ("--mqtt", "mqtt://h", "--device-name", "!!!"): "bad --device-name '!!!'",
    ("--mqtt", "mqtt://h", "--mqtt-every", "-1"): "--mqtt-every must be 0 or more (got -1)",
    ("--detect-max-side", "-5"): "--detect-max-side must be 0 or more (got -5)",
    ("--tta", "rotate"): "argument --tta: invalid choice: 'rotate'",
}


def run(argv: list[str], capsys) -> tuple[int, list[str]]:
    """``cli.main(argv)`` in this process: (exit code, the lines of stderr that carry ``error:``)."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    finally:
        logging.getLogger().handlers = [h for h in logging.getLogger().handlers
                                        if not isinstance(h.formatter, RedactingFormatter)]
    err = capsys.readouterr().err
    assert "Traceback" not in err and SECRET not in err, err
    return code, [line for line in err.splitlines() if "error:" in line]


@pytest.mark.parametrize("options", list(MISTAKES), ids=" ".join)
def test_a_mistake_is_one_error_line_before_anything_loads(options, tmp_path, capsys):
    missing_model = str(tmp_path / "not-loaded.tflite")  # reached only if the option error came too late
    code, errors = run(["--source", str(tmp_path), "--model", missing_model, *options], capsys)
    assert code == 2 and len(errors) == 1 and MISTAKES[options] in errors[0], errors


def test_the_broker_url_can_come_from_the_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(cli.MQTT_ENV, f"mqtt://u:{SECRET}@h/a/#")
    code, errors = run(["--source", str(tmp_path), "--model", str(tmp_path / "m.tflite")], capsys)
    bad_prefix = "python -m edge_runtime: error: bad $FER_EDGE_MQTT topic prefix 'a': no '#', '+' or empty levels"
    assert code == 2 and errors == [bad_prefix], errors
    monkeypatch.setenv(cli.MQTT_ENV, "")
    assert cli.build_parser().parse_args(["--source", "x"]).mqtt is None
