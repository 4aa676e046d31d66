"""Every finding id the code can raise is documented in the README's table, and every
documented id exists: ids are part of the public contract."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[3]
RAISED = re.compile(r'(?:error|warning|info)\(\s*"([a-z_]+\.[a-z_0-9]+)"')
# Ids passed on a line of their own after the constructor's opening parenthesis.
ON_THEIR_OWN = re.compile(r'^\s+"([a-z_]+\.[a-z_0-9]+)",$', re.M)


def raised() -> set[str]:
    ids: set[str] = set()
    for path in (ROOT / "monitor" / "posture").glob("*.py"):
        text = path.read_text()
        ids |= set(RAISED.findall(text)) | set(ON_THEIR_OWN.findall(text))
    return ids


def documented() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Sending-domain posture", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {i for row in rows for i in re.findall(r"`([a-z_]+\.[a-z_0-9]+)`",
                                                   row.split("|")[1])}


def test_every_finding_id_is_documented_and_every_documented_id_exists() -> None:
    found = raised()
    assert len(found) > 60
    assert found - documented() == set()
    assert documented() - found == set()
