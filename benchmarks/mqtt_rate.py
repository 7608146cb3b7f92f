"""Count what a Home Assistant recorder would store from a running daemon's MQTT output.

    python -m benchmarks.mqtt_rate --broker mqtt://127.0.0.1:1883 --device hallway --seconds 60 [--json OUT]

Subscribes to the device's state topic and its retained discovery configs, renders every sensor's
``value_template`` on every state message (with jinja2, as Home Assistant does) and counts, per
minute: messages, and state changes of the entities enabled by default (what the recorder writes
for a fresh install) and of all entities. Needs paho-mqtt and jinja2 (``pip install -e '.[dev]'``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from edge_runtime.atomic_io import atomic_write_json
from edge_runtime.command_line import CommandParser, add_log_level, fail, run_command
from edge_runtime.outputs.ha_discovery import DISCOVERY_PREFIX
from edge_runtime.outputs.mqtt import DEFAULT_PREFIX


@dataclass
class Tally:
    """Messages and state changes per entity, from the discovery configs' templates."""

    configs: dict[str, dict] = field(default_factory=dict)
    messages: int = 0
    states: dict[str, str] = field(default_factory=dict)
    changes: dict[str, int] = field(default_factory=dict)

    def on_state(self, payload: dict, render) -> None:
        """Render every entity's state from one message; count the ones that changed."""
        self.messages += 1
        for object_id, config in self.configs.items():
            value = render(config["value_template"], payload)
            if self.states.get(object_id) != value:
                self.changes[object_id] = self.changes.get(object_id, 0) + 1
                self.states[object_id] = value


def measure(broker: str, device: str, seconds: float, prefix: str = DEFAULT_PREFIX) -> dict:
    """Listen for ``seconds``; the counts per minute (see the module docstring)."""
    import jinja2
    import paho.mqtt.client as paho

    env = jinja2.Environment()
    templates: dict[str, jinja2.Template] = {}

    def render(source: str, payload: dict) -> str:
        template = templates.setdefault(source, env.from_string(source))
        return template.render(value_json=payload).strip()

    parts = urlsplit(broker)
    tally, lock, started = Tally(), threading.Lock(), [None]
    state_topic = f"{prefix}/{device}/state"

    def on_message(_client, _userdata, message) -> None:
        with lock:
            if message.topic.startswith(f"{DISCOVERY_PREFIX}/"):
                tally.configs[message.topic.split("/")[3]] = json.loads(message.payload)
            elif message.topic == state_topic and tally.configs:
                started[0] = started[0] or time.monotonic()
                tally.on_state(json.loads(message.payload), render)

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"fer-edge-rate-{device}")
    if parts.username:
        client.username_pw_set(parts.username, parts.password)
    client.on_message = on_message
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.subscribe([(state_topic, 0), (f"{DISCOVERY_PREFIX}/sensor/{device}/+/config", 0)])
    client.loop_start()
    deadline = time.monotonic() + seconds + 30
    while time.monotonic() < deadline and (started[0] is None or time.monotonic() - started[0] < seconds):
        time.sleep(0.1)
    client.loop_stop()
    client.disconnect()
    with lock:
        if started[0] is None:
            raise RuntimeError(f"no state message on {state_topic} (is the daemon publishing there?)")
        minutes = (time.monotonic() - started[0]) / 60.0
        enabled = [o for o, c in tally.configs.items() if c.get("enabled_by_default", True)]
        return {"device": device, "seconds": round(minutes * 60, 1), "entities": sorted(tally.configs),
                "enabled_by_default": sorted(enabled),
                "messages_per_minute": round(tally.messages / minutes, 1),
                "enabled_changes_per_minute": round(sum(tally.changes.get(o, 0) for o in enabled) / minutes, 1),
                "all_changes_per_minute": round(sum(tally.changes.values()) / minutes, 1),
                "changes_per_message": round(sum(tally.changes.values()) / max(tally.messages, 1), 2),
                "changes_by_entity": dict(sorted(tally.changes.items()))}


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.mqtt_rate``."""
    p = CommandParser(prog="python -m benchmarks.mqtt_rate", description=__doc__.split("\n\n")[0])
    p.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt://[user:pass@]host[:port]")
    p.add_argument("--device", required=True, help="the daemon's --device-name")
    p.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"topic prefix (default {DEFAULT_PREFIX})")
    p.add_argument("--seconds", type=float, default=60.0, help="how long to listen after the first state (60)")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    add_log_level(p, default="warning")
    return p


def count_rates(args: argparse.Namespace) -> int:
    """The command's body: listen, print the counts; a broker that cannot be reached is one ``error:`` line."""
    try:
        result = measure(args.broker, args.device, args.seconds, args.prefix)
    except (ImportError, OSError, RuntimeError) as exc:
        return fail(str(exc))
    print("| messages/min | state changes/min (enabled by default) | state changes/min (all entities) | "
          "changes per message |\n|---|---|---|---|")
    print(f"| {result['messages_per_minute']} | {result['enabled_changes_per_minute']} | "
          f"{result['all_changes_per_minute']} | {result['changes_per_message']} |")
    if args.json:
        atomic_write_json(args.json, result)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Print the counts per minute as a markdown table row; 2 with one ``error:`` line on bad input."""
    return run_command(build_parser(), count_rates, argv)


if __name__ == "__main__":
    sys.exit(main())
