"""Accounts: where each installation of the integration lives and the credentials it pushes with.

A Channel framework integration is installed by many Zendesk accounts, each install giving it an
``instance_push_id``, the account's subdomain and an access token. `Account` holds one install,
checked at construction by the same rules as `AnyChannelClient` (it reuses `Credentials` and
`base_url_of`); `AccountStore` keeps them in a SQLite file.

This module never shows a credential: not in a repr, not in an error, not in a log line. The
store's file holds tokens in clear, so it is created readable by its owner only, and a file
others can read is refused rather than used.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sqlite3
import stat
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self, TypeVar

import attrs

from ._credentials import Credentials, base_url_of
from ._errors import AccountStoreError, ClosedError, ConfigurationError, ValidationError

__all__ = ["Account", "AccountStore"]

_T = TypeVar("_T")
# Zendesk's schema: an instance_push_id is 1..255 characters.
_ID_MAX = 255

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    instance_push_id TEXT PRIMARY KEY,
    subdomain TEXT,
    base_url TEXT,
    token TEXT,
    basic_username TEXT,
    basic_secret TEXT,
    updated_at REAL NOT NULL
)
"""
_PUT = (
    "INSERT OR REPLACE INTO accounts (instance_push_id, subdomain, base_url, token,"
    " basic_username, basic_secret, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_ALL = (
    "SELECT instance_push_id, subdomain, base_url, token, basic_username, basic_secret"
    " FROM accounts ORDER BY instance_push_id"
)
_SELECT_ONE = (
    "SELECT instance_push_id, subdomain, base_url, token, basic_username, basic_secret"
    " FROM accounts WHERE instance_push_id = ?"
)
_DELETE = "DELETE FROM accounts WHERE instance_push_id = ?"
_Row = tuple[str, str | None, str | None, str | None, str | None, str | None]


def _check_instance_push_id(_account: Account, _field: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= _ID_MAX:
        raise ConfigurationError(f"instance_push_id must be a string of 1..{_ID_MAX} characters")


def _check_credentials(
    account: Account, _field: attrs.Attribute[tuple[str, str] | None], _value: object
) -> None:
    Credentials(token=account.token, basic_auth=account.basic_auth)


def _pair(value: tuple[str, str] | list[str] | None) -> tuple[str, str] | None:
    # A list (from JSON, say) becomes a tuple, so the account stays hashable; what is not a
    # pair of strings is refused by Credentials, without showing it.
    return tuple(value) if isinstance(value, list) else value  # type: ignore[return-value]


@attrs.frozen(repr=False)
class Account:
    """One installation of the integration: which Zendesk account, and how to authenticate.

    Give exactly one of ``subdomain`` (``https://{subdomain}.zendesk.com``) and ``base_url``
    (plain ``http://`` only to a loopback host, e.g. the emulator), and exactly one of
    ``token`` (the ``zendesk_access_token`` Zendesk gave the install, sent as a Bearer token)
    and ``basic_auth`` (``(username, secret)``). A bad value raises `ConfigurationError`
    naming the problem, never the value. The repr never shows the token or the secret.
    """

    instance_push_id: str = attrs.field(validator=_check_instance_push_id)
    subdomain: str | None = attrs.field(default=None, kw_only=True)
    # Named base_url in __init__ (attrs drops the underscore); the property reads it back.
    _base_url: str | None = attrs.field(default=None, kw_only=True)
    token: str | None = attrs.field(default=None, kw_only=True)
    basic_auth: tuple[str, str] | None = attrs.field(
        default=None, kw_only=True, converter=_pair, validator=_check_credentials
    )
    _url: str = attrs.field(init=False, eq=False)

    @_url.default
    def _derive_url(self) -> str:
        url = base_url_of(subdomain=self.subdomain, base_url=self._base_url)
        return self._base_url if self._base_url is not None else str(url)

    @property
    def base_url(self) -> str:
        """The account's base URL: as given, or ``https://{subdomain}.zendesk.com``."""
        return self._url

    def __repr__(self) -> str:
        where = (
            f"subdomain={self.subdomain!r}"
            if self.subdomain is not None
            else f"base_url={self._base_url!r}"
        )
        auth = "token=<redacted>" if self.token is not None else "basic_auth=<redacted>"
        return f"Account({self.instance_push_id!r}, {where}, {auth})"


class _State:
    UNOPENED, OPENED, CLOSED = "unopened", "opened", "closed"


class AccountStore:
    """Accounts in a SQLite file, by instance push id.

    Use it as ``async with AccountStore(path) as store:``; leaving the block closes it, and a
    closed store cannot be opened again (`ClosedError`: create a new one). Every SQLite call
    runs on one thread of the store's own, never on the event loop, one at a time in the order
    they were asked. A call cancelled while its thread runs it may still complete.

    The file is created readable and writable by its owner only (0600), before SQLite opens
    it; SQLite gives its ``-wal`` and ``-shm`` files the same mode. An existing file that
    others may read or write is refused, not fixed: the tokens in it may have been read
    already, which only its owner can judge (have them reissued, then ``chmod 600`` it).
    The file is in WAL mode, so other processes may read it (or write it, taking turns)
    while a store holds it.

    Every failure of the file (not a store, unreadable, locked past 5 s, disk full) raises
    `AccountStoreError`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._state = _State.UNOPENED
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        #: Changes made through this object (put, remove): a `PushPool` over the store reads
        #: an open account again when it moved, so a new token or a removal takes effect on
        #: the next submit. Changes by other processes are seen when a pipeline reopens.
        self.revision = 0

    def __repr__(self) -> str:
        return f"<AccountStore {self.path!r} state={self._state}>"

    async def __aenter__(self) -> Self:
        if self._state == _State.CLOSED:
            raise ClosedError("this AccountStore is closed; create a new one")
        if self._state == _State.OPENED:
            raise AccountStoreError(f"accounts store {self.path!r} is already open")
        self._state = _State.OPENED
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="anychannel-accounts"
        )
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._connect)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the file once the calls already asked are done, and stop the thread.
        Idempotent."""
        if self._state == _State.CLOSED:
            return
        self._state = _State.CLOSED
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._disconnect)
        finally:
            executor.shutdown(wait=False)

    async def put(self, account: Account) -> None:
        """Store account, replacing the one stored under its instance push id, if any."""
        if not isinstance(account, Account):
            raise ValidationError("account", f"must be an Account, got {type(account).__name__}")
        username, secret = account.basic_auth or (None, None)
        row = (
            account.instance_push_id,
            account.subdomain,
            None if account.subdomain is not None else account.base_url,
            account.token,
            username,
            secret,
            time.time(),
        )
        await self._run(lambda db: db.execute(_PUT, row))
        self.revision += 1

    async def get(self, instance_push_id: str) -> Account | None:
        """The account stored under instance_push_id, or None."""
        rows: list[_Row] = await self._run(
            lambda db: db.execute(_SELECT_ONE, (instance_push_id,)).fetchall()
        )
        return self._account(rows[0]) if rows else None

    async def list(self) -> list[Account]:
        """Every stored account, by instance push id."""
        rows: list[_Row] = await self._run(lambda db: db.execute(_SELECT_ALL).fetchall())
        return [self._account(row) for row in rows]

    async def remove(self, instance_push_id: str) -> bool:
        """Remove the account stored under instance_push_id: True if there was one, False
        (and no error) if there was none."""
        count: int = await self._run(lambda db: db.execute(_DELETE, (instance_push_id,)).rowcount)
        self.revision += 1
        return count > 0

    # -- the store's thread ------------------------------------------------------------------

    async def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run work on the store's thread with its connection; sqlite's errors mapped."""
        if self._state == _State.UNOPENED:
            raise AccountStoreError(
                f"accounts store {self.path!r} is not open; use `async with AccountStore(path)`"
            )
        executor = self._executor
        if self._state == _State.CLOSED or executor is None:
            raise ClosedError("this AccountStore is closed; create a new one")

        def call() -> _T:
            if self._db is None:
                raise AccountStoreError(f"accounts store {self.path!r} is not open")
            try:
                return work(self._db)
            except sqlite3.Error as exc:
                raise AccountStoreError(_explain(self.path, exc)) from None

        return await asyncio.get_running_loop().run_in_executor(executor, call)

    def _connect(self) -> None:
        _create_private(self.path)
        try:
            db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        except (sqlite3.Error, ValueError) as exc:  # ValueError: e.g. a NUL in the path
            raise AccountStoreError(_explain(self.path, exc)) from None
        try:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
            if tables and "accounts" not in tables:
                # Another SQLite file (an outbox?): adding a table to it would hide the mistake.
                raise AccountStoreError(
                    f"{self.path!r} is a SQLite database but not an accounts store"
                )
            db.execute("PRAGMA journal_mode=WAL")
            # A lost token means a lost install: a commit survives a power cut too.
            db.execute("PRAGMA synchronous=FULL")
            db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            db.close()
            raise AccountStoreError(_explain(self.path, exc)) from None
        except BaseException:
            db.close()
            raise
        self._db = db

    def _disconnect(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def _account(self, row: _Row) -> Account:
        instance_push_id, subdomain, base_url, token, username, secret = row
        basic_auth = (username, secret) if username is not None and secret is not None else None
        try:
            return Account(
                instance_push_id,
                subdomain=subdomain,
                base_url=base_url,
                token=token,
                basic_auth=basic_auth,
            )
        except ConfigurationError as exc:  # a row written by hand, or by another program
            raise AccountStoreError(
                f"accounts store {self.path!r}: the row of {instance_push_id!r} is invalid: {exc}"
            ) from None


def _create_private(path: str) -> None:
    """Create path readable by its owner only, or check that an existing one (and its -wal
    and -shm files) is."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except (OSError, ValueError) as exc:  # ValueError: e.g. a NUL in the path
        raise AccountStoreError(f"accounts store {path!r}: cannot open it: {exc}") from None
    if sys.platform == "win32":  # pragma: no cover - no POSIX modes: the ACLs decide
        return
    for name in (path, path + "-wal", path + "-shm"):
        try:
            mode = stat.S_IMODE(os.stat(name).st_mode)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise AccountStoreError(f"accounts store {path!r}: {exc}") from None
        if mode & 0o077:
            raise AccountStoreError(
                f"accounts store {name!r} can be read or written by other users (mode"
                f" {mode:04o}) and holds tokens: if others may have read them, have them"
                f" reissued; then `chmod 600 {name}`"
            )


def _explain(path: str, exc: sqlite3.Error | ValueError) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return f"accounts store {path!r} is locked by another process ({text})"
    if "not a database" in text or "malformed" in text:
        return f"{path!r} is not an accounts store ({text})"
    return f"accounts store {path!r}: {text}"
