"""``python -m benchmarks.http_load``: many clients polling the daemon's status endpoints at once.

Each of ``--clients`` threads requests ``--path`` over and over for ``--seconds`` (a new connection
per request, as health checkers do) and records the status and the time to the full answer. Loopback
only: the daemon under test runs on this machine (``fer-edge run ... --http 127.0.0.1:PORT``).

Example::

    fer-edge run --source ../shared/media/video/short_hamilton_clip.mp4 --loop --realtime \\
        --http 127.0.0.1:8765 --output /dev/null &
    python -m benchmarks.http_load --url http://127.0.0.1:8765/latest --clients 50 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from urllib.parse import urlsplit

import numpy as np

from edge_runtime.command_line import CommandParser, add_log_level, run_command
from edge_runtime.outputs.status_http import is_loopback

from .errors import BenchmarkError


def poll(url: str, until: float, timeout: float, results: list[tuple[int, float]], lock: threading.Lock) -> None:
    """Request ``url`` until ``until`` (monotonic seconds); append ``(status or 0 on failure, seconds)``."""
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError:
            status = 0
        with lock:
            results.append((status, time.monotonic() - started))


def measure(url: str, clients: int, seconds: float, timeout: float) -> dict:
    """Run the clients and summarise: requests, statuses, latency percentiles (ms), the slowest."""
    results: list[tuple[int, float]] = []
    lock = threading.Lock()
    until = time.monotonic() + seconds
    threads = [threading.Thread(target=poll, args=(url, until, timeout, results, lock), daemon=True)
               for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + timeout + 5)
    times = np.array([t for _, t in results]) * 1e3
    return {"url": url, "clients": clients, "seconds": seconds, "requests": len(results),
            "statuses": {str(k): v for k, v in sorted(Counter(s for s, _ in results).items())},
            "p50_ms": round(float(np.percentile(times, 50)), 1), "p99_ms": round(float(np.percentile(times, 99)), 1),
            "max_ms": round(float(times.max()), 1), "over_3s": int((times > 3000).sum())}


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.http_load``."""
    p = CommandParser(prog="python -m benchmarks.http_load", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="a loopback URL of the daemon, e.g. http://127.0.0.1:8765/latest")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=20.0, help="how long they poll (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=15.0, help="a client's limit per request (default: %(default)s)")
    add_log_level(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Measure and print one JSON line."""
    host = urlsplit(args.url).hostname or ""
    if not is_loopback(host):
        raise BenchmarkError(f"--url {args.url}: load only a daemon on this machine (127.0.0.1 or localhost)")
    if not (1 <= args.clients <= 500 and 0 < args.seconds <= 600 and 0 < args.timeout <= 60):
        raise BenchmarkError("--clients must be 1..500, --seconds in (0, 600] and --timeout in (0, 60]")
    print(json.dumps(measure(args.url, args.clients, args.seconds, args.timeout)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; 2 with one ``error:`` line on bad input."""
    return run_command(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
