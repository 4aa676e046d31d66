"""Benchmarks of the SMTP probe, run with `python -m bench [--quick]`.

Performance is measured here and never asserted in tests: the machines are shared
and noisy, so absolute numbers mean little. Every figure is printed next to a
baseline measured in the same run (raw aiosmtplib doing the same SMTP work by
hand, swaks, check_smtp) and the ratio is what to read and compare across runs.
"""
