"""Facts about the device a benchmark ran on, recorded with every result."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from edge_runtime.model.litert import interpreter_class, runtime_version


def _cpuinfo() -> dict[str, str]:
    """The first value of each key in /proc/cpuinfo (empty where there is none)."""
    facts: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return facts
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            facts.setdefault(key.strip().lower(), value.strip())
    return facts


def _lscpu_model() -> str | None:
    """``Model name`` from lscpu, which also names ARM cores (e.g. ``Cortex-A72``)."""
    if shutil.which("lscpu") is None:
        return None
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5,
                              env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "Model name" and value.strip() not in ("", "-"):
            return value.strip()
    return None


def cpu_model() -> str:
    """The CPU's model name: lscpu's, else /proc/cpuinfo's ``model name`` or hardware, else platform's."""
    found = _lscpu_model()
    if found:
        return found
    info = _cpuinfo()
    for key in ("model name", "hardware", "model", "cpu model", "processor"):
        value = info.get(key, "")
        if value and not value.isdigit():
            return value
    return platform.processor() or platform.machine() or "unknown"


def board_model() -> str | None:
    """The board (e.g. ``Raspberry Pi 4 Model B Rev 1.4``) from the device tree, if there is one."""
    try:
        return Path("/proc/device-tree/model").read_text(errors="replace").strip("\x00\n ") or None
    except OSError:
        return None


def os_name() -> str:
    """Operating system: distribution name where known, and the platform string."""
    try:
        pretty = platform.freedesktop_os_release().get("PRETTY_NAME")
    except (OSError, AttributeError):
        pretty = None
    return f"{pretty} ({platform.platform()})" if pretty else platform.platform()


def package_version(name: str) -> str:
    """Installed version of a distribution package, or ``not installed``."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def device_facts() -> dict[str, Any]:
    """CPU model, cores, architecture, OS, Python, the TFLite runtime and its version, load, time."""
    _, runtime = interpreter_class()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "board": board_model(),
        "cores": os.cpu_count() or 1,
        "usable_cores": usable,
        "architecture": platform.machine(),
        "virtualized": "hypervisor" in _cpuinfo().get("flags", "").split(),
        "os": os_name(),
        "python": platform.python_version(),
        "runtime": runtime,
        "runtime_version": runtime_version(runtime),
        "numpy": package_version("numpy"),
        "opencv": package_version("opencv-python-headless"),
        "load_average_1_5_15min": load,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def describe(device: dict[str, Any]) -> str:
    """One line naming the machine, for tables and plots."""
    board = f"{device['board']}, " if device.get("board") else ""
    vm = ", virtual machine" if device.get("virtualized") else ""
    return (f"{board}{device['cpu_model']} ({device['architecture']}, {device['cores']} cores{vm}), "
            f"{device['os']}, Python {device['python']}, {device['runtime']} {device['runtime_version']}")
