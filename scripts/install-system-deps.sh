#!/usr/bin/env bash
# Debian packages the test suite talks to: the real postfix and dovecot it probes,
# swaks/check_smtp that bench/ measures against (swaks needs libnet-ssleay-perl
# for STARTTLS, a Recommends that --no-install-recommends leaves out), and the
# headless chromium + chromedriver the status page's browser test drives. Installed only when missing,
# with the distribution's services left stopped: the tests start their own
# instances on loopback, from config files under tests/.
# Usage: install-system-deps.sh demo|test   (demo needs only python3-venv)
set -euo pipefail
packages=(python3-venv)
if [ "${1:-test}" = "test" ]; then
    packages+=(postfix dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-sieve
               swaks libnet-ssleay-perl monitoring-plugins-basic chromium chromium-driver)
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
# Keep the packages' init scripts from starting system-wide daemons on port 25/143.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
