"""The README stays current: quickstart first, and one tree line for every tracked file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_is_the_two_make_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quickstart\s+```bash\n(.*?)```", text, re.S)
    assert block, "README has a Quickstart code block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make run", "make test"]


def test_every_tracked_file_has_a_line_in_the_tree():
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    tree = (ROOT / "README.md").read_text().split("## Files", 1)[1]
    listed = {line.split("#")[0].strip() for line in tree.splitlines() if "#" in line}
    missing = sorted(f for f in files if f not in listed)
    assert missing == [], "add these to the README's file tree"
