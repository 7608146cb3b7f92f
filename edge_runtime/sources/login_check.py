"""Telling a refused login apart from a camera that is down, for ``http(s)://`` and ``rtsp://`` streams.

OpenCV reports only that a stream did not open. When a network camera did not, one plain request (with
the URL's user and password, Basic or Digest, as the camera asks) asks why: a 401 or 403 is a setting to
fix, not an outage to wait out, so it becomes a :class:`~edge_runtime.errors.SetupError`. RTSP cameras
are asked with ``DESCRIBE`` (RFC 2326), the request a player sends first after ``OPTIONS``; ``rtsps://``
is not probed (its certificates are usually self-signed), so it keeps the plain "cannot open" error.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit, urlunsplit

from edge_runtime.errors import SetupError
from edge_runtime.redact import redact

REFUSED = {401: "Unauthorized", 403: "Forbidden"}
PROBED_SCHEMES = ("http", "https", "rtsp")
RTSP_PORT = 554
_MAX_HEADER_BYTES = 65536
_STATUS_LINE = re.compile(rb"^RTSP/\d\.\d (\d{3})")
_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')


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


def _describe(url: str, cseq: int, authorization: str | None, timeout: float) -> tuple[int, list[str]]:
    """Send one ``DESCRIBE`` on a new connection: the status and the ``WWW-Authenticate`` headers."""
    parts = urlsplit(url)
    request = f"DESCRIBE {url} RTSP/1.0\r\nCSeq: {cseq}\r\nAccept: application/sdp\r\nUser-Agent: fer-edge\r\n"
    if authorization:
        request += f"Authorization: {authorization}\r\n"
    with socket.create_connection((parts.hostname, parts.port or RTSP_PORT), timeout=timeout) as conn:
        conn.sendall((request + "\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer and len(answer) < _MAX_HEADER_BYTES:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    match = _STATUS_LINE.match(answer)
    if match is None:
        raise ValueError("not an RTSP answer")
    lines = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    challenges = [line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("www-authenticate:")]
    return int(match.group(1)), challenges


def digest_authorization(challenge: str, user: str, password: str, method: str, uri: str) -> str:
    """The ``Authorization`` value answering a ``Digest`` challenge (RFC 2617, MD5, with or without qop=auth)."""
    params = {key.lower(): quoted or bare for key, quoted, bare in _PARAM.findall(challenge)}
    realm, nonce = params.get("realm", ""), params.get("nonce", "")

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()        # RFC 2617 fixes MD5 for Digest

    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"{method}:{uri}")
    fields = {"username": user, "realm": realm, "nonce": nonce, "uri": uri, "response": md5(f"{ha1}:{nonce}:{ha2}")}
    unquoted = ""
    if "auth" in [q.strip() for q in params.get("qop", "").split(",")]:
        cnonce = os.urandom(8).hex()
        fields["response"] = md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
        fields["cnonce"] = cnonce
        unquoted = ", qop=auth, nc=00000001"
    if "opaque" in params:
        fields["opaque"] = params["opaque"]
    return "Digest " + ", ".join(f'{k}="{v}"' for k, v in fields.items()) + unquoted


def rtsp_status(url: str, timeout: float) -> int | None:
    """The RTSP status a ``DESCRIBE`` of ``url`` gets (its credentials sent as the camera asks), ``None`` if none."""
    plain, user, password = _without_userinfo(url)
    try:
        status, challenges = _describe(plain, 1, None, timeout)
        if status != 401 or user is None or not challenges:
            return status
        digest = next((c for c in challenges if c.lower().startswith("digest")), None)
        if digest is not None:
            authorization = digest_authorization(digest, user, password or "", "DESCRIBE", plain)
        else:
            authorization = "Basic " + base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        return _describe(plain, 2, authorization, timeout)[0]
    except (OSError, ValueError, UnicodeError):
        return None


def check_login(url: str, timeout: float) -> None:
    """Raise :class:`SetupError` when the network camera at ``url`` refuses the login; else return."""
    scheme = urlsplit(url).scheme
    if scheme not in PROBED_SCHEMES:
        return
    status = rtsp_status(url, timeout) if scheme == "rtsp" else http_status(url, timeout)
    if status in REFUSED:
        fix = "check the user and password in --source (or $FER_EDGE_SOURCE)" if "@" in url else \
            "add USER:PASSWORD@ before the host in --source (or $FER_EDGE_SOURCE)"
        protocol = "RTSP" if scheme == "rtsp" else "HTTP"
        raise SetupError(f"the camera at {redact(url)} refused the login ({protocol} {status} {REFUSED[status]}); "
                         f"{fix}")
