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

#: The int8 dot-product instructions XNNPACK's int8 kernels use, by architecture, as /proc/cpuinfo names
#: them: AVX-512 VNNI and AVX-VNNI on x86, the Armv8.2 dot product (SDOT/UDOT) on ARM. Without them int8
#: convolutions run on plain multiply-adds and lose much of their speed-up over float.
INT8_DOT_FLAGS = {"x86_64": ("avx512_vnni", "avx_vnni"), "aarch64": ("asimddp",)}
INT8_DOT_NAMES = {"avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "asimddp": "SDOT (asimddp)"}


def read_cpuinfo() -> str:
    """/proc/cpuinfo's text (empty where there is none, e.g. macOS)."""
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def parse_cpuinfo(text: str) -> dict[str, str]:
    """The first value of each key of a /proc/cpuinfo text, keys lower-cased."""
    facts: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            facts.setdefault(key.strip().lower(), value.strip())
    return facts


def _cpuinfo() -> dict[str, str]:
    return parse_cpuinfo(read_cpuinfo())


def int8_dot_product(cpuinfo: str, machine: str) -> list[str] | None:
    """The int8 dot-product instructions a CPU has (``[]``: none), from its /proc/cpuinfo text (x86's
    ``flags``, ARM's ``Features``) and architecture; ``None`` when that cannot be told (no cpuinfo, or an
    architecture without a known flag)."""
    wanted = INT8_DOT_FLAGS.get({"amd64": "x86_64", "arm64": "aarch64"}.get(machine.lower(), machine.lower()))
    info = parse_cpuinfo(cpuinfo)
    flags = info.get("flags", info.get("features"))
    if wanted is None or flags is None:
        return None
    present = set(flags.split())
    return [flag for flag in wanted if flag in present]


def int8_dot_text(found: list[str] | None, machine: str) -> str:
    """How the benchmark names a CPU's int8 dot-product support, e.g. ``int8 dot product: AVX-512 VNNI``."""
    if found is None:
        return "int8 dot product: unknown"
    if found:
        return "int8 dot product: " + ", ".join(INT8_DOT_NAMES.get(flag, flag) for flag in found)
    wanted = INT8_DOT_FLAGS.get(machine, ())
    return "no int8 dot product (" + " or ".join(INT8_DOT_NAMES.get(flag, flag) for flag in wanted) + " absent)"


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
    cpuinfo = read_cpuinfo()
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "board": board_model(),
        "cores": os.cpu_count() or 1,
        "usable_cores": usable,
        "architecture": platform.machine(),
        "int8_dot_product": int8_dot_product(cpuinfo, platform.machine()),
        "virtualized": "hypervisor" in parse_cpuinfo(cpuinfo).get("flags", "").split(),
        "os": os_name(),
        "python": platform.python_version(),
        "runtime": runtime,
        "runtime_version": runtime_version(runtime),
        "numpy": package_version("numpy"),
        "opencv": package_version("opencv-python-headless"),
        "load_average_1_5_15min": load,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def cpu_line(device: dict[str, Any]) -> str:
    """The CPU and its int8 dot-product instructions, e.g. ``CPU: AMD EPYC (x86_64, 2 cores, virtual
    machine), int8 dot product: AVX-512 VNNI``; results recorded before the flags were read say so."""
    vm = ", virtual machine" if device.get("virtualized") else ""
    dot = (int8_dot_text(device["int8_dot_product"], device["architecture"]) if "int8_dot_product" in device
           else "int8 dot product: not recorded")
    return f"CPU: {device['cpu_model']} ({device['architecture']}, {device['cores']} cores{vm}), {dot}"


def describe(device: dict[str, Any]) -> str:
    """One line naming the machine, for tables and plots."""
    board = f"{device['board']}, " if device.get("board") else ""
    return (f"{board}{cpu_line(device).removeprefix('CPU: ')}, "
            f"{device['os']}, Python {device['python']}, {device['runtime']} {device['runtime_version']}")
