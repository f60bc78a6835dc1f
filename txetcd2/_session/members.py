"""
The members of a cluster, and which one a request goes to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from hyperlink import URL

from txetcd2._logs import PublicLogger
from txetcd2._session.freshness import Freshness
from txetcd2._session.retry import server_trouble
from txetcd2._wire.answers import RawResponse
from txetcd2._wire.errors import (
    ClusterUnavailable,
    EtcdClusterMismatch,
    EtcdError,
)

_T = TypeVar("_T")


def parse_endpoints(endpoints: str | Sequence[str]) -> list[str]:
    """
    Check and normalize the endpoints a client was given.

    :param endpoints: one URL, several separated by commas, or a sequence of
        URLs; ``host:port`` without a scheme means ``http://host:port``.
    :returns: base URLs like ``http://127.0.0.1:2379``, without a trailing slash.
    :raises ValueError: for an empty list, a URL that is not ``http``/``https``
        with a host, or a URL with a path, query or credentials.
    :raises TypeError: when an endpoint is not a ``str``.
    """
    items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    result: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"an endpoint must be a str URL, not {type(item).__name__}")
        text = item.strip().rstrip("/")
        if "://" not in text and text:
            text = "http://" + text  # host:port, as node-etcd and python-etcd take it
        try:
            url = URL.from_text(text)
        except Exception as e:
            raise ValueError(f"endpoint {item!r} is not a URL: {e}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(
                f"endpoint {item!r} must be an http:// or https:// URL with a host, "
                "like http://127.0.0.1:2379"
            )
        if url.userinfo:
            raise ValueError(
                "endpoints must not carry credentials; pass username= and password= instead"
            )
        if url.path not in ((), ("",)) or url.query or url.fragment:
            raise ValueError(f"endpoint {item!r} must be a base URL, without a path or query")
        if text not in result:
            result.append(text)
    if not result:
        raise ValueError("at least one endpoint is needed, like http://127.0.0.1:2379")
    return result


class Cluster:
    """
    The members of one cluster, the one requests go to first, and whether
    their answers can be used.

    Requests go first to the pinned member (the last one that answered),
    then to the others in order. Members that answered with another
    cluster's ID are dropped for good.

    :param endpoints: the members' base URLs.
    """

    log = PublicLogger(namespace="txetcd2.session")

    def __init__(self, endpoints: Sequence[str]) -> None:
        self.endpoints = list(endpoints)
        self.freshness = Freshness()
        self.foreign: dict[str, EtcdClusterMismatch] = {}
        self._pinned = self.endpoints[0]

    @property
    def pinned(self) -> str:
        """
        The member requests go to first: the last one that answered.
        """
        return self._pinned

    def pin(self, endpoint: str) -> None:
        """
        Send the next requests to ``endpoint`` first.

        :param endpoint: one of :attr:`endpoints`; others are ignored.
        """
        if endpoint in self.endpoints and endpoint not in self.foreign:
            self._pinned = endpoint

    def replace(self, endpoints: Sequence[str]) -> None:
        """
        Replace the member list (from a member-list sync), keeping the pin
        when the pinned member is still listed.

        :param endpoints: the new base URLs; an empty list is ignored.
        """
        fresh = [e for e in endpoints if e not in self.foreign]
        if not fresh or fresh == self.endpoints:
            return
        self.log.info("etcd members are now {endpoints}", endpoints=", ".join(fresh))
        self.endpoints = list(fresh)
        if self._pinned not in self.endpoints:
            self._pinned = self.endpoints[0]

    def order(self) -> list[str]:
        if not self.foreign and self._pinned == self.endpoints[0]:
            return list(self.endpoints)  # the usual case
        live = [e for e in self.endpoints if e not in self.foreign]
        if self._pinned not in live:
            return live
        start = live.index(self._pinned)
        return live[start:] + live[:start]

    def unpin(self, endpoint: str) -> None:
        # The next request starts with the member after the one that failed.
        live = self.order()
        if self._pinned == endpoint and len(live) > 1:
            self._pinned = live[1]

    def give_up(self, errors: dict[str, Exception]) -> EtcdError:
        if len(self.endpoints) == 1 and len(errors) == 1:
            error = next(iter(errors.values()))
            if isinstance(error, EtcdError):
                return error
        listed = [(e, errors[e]) for e in self.endpoints if e in errors]
        listed += [(e, error) for e, error in errors.items() if e not in self.endpoints]
        listed += [(e, error) for e, error in self.foreign.items() if e not in errors]
        return ClusterUnavailable(
            ",".join(self.endpoints), "every member failed", errors=tuple(listed)
        )

    def refuse(self, endpoint: str, error: EtcdClusterMismatch) -> None:
        """
        Drop a member of another cluster for good.

        :param endpoint: the member.
        :param error: what its answer showed.
        """
        if endpoint not in self.foreign:
            self.foreign[endpoint] = error
            self.log.error("{error}", error=str(error))
        self.unpin(endpoint)

    def judge(
        self, raw: RawResponse | None, read: bool, keyspace: bool
    ) -> tuple[EtcdError | None, bool]:
        """
        Decide whether an answer can be used.

        :returns: the error (``None`` when it can be used) and whether the
            cluster said it is busy (so the answer may mean "applied").
        """
        if raw is None:
            return None, False
        error = self.freshness.judge(raw, read and keyspace)
        if isinstance(error, EtcdClusterMismatch):
            self.refuse(raw.endpoint, error)
            return error, False
        if error is not None or not keyspace:
            return error, False
        trouble = server_trouble(raw)
        return trouble, trouble is not None
