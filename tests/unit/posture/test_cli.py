"""`monitor posture DOMAIN`: readable and JSON output, exit codes, escaping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.cli import main
from tests.unit.checks.dnsserver import txt
from tests.unit.posture.threaded import dns_thread
from tests.unit.posture.zones import good_domain, spf_tree

DOMAIN = "good.test"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["posture", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_good_domain_exits_0_with_findings_grouped(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    with dns_thread(good_domain(DOMAIN)) as server:
        code, out, _ = run(capsys, DOMAIN, "--dns-server", f"127.0.0.1:{server.port}",
                           "--config", str(_config(tmp_path)))
    assert code == 0
    assert out.startswith(f"Posture of {DOMAIN} via 127.0.0.1:{server.port}: 1 warning")
    assert "\nWarnings\n  mta_sts.missing\n" in out
    assert "\nInfo\n" in out and "  spf.ok\n" in out and "  dmarc.ok\n" in out
    assert "record: v=spf1 ip4:127.0.0.1 include:_spf.esp.test -all" in out
    assert "Errors" not in out and out.rstrip().endswith("Verdict: PASSED")


def test_json_is_a_list_of_findings_and_an_error_exits_1(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    records = good_domain(DOMAIN)
    records.update(spf_tree(DOMAIN, 11))
    with dns_thread(records) as server:
        code, out, _ = run(capsys, DOMAIN, "--dns-server", f"127.0.0.1:{server.port}",
                           "--config", str(_config(tmp_path)), "--json")
    assert code == 1
    found = json.loads(out)
    assert found[0] == {"id": "spf.lookup_limit", "severity": "error",
                        "message": found[0]["message"], "record": found[0]["record"]}
    assert "needs 11 DNS lookups" in found[0]["message"]
    assert {f["severity"] for f in found} <= {"error", "warning", "info"}


def test_a_listing_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    records = good_domain(DOMAIN)
    records[(f"{DOMAIN}.dbl.test", "A")] = ["127.0.1.2"]
    with dns_thread(records) as server:
        code, out, _ = run(capsys, DOMAIN, "--dns-server", f"127.0.0.1:{server.port}",
                           "--config", str(_config(tmp_path)))
    assert code == 1
    assert "\nErrors\n  dnsbl.listed (good.test dbl.test)\n" in out


def test_remote_text_is_escaped(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    records = good_domain(DOMAIN)
    records[(DOMAIN, "TXT")] = [txt("v=spf1 ip4:127.0.0.1 +all \x1b[2J")]
    with dns_thread(records) as server:
        code, out, _ = run(capsys, DOMAIN, "--dns-server", f"127.0.0.1:{server.port}",
                           "--config", str(_config(tmp_path)))
    assert code == 1
    assert "\x1b" not in out and "\\x1b[2J" in out


@pytest.mark.parametrize(("args", "message"), [
    (["not a domain"], "DOMAIN 'not a domain': must be a domain name"),
    (["good.test", "--ip", "300.1.1.1"], "--ip '300.1.1.1': not an IP address"),
    (["good.test", "--dns-server", "dns.example"], "--dns-server 'dns.example': expected"),
    (["good.test", "--message", "/nonexistent.eml"], "cannot read --message /nonexistent.eml"),
])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str],
                             message: str) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    assert err.startswith(f"error: {message}")


def test_a_bad_config_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("settings:\n  posture_interval: 1s\n")
    code, _, err = run(capsys, DOMAIN, "--config", str(bad))
    assert code == 2 and "settings.posture_interval: must be at least 5m" in err


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text("settings:\n  dnsbl_zones: [zen.test]\n  dnsbl_domain_zones: [dbl.test]\n")
    return path
