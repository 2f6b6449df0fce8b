"""`push --accounts`: many accounts on several hosts (one emulator each) from one command."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from anychannel_async.testing import Faults, ZendeskEmulator

from .accounts_support import HOST_A, imported, line, store_accounts, token
from .conftest import cli, pushes, raw_resource, start_cli, wait_for


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(text) for text in path.read_text().splitlines()]


def push_accounts(
    source: Path | str, store: Path, *extra: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`push SOURCE --accounts STORE`, without any token in the environment."""
    return cli("push", str(source), "--accounts", str(store), *extra, token=None, stdin=stdin)


def held_id(record: dict[str, object]) -> str:
    """The external_id of the resource a failed-file record holds."""
    resource = record["resource"]
    assert isinstance(resource, dict)
    return str(resource["external_id"])


def test_each_line_goes_to_its_account_and_a_refused_token_fails_only_its_lines(
    host_a: ZendeskEmulator, host_b: ZendeskEmulator, tmp_path: Path
) -> None:
    """Lines go to their account's host; a2's stored token is wrong: its lines fail with
    AuthenticationError and the others are imported; a line for an account the store does
    not hold fails alone. Each failed line keeps its account, and with the token fixed and
    the account added, the failed file pushed again as is finishes the job."""
    store = tmp_path / "accounts.sqlite"
    store_accounts(
        store,
        {
            "a1": (host_a.base_url, token("a1")),
            "a2": (host_a.base_url, "wrong"),
            "b1": (host_b.base_url, token("b1")),
        },
    )
    ids = {ipid: [f"{ipid}-{n}" for n in range(40)] for ipid in ("a1", "a2", "b1", "nobody")}
    lines = [line(ipid, ids[ipid][n]) for n in range(40) for ipid in ids]
    lines.insert(5, line("a1", "a1-reply", parent_id="a1-0"))
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    failed = tmp_path / "failed.jsonl"

    done = push_accounts(source, store, "--failed", str(failed), "--max-latency", "0.01")
    assert done.returncode == 1, done.stdout + done.stderr
    assert imported(host_a) == {*ids["a1"], "a1-reply"}
    assert imported(host_b) == set(ids["b1"])
    ticket = host_a.ticket_for("a1-reply")
    assert ticket is not None
    assert ticket.external_id == "a1-0"
    by_account: dict[str, list[dict[str, object]]] = {}
    for record in records(failed):
        by_account.setdefault(str(record["instance_push_id"]), []).append(record)
    assert sorted(by_account) == ["a2", "nobody"]
    assert {held_id(r) for r in by_account["a2"]} == set(ids["a2"])
    assert all(str(r["error"]).startswith("AuthenticationError") for r in by_account["a2"])
    assert {held_id(r) for r in by_account["nobody"]} == set(ids["nobody"])
    assert all(
        r["error"] == "UnknownAccountError: no account for instance push id 'nobody'"
        for r in by_account["nobody"]
    )
    for record in records(failed):  # each keeps the number of its line in the input
        assert json.loads(lines[int(str(record["line"])) - 1])["resource"] == record["resource"]
    # The refusal is the account's: once said, nothing more sent with that token.
    a2_requests = [r for r in pushes(host_a) if r.instance_push_id == "a2"]
    assert 1 <= len(a2_requests) <= 4
    assert done.stderr.count("refused the token") == 1, done.stderr
    assert "instance push ids a2 (HTTP 401)" in done.stderr
    assert "40 lines name instance push ids" in done.stderr
    assert "nobody" in done.stderr
    assert "Traceback" not in done.stderr
    for secret in (token("a1"), token("b1"), "wrong"):
        assert secret not in done.stdout + done.stderr
    assert "AuthenticationError" in done.stdout
    assert "UnknownAccountError" in done.stdout

    with ZendeskEmulator(accounts={"nobody": "token-nobody"}) as host_c:
        store_accounts(
            store,
            {"a2": (host_a.base_url, token("a2")), "nobody": (host_c.base_url, "token-nobody")},
        )
        again = tmp_path / "again.jsonl"
        rerun = push_accounts(failed, store, "--failed", str(again))
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert again.read_text() == ""
        assert imported(host_c) == set(ids["nobody"])
    assert imported(host_a) == {*ids["a1"], *ids["a2"], "a1-reply"}
    assert all(host_a.import_count(i) == 1 for i in ids["a1"] + ids["a2"])


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (json.dumps(raw_resource("bare")), "missing instance_push_id"),
        (json.dumps({"instance_push_id": "a1"}), "missing resource"),
        (
            json.dumps({"instance_push_id": "a1", "resource": raw_resource("x"), "more": 1}),
            "unknown field 'more'",
        ),
        (json.dumps({"instance_push_id": 7, "resource": raw_resource("x")}), "non-empty string"),
        (json.dumps({"instance_push_id": "", "resource": raw_resource("x")}), "non-empty string"),
        (json.dumps([1]), "got list"),
    ],
    ids=["bare-resource", "no-resource", "extra-field", "number", "empty", "not-an-object"],
)
def test_a_line_that_is_not_an_accounts_line_fails_alone(
    host_a: ZendeskEmulator, tmp_path: Path, text: str, error: str
) -> None:
    """A line without its account (or not in the envelope's shape) is in the failed file as
    read, saying what is wrong; the lines around it are imported."""
    store = tmp_path / "accounts.sqlite"
    store_accounts(store, {"a1": (host_a.base_url, token("a1"))})
    failed = tmp_path / "failed.jsonl"
    stdin = "\n".join([line("a1", "before"), text, line("a1", "after")]) + "\n"
    done = push_accounts("-", store, "--failed", str(failed), stdin=stdin)
    assert done.returncode == 1, done.stdout + done.stderr
    [record] = records(failed)
    assert record["line"] == 2
    assert error in str(record["error"])
    assert record["raw"] == text
    assert imported(host_a) == {"before", "after"}


def test_an_invalid_resource_keeps_its_account_in_the_failed_file(
    host_a: ZendeskEmulator, tmp_path: Path
) -> None:
    """A resource Zendesk's limits refuse fails with its account; mended in the failed file,
    the file pushes again as is."""
    store = tmp_path / "accounts.sqlite"
    store_accounts(store, {"a1": (host_a.base_url, token("a1"))})
    failed = tmp_path / "failed.jsonl"
    done = push_accounts("-", store, "--failed", str(failed), stdin=line("a1", "t", mesage="x"))
    assert done.returncode == 1
    [record] = records(failed)
    assert record["instance_push_id"] == "a1"
    assert "mesage" in str(record["error"])
    resource = record["resource"]
    assert isinstance(resource, dict)
    resource["message"] = resource.pop("mesage")
    failed.write_text(json.dumps(record) + "\n")
    rerun = push_accounts(failed, store)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert imported(host_a) == {"t"}


def test_an_accounts_failed_file_is_not_pushed_to_one_other_account(
    host_a: ZendeskEmulator, tmp_path: Path
) -> None:
    """A record of `push --accounts` pushed without --accounts to another account would land
    in the wrong place: it fails, naming its account; to its own account it is pushed."""
    source = tmp_path / "failed.jsonl"
    source.write_text(
        json.dumps(
            {"line": 3, "error": "x", "instance_push_id": "a2", "resource": raw_resource("r-a2")}
        )
        + "\n"
        + json.dumps(
            {"line": 4, "error": "x", "instance_push_id": "a1", "resource": raw_resource("r-a1")}
        )
        + "\n"
    )
    failed = tmp_path / "again.jsonl"
    done = cli(
        "push",
        str(source),
        "--base-url",
        host_a.base_url,
        "--instance-push-id",
        "a1",
        "--failed",
        str(failed),
        token=token("a1"),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    [record] = records(failed)
    assert record["line"] == 3
    assert record["instance_push_id"] == "a2"
    assert "push it with --accounts" in str(record["error"])
    assert imported(host_a) == {"r-a1"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--instance-push-id", "a1"), "mutually exclusive"),
        (("--outbox", "o.sqlite"), "--outbox does not go with --accounts"),
        (("--base-url", "http://127.0.0.1:1"), "not allowed with argument"),
    ],
    ids=["instance-push-id", "outbox", "base-url"],
)
def test_options_that_do_not_go_with_accounts_are_usage_errors(
    host_a: ZendeskEmulator, tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    store = tmp_path / "accounts.sqlite"
    store_accounts(store, {"a1": (host_a.base_url, token("a1"))})
    failed = tmp_path / "failed.jsonl"
    failed.write_text("kept\n")
    done = push_accounts("-", store, "--failed", str(failed), *extra, stdin=line("a1", "x"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert failed.read_text() == "kept\n"
    assert pushes(host_a) == []


def test_a_missing_store_and_a_lone_per_account_limit_are_usage_errors(tmp_path: Path) -> None:
    """A typo in the store's path is not an empty store (every line unknown): exit 2, and no
    store is created; --max-pending-per-account means nothing without --accounts."""
    missing = tmp_path / "nope.sqlite"
    done = push_accounts("-", missing, stdin="")
    assert done.returncode == 2
    assert f"no accounts store at {missing}" in done.stderr
    assert not missing.exists()
    alone = cli(
        "push",
        "-",
        "--base-url",
        "http://127.0.0.1:1",
        "--instance-push-id",
        "x",
        "--max-pending-per-account",
        "5",
        stdin="",
    )
    assert alone.returncode == 2
    assert "--max-pending-per-account goes with --accounts" in alone.stderr


def test_sigint_during_a_push_to_many_accounts_settles_and_keeps_every_line(
    host_a: ZendeskEmulator, host_b: ZendeskEmulator, tmp_path: Path
) -> None:
    """SIGINT while three accounts on two hosts are pushed: requests in flight settle, every
    line is imported or in the failed file with its account and line number, exit 130; the
    failed file pushed again as is imports each resource once."""
    host_a.faults = Faults(latency=0.1)
    host_b.faults = Faults(latency=0.1)
    store = tmp_path / "accounts.sqlite"
    accounts = ("a1", "a2", "b1")
    store_accounts(
        store, {i: ((host_a if i in HOST_A else host_b).base_url, token(i)) for i in accounts}
    )
    lines = [line(accounts[n % 3], f"r-{n}") for n in range(1, 6_001)]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    failed = tmp_path / "failed.jsonl"
    process = start_cli(
        "push",
        str(source),
        "--accounts",
        str(store),
        "--failed",
        str(failed),
        "--max-pending",
        "600",
        "--max-pending-per-account",
        "200",
        "--max-in-flight",
        "2",
        token=None,
    )
    try:
        wait_for(lambda: len(pushes(host_a)) + len(pushes(host_b)) >= 6, "requests arrive")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, out + err
    assert "Traceback" not in err
    assert "stopped by SIGINT: read up to line" in out

    in_failed = records(failed)
    done = imported(host_a) | imported(host_b)
    assert done, "nothing was imported before the signal; the test is moot"
    failed_ids = [held_id(r) for r in in_failed]
    assert len(failed_ids) == len(set(failed_ids))
    assert not done & set(failed_ids)
    assert done | set(failed_ids) == {f"r-{n}" for n in range(1, 6_001)}
    for record in in_failed:  # its account and its line number, as in the input
        assert json.loads(lines[int(str(record["line"])) - 1]) == {
            "instance_push_id": record["instance_push_id"],
            "resource": record["resource"],
        }
    assert any(str(r["error"]).startswith("stopped by SIGINT") for r in in_failed)

    host_a.faults = Faults()
    host_b.faults = Faults()
    again = tmp_path / "again.jsonl"
    rerun = push_accounts(failed, store, "--failed", str(again))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert again.read_text() == ""
    assert imported(host_a) | imported(host_b) == {f"r-{n}" for n in range(1, 6_001)}
    assert all(
        (host_a if accounts[n % 3] in HOST_A else host_b).import_count(f"r-{n}") == 1
        for n in range(1, 6_001)
    )


def test_an_unknown_id_with_control_characters_is_shown_escaped(
    host_a: ZendeskEmulator, tmp_path: Path
) -> None:
    """An id read from the input that would drive the terminal (an escape sequence) reaches
    standard error quoted and escaped, never raw."""
    store = tmp_path / "accounts.sqlite"
    store_accounts(store, {"a1": (host_a.base_url, token("a1"))})
    source = tmp_path / "in.jsonl"
    source.write_text(line("evil\x1b[2J\x07", "r1") + "\n" + line("a1", "r2") + "\n")
    done = push_accounts(source, store)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "\x1b" not in done.stderr
    assert "'evil\\x1b[2J\\x07'" in done.stderr
    assert imported(host_a) == {"r2"}
