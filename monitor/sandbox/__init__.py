"""The built-in sandbox: a local SMTP server and its certificates."""

from monitor.sandbox.certs import CertificateFiles, make_certificates
from monitor.sandbox.server import FAULT_POINTS, Sandbox

__all__ = ["FAULT_POINTS", "CertificateFiles", "Sandbox", "make_certificates"]
