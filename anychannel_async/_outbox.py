"""The durable outbox: accepted resources in a SQLite file until their outcome is final.

A bot that crashed after ``submit()`` returned must not lose the resource (the webhook that
brought it was already answered). So, with an outbox, ``submit()`` returns only once the
resource is in this file; its row is marked resolved when it was imported, or kept as a dead
letter with its error when it failed for good. On the next start, every row still pending is
pushed again. That is at-least-once delivery, and Zendesk makes it exactly-once: a resource it
already holds is answered ``already_imported`` and creates nothing.

All SQLite work happens on one thread of the outbox's own, never on the event loop, and is
grouped: whatever was asked while the previous transaction committed goes into the next one,
so many concurrent submissions share one commit (and one fsync).

The file is opened in WAL mode with ``synchronous=FULL`` (a commit survives a power cut, not
only a crash). One process at a time writes it: two processes replaying one outbox at once
could push the same resource concurrently and race it into two tickets. That rule is an
``flock`` on a lock file beside it (``PATH-lock``), not SQLite's exclusive locking mode, which
would also shut out readers: ``outbox list`` reads a file a pipeline holds, as a WAL reader.

A `PushPool` shares one outbox between the pipelines of all its accounts: it opens and closes
the `Outbox` itself and hands each pipeline a `Share` of it (every row carries its instance
push id, so each account's rows replay through that account's pipeline, in order).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import pathlib
import queue
import sqlite3
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import IO, Any, TypeVar

import attrs
import orjson

from ._errors import ClosedError, OutboxError, ValidationError, copies
from ._lifecycle import Latch
from ._metrics import NO_METRICS, Recorder
from ._models import ExternalResource
from ._results import PushResult
from ._serde import encode_body, resource_from_json

__all__ = [
    "DEAD",
    "NO_REPLAY",
    "PENDING",
    "RESOLVED",
    "Outbox",
    "OutboxSummary",
    "Replay",
    "Share",
    "connect",
    "connect_read_only",
    "pending_count",
    "pending_ids",
    "purge",
    "revive",
    "summary",
]

logger = logging.getLogger("anychannel_async.outbox")

if sys.platform != "win32":
    import fcntl as _fcntl
else:  # pragma: no cover - no flock: SQLite's exclusive locking mode instead
    _fcntl = None

PENDING, RESOLVED, DEAD = "pending", "resolved", "dead"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_push_id TEXT NOT NULL,
    external_id TEXT NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    error TEXT,
    submitted_at REAL NOT NULL,
    updated_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_by_state ON outbox (state, seq);
CREATE INDEX IF NOT EXISTS outbox_pending_by_instance ON outbox (instance_push_id, seq)
    WHERE state = 'pending';
"""
# The second index (added with the pool's shared outbox; created in older files when they are
# next opened to write) holds pending rows only: a replay reads one account's rows of a file
# that holds thousands of accounts' without a scan of all of them. Queries that use it must
# say ``state = 'pending'`` literally: SQLite matches a partial index's condition by its text.
_T = TypeVar("_T")
# Writes asked while one transaction commits join the next; this bounds one transaction.
_MAX_GROUP = 5_000


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open (creating if needed) an outbox file as its one writer, or raise `OutboxError`
    saying why not. The connection holds the outbox's lock until it is closed."""
    where = os.fspath(path)
    lock = _lock(where)
    try:
        connection = sqlite3.connect(
            where, timeout=0.5, isolation_level=None, factory=_WriterConnection
        )
    except (sqlite3.Error, ValueError) as exc:  # ValueError: e.g. a NUL in the path
        lock.close()
        raise OutboxError(_explain(where, exc)) from None
    assert isinstance(connection, _WriterConnection)
    connection.lock = lock
    try:
        if _fcntl is None:  # no flock here: SQLite's own exclusive mode keeps other writers out
            connection.execute("PRAGMA locking_mode=EXCLUSIVE")
        tables = {
            name
            for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if {t for t in tables if not t.startswith("sqlite_")} - {"outbox"}:
            # Another program's database (an accounts store, given by mistake): adding the
            # outbox's table to it would hide the mistake, and mix two files' data.
            connection.close()
            raise OutboxError(f"{where!r} is a SQLite database but not an outbox")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.executescript(_SCHEMA)
        # Write now, so a file SQLite cannot write is refused at open, not at the first submit.
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("COMMIT")
    except sqlite3.Error as exc:
        connection.close()
        raise OutboxError(_explain(where, exc)) from None
    return connection


def connect_read_only(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open an existing outbox to read it, beside a process that may be writing it.

    A WAL reader: it takes no lock a writer needs, sees the last committed state, and can
    change nothing. Raises `OutboxError` when the file is not an outbox.
    """
    where = os.fspath(path)
    try:
        return _read_only(where, "?mode=ro")
    except sqlite3.Error as exc:
        if not os.path.exists(where + "-wal") and ("readonly" in str(exc) or "open" in str(exc)):
            # A read-only directory: no -shm can be made there. Without a -wal file the last
            # writer closed cleanly and the database file holds everything: read it as is.
            with contextlib.suppress(sqlite3.Error):
                return _read_only(where, "?mode=ro&immutable=1")
        raise OutboxError(_explain(where, exc)) from None
    except ValueError as exc:
        raise OutboxError(_explain(where, exc)) from None


def _read_only(path: str, query: str) -> sqlite3.Connection:
    uri = pathlib.Path(path).absolute().as_uri() + query
    connection = sqlite3.connect(uri, uri=True, timeout=5.0, isolation_level=None)
    try:
        connection.execute("SELECT 1 FROM outbox LIMIT 1").fetchall()
    except BaseException:
        connection.close()
        raise
    return connection


def pending_ids(
    path: str | os.PathLike[str], instance_push_id: str, external_ids: Collection[str]
) -> set[str]:
    """Which of external_ids have a pending row for instance_push_id (read-only)."""
    if not external_ids:
        return set()
    wanted = set(external_ids)
    db = connect_read_only(path)
    try:
        rows = db.execute(
            "SELECT external_id FROM outbox WHERE state = ? AND instance_push_id = ?",
            (PENDING, instance_push_id),
        )
        return {external_id for (external_id,) in rows if external_id in wanted}
    finally:
        db.close()


def pending_count(path: str | os.PathLike[str], instance_push_id: str) -> int:
    """How many rows instance_push_id has pending (read-only): a PushPool's file holds the
    rows of other accounts too."""
    db = connect_read_only(path)
    try:
        [(count,)] = db.execute(
            "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND instance_push_id = ?",
            (instance_push_id,),
        ).fetchall()
    except sqlite3.Error as exc:
        raise OutboxError(_explain(os.fspath(path), exc)) from None
    finally:
        db.close()
    return int(count)


@attrs.frozen
class OutboxSummary:
    """What ``outbox list`` shows: rows by state, and the oldest dead letters."""

    counts: dict[str, int]
    #: (seq, instance_push_id, external_id, error) of the oldest dead letters.
    dead: list[tuple[int, str, str, str]]
    #: Rows pending and dead by instance push id, the most pending first (at most ``limit``);
    #: ``instances`` counts them all (a PushPool's file holds many, a pipeline's one).
    by_instance: list[tuple[str, int, int]] = attrs.field(factory=list)
    instances: int = 0


def summary(path: str | os.PathLike[str], *, limit: int) -> OutboxSummary:
    """Rows by state and the ``limit`` oldest dead letters, read beside a writer."""
    db = connect_read_only(path)
    try:
        counts = dict(db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())
        dead = db.execute(
            "SELECT seq, instance_push_id, external_id, error FROM outbox WHERE state = ?"
            " ORDER BY seq LIMIT ?",
            (DEAD, limit),
        ).fetchall()
        unsettled = db.execute(
            "SELECT instance_push_id, SUM(state = ?), SUM(state = ?) FROM outbox"
            " WHERE state IN (?, ?) GROUP BY instance_push_id",
            (PENDING, DEAD, PENDING, DEAD),
        ).fetchall()
    except sqlite3.Error as exc:
        raise OutboxError(_explain(os.fspath(path), exc)) from None
    finally:
        db.close()
    unsettled.sort(key=lambda row: (-row[1], -row[2], row[0]))
    return OutboxSummary(
        counts={state: counts.get(state, 0) for state in (PENDING, RESOLVED, DEAD)},
        dead=dead,
        by_instance=[(ipid, int(pending), int(dead)) for ipid, pending, dead in unsettled[:limit]],
        instances=len(unsettled),
    )


def purge(path: str | os.PathLike[str], *, dead: bool) -> int:
    """Remove resolved rows (and dead letters too, with ``dead``); returns how many."""
    states = (RESOLVED, DEAD) if dead else (RESOLVED, RESOLVED)
    db = connect(path)
    try:
        removed = _write(db, "DELETE FROM outbox WHERE state IN (?, ?)", states)
        db.execute("VACUUM")
    except sqlite3.Error as exc:
        raise OutboxError(_explain(os.fspath(path), exc)) from None
    finally:
        db.close()
    return removed


def revive(path: str | os.PathLike[str]) -> int:
    """Turn dead letters back into pending rows (the next pipeline pushes them); how many."""
    db = connect(path)
    try:
        return _write(
            db, "UPDATE outbox SET state = ?, error = NULL WHERE state = ?", (PENDING, DEAD)
        )
    except sqlite3.Error as exc:
        raise OutboxError(_explain(os.fspath(path), exc)) from None
    finally:
        db.close()


def _write(db: sqlite3.Connection, sql: str, params: tuple[str, ...]) -> int:
    db.execute("BEGIN IMMEDIATE")
    count = db.execute(sql, params).rowcount
    db.execute("COMMIT")
    return count


_Admit = Callable[[ExternalResource, bytes, int], Awaitable[asyncio.Future[PushResult]]]


@attrs.frozen
class Share:
    """A pipeline's part of an outbox its owner (a `PushPool`) opens and closes.

    The pipeline writes its rows there and never closes it. It replays the rows its account
    left pending with ``seq`` up to ``replay_through`` (0: none; an owner gives them to one
    pipeline per account only, since two pipelines pushing one row at once could race it into
    two tickets). ``admit`` wraps the admission of each replayed row: it waits for the owner's
    room, counts the row as its own and returns its future, or raises `ClosedError` to stop
    the replay (the rows not yet admitted stay pending).
    """

    outbox: Outbox
    replay_through: int
    admit: Callable[
        [Callable[[], Awaitable[asyncio.Future[PushResult]]]],
        Awaitable[asyncio.Future[PushResult]],
    ]


class Replay:
    """An outbox opened once, then the rows an earlier run left pending handed to ``admit``,
    oldest first, before any new work.

    ``admit`` takes a resource, its body and its row, waits for room in the pipeline and
    returns the resource's future. Every caller of `open` awaits the same opening: if the file
    cannot be opened, each gets its own copy of the error. Nobody awaits a replayed resource's
    future, so its outcome is tallied here (`count`, `outcomes`). An outbox the pipeline does
    not own (``owned=False``) is open already: only rows up to ``through`` are replayed.
    """

    __slots__ = (
        "_admit",
        "_instance_push_id",
        "_opening",
        "_outbox",
        "_owned",
        "_queued",
        "_task",
        "_through",
        "count",
        "outcomes",
    )

    def __init__(
        self,
        outbox: Outbox | None,
        instance_push_id: str,
        admit: _Admit,
        *,
        owned: bool = True,
        through: int | None = None,
    ) -> None:
        self._outbox = outbox
        self._instance_push_id = instance_push_id
        self._admit = admit
        self._owned = owned
        self._through = through
        self._opening: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._queued = Latch()
        if outbox is None or through == 0:
            self._outbox = None
            self._queued.set()
        #: Rows handed to ``admit``; how their resources ended, by outcome name.
        self.count = 0
        self.outcomes: collections.Counter[str] = collections.Counter()

    @property
    def queued(self) -> bool:
        """True once every pending row is queued (or there is nothing to replay)."""
        return self._queued.is_set()

    async def open(self, still_open: Callable[[], bool]) -> None:
        """Open the outbox (once, if owned) and start the replay; ``still_open`` tells whether
        the pipeline was closed meanwhile (then `ClosedError`: no replay may start)."""
        if self._outbox is None:
            return
        loop = asyncio.get_running_loop()
        if self._opening is None and self._owned:
            self._opening = loop.create_task(self._outbox.open())
        if self._opening is not None:
            try:
                await asyncio.shield(self._opening)
            except OutboxError as exc:
                raise copies(exc, 1)[0] from None
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._opening.cancelled() and task is not None and not task.cancelling():
                    # close() stopped the opening; this caller was not cancelled itself.
                    raise ClosedError("this PushPipeline is closed") from None
                raise
        if not still_open():
            # close() ran while the opening finished: it stopped every task it knew of, so
            # a replay started now would take rows into a pipeline that will never send them.
            raise ClosedError("this PushPipeline is closed")
        if self._task is None:
            self._task = loop.create_task(self._run())

    async def wait(self) -> None:
        """Until every pending row is queued, once the replay started."""
        if self._task is not None:
            await self._queued.wait()

    def tasks(self) -> list[asyncio.Task[None]]:
        """The tasks to stop when the pipeline closes."""
        return [task for task in (self._task, self._opening) if task is not None]

    async def _run(self) -> None:
        outbox = self._outbox
        assert outbox is not None
        last = 0
        try:
            while rows := await outbox.pending(
                self._instance_push_id, after=last, through=self._through
            ):
                for seq, body in rows:
                    last = seq
                    try:
                        resource = resource_from_json(orjson.loads(body))
                        # Encoded again: a row written by an earlier version may hold an
                        # older wire form (display_info data as a string).
                        body = encode_body(resource)
                    except (ValueError, ValidationError) as exc:
                        outbox.bury(seq, f"unreadable row: {exc}")
                        continue
                    future = await self._admit(resource, body, seq)
                    future.add_done_callback(self._settled)
                    self.count += 1
            if self.count:
                logger.info(
                    "replayed %d resources of %s from %s",
                    self.count,
                    self._instance_push_id,
                    outbox.path,
                )
        except ClosedError:
            pass  # closing while waiting for room: the rows stay pending for the next start
        except OutboxError as exc:
            logger.error("replay stopped: %s", exc)  # the rows stay pending for the next start
        finally:
            self._queued.set()

    def _settled(self, future: asyncio.Future[PushResult]) -> None:
        # Reading the outcome also keeps asyncio from logging an exception never retrieved.
        if future.cancelled():
            self.outcomes["cancelled"] += 1
        elif (error := future.exception()) is not None:
            self.outcomes[type(error).__name__] += 1
        else:
            self.outcomes[str(future.result().code)] += 1


async def _no_rows(resource: ExternalResource, body: bytes, seq: int) -> asyncio.Future[PushResult]:
    raise AssertionError("a pipeline without an outbox replays nothing")


#: The replay of every pipeline without an outbox: nothing to open, wait for or count, so one
#: instance serves them all (a pool holds a pipeline per busy account).
NO_REPLAY = Replay(None, "", _no_rows)


class _WriterConnection(sqlite3.Connection):
    """A connection that holds the outbox's lock file until it is closed."""

    lock: IO[bytes] | None = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            lock, self.lock = self.lock, None
            if lock is not None:
                lock.close()  # releases the flock


def _lock(path: str) -> IO[bytes]:
    """Take the outbox's writer lock, or raise `OutboxError` naming who holds it or why not."""
    lock_path = path + "-lock"
    try:
        handle = open(lock_path, "ab")  # noqa: SIM115 - held until the connection closes
    except (OSError, ValueError) as exc:
        raise OutboxError(_explain_os(path, lock_path, exc)) from None
    if _fcntl is None:
        return handle
    try:
        _fcntl.flock(handle.fileno(), _fcntl.LOCK_EX | _fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise OutboxError(
            f"outbox {path!r} is in use by another process (it holds {lock_path!r})"
        ) from None
    except OSError as exc:
        handle.close()
        raise OutboxError(_explain_os(path, lock_path, exc)) from None
    return handle


def _explain_os(path: str, lock_path: str, exc: OSError | ValueError) -> str:
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        directory = os.path.dirname(os.path.abspath(path))
        return (
            f"outbox {path!r}: the directory {directory!r} is read-only"
            f" ({exc.strerror}); the outbox writes {os.path.basename(lock_path)!r}, -wal and"
            " -shm files beside the database"
        )
    return f"outbox {path!r}: cannot create its lock file {lock_path!r}: {exc}"


def _explain(path: str, exc: sqlite3.Error | ValueError) -> str:
    text = str(exc)
    directory = os.path.dirname(os.path.abspath(path))
    if "locked" in text or "busy" in text:
        return f"outbox {path!r} is in use by another process ({text})"
    if "not a database" in text or "malformed" in text or "no such table" in text:
        return f"outbox {path!r} is not a usable SQLite database ({text})"
    if "full" in text:
        return f"outbox {path!r}: the disk is full ({text})"
    if "readonly" in text or "unable to open" in text:
        if not os.access(directory, os.W_OK):
            return (
                f"outbox {path!r}: the directory {directory!r} is read-only ({text}); the"
                " outbox writes -wal and -shm files beside the database"
            )
        if "readonly" in text:
            return f"outbox {path!r} is read-only ({text})"
    return f"outbox {path!r}: {text}"


class Outbox:
    """One outbox file, written by a thread of its own; the pipeline's durable memory."""

    def __init__(self, path: str | os.PathLike[str], *, metrics: Recorder = NO_METRICS) -> None:
        self.path = os.fspath(path)
        # Rows by state, as this outbox counts them for the metrics: counted at open, then
        # kept by its writes, and taken back out of the metrics at close.
        self._metrics = metrics
        self._rows: collections.Counter[str] = collections.Counter()
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Set when closing starts or the thread died: no request may be queued after that,
        # or it would never be answered.
        self._refusal: OutboxError | None = None

    def __repr__(self) -> str:
        return f"<Outbox {self.path!r}>"

    async def open(self) -> None:
        """Open the file on the outbox's thread; raises `OutboxError` if it cannot be used."""
        self._loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(opened,), name="anychannel-outbox", daemon=True
        )
        self._thread.start()
        await opened
        if self._metrics is not NO_METRICS:  # a count is a scan: only when asked
            for state, count in await self._ask(_count_by_state):
                self._count(state, count)

    async def pending(
        self,
        instance_push_id: str,
        *,
        after: int = 0,
        through: int | None = None,
        limit: int = 1_000,
    ) -> list[tuple[int, bytes]]:
        """(seq, body) of pending rows of instance_push_id past seq after (and up to seq
        through), oldest first."""
        last = through if through is not None else sys.maxsize
        rows: list[tuple[int, bytes]] = await self._ask(
            lambda db: db.execute(
                "SELECT seq, body FROM outbox WHERE state = 'pending' AND instance_push_id = ?"
                " AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (instance_push_id, after, last, limit),
            ).fetchall()
        )
        return rows

    async def leftovers(self) -> tuple[list[tuple[str, int]], int]:
        """What an earlier run left: (instance push id, pending rows) of each instance with
        pending rows, the one whose oldest row is oldest first; and the last seq written so
        far (0 in a new file)."""

        def read(db: sqlite3.Connection) -> tuple[list[tuple[str, int]], int]:
            ipids = db.execute(
                "SELECT instance_push_id, COUNT(*) FROM outbox WHERE state = 'pending'"
                " GROUP BY instance_push_id ORDER BY MIN(seq)"
            ).fetchall()
            [(last,)] = db.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchall()
            return [(ipid, int(count)) for ipid, count in ipids], int(last)

        result: tuple[list[tuple[str, int]], int] = await self._ask(read)
        return result

    async def add(self, instance_push_id: str, items: Sequence[tuple[str, bytes]]) -> list[int]:
        """Write (external_id, body) rows as pending; returns their seqs once committed."""
        now = time.time()

        def insert(db: sqlite3.Connection) -> list[int]:
            seqs = []
            for external_id, body in items:
                cursor = db.execute(
                    "INSERT INTO outbox (instance_push_id, external_id, body, submitted_at)"
                    " VALUES (?, ?, ?, ?)",
                    (instance_push_id, external_id, body, now),
                )
                seqs.append(int(cursor.lastrowid or 0))
            return seqs

        result: list[int] = await self._ask(insert)
        self._count(PENDING, len(result))
        return result

    def resolve(self, seq: int) -> None:
        """Mark a row resolved (imported); written with the next group, not awaited."""
        self._tell(
            lambda db: db.execute(
                "UPDATE outbox SET state = ?, error = NULL, updated_at = ? WHERE seq = ?",
                (RESOLVED, time.time(), seq),
            ),
            moved=RESOLVED,
        )

    def bury(self, seq: int, error: str) -> None:
        """Keep a row as a dead letter with its error; written with the next group."""
        self._tell(
            lambda db: db.execute(
                "UPDATE outbox SET state = ?, error = ?, updated_at = ? WHERE seq = ?",
                (DEAD, error, time.time(), seq),
            ),
            moved=DEAD,
        )

    async def close(self) -> None:
        """Write what is queued, close the file and stop the thread."""
        if self._refusal is None:
            self._refusal = OutboxError(f"outbox {self.path!r} is closed")
        for state, count in list(self._rows.items()):
            self._count(state, -count)  # the metrics count the outboxes open
        if self._thread is None:
            return
        self._requests.put(None)
        thread, self._thread = self._thread, None
        joined = asyncio.ensure_future(asyncio.to_thread(thread.join))
        try:
            await asyncio.shield(joined)
        except asyncio.CancelledError:
            # Its thread writes what is queued and lets the file go whatever: the cancel
            # comes once it did, or the caller's next open of the file would find it held.
            await joined
            raise

    def _count(self, state: str, change: int) -> None:
        self._rows[state] += change
        self._metrics.outbox_rows(state, change)

    # -- the outbox's thread ----------------------------------------------------------------

    async def _ask(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._refusal is not None:
            raise OutboxError(str(self._refusal))
        if self._thread is None or self._loop is None:
            raise OutboxError(f"outbox {self.path!r} is not open")
        future: asyncio.Future[_T] = self._loop.create_future()
        self._requests.put(_Request(work, future))
        if not self._thread.is_alive() and not future.done():
            # The thread died after the check above: nobody will answer this request.
            raise OutboxError(str(self._refusal or f"outbox {self.path!r} stopped"))
        return await future

    def _tell(self, work: Callable[[sqlite3.Connection], object], *, moved: str) -> None:
        """Queue a change of a pending row's state to moved, not awaited."""
        if self._thread is not None and self._refusal is None:
            self._requests.put(_Request(work, None))
            self._count(PENDING, -1)
            self._count(moved, 1)

    def _run(self, opened: asyncio.Future[Any]) -> None:
        loop = self._loop
        assert loop is not None
        try:
            db = connect(self.path)
        except OutboxError as exc:
            self._refusal = exc
            loop.call_soon_threadsafe(_settle, opened, None, exc)
            return
        loop.call_soon_threadsafe(_settle, opened, None, None)
        group: list[_Request | None] = []
        try:
            running = True
            while running:
                group = [self._requests.get()]
                while len(group) < _MAX_GROUP:
                    try:
                        group.append(self._requests.get_nowait())
                    except queue.Empty:
                        break
                if None in group:
                    running = False
                self._commit(db, [r for r in group if r is not None])
                group = []  # answered
        except BaseException as exc:  # noqa: BLE001
            # Whatever killed the thread, no waiter may wait forever: refuse from now on and
            # answer everything still queued.
            self._refusal = OutboxError(f"outbox {self.path!r} stopped: {exc!r}")
            logger.error("%s", self._refusal)
            leftovers: list[tuple[asyncio.Future[Any] | None, object, BaseException | None]] = [
                (request.future, None, OutboxError(str(self._refusal)))
                for request in group  # the group being written when the thread died
                if request is not None
            ]
            while True:
                try:
                    request = self._requests.get_nowait()
                except queue.Empty:
                    break
                if request is not None:
                    leftovers.append((request.future, None, OutboxError(str(self._refusal))))
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                loop.call_soon_threadsafe(_settle_all, leftovers)
        finally:
            db.close()

    def _commit(self, db: sqlite3.Connection, group: list[_Request]) -> None:
        """Run a group of requests in one transaction and answer their futures."""
        if not group:
            return
        loop = self._loop
        assert loop is not None
        answers: list[tuple[asyncio.Future[Any] | None, object, BaseException | None]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for request in group:
                answers.append((request.future, request.work(db), None))
            db.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - every waiter must be answered, whatever broke
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # the commit's error is the one to tell
                    db.rollback()
            error = OutboxError(
                _explain(self.path, exc) if isinstance(exc, sqlite3.Error) else repr(exc)
            )
            logger.error("outbox write failed: %s", error)
            answers = [(request.future, None, error) for request in group]
        # One hop back to the loop for the whole group, not one per request.
        loop.call_soon_threadsafe(_settle_all, answers)


def _count_by_state(db: sqlite3.Connection) -> list[tuple[str, int]]:
    rows = db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
    return [(str(state), int(count)) for state, count in rows]


class _Request:
    __slots__ = ("future", "work")

    def __init__(
        self, work: Callable[[sqlite3.Connection], object], future: asyncio.Future[Any] | None
    ) -> None:
        self.work = work
        self.future = future


def _settle(future: asyncio.Future[Any] | None, value: object, error: BaseException | None) -> None:
    if future is None or future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _settle_all(
    answers: list[tuple[asyncio.Future[Any] | None, object, BaseException | None]],
) -> None:
    for future, value, error in answers:
        _settle(future, value, error)
