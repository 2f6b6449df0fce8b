"""`anychannel-async serve MODULE:ATTR`, run as a user runs it (a child process over TCP), and
the README's integration served by it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from anychannel_async.testing import ZendeskEmulator

from .conftest import CLI, cli_env
from .integration_support import IPID, SECRET, TOKEN

ROOT = Path(__file__).resolve().parent.parent
#: Distinctive, so its showing up in the access log is easy to spot.
LEAKY_METADATA = "v1.bWV0YWRhdGEtbmV2ZXItbG9nZ2Vk.sig-never-logged"

APP = """
from anychannel_async import AccountStore
from anychannel_async.integration import ChannelIntegration, ClickthroughRequest


def make() -> ChannelIntegration:
    integration = ChannelIntegration(
        name="Served", integration_id="com.served", base_url="https://bridge.example.com",
        secret={secret!r}, accounts=AccountStore("accounts.sqlite"), zendesk_url={zendesk!r},
    )

    @integration.clickthrough
    async def link(request: ClickthroughRequest) -> str:
        return "https://social.example/" + request.external_id

    return integration
"""


def start_serve(cwd: Path, target: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "serve", target, "--host", "127.0.0.1", "--port", "0"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env if env is not None else cli_env(None),
    )


def listening_url(process: subprocess.Popen[str]) -> str:
    """The URL the child says it serves on (its first line of output)."""
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"on (http://\S+)", line)
    assert found is not None, (
        f"no URL in {line!r}; stderr: {process.stderr and process.stderr.read()}"
    )
    return found.group(1)


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM, then its exit status and standard error."""
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    return process.returncode, stderr


@pytest.fixture
def served(
    tmp_path: Path, emulator: ZendeskEmulator
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    (tmp_path / "served_app.py").write_text(APP.format(secret=SECRET, zendesk=emulator.base_url))
    process = start_serve(tmp_path, "served_app:make")
    try:
        yield process, listening_url(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own server
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_serve_runs_the_integration_and_its_access_log_shows_no_query_or_token(
    served: tuple[subprocess.Popen[str], str],
) -> None:
    """The child serves the manifest, the admin UI (with a real token check against the
    emulator) and a clickthrough; its access log names each request by method, path and
    status, never the query's metadata or the token; SIGTERM stops it (128 + 15)."""
    process, url = served
    status, body = get(f"{url}/manifest.json")
    assert status == 200
    assert json.loads(body)["urls"]["clickthrough_url"] == "https://bridge.example.com/clickthrough"
    query = urllib.parse.urlencode({"external_id": "post-1", "metadata": LEAKY_METADATA})
    assert get(f"{url}/clickthrough?{query}")[0] == 403
    form = urllib.parse.urlencode(
        {
            "name": "",
            "metadata": "",
            "state": "",
            "return_url": "https://acme.zendesk.com/return",
            "instance_push_id": IPID,
            "zendesk_access_token": TOKEN,
            "subdomain": "acme",
            "locale": "en",
        }
    ).encode()
    with urllib.request.urlopen(f"{url}/admin_ui", data=form, timeout=10) as response:  # noqa: S310
        assert response.status == 200
    returncode, stderr = stop(process)
    assert returncode == 128 + signal.SIGTERM
    assert re.search(r"GET /manifest\.json 200 \d+\.\d+s", stderr), stderr
    assert "GET /clickthrough 403" in stderr
    assert "POST /admin_ui 200" in stderr
    for secret in (LEAKY_METADATA, "sig-never-logged", TOKEN, SECRET, "external_id="):
        assert secret not in stderr


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("no_colon", "give MODULE:ATTR"),
        ("no_such_module_here:app", "cannot import no_such_module_here"),
        ("served_app:missing", "served_app has no missing"),
        ("served_app:NOT_ONE", "neither a ChannelIntegration"),
    ],
)
def test_serve_names_what_it_cannot_serve(tmp_path: Path, target: str, says: str) -> None:
    """A target that is not MODULE:ATTR, cannot be imported, is absent or is no integration:
    a usage error (exit 2) saying which."""
    (tmp_path / "served_app.py").write_text("NOT_ONE = 42\n")
    process = start_serve(tmp_path, target)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, stderr
    assert says in stderr
    assert "Traceback" not in stderr


def readme_integration() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## An integration service (the other direction)", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert found is not None
    return found.group(1)


def test_the_readme_integration_is_served_as_the_readme_says(tmp_path: Path) -> None:
    """The README's bridge.py, served with `serve bridge:integration`, publishes a manifest with
    its channelback and pull."""
    (tmp_path / "bridge.py").write_text(readme_integration())
    process = start_serve(
        tmp_path, "bridge:integration", env={**cli_env(None), "ANYCHANNEL_SECRET": SECRET}
    )
    try:
        url = listening_url(process)
        status, body = get(f"{url}/manifest.json")
    finally:
        returncode, _ = stop(process)
    assert status == 200
    urls = json.loads(body)["urls"]
    assert urls["channelback_url"] == "https://bridge.example.com/channelback"
    assert urls["pull_url"] == "https://bridge.example.com/pull"
    assert returncode == 128 + signal.SIGTERM
