"""
The members of a cluster, and which one a request goes to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from hyperlink import URL
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from txetcd2._session.freshness import Freshness
from txetcd2._session.retry import RetryPolicy, default_retry_policy, never_left, server_trouble
from txetcd2._wire.answers import RawResponse
from txetcd2._wire.errors import (
    ClusterUnavailable,
    EtcdClusterMismatch,
    EtcdConnectionError,
    EtcdError,
    EtcdOutcomeUnknown,
    EtcdTLSError,
)

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
    Chooses members for requests and retries failed ones safely.

    Requests go first to the pinned member (the last one that answered),
    then to the others in order. A member that cannot be reached is skipped
    at once; the client backs off (``retry_policy``) only after a full sweep
    of the members, or after a member said the cluster is busy (5xx,
    errorCode 300/301). ``max_retries`` bounds the back-offs of one request.

    :param endpoints: the members' base URLs.
    :param clock: the clock for back-offs; without one, each request makes
        a single sweep of the members.
    :param max_retries: how many times one request backs off before giving up.
    :param retry_policy: seconds to wait before back-off number ``n``
        (counted from 0).
    """

    log = Logger()

    def __init__(
        self,
        endpoints: Sequence[str],
        clock: IReactorTime | None = None,
        *,
        max_retries: int = 4,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        self._clock = clock
        self.max_retries = max_retries
        self.retry_policy = retry_policy if retry_policy is not None else default_retry_policy()
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

    @property
    def _retries(self) -> int:
        # Without a clock there is no back-off: one sweep only.
        return self.max_retries if self._clock is not None else 0

    def _order(self) -> list[str]:
        if not self.foreign and self._pinned == self.endpoints[0]:
            return list(self.endpoints)  # the usual case
        live = [e for e in self.endpoints if e not in self.foreign]
        if self._pinned not in live:
            return live
        start = live.index(self._pinned)
        return live[start:] + live[:start]

    def _unpin(self, endpoint: str) -> None:
        # The next request starts with the member after the one that failed.
        live = self._order()
        if self._pinned == endpoint and len(live) > 1:
            self._pinned = live[1]

    def _give_up(self, errors: dict[str, Exception]) -> EtcdError:
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

    async def _sleep(self, backoffs: int) -> None:
        delay = self.retry_policy(backoffs)
        self.log.info(
            "etcd: backing off {delay:.2f}s before retry {attempt}",
            delay=delay,
            attempt=backoffs + 1,
        )
        assert self._clock is not None
        await deferLater(self._clock, delay, lambda: None)

    def _judge(
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
            self.foreign[raw.endpoint] = error
            self.log.error("{error}", error=str(error))
            return error, False
        if error is not None or not keyspace:
            return error, False
        trouble = server_trouble(raw)
        return trouble, trouble is not None

    async def call(
        self,
        attempt: Callable[[str], Awaitable[_T]],
        *,
        idempotent: bool,
        what: str,
        key: str,
        answer: Callable[[_T], RawResponse] | None = None,
        keyspace: bool = False,
    ) -> _T:
        """
        Run ``attempt`` against the members until one answers usefully.

        A request that provably never left is tried on the next member. One
        that may have reached a member is tried elsewhere only when it is
        idempotent; otherwise :class:`EtcdOutcomeUnknown` is raised. Answers
        from another cluster are never used. For key-space requests, a busy
        answer (5xx, errorCode 300/301) is handled like a request that may
        have arrived, after a back-off, and stale answers to reads (``GET``,
        ``HEAD``) are retried elsewhere; other requests (members, stats,
        health) get such answers back as they are.

        :param attempt: sends the request to the endpoint it is given.
        :param idempotent: whether the request may safely be sent twice.
        :param what: the HTTP method (or ``"watch"``), for messages.
        :param key: the key, for messages.
        :param answer: gets the answer out of what ``attempt`` returned
            (default: ``attempt`` returns a :class:`RawResponse`).
        :param keyspace: whether this is a ``/v2/keys`` request (see above).
        :returns: what ``attempt`` returned.
        :raises EtcdConnectionError: with one member, when it failed.
        :raises ClusterUnavailable: with several, when every member failed.
        :raises EtcdOutcomeUnknown: see above.
        """
        read = idempotent and what in ("GET", "HEAD")
        errors: dict[str, Exception] = {}
        backoffs = 0
        while True:
            order = self._order()
            if not order:
                raise self._give_up(errors)
            for position, endpoint in enumerate(order):
                busy = False
                try:
                    result = await attempt(endpoint)
                except EtcdTLSError:
                    raise  # a configuration error: the other members would fail the same way
                except EtcdConnectionError as e:
                    cause = e.__cause__
                    if not idempotent and not (cause is not None and never_left(cause)):
                        self._unpin(endpoint)
                        raise EtcdOutcomeUnknown(endpoint, what, key, e) from e
                    error: EtcdError = e
                else:
                    if answer is not None:
                        raw: RawResponse | None = answer(result)
                    else:
                        raw = result if isinstance(result, RawResponse) else None
                    rejected, busy = self._judge(raw, read, keyspace)
                    if rejected is None:
                        self.pin(endpoint)
                        return result
                    error = rejected
                    if busy and not idempotent:
                        self._unpin(endpoint)
                        raise EtcdOutcomeUnknown(endpoint, what, key, error)
                errors[endpoint] = error
                self._unpin(endpoint)
                self.log.warn(
                    "etcd member {endpoint} failed {what} {key}: {error}",
                    endpoint=endpoint,
                    what=what,
                    key=key,
                    error=str(error),
                )
                last = position == len(order) - 1
                if busy and not last and backoffs < self._retries:
                    await self._sleep(backoffs)
                    backoffs += 1
            if backoffs >= self._retries:
                raise self._give_up(errors)
            await self._sleep(backoffs)
            backoffs += 1
