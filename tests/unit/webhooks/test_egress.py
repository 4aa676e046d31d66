"""Egress refusals: addresses, schemes, credentials. Only loopback names are resolved."""

from __future__ import annotations

import asyncio
import socket
from typing import NoReturn

import pytest

from monitor.webhooks.egress import vet_destination
from monitor.webhooks.errors import EgressReason, EgressRefused


async def refused(url: str, *, allow_private: bool = False, allow_http: bool = True
                  ) -> EgressReason:
    with pytest.raises(EgressRefused) as caught:
        await vet_destination(url, allow_private=allow_private, allow_http=allow_http)
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
    await vet_destination(url, allow_private=True, allow_http=True)


@pytest.mark.parametrize(("url", "reason"), [
    ("https://169.254.169.254/", EgressReason.METADATA),
    ("https://0.0.0.0/", EgressReason.UNSPECIFIED),
    ("https://239.1.1.1/", EgressReason.MULTICAST),
])
async def test_metadata_unspecified_and_multicast_stay_refused(url: str,
                                                              reason: EgressReason) -> None:
    assert await refused(url, allow_private=True) is reason


async def test_public_address_literal_passes() -> None:
    await vet_destination("https://93.184.215.14/hook", allow_private=False, allow_http=False)


async def test_http_refused_unless_allowed() -> None:
    assert await refused("http://93.184.215.14/hook", allow_http=False) is EgressReason.SCHEME
    await vet_destination("http://93.184.215.14/hook", allow_private=False, allow_http=True)


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
        await vet_destination("https://no-such-host.invalid/hook", allow_private=False,
                                allow_http=False)
    assert caught.value.reason is EgressReason.UNRESOLVABLE
    assert caught.value.permanent is False


async def test_message_names_the_host_but_never_the_path() -> None:
    with pytest.raises(EgressRefused) as caught:
        await vet_destination("https://127.0.0.1/services/T000/B000/SeCrEt",
                                allow_private=False, allow_http=False)
    assert "127.0.0.1" in caught.value.message
    assert "SeCrEt" not in caught.value.message
    assert "allow_private_destinations" in caught.value.message


# IPv6 forms that carry an IPv4 address: 6to4 (RFC 3056) puts it in bits 16-48, Teredo
# (RFC 4380) carries the server plainly and the client XOR 0xffffffff, IPv4-mapped
# (RFC 4291 §2.5.5.2), NAT64's well-known prefix (RFC 6052) and the deprecated
# IPv4-compatible form in the last 32 bits. Each is judged by the IPv4 address it embeds.
@pytest.mark.parametrize(("url", "reason"), [
    ("https://[2002:7f00:1::]/", EgressReason.LOOPBACK),  # 6to4, 127.0.0.1
    ("https://[2002:a00:1::1]/", EgressReason.PRIVATE),  # 6to4, 10.0.0.1
    ("https://[2002:a9fe:101::]/", EgressReason.LINK_LOCAL),  # 6to4, 169.254.1.1
    ("https://[2002:a9fe:a9fe::]/", EgressReason.METADATA),  # 6to4, 169.254.169.254
    ("https://[2001:0:7f00:1::]/", EgressReason.LOOPBACK),  # Teredo server 127.0.0.1
    ("https://[2001:0:5db8:d70e::f5ff:fffe]/", EgressReason.PRIVATE),  # Teredo client 10.0.0.1
    ("https://[2001:0:5db8:d70e::5601:5601]/", EgressReason.METADATA),  # client 169.254.169.254
    ("https://[::ffff:10.0.0.1]/", EgressReason.PRIVATE),  # IPv4-mapped
    ("https://[::ffff:169.254.1.1]/", EgressReason.LINK_LOCAL),
    ("https://[::ffff:169.254.169.254]/", EgressReason.METADATA),
    ("https://[64:ff9b::7f00:1]/", EgressReason.LOOPBACK),  # NAT64, 127.0.0.1
    ("https://[64:ff9b::a00:1]/", EgressReason.PRIVATE),  # NAT64, 10.0.0.1
    ("https://[64:ff9b::a9fe:a9fe]/", EgressReason.METADATA),  # NAT64, 169.254.169.254
    ("https://[::a9fe:a9fe]/", EgressReason.METADATA),  # IPv4-compatible
])
async def test_ipv6_forms_embedding_a_non_public_ipv4_are_refused(url: str,
                                                                  reason: EgressReason) -> None:
    assert await refused(url) is reason


@pytest.mark.parametrize(("url", "reason"), [
    ("https://[2002:a9fe:a9fe::]/", EgressReason.METADATA),
    ("https://[2002::]/", EgressReason.UNSPECIFIED),  # 6to4, 0.0.0.0
    ("https://[2002:e000:1::]/", EgressReason.MULTICAST),  # 6to4, 224.0.0.1
    ("https://[2001:0:a9fe:a9fe::]/", EgressReason.METADATA),  # Teredo server
    ("https://[2001:0:5db8:d70e::5601:5601]/", EgressReason.METADATA),  # Teredo client
    ("https://[64:ff9b::a9fe:a9fe]/", EgressReason.METADATA),
    ("https://[64:ff9b::]/", EgressReason.UNSPECIFIED),
    ("https://[::a9fe:a9fe]/", EgressReason.METADATA),
])
async def test_embedded_metadata_unspecified_and_multicast_stay_refused(
        url: str, reason: EgressReason) -> None:
    assert await refused(url, allow_private=True) is reason


@pytest.mark.parametrize("url", [
    "https://[2002:5db8:d70e::1]/hook",  # 6to4 for 93.184.215.14
    "https://[64:ff9b::5db8:d70e]/hook",  # what DNS64 answers for 93.184.215.14
])
async def test_ipv6_forms_of_a_public_ipv4_pass(url: str) -> None:
    await vet_destination(url, allow_private=False, allow_http=False)


async def test_teredo_is_refused_even_for_public_ipv4() -> None:
    # Teredo (2001::/32) sits in 2001::/23, which IANA lists as not globally reachable.
    assert await refused("https://[2001:0:5db8:d70e::a247:28f1]/") is EgressReason.PRIVATE


async def test_message_names_the_embedded_ipv4() -> None:
    with pytest.raises(EgressRefused) as caught:
        await vet_destination("https://[2002:7f00:1::]/", allow_private=False,
                                allow_http=False)
    assert caught.value.message.startswith("2002:7f00:1:: embeds 127.0.0.1, a loopback address")
