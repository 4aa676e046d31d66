"""Egress refusals: addresses, schemes, credentials. Only loopback names are resolved."""

from __future__ import annotations

import asyncio
import socket
from typing import NoReturn

import pytest

from monitor.webhooks.egress import check_destination
from monitor.webhooks.errors import EgressReason, EgressRefused


async def refused(url: str, *, allow_private: bool = False, allow_http: bool = True
                  ) -> EgressReason:
    with pytest.raises(EgressRefused) as caught:
        await check_destination(url, allow_private=allow_private, allow_http=allow_http)
    return caught.value.reason


@pytest.mark.parametrize(("url", "reason"), [
    ("https://127.0.0.1/hook", EgressReason.LOOPBACK),
    ("https://[::1]:8443/hook", EgressReason.LOOPBACK),
    ("https://[::ffff:127.0.0.1]/hook", EgressReason.LOOPBACK),  # IPv4-mapped
    ("https://10.1.2.3/hook", EgressReason.PRIVATE),
    ("https://172.16.0.1/hook", EgressReason.PRIVATE),
    ("https://192.168.1.1/hook", EgressReason.PRIVATE),
    ("https://[fd12:3456::1]/hook", EgressReason.PRIVATE),  # ULA
    ("https://169.254.10.10/hook", EgressReason.LINK_LOCAL),
    ("https://[fe80::1]/hook", EgressReason.LINK_LOCAL),
    ("https://169.254.169.254/latest/meta-data/", EgressReason.METADATA),
    ("https://[fd00:ec2::254]/", EgressReason.METADATA),
    ("https://0.0.0.0/hook", EgressReason.UNSPECIFIED),
    ("https://224.0.0.1/hook", EgressReason.MULTICAST),
    ("https://240.0.0.1/hook", EgressReason.RESERVED),
    ("https://100.64.0.1/hook", EgressReason.NOT_GLOBAL),  # carrier-grade NAT
])
async def test_non_public_addresses_are_refused(url: str, reason: EgressReason) -> None:
    assert await refused(url) is reason


async def test_a_name_resolving_to_loopback_is_refused() -> None:
    assert await refused("https://localhost:9/hook") is EgressReason.LOOPBACK


@pytest.mark.parametrize("url", ["https://127.0.0.1/x", "http://localhost:8080/x",
                                 "https://10.0.0.5/x", "https://[fe80::1]/x"])
async def test_private_destinations_pass_when_allowed(url: str) -> None:
    await check_destination(url, allow_private=True, allow_http=True)


@pytest.mark.parametrize(("url", "reason"), [
    ("https://169.254.169.254/", EgressReason.METADATA),
    ("https://0.0.0.0/", EgressReason.UNSPECIFIED),
    ("https://239.1.1.1/", EgressReason.MULTICAST),
])
async def test_metadata_unspecified_and_multicast_stay_refused(url: str,
                                                              reason: EgressReason) -> None:
    assert await refused(url, allow_private=True) is reason


async def test_public_address_literal_passes() -> None:
    await check_destination("https://93.184.215.14/hook", allow_private=False, allow_http=False)


async def test_http_refused_unless_allowed() -> None:
    assert await refused("http://93.184.215.14/hook", allow_http=False) is EgressReason.SCHEME
    await check_destination("http://93.184.215.14/hook", allow_private=False, allow_http=True)


@pytest.mark.parametrize("url", ["ftp://93.184.215.14/x", "file:///etc/passwd",
                                 "gopher://93.184.215.14/", "93.184.215.14/hook"])
async def test_other_schemes_are_refused_even_when_http_is_allowed(url: str) -> None:
    assert await refused(url) is EgressReason.SCHEME


@pytest.mark.parametrize("url", ["https://user:pw@93.184.215.14/hook",
                                 "https://token@93.184.215.14/hook"])
async def test_credentials_in_url_are_refused(url: str) -> None:
    assert await refused(url) is EgressReason.CREDENTIALS


async def test_unresolvable_host_is_a_transient_refusal(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    async def no_answer(*args: object, **kwargs: object) -> NoReturn:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    # No DNS query leaves this machine: the resolver's failure is injected.
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_answer)
    with pytest.raises(EgressRefused) as caught:
        await check_destination("https://no-such-host.invalid/hook", allow_private=False,
                                allow_http=False)
    assert caught.value.reason is EgressReason.UNRESOLVABLE
    assert caught.value.permanent is False


async def test_message_names_the_host_but_never_the_path() -> None:
    with pytest.raises(EgressRefused) as caught:
        await check_destination("https://127.0.0.1/services/T000/B000/SeCrEt",
                                allow_private=False, allow_http=False)
    assert "127.0.0.1" in caught.value.message
    assert "SeCrEt" not in caught.value.message
    assert "allow_private_destinations" in caught.value.message
