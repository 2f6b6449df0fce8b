"""Credentials and the account's base URL: checked once, held out of sight.

This module owns the Authorization header and every check of what makes it (a token, or a
basic-auth pair) and of where it may be sent (``base_url``). It never shows a credential: not
in a repr, not in an error message; `Credentials.redact` removes them from text an answer
echoed back.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re

from yarl import URL

from ._errors import ConfigurationError

__all__ = ["Credentials", "base_url_of", "route_of"]

# C0 and C1 control characters (CR and LF among them) and DEL: never part of a credential,
# and refused in a header by aiohttp. A bearer token has no whitespace either (RFC 6750).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TOKEN_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\s]")
# ASCII: with IGNORECASE alone, [a-z] also matches letters that fold into it ('\u017f' long s,
# '\u212a' Kelvin sign), which the URL's host then spells as another account's ('support').
_SUBDOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE | re.ASCII)


class Credentials:
    """The Authorization header for one account; its repr never shows it.

    Give exactly one of ``token`` (sent as a Bearer token) and ``basic_auth``
    (``(username, secret)``). Bad values raise `ConfigurationError`, naming the problem and
    never the value.
    """

    __slots__ = ("_basic", "_parts", "_secret")

    def __init__(
        self, *, token: str | None = None, basic_auth: tuple[str, str] | None = None
    ) -> None:
        if (token is None) == (basic_auth is None):
            raise ConfigurationError("give exactly one of token and basic_auth")
        if token is not None:
            if not isinstance(token, str) or not token:
                raise ConfigurationError("token must be a non-empty string")
            # Caught here, once, rather than by aiohttp as a bare ValueError on every request.
            if _TOKEN_FORBIDDEN.search(token):
                raise ConfigurationError(
                    "token must not contain whitespace or control characters"
                    " (a trailing newline from a file?)"
                )
            basic = None
            secret = token
        else:
            assert basic_auth is not None
            if (
                not isinstance(basic_auth, tuple | list)
                or len(basic_auth) != 2
                or not all(isinstance(p, str) and p for p in basic_auth)
            ):
                raise ConfigurationError("basic_auth must be a (username, secret) pair of strings")
            if ":" in basic_auth[0]:
                raise ConfigurationError("basic_auth username must not contain ':' (RFC 7617)")
            if any(_CONTROL.search(part) for part in basic_auth):
                raise ConfigurationError(
                    "basic_auth must not contain control characters (a trailing newline?)"
                )
            pair = f"{basic_auth[0]}:{basic_auth[1]}".encode()
            basic = "Basic " + base64.b64encode(pair).decode("ascii")
            # The username (an email) is no secret.
            secret = basic_auth[1]
        # A bearer token's header is made per request (a pool holds credentials per account:
        # ~65 bytes each kept); basic auth's, encoded, once.
        self._basic = basic
        self._secret = secret
        # The spellings to redact, made at the first redaction: a pool holds credentials per
        # account, and most never see an error (~400 bytes each).
        self._parts: list[str] | None = None

    @property
    def header(self) -> str:
        """The Authorization header's value."""
        return self._basic if self._basic is not None else "Bearer " + self._secret

    def _spellings(self) -> list[str]:
        """Every spelling of the credentials an answer could echo: the header's value, the
        token or secret alone. Longest first, so a part inside another is not left half. A
        JSON body may echo them escaped (\\u20ac for €, \\/ for /): those spellings too."""
        header = self.header
        plain = {header, header.split(" ", 1)[1], self._secret}
        escaped = {json.dumps(part)[1:-1] for part in plain}
        spellings = plain | escaped | {part.replace("/", "\\/") for part in plain | escaped}
        return sorted(spellings, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """text with every occurrence of the credentials replaced."""
        if self._parts is None:
            self._parts = self._spellings()
        for part in self._parts:
            if part in text:
                text = text.replace(part, "<redacted>")
        return text

    def __repr__(self) -> str:
        return "<Credentials redacted>"


def base_url_of(*, subdomain: str | None, base_url: str | None) -> URL:
    """The account's base URL, from exactly one of ``subdomain`` and ``base_url``.

    Plain ``http://`` is refused unless the host is loopback (a bearer token in clear text
    could be read by anyone on the path), and so is a URL that carries credentials. A path
    is kept: requests go to it followed by their route (`route_of`), as through a gateway
    serving Zendesk accounts under paths of their own. A query or a fragment is refused:
    no route could keep it.
    """
    if (subdomain is None) == (base_url is None):
        raise ConfigurationError("give exactly one of subdomain and base_url")
    if subdomain is not None:
        if not isinstance(subdomain, str) or not _SUBDOMAIN.fullmatch(subdomain):
            raise ConfigurationError(f"subdomain {subdomain!r} is not a valid Zendesk subdomain")
        return URL(f"https://{subdomain}.zendesk.com")
    assert base_url is not None
    return _check_base_url(base_url)


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_base_url(base_url: str) -> URL:
    if not isinstance(base_url, str):
        raise ConfigurationError(f"base_url must be a string, got {type(base_url).__name__}")
    if _CONTROL.search(base_url):
        # yarl drops a tab or a newline: requests would go to another path than the one given
        # (and shown); an escape sequence would drive the terminal showing it. Not echoed.
        raise ConfigurationError("base_url must not contain control characters")
    try:
        url = URL(base_url)
    except ValueError as exc:
        # yarl's reason, unless the URL may hold credentials it could echo.
        reason = "" if "@" in base_url else f": {exc}"
        raise ConfigurationError(f"base_url is not a valid URL{reason}") from None
    if url.user is not None or url.password is not None or "@" in url.raw_authority:
        # It would show in repr, base_url and errors; credentials go in token or basic_auth.
        raise ConfigurationError("base_url must not contain credentials; use token or basic_auth")
    if url.raw_query_string or url.raw_fragment:
        raise ConfigurationError(
            "base_url must not have a query or fragment: requests go to its path followed"
            " by their route, and would drop it"
        )
    if url.scheme == "https" and url.host:
        return url
    if url.scheme == "http" and _is_loopback(url.host):
        return url
    if url.scheme == "http":
        raise ConfigurationError(
            f"base_url {base_url!r} uses plain http to a non-loopback host; use https"
        )
    raise ConfigurationError(f"base_url must be an http(s) URL, got {base_url!r}")


def route_of(base_url: URL, route: str) -> URL:
    """Where a request for ``route`` (``/api/v2/...``) goes: the base URL's path (without its
    trailing slash), then the route. ``with_path(route)`` alone would drop that path, and
    accounts at ``host/a`` and ``host/b`` would both reach ``host``."""
    return base_url.with_path(base_url.raw_path.rstrip("/") + route, encoded=True)
