"""The failed file (``push --failed``): one JSON line per input line that was not imported.

A record is ``{"line": N, "error": "...", "resource": {...}}``, or ``"raw": "text"`` instead of
``resource`` for a line that is not a resource (not JSON, not UTF-8, or not read at all). N is
the line's number in the original input, kept when a failed file is pushed again. With
``--accounts``, a record of a line whose account is known also holds it:
``{"line": N, "error": "...", "instance_push_id": "...", "resource": {...}}``.

Every line of the file is whole, strict JSON (no NaN or Infinity, which Python's json would
write and Zendesk's parser refuses). Records are buffered and written with ``os.write``; when a
write fails part-way (a file size limit, a full disk), the file is cut back to the end of the
last whole line and each record that could not be written is kept by its line number in
``missing``: none goes missing silently, and a cut line is never counted as written.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable

__all__ = ["FailedFile", "line_ranges"]

# Bytes buffered before a write: few system calls when a stop copies a large remainder.
_BUFFER = 64 * 1024


class FailedFile:
    """The failed file, opened by `open` and emptied by `start`: until then, the file is as it
    was (or absent, as it was), whatever stops the command."""

    def __init__(self, path: str, fd: int, *, created: bool) -> None:
        self.path = path
        self._fd: int | None = fd
        self._created = created  # by `open`: removed again if never started
        self._started = False
        self._pending: list[tuple[int, bytes]] = []  # (line number, encoded record)
        self._pending_bytes = 0
        self._end = 0  # bytes of whole records on disk
        #: Records on disk, each a whole line.
        self.written = 0
        #: Line numbers of the records that could not be written.
        self.missing: list[int] = []
        #: The error that stopped writing; nothing is written after it.
        self.error: OSError | None = None
        #: Called once, with that error, when it happens.
        self.on_error: Callable[[OSError], None] | None = None

    @classmethod
    def open(cls, path: str) -> FailedFile:
        """Open path for writing, creating it if missing, without changing what it holds;
        raises OSError when it cannot be written."""
        flags = os.O_WRONLY | os.O_CLOEXEC
        try:
            return cls(path, os.open(path, flags), created=False)
        except FileNotFoundError:
            return cls(path, os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o666), created=True)

    def start(self) -> None:
        """Empty the file: records may be written from now on."""
        if self._fd is None or self._started:
            return
        self._started = True
        try:
            if stat.S_ISREG(os.fstat(self._fd).st_mode):  # not /dev/null, a pipe, a terminal
                os.ftruncate(self._fd, 0)
        except OSError as exc:
            self._broken([], 0, exc)

    def write(
        self,
        number: int,
        error: str,
        *,
        resource: object = None,
        raw: str | None = None,
        text: str | None = None,
        instance_push_id: str | None = None,
    ) -> None:
        """Add the record of line number; text is the line as read, kept as ``raw`` when the
        resource cannot be written as strict JSON (a float out of range, nesting too deep)."""
        entry: dict[str, object] = {"line": number, "error": error}
        if instance_push_id is not None:
            entry["instance_push_id"] = instance_push_id
        if resource is not None:
            entry["resource"] = resource
        if raw is not None:
            entry["raw"] = raw
        self.write_entry(number, entry, fallback=raw if raw is not None else text)

    def write_entry(
        self, number: int, entry: dict[str, object], *, fallback: str | None = None
    ) -> None:
        """Add a record as it is (the line of an earlier failed file, say)."""
        if self.error is not None or self._fd is None or not self._started:
            self.missing.append(number)
            return
        try:
            data = _encode(entry)
        except (ValueError, RecursionError):
            kept: dict[str, object] = {"line": number, "error": str(entry.get("error", ""))}
            if fallback is not None:
                kept["raw"] = fallback
            try:
                data = _encode(kept)
            except (ValueError, RecursionError):  # pragma: no cover - strings always encode
                data = _encode({"line": number, "error": "unprintable"})
        self._pending.append((number, data))
        self._pending_bytes += len(data)
        if self._pending_bytes >= _BUFFER:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered (whole records only)."""
        if not self._pending or self._fd is None:
            return
        pending, self._pending = self._pending, []
        self._pending_bytes = 0
        data = b"".join(record for _, record in pending)
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError as exc:
            self._broken(pending, done, exc)
            return
        self._end += len(data)
        self.written += len(pending)

    def close(self) -> None:
        """Flush and close; a file never started is left as it was (one `open` created is
        removed). Idempotent."""
        self.flush()
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
            if self._created and not self._started:
                with contextlib.suppress(OSError):
                    os.unlink(self.path)

    def _broken(self, pending: list[tuple[int, bytes]], done: int, exc: OSError) -> None:
        """A write failed after done bytes: keep the whole records among them, cut the rest."""
        whole = 0
        kept = 0
        for _, record in pending:
            if whole + len(record) > done:
                break
            whole += len(record)
            kept += 1
        self._end += whole
        self.written += kept
        self.missing.extend(number for number, _ in pending[kept:])
        if done > whole and self._fd is not None:
            # Part of a record reached the disk: a cut line would break the file's JSON.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._end)
        self.error = exc
        if self.on_error is not None:
            self.on_error(exc)


def _encode(entry: dict[str, object]) -> bytes:
    text = json.dumps(entry, ensure_ascii=False, allow_nan=False)
    try:
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (from a \\ud800 escape): keep it escaped
        return (json.dumps(entry, allow_nan=False) + "\n").encode("ascii")


def line_ranges(numbers: list[int]) -> str:
    """Line numbers as sorted ranges: "3, 7-9, 12". All of them: they are what is lost."""
    ranges: list[list[int]] = []
    for number in sorted(set(numbers)):
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)
