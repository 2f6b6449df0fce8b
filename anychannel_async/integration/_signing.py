"""Signing what the integration hands Zendesk, so that what comes back can be believed.

Zendesk signs nothing it sends to an integration: anyone can POST a channelback, a pull, an
event or an admin form with made-up values. So the integration signs what it gives Zendesk to
hold (``metadata``: which account) and what it gives the administrator's browser to send back
(the admin form's hidden fields), with HMAC-SHA256 under the integration's secret, and checks
the signature, in constant time, on the way back.

Every signature is versioned (``v1``) and bound to its purpose: a metadata signature is no
admin-form signature, whatever the text. This module never shows the secret, and never puts a
signature or the text it signs in an error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence

from anychannel_async._errors import ConfigurationError

__all__ = ["METADATA_MAX", "Signer"]

#: Zendesk's bound on metadata (and state): 5,000 characters.
METADATA_MAX = 5_000
#: The least secret accepted, in bytes: a 256-bit HMAC key.
SECRET_MIN_BYTES = 32
_VERSION = "v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs and checks metadata and admin forms with one secret; its repr shows nothing of it.

    ``secret`` is text or bytes of at least 32 bytes (`ConfigurationError` otherwise, without
    quoting it). Each purpose gets its own key, derived from the secret.
    """

    __slots__ = ("_form_key", "_metadata_key")

    def __init__(self, secret: str | bytes) -> None:
        if isinstance(secret, str):
            secret = secret.encode()
        if not isinstance(secret, bytes):
            raise ConfigurationError("secret must be a str or bytes")
        if len(secret) < SECRET_MIN_BYTES:
            raise ConfigurationError(
                f"secret must be at least {SECRET_MIN_BYTES} bytes; e.g. the output of"
                " `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        self._metadata_key = _derive(secret, b"metadata")
        self._form_key = _derive(secret, b"admin-form")

    def __repr__(self) -> str:
        return "<Signer redacted>"

    # -- metadata ----------------------------------------------------------------------------

    def metadata(self, instance_push_id: str) -> str:
        """The metadata Zendesk keeps for an account: its instance push id, signed."""
        payload = _b64(instance_push_id.encode())
        return f"{_VERSION}.{payload}.{_b64(self._mac(self._metadata_key, payload))}"

    def instance_of(self, metadata: str | None) -> str | None:
        """The instance push id metadata names, when it carries this integration's signature;
        None for anything else (absent, too long, another version, altered, another secret's)."""
        # Ours is ASCII: anything else (a lone surrogate too) is no metadata of ours.
        if (
            not isinstance(metadata, str)
            or not 0 < len(metadata) <= METADATA_MAX
            or not metadata.isascii()
        ):
            return None
        version, _, rest = metadata.partition(".")
        payload, _, signature = rest.partition(".")
        if version != _VERSION or not payload or not signature:
            return None
        # The signature's text is compared, not its decoding: base64 has several spellings of
        # one digest (the last character's spare bits), and only ours is accepted.
        expected = _b64(self._mac(self._metadata_key, payload))
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return None
        try:
            return _unb64(payload).decode()
        except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
            return None

    # -- admin forms -------------------------------------------------------------------------

    def form_signature(self, fields: Sequence[tuple[str, str]]) -> str:
        """The signature of an admin form's hidden fields, in their order."""
        return f"{_VERSION}.{_b64(self._mac(self._form_key, _canonical(fields)))}"

    def form_valid(self, fields: Sequence[tuple[str, str]], signature: str | None) -> bool:
        """Whether signature is this integration's for exactly these fields."""
        if not isinstance(signature, str) or not signature.isascii():
            return False
        expected = self.form_signature(fields)
        return hmac.compare_digest(signature.encode(), expected.encode())

    @staticmethod
    def _mac(key: bytes, text: str) -> bytes:
        return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return hmac.new(
        secret, b"anychannel-async/" + purpose + b"/" + _VERSION.encode(), "sha256"
    ).digest()


def _canonical(fields: Sequence[tuple[str, str]]) -> str:
    # JSON of the pairs: no choice of values can make two different forms read alike.
    return json.dumps([[name, value] for name, value in fields], separators=(",", ":"))
