"""Access logs that never show a token or metadata.

aiohttp's default access log writes the request line, query string included: a clickthrough's
query carries the account's metadata. This logger writes the method, the path without its
query, the status and the time taken, and nothing else of the request. And aiohttp's error
log quotes the request line it cannot parse (its query too): `RequestErrorFilter` cuts it.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["AccessLogger", "RequestErrorFilter"]

# A path is the requester's to choose: bound what one request can write to the log.
_PATH_MAX = 200


class AccessLogger(AbstractAccessLogger):
    """``METHOD /path STATUS 0.012s``: pass it as ``access_log_class`` to aiohttp's runner."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        # Percent-encoded as sent, without the query string: no control character reaches the log.
        path = request.rel_url.raw_path
        if len(path) > _PATH_MAX:
            path = path[:_PATH_MAX] + "…"
        self.logger.info("%s %s %d %.3fs", request.method, path, response.status, time)


class RequestErrorFilter(logging.Filter):
    """On the ``aiohttp.server`` logger: a request aiohttp could not parse is logged by the
    error's name and status only, without the traceback whose message quotes the request line
    (a clickthrough's metadata with it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.msg = f"{record.getMessage()}: {type(error).__name__} (HTTP {error.code})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True
