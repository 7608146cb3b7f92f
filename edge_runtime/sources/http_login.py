"""Telling a refused login apart from a camera that is down, for ``http(s)://`` streams.

OpenCV reports only that a stream did not open. When an HTTP camera did not, one plain request (with
the URL's user and password, Basic or Digest) asks why: a 401 or 403 is a setting to fix, not an
outage to wait out, so it becomes a :class:`~edge_runtime.errors.SetupError`.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit, urlunsplit

from edge_runtime.errors import SetupError
from edge_runtime.redact import redact

REFUSED = {401: "Unauthorized", 403: "Forbidden"}


def _without_userinfo(url: str) -> tuple[str, str | None, str | None]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), user, password


def http_status(url: str, timeout: float) -> int | None:
    """The HTTP status ``url`` answers with (its credentials sent as the server asks), ``None`` if none."""
    plain, user, password = _without_userinfo(url)
    handlers: list[urllib.request.BaseHandler] = []
    if user is not None:
        manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        manager.add_password(None, plain, user, password or "")
        handlers += [urllib.request.HTTPBasicAuthHandler(manager), urllib.request.HTTPDigestAuthHandler(manager)]
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(urllib.request.Request(plain, method="GET"), timeout=timeout) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, ValueError):
        return None


def check_http_login(url: str, timeout: float) -> None:
    """Raise :class:`SetupError` when the HTTP camera at ``url`` refuses the login; else return."""
    status = http_status(url, timeout)
    if status in REFUSED:
        fix = "check the user and password in --source (or $FER_EDGE_SOURCE)" if "@" in url else \
            "add USER:PASSWORD@ before the host in --source (or $FER_EDGE_SOURCE)"
        raise SetupError(f"the camera at {redact(url)} refused the login (HTTP {status} {REFUSED[status]}); {fix}")
