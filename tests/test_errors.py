"""
Tests for the exception hierarchy.
"""

from twisted.trial.unittest import SynchronousTestCase

from txetcd2 import errors
from txetcd2._wire.errors import api_error

CODES = {
    100: errors.KeyNotFound,
    101: errors.TestFailed,
    102: errors.NotFile,
    104: errors.NotDir,
    105: errors.NodeExist,
    107: errors.RootReadOnly,
    108: errors.DirNotEmpty,
    110: errors.Unauthorized,
    200: errors.ValueRequired,
    201: errors.PrevValueRequired,
    202: errors.TTLNaN,
    203: errors.IndexNaN,
    209: errors.InvalidField,
    210: errors.InvalidForm,
    211: errors.RefreshValue,
    212: errors.RefreshTTLRequired,
    300: errors.RaftInternal,
    301: errors.LeaderElect,
    400: errors.WatcherCleared,
    401: errors.EventIndexCleared,
}

FAMILIES = {
    1: errors.EtcdCommandError,
    2: errors.EtcdPostFormError,
    3: errors.EtcdRaftError,
    4: errors.EtcdWatchError,
}


class ApiErrorTests(SynchronousTestCase):
    """
    Tests for :func:`api_error` and the classes it builds.
    """

    def test_one_class_per_code(self) -> None:
        """
        Each documented code has its own class, in its family, under EtcdError.
        """
        for code, cls in CODES.items():
            error = api_error(code, "msg", "/k", 7, 400)
            self.assertIs(type(error), cls)
            self.assertIsInstance(error, FAMILIES[code // 100])
            self.assertIsInstance(error, errors.EtcdError)
            self.assertEqual(
                (error.error_code, error.message, error.cause, error.index, error.status),
                (code, "msg", "/k", 7, 400),
            )

    def test_unknown_codes(self) -> None:
        """
        An unknown code in a known family gets the family; otherwise EtcdApiError.
        """
        self.assertIs(type(api_error(150, "m", None, 0, 400)), errors.EtcdCommandError)
        self.assertIs(type(api_error(999, "m", None, 0, 400)), errors.EtcdApiError)

    def test_str_is_actionable(self) -> None:
        """
        The message names the code, etcd's message, the cause and what to do.
        """
        text = str(api_error(108, "Directory not empty", "/d", 9, 403))
        self.assertIn("108", text)
        self.assertIn("Directory not empty", text)
        self.assertIn("/d", text)
        self.assertIn("recursive=True", text)


class OtherErrorTests(SynchronousTestCase):
    """
    Tests for the errors that are not etcd error documents.
    """

    def test_v2_disabled(self) -> None:
        """
        EtcdV2Disabled says how to enable the v2 API.
        """
        text = str(errors.EtcdV2Disabled("http://h:1", "3.4.23"))
        self.assertIn("--enable-v2=true", text)
        self.assertIn("3.4.23", text)

    def test_timeout(self) -> None:
        """
        EtcdTimeout names the member and the seconds, and is a connection error.
        """
        error = errors.EtcdTimeout("http://h:1", "GET /v2/keys/a", 2.5)
        self.assertIsInstance(error, errors.EtcdConnectionError)
        self.assertIn("http://h:1", str(error))
        self.assertIn("2.5s", str(error))

    def test_cluster_unavailable(self) -> None:
        """
        ClusterUnavailable lists each endpoint with its error.
        """
        error = errors.ClusterUnavailable(
            "a,b",
            "every member failed",
            errors=(
                ("http://a:1", errors.EtcdConnectionError("http://a:1", "refused")),
                ("http://b:1", errors.EtcdConnectionError("http://b:1", "reset")),
            ),
        )
        self.assertIn("refused", str(error))
        self.assertIn("reset", str(error))

    def test_protocol_error(self) -> None:
        """
        EtcdProtocolError shows the status and the start of the body.
        """
        text = str(errors.EtcdProtocolError("http://h:1", 502, "not an etcd answer", b"<html>"))
        self.assertIn("502", text)
        self.assertIn("<html>", text)

    def test_outcome_unknown(self) -> None:
        """
        EtcdOutcomeUnknown says the request was not resent.
        """
        error = errors.EtcdOutcomeUnknown(
            "http://h:1", "POST", "/q", errors.EtcdTimeout("http://h:1", "POST /q", 1.0)
        )
        self.assertIn("not resent", str(error))
