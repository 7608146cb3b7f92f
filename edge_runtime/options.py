"""Options owned by their components: frozen dataclasses whose fields carry their command-line flag.

Each component's options block (:class:`~edge_runtime.sources.options.SourceOptions`,
:class:`~edge_runtime.recognition.options.RecognizerOptions`, the outputs' blocks in
:mod:`edge_runtime.outputs.options`) declares every setting once, as a field made by :func:`option`:
its default, its flag, its help. The block validates itself when it is built and raises one
:class:`ConfigError` line naming the flag and the fix. :func:`add_options` turns a block into argparse
arguments (the default is appended to the help from the field, never written twice) and
:func:`from_args` builds the block back from the parsed arguments, so adding an option is one field in
one file.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from edge_runtime.command_line import NUMBER_LIMIT
from edge_runtime.errors import EdgeRuntimeError

_CLI = "cli"


class ConfigError(EdgeRuntimeError, ValueError):
    """An option, or a combination of options, that cannot work; the message names the fix."""


@dataclass(frozen=True)
class Flag:
    """How a field appears on the command line."""

    flag: str
    help: str
    metavar: str | None = None
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    action: Any = None
    aliases: tuple[str, ...] = ()
    env: str | None = None  # the environment variable read when the flag is not given
    show_default: bool = True

    @property
    def dest(self) -> str:
        """The argparse attribute of the flag."""
        return self.flag.lstrip("-").replace("-", "_")


def option(default: Any = None, *, flag: str, help: str, factory: Callable[[], Any] | None = None,
           **cli: Any) -> Any:
    """A dataclass field that is also the command-line option ``flag``."""
    meta = {_CLI: Flag(flag, help, **cli)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _default(f: Any) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def add_options(parser: argparse.ArgumentParser | Any, block: type, title: str | None = None,
                exclude: tuple[str, ...] = ()) -> None:
    """Add an argument for every :func:`option` field of ``block`` but the ``exclude`` d ones (in an
    argument group ``title``)."""
    target = parser.add_argument_group(title) if title else parser
    for f in fields(block):
        spec: Flag | None = f.metadata.get(_CLI)
        if spec is None or f.name in exclude:
            continue
        default = _default(f)
        kwargs: dict[str, Any] = {"dest": spec.dest, "help": spec.help}
        if spec.env is not None:
            kwargs["default"] = os.environ.get(spec.env) or None
            kwargs["required"] = default is MISSING and kwargs["default"] is None
        elif default is not MISSING:
            kwargs["default"] = default
        else:
            kwargs["required"] = True
        if spec.action is not None:
            kwargs["action"] = spec.action
        else:
            for key in ("metavar", "type", "choices"):
                if getattr(spec, key) is not None:
                    kwargs[key] = getattr(spec, key)
        shown = kwargs.get("default")
        if spec.show_default and shown is not None and spec.env is None and not isinstance(shown, bool):
            kwargs["help"] += f" (default: {shown:g})" if isinstance(shown, float) else f" (default: {shown})"
        target.add_argument(spec.flag, *spec.aliases, **kwargs)


def from_args(block: type, args: argparse.Namespace, **given: Any) -> Any:
    """``block`` built from the parsed ``args`` (``given`` values win, and fields named in ``given`` are not
    read from ``args``); it validates itself."""
    values = {f.name: getattr(args, f.metadata[_CLI].dest) for f in fields(block)
              if _CLI in f.metadata and f.name not in given and hasattr(args, f.metadata[_CLI].dest)}
    return block(**{**values, **given})


def check(ok: bool, message: str) -> None:
    """Raise ``ConfigError(message)`` unless ``ok``."""
    if not ok:
        raise ConfigError(message)


def in_range(flag: str, value: float | None, low: float, high: float, *, low_open: bool = False,
             below: str | None = None) -> None:
    """``value`` (when given) is a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``).
    ``below`` says what the value must be when it is too small (default: between low and high)."""
    if value is None:
        return
    if math.isnan(value):
        raise ConfigError(f"{flag} must be a number (got nan)")
    if value > high:
        raise ConfigError(f"{flag} must be at most {high:g} (got {value:g})")
    if value < low or (low_open and value == low):
        raise ConfigError(f"{flag} must be {below or f'between {low:g} and {high:g}'} (got {value:g})")


def positive(flag: str, value: float | None, high: float = NUMBER_LIMIT) -> None:
    """``value`` (when given) is > 0 and at most ``high``."""
    in_range(flag, value, 0, high, low_open=True, below="> 0")


def at_least_zero(flag: str, value: float | None, high: float = NUMBER_LIMIT) -> None:
    """``value`` (when given) is >= 0 and at most ``high``."""
    in_range(flag, value, 0, high, below="0 or more")


def needs(flag: str, given: bool, other: str, present: bool) -> None:
    """``flag`` (when ``given``) needs ``other`` to be ``present``."""
    check(not given or present, f"{flag} needs {other}")
