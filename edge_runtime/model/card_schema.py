"""Typed records to and from JSON: the one reader and writer of every model card field.

A record is a dataclass; each field is one JSON key of the same name, typed by its annotation
(``str``, ``int``, ``float``, ``bool``, ``X | None``, ``tuple[X, ...]``, ``dict[str, X]``, ``Any`` or
another record). :func:`to_json` writes the fields in their declared order; :func:`from_json` checks
every value against its annotation and refuses keys the record does not declare, naming the field.

Field markers: :func:`optional` (left out of the JSON while it holds its default), :func:`rest`
(gathers the keys the record does not name, written after the others) and :func:`not_in_json`.
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, Field, field, fields, is_dataclass
from functools import cache
from typing import Any, Union

_OPTIONAL, _REST, _SKIP = "card_optional", "card_rest", "card_skip"


class SchemaError(ValueError):
    """A JSON value does not fit its record; the message names the field (``input.height``)."""


def optional(default: Any = None, *, factory: Any = None) -> Any:
    """A field left out of the JSON while it holds its default."""
    if factory is not None:
        return field(default_factory=factory, metadata={_OPTIONAL: True})
    return field(default=default, metadata={_OPTIONAL: True})


def rest() -> Any:
    """A ``dict`` field holding the keys its record does not name (written after the named ones)."""
    return field(default_factory=dict, metadata={_REST: True})


def not_in_json(**kwargs: Any) -> Any:
    """A field that is not part of the JSON form (e.g. where a card was read from)."""
    return field(metadata={_SKIP: True}, **kwargs)


def _default(f: Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def to_json(value: Any) -> Any:
    """The JSON data of a record (or of a value inside one): dicts, lists, numbers, text, ``None``."""
    if is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for f in fields(value):
            item = getattr(value, f.name)
            if f.metadata.get(_SKIP):
                continue
            if f.metadata.get(_REST):
                extra = item
            elif not (f.metadata.get(_OPTIONAL) and item == _default(f)):
                out[f.name] = to_json(item)
        out.update({key: to_json(item) for key, item in extra.items() if key not in out})
        return out
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_json(cls: type, data: Any, where: str = "", **given: Any) -> Any:
    """The record ``cls`` read from JSON ``data``; ``given`` sets fields that are not in the JSON.

    Raises :class:`SchemaError` naming the first field (``where`` is the path of ``data``) that is
    missing, has a value of the wrong type, or is not a field of ``cls``. Keys ``cls`` lists in
    ``RETIRED_KEYS`` (fields older cards carry and the schema no longer has) are read past and dropped.
    """
    if not isinstance(data, dict):
        raise SchemaError(f"{where or 'the card'} must be a JSON object, got {_kind(data)}")
    named = {f.name: f for f in fields(cls) if not f.metadata.get(_SKIP) and not f.metadata.get(_REST)}
    extra_field = next((f.name for f in fields(cls) if f.metadata.get(_REST)), None)
    retired = getattr(cls, "RETIRED_KEYS", ())
    unknown = [key for key in data if key not in named and key not in retired]
    if unknown and extra_field is None:
        raise SchemaError(f"{_join(where, unknown[0])} is not a field of {where or 'a card'} "
                          f"(its fields: {', '.join(named)})")
    values = dict(given)
    for name, f in named.items():
        if name in data:
            values[name] = _value(_hints(cls)[name], data[name], _join(where, name))
        elif f.default is MISSING and f.default_factory is MISSING:
            raise SchemaError(f"{_join(where, name)} is missing")
    if extra_field is not None:
        values[extra_field] = {key: data[key] for key in unknown}
    return cls(**values)


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _kind(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"[:80]


def _value(hint: Any, value: Any, where: str) -> Any:
    """``value`` checked against the annotation ``hint`` (sequences become tuples, records are read)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = (arg for arg in args if arg is not type(None))
        return _value(inner, value, where)
    if is_dataclass(hint):
        return from_json(hint, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise SchemaError(f"{where} must be a list, got {_kind(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], item, f"{where}[{i}]") for i, item in enumerate(value))
        if len(value) != len(args):
            raise SchemaError(f"{where} must hold {len(args)} values, got {len(value)}")
        return tuple(_value(arg, item, f"{where}[{i}]") for i, (arg, item) in enumerate(zip(args, value, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{where} must be a JSON object, got {_kind(value)}")
        return {key: _value(args[1], item, f"{where}.{key}") for key, item in value.items()}
    return _scalar(hint, value, where)


def _scalar(hint: type, value: Any, where: str) -> Any:
    """A number, whole number, true/false or text, kept as written (an int stays an int)."""
    ok = {float: isinstance(value, int | float), int: isinstance(value, int),
          bool: isinstance(value, bool), str: isinstance(value, str)}[hint]
    if ok and (hint is bool or not isinstance(value, bool)):
        return value
    wanted = {float: "a number", int: "a whole number", bool: "true or false", str: "text"}[hint]
    raise SchemaError(f"{where} must be {wanted}, got {_kind(value)}")
