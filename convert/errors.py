"""The errors of ``convert``: the CLI turns a :class:`ConvertError` into one ``error:`` line and exit 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from train.errors import UserError


class ConvertError(Exception):
    """Bad input to a conversion, or a variant that fails its checks; the message names the fix."""


@contextmanager
def train_errors_as_convert_errors() -> Iterator[None]:
    """Re-raise the ``train`` errors of the training code convert reuses as :class:`ConvertError`."""
    try:
        yield
    except UserError as exc:
        raise ConvertError(str(exc)) from exc
