"""
The exceptions txetcd2 raises on purpose.

Every exception is a frozen attrs class deriving from :class:`EtcdError`.
etcd's own error answers (``{"errorCode", "message", "cause", "index"}``)
become :class:`EtcdApiError` subclasses, one per error code, grouped in
families by the hundreds digit, as etcd documents them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs


class EtcdError(Exception):
    """
    Base class of every exception txetcd2 raises on purpose.
    """


@attrs.frozen(auto_exc=True, eq=False)
class EtcdApiError(EtcdError):
    """
    etcd answered a request with one of its error documents.

    :ivar error_code: etcd's numeric ``errorCode``.
    :ivar message: etcd's ``message`` text.
    :ivar cause: etcd's ``cause`` (usually the key, or the failed comparison).
    :ivar index: etcd's ``index`` (the store index; 0 on validation errors).
    :ivar status: the HTTP status code of the answer.
    """

    error_code: int
    message: str
    cause: str | None = None
    index: int = 0
    status: int = 0

    def __str__(self) -> str:
        text = f"etcd error {self.error_code} ({self.message})"
        if self.cause:
            text += f": {self.cause}"
        if self.index:
            text += f" [etcd index {self.index}]"
        hint = type(self)._hint
        if hint:
            text += f". {hint}"
        return text

    _hint = ""


class EtcdCommandError(EtcdApiError):
    """
    The 1xx family: the command could not be applied to the key space.
    """


class EtcdPostFormError(EtcdApiError):
    """
    The 2xx family: etcd rejected the request's parameters.
    """


class EtcdRaftError(EtcdApiError):
    """
    The 3xx family: the cluster could not commit the request (no leader, timed out).
    """


class EtcdWatchError(EtcdApiError):
    """
    The 4xx family: a watch could not be served.
    """


class KeyNotFound(EtcdCommandError):
    """
    errorCode 100: the key does not exist.
    """

    _hint = (
        "The key does not exist; create it first (get_value() takes a default, "
        "delete() takes missing_ok=True)"
    )


class TestFailed(EtcdCommandError):
    """
    errorCode 101: a compare-and-swap/delete condition did not hold.
    """

    __test__ = False  # not a test case, whatever its name says
    _hint = "The key changed since you read it; read it again and retry"


class NotFile(EtcdCommandError):
    """
    errorCode 102: the operation needs a key but found a directory.
    """

    _hint = "The key is a directory; use the directory operations (rmdir, get)"


class NotDir(EtcdCommandError):
    """
    errorCode 104: the operation needs a directory but found a key.
    """

    _hint = "A key on the path is a plain value, not a directory"


class NodeExist(EtcdCommandError):
    """
    errorCode 105: the key already exists.
    """

    _hint = "The key already exists; use set() or update() to change it"


class RootReadOnly(EtcdCommandError):
    """
    errorCode 107: the root directory cannot be changed.
    """

    _hint = "The root '/' is read-only; name a key below it"


class DirNotEmpty(EtcdCommandError):
    """
    errorCode 108: the directory is not empty.
    """

    _hint = "The directory has children; pass recursive=True to remove them too"


class Unauthorized(EtcdCommandError):
    """
    errorCode 110: the credentials do not allow this request.
    """

    _hint = "Check the username/password and the roles granted to the user"


class ValueRequired(EtcdPostFormError):
    """
    errorCode 200: a value was required.
    """


class PrevValueRequired(EtcdPostFormError):
    """
    errorCode 201: a compare needs a non-empty previous value.
    """


class TTLNaN(EtcdPostFormError):
    """
    errorCode 202: the TTL is not a non-negative integer.
    """


class IndexNaN(EtcdPostFormError):
    """
    errorCode 203: an index is not a number.
    """


class InvalidField(EtcdPostFormError):
    """
    errorCode 209: a parameter has an invalid value.
    """


class InvalidForm(EtcdPostFormError):
    """
    errorCode 210: the request form could not be parsed (or is too large).
    """


class RefreshValue(EtcdPostFormError):
    """
    errorCode 211: a TTL refresh must not carry a value.
    """


class RefreshTTLRequired(EtcdPostFormError):
    """
    errorCode 212: a TTL refresh needs a TTL.
    """


class RaftInternal(EtcdRaftError):
    """
    errorCode 300: raft failed internally, or the request timed out in the cluster.
    """

    _hint = (
        "The cluster could not commit the request in time (often a leader change); "
        "a write may still be applied later"
    )


class LeaderElect(EtcdRaftError):
    """
    errorCode 301: the cluster is electing a leader.
    """

    _hint = "The cluster is electing a leader; retry shortly"


class WatcherCleared(EtcdWatchError):
    """
    errorCode 400: the server dropped the watcher (it is recovering or shutting down).
    """


class EventIndexCleared(EtcdWatchError):
    """
    errorCode 401: the requested index is older than etcd's 1000-event history.
    """

    _hint = "Read the tree again (quorum=True) and watch from its etcd_index + 1"


_BY_CODE: dict[int, type[EtcdApiError]] = {
    100: KeyNotFound,
    101: TestFailed,
    102: NotFile,
    104: NotDir,
    105: NodeExist,
    107: RootReadOnly,
    108: DirNotEmpty,
    110: Unauthorized,
    200: ValueRequired,
    201: PrevValueRequired,
    202: TTLNaN,
    203: IndexNaN,
    209: InvalidField,
    210: InvalidForm,
    211: RefreshValue,
    212: RefreshTTLRequired,
    300: RaftInternal,
    301: LeaderElect,
    400: WatcherCleared,
    401: EventIndexCleared,
}

_FAMILIES: dict[int, type[EtcdApiError]] = {
    1: EtcdCommandError,
    2: EtcdPostFormError,
    3: EtcdRaftError,
    4: EtcdWatchError,
}


def api_error(
    error_code: int, message: str, cause: str | None, index: int, status: int
) -> EtcdApiError:
    """
    Build the exception for one of etcd's error documents.

    :param error_code: etcd's ``errorCode``.
    :param message: etcd's ``message``.
    :param cause: etcd's ``cause``.
    :param index: etcd's ``index``.
    :param status: the HTTP status of the answer.
    :returns: an instance of the class for that code, else of its family,
        else of :class:`EtcdApiError`.
    """
    cls = _BY_CODE.get(error_code) or _FAMILIES.get(error_code // 100, EtcdApiError)
    return cls(error_code, message, cause, index, status)


@attrs.frozen(auto_exc=True, eq=False)
class EtcdConnectionError(EtcdError):
    """
    A member could not be reached, or the connection broke before an answer.

    :ivar endpoint: the member's URL.
    :ivar reason: what went wrong, in words.
    """

    endpoint: str
    reason: str

    def __str__(self) -> str:
        return (
            f"could not talk to etcd at {self.endpoint}: {self.reason.rstrip('.')}. "
            "Check that etcd is running there and reachable"
        )


@attrs.frozen(auto_exc=True, eq=False)
class EtcdTimeout(EtcdConnectionError):
    """
    A member did not answer within the request's timeout.

    :ivar seconds: the timeout that ran out.
    """

    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"etcd at {self.endpoint} did not answer within {self.seconds:g}s "
            f"({self.reason}). The member may be paused, overloaded or without "
            "quorum; raise timeout= or check the cluster"
        )


@attrs.frozen(auto_exc=True, eq=False)
class EtcdTLSError(EtcdConnectionError):
    """
    The TLS connection to a member failed: a configuration error, not an outage.

    Unknown CA, a certificate for another host, a refused client
    certificate, or plain HTTP to a TLS port; it is not retried on the
    other members.

    :ivar check: what to check or change.
    """

    check: str = ""

    def __str__(self) -> str:
        text = f"TLS with etcd at {self.endpoint} failed: {self.reason}"
        return f"{text}. {self.check[:1].upper()}{self.check[1:]}" if self.check else text


@attrs.frozen(auto_exc=True, eq=False)
class ClusterUnavailable(EtcdConnectionError):
    """
    Every member was tried and none answered.

    :ivar errors: for each endpoint tried, the exception it gave.
    """

    errors: tuple[tuple[str, Exception], ...] = ()

    def __str__(self) -> str:
        return f"no etcd member answered ({describe_errors(self.errors)})"


@attrs.frozen(auto_exc=True, eq=False)
class ValueNotJSON(EtcdError, ValueError):
    """
    A value read with ``get_json()`` is not JSON.

    :ivar key: the key.
    :ivar reason: what the JSON decoder said.
    """

    key: str
    reason: str

    def __str__(self) -> str:
        return f"the value of {self.key} is not JSON ({self.reason}); read it with get_value()"


class ClientClosed(EtcdError):
    """
    A call was made on an :class:`~txetcd2.EtcdClient` (or a watcher was
    started from one) after its ``close()``.
    """

    def __str__(self) -> str:
        return (
            "this EtcdClient is closed: its calls and watchers stopped with close(); "
            "create a new EtcdClient"
        )


@attrs.frozen(auto_exc=True, eq=False)
class EtcdV2Disabled(EtcdError):
    """
    The server answers, but its v2 API is switched off.

    :ivar endpoint: the member's URL.
    :ivar server_version: the server version from ``/version``, when known.
    """

    endpoint: str
    server_version: str | None = None

    def __str__(self) -> str:
        version = f" (etcd {self.server_version})" if self.server_version else ""
        return (
            f"the v2 API is disabled on the etcd server at {self.endpoint}{version}: "
            "start etcd with --enable-v2=true (etcd 3.4 and 3.5 only; 3.6 removed v2)"
        )


@attrs.frozen(auto_exc=True, eq=False)
class EtcdProtocolError(EtcdError):
    """
    The server's answer is not one etcd sends: is this really etcd?

    :ivar endpoint: the member's URL.
    :ivar status: the HTTP status.
    :ivar detail: what was wrong with the answer.
    :ivar body: the start of the body, for diagnosis.
    """

    endpoint: str
    status: int
    detail: str
    body: bytes = b""

    def __str__(self) -> str:
        return (
            f"unexpected answer from {self.endpoint} (HTTP {self.status}): {self.detail}; "
            f"body starts {self.body[:200]!r}. Check that the URL points at an etcd "
            "client port"
        )


@attrs.frozen(auto_exc=True, eq=False)
class EtcdOutcomeUnknown(EtcdError):
    """
    A non-idempotent request may or may not have been applied.

    The request reached (or may have reached) etcd, but no answer came
    back; it was not resent, so that it is never applied twice.

    :ivar endpoint: the member the request was sent to.
    :ivar method: the HTTP method.
    :ivar key: the key of the request.
    :ivar error: what interrupted it.
    """

    endpoint: str
    method: str
    key: str
    error: Exception

    def __str__(self) -> str:
        return (
            f"{self.method} {self.key} sent to {self.endpoint} may or may not have "
            f"been applied ({self.error}); it was not resent. Read the key to find out"
        )


@attrs.frozen(auto_exc=True, eq=False)
class EtcdStaleAnswer(EtcdError):
    """
    A member answered a read with data older than the client already saw.

    :ivar endpoint: the member's URL.
    :ivar index: the member's ``X-Etcd-Index`` (0 when absent).
    :ivar term: the member's ``X-Raft-Term`` (0 when absent).
    :ivar seen_index: the highest ``X-Etcd-Index`` the client saw before.
    :ivar seen_term: the highest ``X-Raft-Term`` the client saw before.
    """

    endpoint: str
    index: int
    term: int
    seen_index: int
    seen_term: int

    def __str__(self) -> str:
        return (
            f"etcd at {self.endpoint} answered with stale data (index {self.index}, "
            f"term {self.term}; already seen index {self.seen_index}, term "
            f"{self.seen_term}). The member is behind or cut off from its cluster; "
            "use quorum=True reads or check the member"
        )


@attrs.frozen(auto_exc=True, eq=False)
class EtcdClusterMismatch(EtcdError):
    """
    A member belongs to another cluster than the one the client is talking to.

    :ivar endpoint: the member's URL.
    :ivar cluster_id: the cluster ID it answered with.
    :ivar expected: the cluster ID the client pinned first.
    """

    endpoint: str
    cluster_id: str
    expected: str

    def __str__(self) -> str:
        return (
            f"etcd at {self.endpoint} belongs to cluster {self.cluster_id}, not "
            f"{self.expected}; it is no longer used by this client. Fix the endpoint "
            "list, or create a new client if the cluster was rebuilt"
        )


def describe_errors(errors: Sequence[tuple[str, Exception]]) -> str:
    """
    Format a list of per-endpoint errors for a message.

    :param errors: pairs of endpoint and exception.
    :returns: one line.
    """
    return "; ".join(f"{endpoint}: {error}" for endpoint, error in errors)


@attrs.frozen(auto_exc=True, eq=False)
class EtcdAdminError(EtcdError):
    """
    etcd refused a members, stats or auth request (a ``{"message": ...}`` answer).

    These endpoints do not use the key space's ``errorCode`` documents;
    the HTTP status says what went wrong.

    :ivar status: the HTTP status of the answer.
    :ivar message: etcd's ``message`` text.
    :ivar endpoint: the member that answered.
    """

    status: int
    message: str
    endpoint: str = ""

    def __str__(self) -> str:
        where = f" at {self.endpoint}" if self.endpoint else ""
        text = f"etcd{where} answered HTTP {self.status}: {self.message}"
        hint = type(self)._hint
        if hint:
            text += f". {hint}"
        return text

    _hint = ""


class NoLeader(EtcdAdminError):
    """
    HTTP 503 from ``/v2/members/leader``: the cluster has no leader right now.
    """

    _hint = (
        "The cluster is electing a leader or has lost quorum; retry shortly, and check "
        "that a majority of members is running"
    )


class MemberNotFound(EtcdAdminError):
    """
    HTTP 404 from ``/v2/members/<id>``: no member has this id.
    """

    _hint = "Check the member id against members()"


class MemberRemoved(EtcdAdminError):
    """
    HTTP 410 from ``/v2/members/<id>``: the member was removed from the cluster.
    """

    _hint = "The member was already removed; its id cannot be used again"


class PeerURLExists(EtcdAdminError):
    """
    HTTP 409 from ``/v2/members``: a member already uses this peer URL.
    """

    _hint = "Another member already has this peer URL; pick another, or remove that member"


class MemberChangeRefused(EtcdAdminError):
    """
    HTTP 500 from a membership change: etcd refused to reconfigure the cluster.

    etcd 3.4 hides the reason behind "Internal Server Error": the members
    have not all been connected for 5 seconds (one just started, or is down),
    or the change would leave too few started members for a quorum.
    """

    _hint = (
        "etcd refuses membership changes until every member has been connected for "
        "5 seconds, and changes that would cost quorum; retry shortly, and check that "
        "all members are running"
    )


class NotLeader(EtcdAdminError):
    """
    HTTP 403 from ``/v2/stats/leader``: only the leader serves leader statistics.
    """

    _hint = "Ask the leader (see leader())"


def admin_error(
    status: int,
    message: str,
    endpoint: str = "",
    classes: Mapping[int, type[EtcdAdminError]] | None = None,
) -> EtcdAdminError:
    """
    Build the exception for one of etcd's ``{"message": ...}`` error answers.

    :param status: the HTTP status of the answer.
    :param message: etcd's ``message``.
    :param endpoint: the member that answered.
    :param classes: the exception class for each status, for the endpoint
        asked (a 404 means "no such member" only on ``/v2/members``).
    :returns: an instance of the class for ``status``, else of
        :class:`EtcdAdminError`.
    """
    cls = (classes or {}).get(status, EtcdAdminError)
    return cls(status, message, endpoint)
