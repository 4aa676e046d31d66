"""bench/ measures against peers only when they did their whole job."""

from __future__ import annotations

import shutil
import sys

from bench.clients import peer_problem
from bench.peers import Peer, PeerFailed, PeerRow, peer_pool, table


def test_a_peer_that_gave_up_before_tls_gets_no_ratio() -> None:
    # What Debian's swaks prints, exiting 0 in some versions, without libnet-ssleay-perl.
    gave_up = [sys.executable, "-c",
               "print('*** TLS not available: requires Net::SSLeay.  Exiting')"]
    assert peer_problem(gave_up) == "TLS not available: requires Net::SSLeay.  Exiting"
    failed = [sys.executable, "-c", "import sys; print('530 go away'); sys.exit(2)"]
    assert peer_problem(failed) == "exit 2: 530 go away"
    assert peer_problem([sys.executable, "-c", "print('250 ok')"]) is None


def test_swaks_here_can_do_tls() -> None:
    # ./dev installs libnet-ssleay-perl: without it every swaks row measures a refusal.
    assert shutil.which("swaks"), "swaks is installed by scripts/install-system-deps.sh"
    problem = peer_problem(["swaks", "--server", "127.0.0.1:9", "--tls", "--quit-after",
                            "CONNECT", "--timeout", "1"])
    assert problem is None or "Net::SSLeay" not in problem, problem


def test_a_peer_without_its_reply_fails_and_its_row_has_no_ratio() -> None:
    quiet = Peer("check_smtp", [sys.executable, "-c", "print('SMTP WARNING - slow')"],
                 ("SMTP OK",), "tls", "STARTTLS + EHLO + QUIT")
    try:
        peer_pool(quiet, 2)(4)
    except PeerFailed as exc:
        problem = str(exc)
    else:
        raise AssertionError("a run without 'SMTP OK' was counted")
    assert "no 'SMTP OK'" in problem and "SMTP WARNING - slow" in problem
    fine = Peer("check_smtp", [sys.executable, "-c", "print('SMTP OK - 0.01 sec')"],
                ("SMTP OK",), "tls", "STARTTLS + EHLO + QUIT")
    assert peer_pool(fine, 2)(4) > 0
    broken = PeerRow("check_smtp", quiet.work, 8, None, None, None, None, None, 4.0, problem)
    measured = PeerRow("swaks", "a send", 8, 100.0, 90.0, 4.0, 25.5, 22.0, 25.0,
                       cpu_ms=(1.0, 1.1, 30.0))
    text = table([broken, measured])
    failed_line = next(line for line in text.splitlines() if line.startswith("check_smtp"))
    assert "failed at parallelism 8: no ratio" in failed_line and "x (" not in failed_line
    assert "25.5x (met)" in text and "22.0x (missed)" in text
    assert text.endswith(f"check_smtp: {problem}")
