"""Progress while pytest scans: probes done / total, rate and ETA on a terminal; nothing elsewhere."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_portcheck.progress import ProgressLine, describe_progress

# Long enough for a few redraws (one every 0.1 s) on a fast machine; the last line is drawn however
# short the scan, so a slower or faster machine changes how many lines, not whether one shows.
INVENTORY = 'hosts:\n  a:\n    address: 127.0.0.1\n    only_open: [1]\n    range: "1-8000"\n'


def test_the_line_says_done_total_rate_and_eta() -> None:
    assert describe_progress(16_000, 64_000, 2.0) == "portcheck: 16,000/64,000 probes (25%), 8,000/s, ETA 6 s"
    assert "ETA" not in describe_progress(10, 64_000, 0.5)  # too early to say
    assert "ETA" not in describe_progress(64_000, 64_000, 4.0)


def test_redraws_are_paced_and_cleared() -> None:
    drawn: list[str] = []
    line = ProgressLine(drawn.append, interval=3600)
    for done in range(1, 1000):
        line.update(done, 1000)
    line.update(1000, 1000)  # the last one is always drawn
    line.finish()
    assert len(drawn) == 2 and drawn[0].startswith("portcheck: 1,000/1,000") and drawn[1] == ""


def run_pytest(folder: Path, on_terminal: bool) -> str:
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--portcheck", "inv.yml"]
    if on_terminal:  # script(1) gives the run a pseudo-terminal
        command = ["script", "-q", "-e", "-c", " ".join(command), "/dev/null"]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=120)
    return done.stdout + done.stderr


@pytest.mark.usefixtures("private_loopback")  # its scans of a range knock at no other test's ports
def test_progress_on_a_terminal_and_silence_elsewhere(tmp_path: Path) -> None:
    if shutil.which("script") is None:
        pytest.skip("script(1) from util-linux is not installed")
    (tmp_path / "inv.yml").write_text(INVENTORY)
    # The failure may name what answers on other loopback ports; only the progress line must not show.
    assert " probes (" not in run_pytest(tmp_path, on_terminal=False)
    shown = run_pytest(tmp_path, on_terminal=True)
    assert "portcheck: 8,000/8,000 probes (100%)" in shown and "/s" in shown
