"""Sending-domain posture: findings about SPF, DMARC, DKIM, MTA-STS, TLS-RPT, DANE,
DNSBL listings, reverse DNS and BIMI, one module per family, each returning
`Finding`s with a stable dotted id (README, "Posture findings")."""
