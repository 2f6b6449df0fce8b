"""The two-way demo and the two-way example run as a user runs them, so they never rot."""

from __future__ import annotations

import re
from pathlib import Path

from .conftest import cli, run_python

EXAMPLE = Path(__file__).parent.parent / "examples" / "two_way"


def test_the_two_way_demo_runs_the_whole_loop() -> None:
    """`demo --two-way` installs two accounts, pushes, learns each ticket from Zendesk's
    events, has agents answer, and shows each reply on the origin side with its ticket id;
    it says its claim held and exits 0."""
    done = cli("demo", "--two-way", token=None, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(re.findall(r"Installed 'Acme @\w+' through the admin UI", done.stdout)) == 2
    assert "(36 via pool.ticket_of)." in done.stdout
    replies = re.findall(
        r"^  @\w+ +\S+-out-\d+ +in reply to \S+: .*\(ticket #\d+\)\.$", done.stdout, re.M
    )
    answered = re.search(r"Agents answered (\d+) of 24 tickets; 1 channelback", done.stdout)
    assert answered is not None, done.stdout
    assert len(replies) == int(answered.group(1))
    assert done.stdout.rstrip().endswith("Every reply came out once, where it belongs.")
    assert "Traceback" not in done.stderr


def test_the_two_way_demo_takes_a_count_of_posts() -> None:
    """--count is the posts per account with --two-way."""
    done = cli("demo", "--two-way", "--count", "3", "--seed", "2", token=None, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "of 6 tickets" in done.stdout


def test_the_two_way_example_runs() -> None:
    """examples/two_way/main.py, the integration a user copies, runs the loop to its end."""
    done = run_python(str(EXAMPLE / "main.py"), token=None, cwd=EXAMPLE, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "agent replied in 2 tries" in done.stdout
    assert done.stdout.rstrip().endswith("all as expected")
    assert done.stderr == ""
