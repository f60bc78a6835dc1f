"""
Unit tests for client TLS options and TLS failure classification.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseNeverReceived

from txetcd2 import EtcdClient, EtcdTLSError
from txetcd2._embedded.certificates import CertificateAuthority, write_tls_files
from txetcd2._transport.tls import ClientTLSPolicy
from txetcd2._wire.tls_errors import plain_http_to_tls, speaks_tls, tls_error_for
from txetcd2.testing._fakes import RecordingAgent, node_body

URL = "https://127.0.0.1:2379"


def _never(error: Exception) -> ResponseNeverReceived:
    return ResponseNeverReceived([Failure(error)])


def _ssl(text: str) -> ResponseNeverReceived:
    return _never(SSL.Error([("SSL routines", "", text)]))


class PolicyTests(SynchronousTestCase):
    """
    Building the TLS policy from options.
    """

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.ca = CertificateAuthority()
        self.files = write_tls_files(self.dir, self.ca)

    def test_paths_and_bytes(self) -> None:
        """The CA, certificate and key load from paths and from PEM bytes alike."""
        by_path = ClientTLSPolicy(self.files.ca, self.files.client_cert, self.files.client_key)
        by_bytes = ClientTLSPolicy(
            self.files.ca.read_bytes(),
            self.files.client_cert.read_bytes(),
            self.files.client_key.read_bytes(),
        )
        for policy in (by_path, by_bytes):
            self.assertIn("client certificate", repr(policy))
            creator = policy.creatorForNetloc(b"127.0.0.1", 2379)
            self.assertIsNotNone(creator)

    def test_missing_file(self) -> None:
        """A missing file is a ValueError at construction that names the option and path."""
        missing = str(self.dir / "nope.crt")
        with self.assertRaises(ValueError) as caught:
            EtcdClient(URL, reactor=Clock(), ca=missing)
        self.assertIn("ca=", str(caught.exception))
        self.assertIn("nope.crt", str(caught.exception))

    def test_not_pem(self) -> None:
        """A file without PEM data is refused."""
        junk = self.dir / "junk"
        junk.write_bytes(b"hello")
        self.assertRaises(ValueError, ClientTLSPolicy, junk)

    def test_key_without_cert(self) -> None:
        """key= without cert= is refused."""
        self.assertRaises(ValueError, ClientTLSPolicy, None, None, self.files.client_key)

    def test_mismatched_key(self) -> None:
        """A key that does not belong to the certificate is refused."""
        other = self.ca.issue("other").key_pem()
        with self.assertRaises(ValueError) as caught:
            ClientTLSPolicy(None, self.files.client_cert, other)
        self.assertIn("does not belong", str(caught.exception))

    def test_encrypted_key(self) -> None:
        """An encrypted key needs the right passphrase, which never appears in errors."""
        issued = self.ca.issue("c", server=False)
        cert, key = issued.write(self.dir, "enc", passphrase=b"pass-phrase-xyz")
        ClientTLSPolicy(None, cert, key, "pass-phrase-xyz")
        with self.assertRaises(ValueError) as no_pass:
            ClientTLSPolicy(None, cert, key)
        self.assertIn("passphrase=", str(no_pass.exception))
        with self.assertRaises(ValueError) as wrong:
            ClientTLSPolicy(None, cert, key, "wrong-pass-xyz")
        self.assertNotIn("wrong-pass-xyz", str(wrong.exception))

    def test_verify_false(self) -> None:
        """verify=False builds an unverified policy, and cannot be combined with ca=."""
        policy = ClientTLSPolicy(verify=False)
        self.assertIn("NO verification", repr(policy))
        self.assertRaises(ValueError, ClientTLSPolicy, self.files.ca, verify=False)
        self.assertRaises(TypeError, ClientTLSPolicy, verify="no")

    def test_options_with_agent(self) -> None:
        """TLS options together with agent= are refused."""
        with self.assertRaises(ValueError):
            EtcdClient(URL, reactor=Clock(), agent=RecordingAgent(), ca=self.files.ca)


class ClassificationTests(SynchronousTestCase):
    """
    TLS failures become EtcdTLSError saying what to check.
    """

    def test_unknown_ca(self) -> None:
        """certificate verify failed means the CA is not trusted."""
        error = tls_error_for(URL, _ssl("certificate verify failed"))
        assert error is not None
        self.assertIn("ca=", str(error))

    def test_client_cert_refused(self) -> None:
        """A bad-certificate alert means the client certificate was refused."""
        error = tls_error_for(URL, _ssl("tls alert bad certificate"))
        assert error is not None
        self.assertIn("cert= and key=", str(error))

    def test_hostname(self) -> None:
        """A service-identity VerificationError means a hostname mismatch."""
        error = tls_error_for(URL, _never(VerificationError(errors=[])))
        assert error is not None
        self.assertIn("not valid for this host", str(error))

    def test_not_tls(self) -> None:
        """Other failures are not TLS failures."""
        self.assertIsNone(tls_error_for(URL, _never(ConnectionDone())))
        self.assertIsNone(tls_error_for(URL, ConnectionRefusedError()))

    def test_plain_http_answer(self) -> None:
        """Go's answer to plain HTTP on a TLS port is recognized."""
        body = b"Client sent an HTTP request to an HTTPS server.\n"
        self.assertIsInstance(plain_http_to_tls(URL, 400, body), EtcdTLSError)
        self.assertIsNone(plain_http_to_tls(URL, 400, b"other"))

    def test_tls_error_not_retried(self) -> None:
        """A TLS failure on the first member is raised without trying the second."""
        clock = Clock()
        agent = RecordingAgent(clock)
        client = EtcdClient([URL, "https://127.0.0.2:2379"], reactor=clock, agent=agent)
        d = client.get("k")
        agent.pop().fail(_ssl("certificate verify failed"))
        self.failureResultOf(d, EtcdTLSError)
        self.assertEqual(agent.pending(), [])
        self.successResultOf(client.close())
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_plain_http_probe(self) -> None:
        """A close without an answer on http:// is re-checked with a TLS /version probe; a
        handshake failing on the server's certificate shows a TLS port."""
        clock = Clock()
        agent = RecordingAgent(clock)
        client = EtcdClient("http://127.0.0.1:2379", reactor=clock, agent=agent)
        d = client.get("k")
        agent.pop().fail(_never(ConnectionDone()))
        probe = agent.pop()
        self.assertEqual((probe.netloc, probe.target), ("https://127.0.0.1:2379", "/version"))
        probe.fail(_ssl("certificate verify failed"))
        self.assertIn("serves TLS", str(self.failureResultOf(d, EtcdTLSError).value))
        self.successResultOf(client.close())
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_closed_twice_is_not_tls(self) -> None:
        """A member that closes the TLS probe too (a dead member behind a proxy) is a
        connection failure, tried on the next member, not a TLS error."""
        clock = Clock()
        agent = RecordingAgent(clock)
        client = EtcdClient(
            "http://127.0.0.1:2379,http://127.0.0.2:2379", reactor=clock, agent=agent
        )
        d = client.get("k")
        agent.pop().fail(_never(ConnectionLost()))
        agent.pop().fail(_never(ConnectionLost()))
        agent.pop().respond(200, node_body("get", "/k", "v", 3))
        self.assertEqual(self.successResultOf(d).node.value, "v")
        self.assertFalse(speaks_tls(_ssl("wrong version number")))
        self.assertTrue(speaks_tls(_ssl("tlsv13 alert certificate required")))
        self.successResultOf(client.close())
        self.assertEqual(clock.getDelayedCalls(), [])


class UnrecognizedTLSTests(SynchronousTestCase):
    """
    TLS failures that do not point at the configuration.
    """

    def test_other_handshake_failure(self) -> None:
        """An unrecognized handshake failure is left to the cluster's failover."""
        self.assertIsNone(tls_error_for(URL, _ssl("unexpected eof while reading")))
