"""Forwarded headers are believed only from trusted proxies, and only the proxy's own entries."""

import pytest

from rtcsvc.origin import OriginPolicy, RequestView, TrustedProxies, client_key

PROXY = TrustedProxies([TrustedProxies.parse("127.0.0.1"), TrustedProxies.parse("10.0.0.0/8")])


def headers(**values):
    return lambda name: values.get(name.replace("-", "_"))


def test_an_untrusted_peer_cannot_claim_another_address_scheme_or_host():
    view = PROXY.view("203.0.113.9", False, headers(
        host="chat.example", x_forwarded_for="1.2.3.4", x_forwarded_proto="https",
        x_forwarded_host="evil.example"))
    assert view == RequestView("203.0.113.9", "http", "chat.example")


def test_behind_a_trusted_proxy_the_client_is_the_nearest_untrusted_hop():
    view = PROXY.view("127.0.0.1", False, headers(
        host="127.0.0.1:8080", x_forwarded_for="6.6.6.6, 198.51.100.7, 10.1.2.3",
        x_forwarded_proto="https", x_forwarded_host="chat.example"))
    assert view == RequestView("198.51.100.7", "https", "chat.example")


def test_a_client_supplied_forwarded_host_or_proto_is_ignored_in_favour_of_the_proxys():
    view = PROXY.view("127.0.0.1", False, headers(
        host="x", x_forwarded_for="198.51.100.7",
        x_forwarded_proto="http, https", x_forwarded_host="evil.example, chat.example"))
    assert view.scheme == "https" and view.host == "chat.example"


def test_ipv4_mapped_ipv6_proxy_addresses_are_recognised():
    assert PROXY.trusts("::ffff:127.0.0.1") and not PROXY.trusts("::1")


def test_origins_compare_scheme_host_and_effective_port():
    policy = OriginPolicy(["https://portal.example"])
    view = RequestView("198.51.100.7", "https", "chat.example")
    assert policy.allows("https://chat.example", view)
    assert policy.allows("https://chat.example:443", view)
    assert not policy.allows("http://chat.example", view)
    assert not policy.allows("https://chat.example:8443", view)
    assert policy.allows("https://portal.example:443", view)
    assert not policy.allows("null", view) and not policy.allows("chat.example", view)
    assert policy.allows(None, view)  # non-browser clients send no Origin


@pytest.mark.parametrize("address, key", [
    ("198.51.100.7", "198.51.100.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::9", "2001:db8:1:2::/64"),
    ("2001:db8:1:3::9", "2001:db8:1:3::/64"),
    ("::ffff:198.51.100.7", "198.51.100.7"),
    ("fe80::1%eth0", "fe80::/64"),
    ("unknown", "unknown"),
])
def test_a_client_is_an_ipv4_address_or_an_ipv6_64(address, key):
    assert client_key(address) == key
