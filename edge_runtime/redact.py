"""Credentials out of every text the daemon writes or serves.

``rtsp://admin:s3cret@cam/stream`` becomes ``rtsp://admin:***@cam/stream``; query parameters that
carry secrets (``?password=...``, ``&token=...``) keep their name and lose their value.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*):[^\s/]*@")
_SECRET_PARAMS = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pass|pwd|token|access_token|auth|key|api_key|apikey|secret)=)"
    r"[^&;#\s\"']*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the password of every URL and every secret query value replaced by ``***``."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _SECRET_PARAMS.sub(lambda m: m["head"] + MASK, text)


class RedactingFormatter(logging.Formatter):
    """A log formatter whose output (message, arguments and traceback) carries no credentials."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
