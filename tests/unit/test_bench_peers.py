"""bench/ measures against peers only when they did their whole job."""

from __future__ import annotations

import shutil
import sys

from bench.clients import peer_problem


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
