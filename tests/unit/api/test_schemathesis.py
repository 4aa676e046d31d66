"""schemathesis against /openapi.json of a running service: no 5xx, responses match the schema."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

from tests.unit.api.conftest import ADMIN, Live


async def test_schemathesis_finds_no_server_errors(live: Live, tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is a test dependency (pip install -e '.[test]')"
    proc = await asyncio.create_subprocess_exec(
        st, "run", f"{live.url}/openapi.json", "--header", f"Authorization: Bearer {ADMIN}",
        "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance,"
        "content_type_conformance",
        "--phases", "examples,coverage,fuzzing", "--max-examples", "25", "--workers", "1",
        "--suppress-health-check", "all", "--seed", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report[-6000:]
