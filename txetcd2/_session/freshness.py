"""
Which answers come from the right cluster and are recent enough.
"""

from __future__ import annotations

from txetcd2._wire.answers import RawResponse
from txetcd2._wire.errors import EtcdClusterMismatch, EtcdError, EtcdStaleAnswer


def _header_int(raw: RawResponse, name: str) -> int:
    text = raw.headers.get(name, "")
    try:
        return max(int(text), 0)
    except ValueError:
        return 0


class Freshness:
    """
    Remembers the cluster ID and the highest index and term seen.

    The first ``X-Etcd-Cluster-Id`` seen pins the cluster: a member that
    answers with another one belongs to another cluster. A read answered
    with an ``X-Etcd-Index`` or ``X-Raft-Term`` lower than the highest seen
    comes from a member that is behind: it is stale.
    """

    def __init__(self) -> None:
        self.cluster_id: str | None = None
        self.index = 0
        self.term = 0

    def foreign(self, raw: RawResponse) -> EtcdClusterMismatch | None:
        """
        Check an answer's cluster ID, pinning the first one seen.

        :param raw: the answer.
        :returns: the error when the member belongs to another cluster.
        """
        cluster_id = raw.headers.get("x-etcd-cluster-id")
        if not cluster_id:
            return None
        if self.cluster_id is None:
            self.cluster_id = cluster_id
            return None
        if cluster_id != self.cluster_id:
            return EtcdClusterMismatch(raw.endpoint, cluster_id, self.cluster_id)
        return None

    def stale(self, raw: RawResponse) -> EtcdStaleAnswer | None:
        """
        Check whether a read's answer is older than what was seen before.

        Headers that are absent or 0 (validation errors) are not compared.

        :param raw: the answer.
        :returns: the error when it is stale.
        """
        index = _header_int(raw, "x-etcd-index")
        term = _header_int(raw, "x-raft-term")
        if (index and index < self.index) or (term and term < self.term):
            return EtcdStaleAnswer(raw.endpoint, index, term, self.index, self.term)
        return None

    def observe(self, raw: RawResponse) -> None:
        """
        Remember an accepted answer's index and term.

        :param raw: the answer.
        """
        self.index = max(self.index, _header_int(raw, "x-etcd-index"))
        self.term = max(self.term, _header_int(raw, "x-raft-term"))

    def judge(self, raw: RawResponse, read: bool) -> EtcdError | None:
        """
        Check an answer; remember it when it is accepted.

        :param raw: the answer.
        :param read: whether the request was a read (only reads can be stale).
        :returns: why the answer must not be used, or ``None``.
        """
        error = self.foreign(raw)
        if error is not None:
            return error
        # What stale() and observe() do, with each header read once.
        index = _header_int(raw, "x-etcd-index")
        term = _header_int(raw, "x-raft-term")
        if read and ((index and index < self.index) or (term and term < self.term)):
            return EtcdStaleAnswer(raw.endpoint, index, term, self.index, self.term)
        if index > self.index:
            self.index = index
        if term > self.term:
            self.term = term
        return None
