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
import json
import os
import sqlite3
import stat
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from types import MappingProxyType, TracebackType
from typing import Self, TypeVar, cast

import attrs
from yarl import URL

from ._credentials import Credentials, base_url_of
from ._errors import AccountStoreError, ClosedError, ConfigurationError, ValidationError
from ._models import ID_MAX

__all__ = [
    "REDIS_SCHEMES",
    "Account",
    "AccountStore",
    "Claim",
    "RedisAccountStore",
    "unix_socket_problem",
]

_T = TypeVar("_T")
#: The URL schemes that name a Redis store (`AccountStore` returns a `RedisAccountStore`):
#: redis-py's three (TCP, TLS, a Unix socket).
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    instance_push_id TEXT PRIMARY KEY,
    subdomain TEXT,
    base_url TEXT,
    token TEXT,
    basic_username TEXT,
    basic_secret TEXT,
    updated_at REAL NOT NULL,
    name TEXT,
    settings TEXT,
    active INTEGER NOT NULL DEFAULT 1
)
"""
# Columns added after the first release: a store written before them gains them on open.
_ADDED_COLUMNS = (
    ("name", "name TEXT"),
    ("settings", "settings TEXT"),
    ("active", "active INTEGER NOT NULL DEFAULT 1"),
)
# A channelback's answer, by instance push id and request_unique_identifier: answer NULL while
# its handler runs (claimed_at says since when), the answer's JSON once it is known.
_ANSWERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS channelback_answers (
    key TEXT PRIMARY KEY,
    answer TEXT,
    claimed_at REAL NOT NULL
)
"""
_ANSWERS_INDEX = (
    "CREATE INDEX IF NOT EXISTS channelback_answers_age ON channelback_answers (claimed_at)"
)
_PUT = (
    "INSERT OR REPLACE INTO accounts (instance_push_id, subdomain, base_url, token,"
    " basic_username, basic_secret, updated_at, name, settings, active)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_COLUMNS = (
    "instance_push_id, subdomain, base_url, token, basic_username, basic_secret, name,"
    " settings, active"
)
_SELECT_ALL = f"SELECT {_COLUMNS} FROM accounts ORDER BY instance_push_id"  # noqa: S608 - constants
_SELECT_ONE = f"SELECT {_COLUMNS} FROM accounts WHERE instance_push_id = ?"  # noqa: S608
_DELETE = "DELETE FROM accounts WHERE instance_push_id = ?"
_SET_ACTIVE = "UPDATE accounts SET active = ?, updated_at = ? WHERE instance_push_id = ?"
_Row = tuple[
    str, str | None, str | None, str | None, str | None, str | None, str | None, str | None, int
]


def _check_instance_push_id(_account: Account, _field: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= ID_MAX:
        raise ConfigurationError(f"instance_push_id must be a string of 1..{ID_MAX} characters")


def _check_credentials(
    account: Account, _field: attrs.Attribute[tuple[str, str] | None], _value: object
) -> None:
    Credentials(token=account.token, basic_auth=account.basic_auth)


def _check_name(_account: Account, _field: attrs.Attribute[str | None], value: object) -> None:
    if value is not None and (not isinstance(value, str) or len(value) > ID_MAX):
        raise ConfigurationError(f"name must be None or a string of at most {ID_MAX} characters")


def _check_active(_account: Account, _field: attrs.Attribute[bool], value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(f"active must be a bool, got {type(value).__name__}")


def _settings_pairs(
    value: Mapping[str, str] | Iterable[tuple[str, str]] | None,
) -> tuple[tuple[str, str], ...]:
    # Sorted pairs: equal settings make equal (and equally hashed) accounts, whatever the
    # order they were given in. Values are never quoted: they may be credentials.
    if value is None:
        return ()
    pairs = list(value.items()) if isinstance(value, Mapping) else list(value)
    for pair in pairs:
        if (
            not isinstance(pair, tuple | list)
            or len(pair) != 2
            or not all(isinstance(part, str) for part in pair)
        ):
            raise ConfigurationError("settings must map strings to strings")
    settings = dict(pairs)
    if len(settings) != len(pairs):
        raise ConfigurationError("settings must not name a field twice")
    return tuple(sorted(settings.items()))


def _pair(value: tuple[str, str] | list[str] | None) -> tuple[str, str] | None:
    # A list (from JSON, say) becomes a tuple, so the account stays hashable; what is not a
    # pair of strings is refused by Credentials, without showing it.
    return tuple(value) if isinstance(value, list) else value  # type: ignore[return-value]


@attrs.frozen(repr=False)
class Account:
    """One installation of the integration: which Zendesk account, and how to authenticate.

    Give exactly one of ``subdomain`` (``https://{subdomain}.zendesk.com``) and ``base_url``
    (plain ``http://`` only to a loopback host, e.g. the emulator; a path is kept, each
    request going to it followed by its route; no query or fragment), and exactly one of
    ``token`` (the ``zendesk_access_token`` Zendesk gave the install, sent as a Bearer token)
    and ``basic_auth`` (``(username, secret)``). A bad value raises `ConfigurationError`
    naming the problem, never the value. The repr never shows the token or the secret.

    What an integration's admin page asked is kept with it: ``name`` (the account's name in
    Zendesk) and ``settings`` (a mapping of strings, read back as a read-only mapping; its
    values may be credentials of the origin network, so the repr names its keys only).
    ``active`` is False once Zendesk deactivated the install: a `PushPool` refuses it.
    """

    instance_push_id: str = attrs.field(validator=_check_instance_push_id)
    subdomain: str | None = attrs.field(default=None, kw_only=True)
    # Named base_url in __init__ (attrs drops the underscore); the property reads it back.
    _base_url: str | None = attrs.field(default=None, kw_only=True)
    token: str | None = attrs.field(default=None, kw_only=True)
    basic_auth: tuple[str, str] | None = attrs.field(
        default=None, kw_only=True, converter=_pair, validator=_check_credentials
    )
    name: str | None = attrs.field(default=None, kw_only=True, validator=_check_name)
    # Named settings in __init__; held as sorted pairs, so the account stays hashable.
    _settings: tuple[tuple[str, str], ...] = attrs.field(
        default=(), kw_only=True, converter=_settings_pairs
    )
    active: bool = attrs.field(default=True, kw_only=True, validator=_check_active)
    _url: str = attrs.field(init=False, eq=False)

    @_url.default
    def _derive_url(self) -> str:
        url = base_url_of(subdomain=self.subdomain, base_url=self._base_url)
        return self._base_url if self._base_url is not None else str(url)

    @property
    def base_url(self) -> str:
        """The account's base URL: as given, or ``https://{subdomain}.zendesk.com``."""
        return self._url

    @property
    def settings(self) -> Mapping[str, str]:
        """What the integration's admin page asked, by field (read-only)."""
        return MappingProxyType(dict(self._settings))

    def __repr__(self) -> str:
        where = (
            f"subdomain={self.subdomain!r}"
            if self.subdomain is not None
            else f"base_url={self._base_url!r}"
        )
        auth = "token=<redacted>" if self.token is not None else "basic_auth=<redacted>"
        extra = "" if self.name is None else f", name={self.name!r}"
        if self._settings:
            extra += f", settings=<{', '.join(key for key, _ in self._settings)}>"
        if not self.active:
            extra += ", active=False"
        return f"Account({self.instance_push_id!r}, {where}, {auth}{extra})"


@attrs.frozen
class Claim:
    """What `AccountStore.claim_answer` found: the answer already given, or whether the
    caller now owns the work (when neither, another process is at it)."""

    #: The remembered answer (as given to `AccountStore.remember_answer`), or None.
    answer: str | None
    #: True when the caller claimed the key and must remember an answer or release it.
    owned: bool


class _State:
    UNOPENED, OPENED, CLOSED = "unopened", "opened", "closed"


class AccountStore:
    """Accounts in a SQLite file (or, given a ``redis://`` URL, in Redis), by instance push id.

    ``AccountStore("redis://…")`` (or ``rediss://``, TLS; ``unix://``, a socket) returns a
    `RedisAccountStore`: the same interface, shared by every replica of a service (see there).

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

    def __new__(cls, path: str | os.PathLike[str]) -> AccountStore:
        # A URL selects the Redis store; a path, as ever, the SQLite file. Both are
        # AccountStores, so whatever takes one (PushPool, ChannelIntegration) takes either.
        if cls is AccountStore and isinstance(path, str) and path.startswith(REDIS_SCHEMES):
            return super().__new__(RedisAccountStore)
        return super().__new__(cls)

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

    def _opening(self) -> None:
        """Once only: a closed store is not opened again, an open one not twice."""
        if self._state == _State.CLOSED:
            raise ClosedError("this AccountStore is closed; create a new one")
        if self._state == _State.OPENED:
            raise AccountStoreError(f"accounts store {self.path!r} is already open")
        self._state = _State.OPENED

    async def __aenter__(self) -> Self:
        self._opening()
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
        row = _row_of(account)
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

    async def set_active(self, instance_push_id: str, active: bool) -> bool:
        """Mark the account stored under instance_push_id active or not (a `PushPool` refuses
        an inactive one): True if there was one, False (and no error) if there was none."""
        if not isinstance(active, bool):
            raise ValidationError("active", f"must be a bool, got {type(active).__name__}")
        row = (int(active), time.time(), instance_push_id)
        count: int = await self._run(lambda db: db.execute(_SET_ACTIVE, row).rowcount)
        self.revision += 1
        return count > 0

    # -- channelback answers -----------------------------------------------------------------

    async def claim_answer(self, key: str, *, lease: float, keep: float) -> Claim:
        """Claim the work of answering key, or find its answer: in one transaction, so of many
        processes sharing the file exactly one owns a key at a time.

        A claim whose owner gave no answer within ``lease`` seconds (it died) is taken over.
        Answers and claims older than ``keep`` seconds are forgotten on the way.
        """

        def claim(db: sqlite3.Connection) -> Claim:
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM channelback_answers WHERE claimed_at < ?", (now - keep,))
                found = db.execute(
                    "SELECT answer, claimed_at FROM channelback_answers WHERE key = ?", (key,)
                ).fetchone()
                if found is None or (found[0] is None and found[1] < now - lease):
                    db.execute(
                        "INSERT OR REPLACE INTO channelback_answers (key, answer, claimed_at)"
                        " VALUES (?, NULL, ?)",
                        (key, now),
                    )
                    result = Claim(answer=None, owned=True)
                else:
                    result = Claim(answer=found[0], owned=False)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return result

        return await self._run(claim)

    async def remember_answer(self, key: str, answer: str) -> None:
        """Keep the answer to a key claimed with `claim_answer`."""
        await self._run(
            lambda db: db.execute(
                "UPDATE channelback_answers SET answer = ? WHERE key = ?", (answer, key)
            )
        )

    async def release_claim(self, key: str) -> None:
        """Give up a claim without an answer: the next `claim_answer` of key owns it."""
        await self._run(
            lambda db: db.execute(
                "DELETE FROM channelback_answers WHERE key = ? AND answer IS NULL", (key,)
            )
        )

    @property
    def is_open(self) -> bool:
        """True between entering ``async with`` and closing."""
        return self._state == _State.OPENED

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
            present = {row[1] for row in db.execute("PRAGMA table_info(accounts)")}
            for column, declaration in _ADDED_COLUMNS:
                if column not in present:
                    db.execute(f"ALTER TABLE accounts ADD COLUMN {declaration}")
            db.execute(_ANSWERS_SCHEMA)
            db.execute(_ANSWERS_INDEX)
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
        return _account_of(row, self.path)


def _row_of(
    account: Account,
) -> tuple[
    str,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    float,
    str | None,
    str | None,
    int,
]:
    """An account as a store keeps it: the SQLite row (the Redis store keeps the same fields)."""
    if not isinstance(account, Account):
        raise ValidationError("account", f"must be an Account, got {type(account).__name__}")
    username, secret = account.basic_auth or (None, None)
    return (
        account.instance_push_id,
        account.subdomain,
        None if account.subdomain is not None else account.base_url,
        account.token,
        username,
        secret,
        time.time(),
        account.name,
        json.dumps(dict(account.settings)) if account.settings else None,
        int(account.active),
    )


def _account_of(row: _Row, where: str) -> Account:
    """The account a store's row holds; `AccountStoreError` (naming the instance push id, never
    a value) for a row written by hand, or by another program."""
    instance_push_id, subdomain, base_url, token, username, secret, name, settings, active = row
    basic_auth = (username, secret) if username is not None and secret is not None else None
    try:
        return Account(
            instance_push_id,
            subdomain=subdomain,
            base_url=base_url,
            token=token,
            basic_auth=basic_auth,
            name=name,
            settings=_settings_of(settings),
            active=bool(active),
        )
    except ConfigurationError as exc:
        raise AccountStoreError(
            f"accounts store {where!r}: the row of {instance_push_id!r} is invalid: {exc}"
        ) from None


def _settings_of(text: str | None) -> dict[str, str]:
    if text is None:
        return {}
    try:
        settings = json.loads(text)
    except ValueError:
        raise ConfigurationError("settings are not a JSON object") from None
    if not isinstance(settings, dict):
        raise ConfigurationError("settings are not a JSON object")
    return settings


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


# -- Redis ------------------------------------------------------------------------------------

# The hash of accounts (field: instance push id; value: the row's fields as JSON), and the key
# of a channelback's claim or answer.
_REDIS_ACCOUNTS = "anychannel:accounts"
_REDIS_ANSWER = "anychannel:answer:"
_CLAIMED, _ANSWERED = "claim:", "answer:"
# An answer remembered without a claim of this store's (its keep unknown) is kept this long.
_REDIS_KEEP = 2 * 24 * 3600.0
_REDIS_FIELDS = (
    "instance_push_id",
    "subdomain",
    "base_url",
    "token",
    "basic_username",
    "basic_secret",
    "updated_at",
    "name",
    "settings",
    "active",
)
# One account's active flag, changed in place: a read and a write by two replicas at once
# must not lose the other's change of the token.
_SET_ACTIVE_SCRIPT = """
local found = redis.call('HGET', KEYS[1], ARGV[1])
if not found then return 0 end
local row = cjson.decode(found)
row['active'] = tonumber(ARGV[2])
row['updated_at'] = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(row))
return 1
"""
# A claim is released by its owner only: once its lease ran out another replica may own it.
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _redacted(url: str) -> str:
    """url without its password (a Redis URL carries it in clear: in its userinfo, or as
    redis-py also reads it, ``?password=``)."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return "redis://<unreadable URL>"
    if parsed.password:
        parsed = parsed.with_password("***")
    if "password" in parsed.query:
        parsed = parsed.update_query(password="***")  # noqa: S106 - the mask
    return str(parsed)


def unix_socket_problem(url: str) -> str | None:
    """What is wrong with a ``unix://`` URL that redis-py would read as another socket than
    the one written, or as none; None when it names an absolute path (or is no unix:// URL)."""
    if not url.startswith("unix://"):
        return None
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return None  # redis-py refuses it, and the error says so (its password hidden)
    expected = "write the socket's absolute path after unix:// (unix:///path/to/redis.sock)"
    if parsed.host and parsed.host != "localhost":
        # Two slashes before a path made relative: its first part is read as a host, and
        # dropped.
        return (
            f"its path starts as a host, dropped by redis-py (the socket {parsed.path}): {expected}"
        )
    if parsed.path in ("", "/"):
        return f"it names no socket: {expected}"
    return None


def _password_of(url: str) -> str | None:
    """The password redis-py uses: ``?password=`` wins over the userinfo's, as there."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return None
    return parsed.query.get("password") or parsed.password


class RedisAccountStore(AccountStore):
    """Accounts, and channelback answers, in Redis: what the replicas of a service share.

    Created by ``AccountStore("redis://[[user]:password@]host[:port][/db]")`` (``rediss://``
    for TLS, ``unix://[[user]:password@]/path/to/redis.sock[?db=N]`` for a Unix socket), with
    the interface of the SQLite store. Accounts are the fields of one hash,
    ``anychannel:accounts``; a channelback's claim is one ``SET NX`` with the lease as its
    expiry (``anychannel:answer:KEY``), so of the replicas receiving the same
    ``request_unique_identifier`` exactly one runs the handler; the answer replaces the claim
    and expires after ``keep``. Use another database (``/db``) to keep two services apart.

    Tokens are stored in clear, as in the SQLite file: protect Redis as the tokens' keeper
    (an ACL user of its own with a password, TLS across machines, no public port). The URL's
    password is never shown: not in the repr, ``path``, or an error. ``revision`` counts the
    changes made through this object, as the SQLite store's does: another replica's change is
    seen when a pipeline reads the account again. Every failure of Redis (unreachable,
    refused, a value that is not an account) raises `AccountStoreError`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        url = os.fspath(path)
        #: The URL, its password replaced by ``***``.
        self.path = _redacted(url)
        self._password = _password_of(url)
        self._state = _State.UNOPENED
        self.revision = 0
        self._keeps: dict[str, float] = {}
        # This store's mark on its claims: only it releases them.
        self._owner = _CLAIMED + os.urandom(8).hex()
        problem = unix_socket_problem(url)
        if problem is not None:
            raise ConfigurationError(f"accounts store {self.path!r}: {problem}")
        try:
            import redis.asyncio
        except ImportError:
            raise ConfigurationError(
                "a redis:// accounts store needs redis-py: pip install 'anychannel-async[redis]'"
            ) from None
        try:
            self._redis = redis.asyncio.from_url(
                url, decode_responses=True, socket_connect_timeout=5.0, socket_timeout=10.0
            )
        except ValueError as exc:
            raise ConfigurationError(f"accounts store {self.path!r}: {self._hide(exc)}") from None

    async def __aenter__(self) -> Self:
        self._opening()
        try:
            await self._call(self._redis.ping())
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        """Close the connections. Idempotent."""
        if self._state == _State.CLOSED:
            return
        self._state = _State.CLOSED
        await self._redis.aclose()

    async def put(self, account: Account) -> None:
        """Store account, replacing the one stored under its instance push id, if any."""
        row = json.dumps(dict(zip(_REDIS_FIELDS, _row_of(account), strict=True)))
        await self._call(self._redis.hset(_REDIS_ACCOUNTS, account.instance_push_id, row))
        self.revision += 1

    async def get(self, instance_push_id: str) -> Account | None:
        """The account stored under instance_push_id, or None."""
        found = await self._call(self._redis.hget(_REDIS_ACCOUNTS, instance_push_id))
        return None if found is None else self._account_from(instance_push_id, str(found))

    async def list(self) -> list[Account]:
        """Every stored account, by instance push id."""
        # Strings: the client decodes responses.
        found = cast(dict[str, str], await self._call(self._redis.hgetall(_REDIS_ACCOUNTS)))
        return [self._account_from(ipid, found[ipid]) for ipid in sorted(found)]

    async def remove(self, instance_push_id: str) -> bool:
        """Remove the account stored under instance_push_id: True if there was one."""
        count: int = await self._call(self._redis.hdel(_REDIS_ACCOUNTS, instance_push_id))
        self.revision += 1
        return count > 0

    async def set_active(self, instance_push_id: str, active: bool) -> bool:
        """Mark the account stored under instance_push_id active or not: True if there was
        one. Atomic: a replica's concurrent `put` is not undone."""
        if not isinstance(active, bool):
            raise ValidationError("active", f"must be a bool, got {type(active).__name__}")
        changed = await self._call(
            self._redis.eval(
                _SET_ACTIVE_SCRIPT,
                1,
                _REDIS_ACCOUNTS,
                instance_push_id,
                int(active),
                repr(time.time()),
            )
        )
        self.revision += 1
        return bool(changed)

    # -- channelback answers -----------------------------------------------------------------

    async def claim_answer(self, key: str, *, lease: float, keep: float) -> Claim:
        """Claim the work of answering key, or find its answer: one ``SET NX`` whose expiry
        is the lease, so of the replicas asking at once exactly one owns it, and a claim whose
        owner died is free again after ``lease`` seconds."""
        name = _REDIS_ANSWER + key
        self._keeps[key] = keep
        while True:
            owned = await self._call(
                self._redis.set(name, self._owner, nx=True, px=max(1, int(lease * 1000)))
            )
            if owned:
                return Claim(answer=None, owned=True)
            found = cast(str | None, await self._call(self._redis.get(name)))
            if found is None:
                continue  # expired between the two commands: claim it again
            if found.startswith(_ANSWERED):
                self._keeps.pop(key, None)
                return Claim(answer=found[len(_ANSWERED) :], owned=False)
            return Claim(answer=None, owned=False)

    async def remember_answer(self, key: str, answer: str) -> None:
        """Keep the answer to a key claimed with `claim_answer`, for its ``keep`` seconds."""
        keep = self._keeps.pop(key, _REDIS_KEEP)
        await self._call(
            self._redis.set(_REDIS_ANSWER + key, _ANSWERED + answer, px=max(1, int(keep * 1000)))
        )

    async def release_claim(self, key: str) -> None:
        """Give up this store's claim without an answer: the next `claim_answer` owns it."""
        self._keeps.pop(key, None)
        await self._call(self._redis.eval(_RELEASE_SCRIPT, 1, _REDIS_ANSWER + key, self._owner))

    # -- the Redis boundary ------------------------------------------------------------------

    async def _call(self, command: Awaitable[_T]) -> _T:
        """Await a command; redis-py's errors mapped to AccountStoreError, the URL's password
        never in it."""
        import redis.exceptions

        if self._state != _State.OPENED:
            if isinstance(command, Coroutine):
                command.close()  # never awaited: no "never awaited" warning
            if self._state == _State.UNOPENED:
                raise AccountStoreError(
                    f"accounts store {self.path!r} is not open; use `async with AccountStore(url)`"
                )
            raise ClosedError("this AccountStore is closed; create a new one")
        try:
            return await command
        except (redis.exceptions.RedisError, OSError) as exc:
            raise AccountStoreError(
                f"accounts store {self.path!r}: {type(exc).__name__}: {self._hide(exc)}"
            ) from None

    def _hide(self, exc: BaseException) -> str:
        text = str(exc)
        return text.replace(self._password, "***") if self._password else text

    def _account_from(self, instance_push_id: str, text: str) -> Account:
        try:
            fields = json.loads(text)
            row = tuple(fields[name] for name in _REDIS_FIELDS if name != "updated_at")
        except (ValueError, KeyError, TypeError):
            raise AccountStoreError(
                f"accounts store {self.path!r}: the value of {instance_push_id!r} is not an account"
            ) from None
        return _account_of(cast(_Row, row), self.path)
