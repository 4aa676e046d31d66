"""SMTP probes: run a session step by step and record every reply.

Public surface: `run_probe(provider, config) -> ProbeResult` and the result
model. A probe never raises.
"""

from monitor.probe.engine import run_probe
from monitor.probe.result import (
    Capabilities,
    Certificate,
    Diagnosis,
    FailureClass,
    Finding,
    ProbeResult,
    Step,
    StepResult,
    TlsInfo,
)

__all__ = [
    "Capabilities",
    "Certificate",
    "Diagnosis",
    "FailureClass",
    "Finding",
    "ProbeResult",
    "Step",
    "StepResult",
    "TlsInfo",
    "run_probe",
]
