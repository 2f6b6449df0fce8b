"""The README's quick start and the demo run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import cli, run_python

ROOT = Path(__file__).resolve().parent.parent


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def test_readme_quick_start_runs_and_prints_results() -> None:
    """The first Python block of the README runs in a fresh interpreter and pushes both."""
    quick_start = _python_blocks((ROOT / "README.md").read_text())[0]
    assert len(quick_start.strip().splitlines()) <= 20
    done = run_python("-c", quick_start, token=None)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["post-1", "success", "reply-1", "success"]


@pytest.mark.parametrize("args", [["demo", "--count", "300"]])
def test_demo_command_ingests_and_shows_tickets(args: list[str]) -> None:
    """`python -m anychannel_async demo` ingests generated conversations and shows tickets."""
    done = cli(*args, token=None, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Ingested 300 resources" in done.stdout
    assert re.search(r"Ticket #\d+", done.stdout)
    assert "success" in done.stdout


def test_the_demo_s_announced_failures_happen_and_show_in_its_summary() -> None:
    """The posts the demo says will fail to process are generated, fail, and are counted in
    the summary's ProcessingError row; the demo says its claim held."""
    done = cli("demo", "--count", "600", "--seed", "3", token=None, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    announced = re.search(r"(\d+) posts will fail to process \(([^)]*)\)", done.stdout)
    assert announced is not None, done.stdout
    doomed = announced.group(2).split(", ")
    assert len(doomed) == int(announced.group(1)) == 4
    row = re.search(r"ProcessingError\s+([\d,]+)", done.stdout)
    assert row is not None, done.stdout
    assert int(row.group(1).replace(",", "")) >= len(doomed)
    assert f"As announced: {', '.join(doomed)} failed to process" in done.stdout


@pytest.mark.parametrize(
    "args", [("--seed", "2"), ("--count", "20000", "--seed", "5")], ids=["seed_2", "seed_5"]
)
def test_the_demo_s_replies_fail_with_their_posts(args: tuple[str, ...]) -> None:
    """Redeliveries keep the parent of what they redeliver: every generated resource is
    valid, and the replies under the posts meant to fail (their redeliveries too) are the
    ones that fail as replies to a failed post, as many as announced."""
    done = cli("demo", "--quiet", *args, token=None, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    announced = re.search(r"and (\d+) replies to them with them\.\n", done.stdout)
    assert announced is not None, done.stdout
    row = re.search(r"ParentNotFoundError\s+([\d,]+)", done.stdout)
    assert row is not None, done.stdout
    assert int(row.group(1).replace(",", "")) == int(announced.group(1))
    assert "ValidationError" not in done.stdout
    assert "As announced:" in done.stdout


@pytest.mark.parametrize("count", ["0", "-3"])
def test_the_demo_needs_at_least_one_resource(count: str) -> None:
    """--count below 1 is a usage error (exit 2), not a traceback or an empty run."""
    done = cli("demo", "--count", count, token=None)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--count must be at least 1" in done.stderr
    assert "Traceback" not in done.stderr
