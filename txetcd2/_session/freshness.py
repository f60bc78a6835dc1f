"""
Which answers come from the right cluster and are recent enough.
"""

from __future__ import annotations

from txetcd2._wire.answers import RawResponse
from txetcd2._wire.errors import EtcdClusterMismatch, EtcdError, EtcdStaleAnswer
from txetcd2._wire.models import header_int


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
        index = header_int(raw.headers, "x-etcd-index") or 0
        term = header_int(raw.headers, "x-raft-term") or 0
        if read and ((index and index < self.index) or (term and term < self.term)):
            return EtcdStaleAnswer(raw.endpoint, index, term, self.index, self.term)
        if index > self.index:
            self.index = index
        if term > self.term:
            self.term = term
        return None
