"""What a hostile or careless caller does to the integration service: slow bodies, forged
installs that try to write the log, requests that are not HTTP carrying metadata."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from anychannel_async.integration import ChannelbackRequest, ChannelIntegration
from anychannel_async.integration import _app as app_module
from anychannel_async.testing import ZendeskEmulator

from .integration_support import SECRET, ZendeskSide
from .test_integration_serve import APP, LEAKY_METADATA, listening_url, start_serve, stop


async def _half_sent(url: str, path: str, content_type: str) -> bytes:
    """Send a request's headers and a part of its body, then nothing: what comes back."""
    where = urlsplit(url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            "Content-Length: 1000\r\n\r\nmetadata=v1.".encode()
        )
        await writer.drain()
        # A guard against a hang, not a timing: the server answers well before.
        return await asyncio.wait_for(reader.read(200), 30.0)
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/channelback", "application/x-www-form-urlencoded"),
        ("/admin_ui", "application/x-www-form-urlencoded"),
        ("/event_callback", "application/json"),
    ],
)
async def test_a_body_that_never_arrives_whole_is_answered_408(
    integration: ChannelIntegration,
    zendesk: ZendeskSide,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    content_type: str,
) -> None:
    """A client that sends a part of a body and stops (slowloris) gets a 408 once the body
    time is up, instead of holding a handler (and a stop of the server) for ever."""
    monkeypatch.setattr(app_module, "BODY_SECONDS", 0.2)

    @integration.channelback
    async def reply(request: ChannelbackRequest) -> str:
        raise AssertionError("not reached")

    answer = await _half_sent(zendesk.url, path, content_type)
    assert answer.startswith(b"HTTP/1.1 408"), answer


async def test_a_forged_install_cannot_write_lines_into_the_log(
    zendesk: ZendeskSide, caplog: pytest.LogCaptureFixture
) -> None:
    """The instance push id of an unauthenticated admin form is the forger's text: logged
    quoted, a newline in it makes no line of its own."""
    caplog.set_level(logging.INFO, logger="anychannel_async")
    forged = "x\n2026-11-29 anychannel_async.integration INFO instance victim saved"
    page = await zendesk.open_admin(instance_push_id=forged, token="forged-token")
    saved = await zendesk.submit(page, {"name": "Forged"})
    assert saved.status == 403
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("anychannel_async")]
    assert messages
    assert not any("\n" in message for message in messages)


def test_serve_logs_no_metadata_of_a_request_that_is_not_http(
    tmp_path: Path, emulator: ZendeskEmulator
) -> None:
    """aiohttp quotes the request line it cannot parse; the query's metadata is cut from
    what serve logs of it."""
    (tmp_path / "served_app.py").write_text(APP.format(secret=SECRET, zendesk=emulator.base_url))
    process = start_serve(tmp_path, "served_app:make")
    try:
        url = urlsplit(listening_url(process))
        assert url.hostname is not None
        assert url.port is not None
        for line in (
            f"GET /clickthrough?metadata={LEAKY_METADATA}\x01 HTTP/1.1",
            f"GET /clickthrough?metadata={LEAKY_METADATA}&x={'a' * 9000} HTTP/1.1",
        ):
            with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
                sock.sendall(f"{line}\r\nHost: x\r\n\r\n".encode())
                assert sock.recv(100).startswith(b"HTTP/1.0 400")
    finally:
        returncode, stderr = stop(process)
    assert returncode == 143
    assert "Error handling request" in stderr  # logged, without the request line
    for secret in (LEAKY_METADATA, "sig-never-logged"):
        assert secret not in stderr
