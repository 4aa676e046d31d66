"""Shared helpers for unit tests: configs built in code, certificates on disk."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Config, ProviderConfig
from monitor.sandbox import CertificateFiles, make_certificates


def make_config(**provider: Any) -> Config:
    fields: dict[str, Any] = {"name": "p", "host": "127.0.0.1", "helo": "probe.test",
                              "timeout": "5s", "step_timeout": "1s"}
    fields.update(provider)
    return Config(providers=(ProviderConfig.model_validate(fields),))


@pytest.fixture(scope="session")
def good_certs(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return make_certificates(Path(tmp_path_factory.mktemp("certs")))


@pytest.fixture(scope="session")
def server_ctx(good_certs: CertificateFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(good_certs.cert_file, good_certs.key_file)
    return context
