"""Access logs that never show a token or metadata.

aiohttp's default access log writes the request line, query string included: a clickthrough's
query carries the account's metadata. This logger writes the method, the path without its
query, the status and the time taken, and nothing else of the request.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

__all__ = ["AccessLogger"]

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
