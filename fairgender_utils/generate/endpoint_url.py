"""Endpoint URLs without their secrets: what may be written to journals, provenance, errors and logs.

An OpenAI-compatible base URL may carry credentials: user info (``http://user:secret@host/v1``) or query
parameters (``?api-key=...``). :func:`public_url` is the form that may be written anywhere: no user info,
every query value replaced by ``***``, no fragment. :func:`connection_parts` splits a URL into what the
client needs to connect (the bare URL, the query as parameters sent with every request, basic-auth
credentials) and the secret strings that must never appear in a log line, which :func:`redact_logs`
filters out of the loggers of the HTTP stack.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

HIDDEN = "***"
_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore.connection", "httpcore.http11", "openai",
            "openai._base_client", "openai._legacy_response", "openai._response")


def _host(parts) -> str:
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port is not None else host


def public_url(url: str) -> str:
    """``url`` without user info, with every query value hidden and without a fragment."""
    try:
        p = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    query = "&".join(f"{quote(k)}={HIDDEN}" for k, _ in parse_qsl(p.query, keep_blank_values=True))
    return urlunsplit((p.scheme, _host(p), p.path, query, ""))


def has_credentials(url: str) -> bool:
    """Whether ``url`` carries user info or a query string."""
    try:
        p = urlsplit(url)
    except ValueError:
        return False
    return bool(p.username or p.password or p.query)


@dataclass(frozen=True)
class ConnectionParts:
    """How to reach an endpoint: the bare base URL, query parameters, basic auth, and the secrets."""

    base_url: str
    query: dict[str, str] = field(default_factory=dict, repr=False)
    auth: tuple[str, str] | None = field(default=None, repr=False)
    secrets: frozenset[str] = field(default_factory=frozenset, repr=False)


def connection_parts(url: str) -> ConnectionParts:
    """Split ``url`` into the bare URL the client is given and the credentials sent beside it."""
    p = urlsplit(url)
    query = dict(parse_qsl(p.query, keep_blank_values=True))
    auth = None
    if p.username is not None or p.password is not None:
        auth = (unquote(p.username or ""), unquote(p.password or ""))
    secrets = {s for s in (*query.values(), *(auth or ())) if len(s) >= 3}
    raw_user = p.netloc.rpartition("@")[0] if "@" in p.netloc else ""
    secrets |= {s for s in raw_user.split(":") if len(s) >= 3}  # also the percent-encoded forms
    return ConnectionParts(urlunsplit((p.scheme, _host(p), p.path, "", "")), query, auth, frozenset(secrets))


def hide(text: str, secrets: frozenset[str] | set[str]) -> str:
    """``text`` with every secret replaced by ``***`` (longest first)."""
    for s in sorted(secrets, key=len, reverse=True):
        text = text.replace(s, HIDDEN)
    return text


class _Redact(logging.Filter):
    """Replace every known secret in a log record's message by ``***``."""

    def __init__(self) -> None:
        super().__init__("fairgender-redact")
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg, record.args = hide(record.getMessage(), self.secrets), ()
        return True


_FILTER = _Redact()


def redact_logs(secrets: frozenset[str]) -> None:
    """Keep ``secrets`` out of every record of the HTTP client's loggers (httpx, httpcore, openai)."""
    if not secrets:
        return
    _FILTER.secrets |= secrets
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
