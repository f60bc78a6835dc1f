"""
The members of a cluster, and which one a request goes to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from hyperlink import URL
from twisted.logger import Logger

from txetcd2._errors import (
    ClusterUnavailable,
    EtcdConnectionError,
    EtcdOutcomeUnknown,
    EtcdTLSError,
)
from txetcd2._http import never_sent

_T = TypeVar("_T")


def parse_endpoints(endpoints: str | Sequence[str]) -> list[str]:
    """
    Check and normalize the endpoints a client was given.

    :param endpoints: one URL, several separated by commas, or a sequence of URLs.
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
    Chooses members for requests: the last one that answered first, then the others.

    :param endpoints: the members' base URLs.
    """

    log = Logger()

    def __init__(self, endpoints: Sequence[str]) -> None:
        self.endpoints = list(endpoints)
        self._pinned = 0

    @property
    def pinned(self) -> str:
        """
        The member requests go to first: the last one that answered.
        """
        return self.endpoints[self._pinned]

    def _order(self) -> list[int]:
        count = len(self.endpoints)
        return [(self._pinned + offset) % count for offset in range(count)]

    async def call(
        self,
        attempt: Callable[[str], Awaitable[_T]],
        *,
        idempotent: bool,
        what: str,
        key: str,
    ) -> _T:
        """
        Run ``attempt`` against the members until one answers.

        A request that provably never left is tried on the next member. One
        that may have reached a member is tried elsewhere only when it is
        idempotent; otherwise :class:`EtcdOutcomeUnknown` is raised.

        :param attempt: sends the request to the endpoint it is given.
        :param idempotent: whether the request may safely be sent twice.
        :param what: the HTTP method, for messages.
        :param key: the key, for messages.
        :returns: what ``attempt`` returned.
        :raises EtcdConnectionError: with one member, when it failed.
        :raises ClusterUnavailable: with several, when every member failed.
        :raises EtcdOutcomeUnknown: see above.
        """
        errors: list[tuple[str, Exception]] = []
        for position in self._order():
            endpoint = self.endpoints[position]
            try:
                result = await attempt(endpoint)
            except EtcdTLSError:
                raise  # a configuration error: the other members would fail the same way
            except EtcdConnectionError as e:
                cause = e.__cause__
                if not idempotent and not (cause is not None and never_sent(cause)):
                    raise EtcdOutcomeUnknown(endpoint, what, key, e) from e
                errors.append((endpoint, e))
                self.log.warn(
                    "etcd member {endpoint} failed: {error}", endpoint=endpoint, error=str(e)
                )
                continue
            self._pinned = position
            return result
        if len(errors) == 1:
            raise errors[0][1]
        raise ClusterUnavailable(
            ",".join(self.endpoints), "every member failed", errors=tuple(errors)
        )
