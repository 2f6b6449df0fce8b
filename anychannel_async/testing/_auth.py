"""Checking a request's Authorization header against an account's credentials.

An account is reached with either an OAuth bearer token (what the Channel framework issues) or
Basic credentials (what the API reference's code samples use). Comparisons are constant-time, and
nothing here stores or logs what it was given.
"""

from __future__ import annotations

import base64
import binascii
import hmac

__all__ = ["Credentials", "authenticate"]

#: A bearer token, or a (username, password) pair for Basic authentication.
Credentials = str | tuple[str, str]


def authenticate(header: str | None, credentials: Credentials | None) -> bool:
    """Whether the Authorization header carries exactly these credentials."""
    if header is None or credentials is None:
        return False
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and isinstance(credentials, str):
        return hmac.compare_digest(value.encode(), credentials.encode())
    if scheme == "basic" and isinstance(credentials, tuple):
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        username, sep, password = decoded.partition(":")
        expected_user, expected_password = credentials
        # Compare both halves even when the first differs, so timing tells nothing.
        user_ok = hmac.compare_digest(username.encode(), expected_user.encode())
        password_ok = hmac.compare_digest(password.encode(), expected_password.encode())
        return bool(sep) and user_ok and password_ok
    return False
