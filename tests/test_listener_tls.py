"""The shared port's TLS side, without sockets: what it offers over ALPN, how failures read."""

from OpenSSL import SSL
from twisted.internet.interfaces import IProtocolNegotiationFactory

from rtcsvc.listener import SharedPortFactory, tls_failure_reason


def test_the_shared_port_offers_http_1_1_over_alpn_and_nothing_autobahn_cannot_upgrade():
    factory = SharedPortFactory(site=None, signaling=None, clock=None, timeout=10)
    assert IProtocolNegotiationFactory.providedBy(factory)
    assert list(factory.acceptableProtocols()) == [b"http/1.1"]


def test_a_failed_handshake_reads_as_openssl_words_not_a_tuple_list():
    error = SSL.Error([("SSL routines", "", "unsupported protocol")])
    assert tls_failure_reason(error) == "unsupported protocol"


def test_a_client_that_distrusts_the_certificate_is_named_as_such():
    error = SSL.Error([("SSL routines", "", "tlsv1 alert unknown ca")])
    assert tls_failure_reason(error).endswith("(the client does not trust this certificate)")


def test_an_error_without_details_still_reads_as_a_reason():
    assert tls_failure_reason(SSL.Error()) == "unknown reason"
