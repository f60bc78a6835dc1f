"""
Leader election: one TTL key per election, created by whoever gets there
first and renewed while it leads.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from txetcd2._logs import PublicLogger
from txetcd2._recipes._keepalive import KeepAlive
from txetcd2._recipes._shared import (
    Emitter,
    check_name,
    check_prefix,
    check_seconds,
    check_ttl,
    clock_of,
    delete_if_ours,
    giving_up,
    or_let_expire,
)
from txetcd2._wire.fatal import is_fatal
from txetcd2.errors import EtcdError, EtcdOutcomeUnknown, EventIndexCleared, KeyNotFound, NodeExist
from txetcd2.models import EtcdNode

if TYPE_CHECKING:
    from txetcd2.client import EtcdClient

#: Where elections keep their keys, unless told otherwise.
ELECTION_PREFIX = "/_txetcd2/elections"

#: The events of :meth:`LeaderElection.on`.
ELECTION_EVENTS = ("elected", "deposed")


class LeaderElection(Service):
    """
    Campaigns for leadership of ``name`` as ``identity`` while the service runs.

    The leader is whoever created the key ``<prefix>/<name>`` (``create``,
    i.e. ``prevExist=false``, with a TTL); it renews the TTL with
    ``refresh`` every ``ttl / 3`` seconds. The other candidates watch the key
    and campaign again as soon as it is deleted or expires.

    ``"elected"`` callbacks get the leadership's token (the key's created
    index, increasing from one leader to the next); ``"deposed"`` callbacks
    get the reason (``"missing"``: the key was deleted; ``"expired"``: no
    renewal succeeded for ``ttl`` seconds, so another candidate may lead;
    ``"resigned"``; ``"stopped"``). ``"elected"`` and ``"deposed"`` alternate,
    starting with ``"elected"``. An error retrying cannot fix (the client
    closed, the v2 API disabled, TLS or credentials refused, a member of
    another cluster) ends the campaign: it is logged once and kept in
    :attr:`failure`.

    :param client: the client.
    :param name: the election's name (key segments).
    :param identity: who this candidate is (the key's value while it leads);
        unique among the candidates.
    :param ttl: seconds the key outlives its last renewal (at least 2).
    :param prefix: the directory holding every election's key.
    :param clock: the clock of every timer (default: the client's reactor).
    :param resign_holdoff: seconds a candidate waits after :meth:`resign`
        before campaigning again (the others get the first chance).
    :ivar failure: the error that ended the campaign, if one did.
    """

    log = PublicLogger(namespace="txetcd2.recipes.LeaderElection")

    def __init__(
        self,
        client: EtcdClient,
        name: str,
        identity: str,
        *,
        ttl: int = 30,
        prefix: str = ELECTION_PREFIX,
        clock: IReactorTime | None = None,
        resign_holdoff: float = 1.0,
    ) -> None:
        self._clock = clock_of(client, clock)
        self._client = client
        self._key = f"{check_prefix(prefix)}/{check_name(name)}"
        if not isinstance(identity, str):
            raise TypeError(f"identity must be a str, not {type(identity).__name__}")
        if not identity:
            raise ValueError("identity must not be empty")
        self._identity = identity
        self._ttl = check_ttl(ttl)
        self._holdoff = check_seconds(resign_holdoff, "resign_holdoff", zero_ok=True)
        self._events = Emitter(ELECTION_EVENTS, f"election {self._key}")
        self._loop: Deferred[None] | None = None
        self._keepalive: KeepAlive | None = None
        self._term: tuple[int, int] | None = None  # (created, modified) while leading
        self._deposed: Deferred[str] | None = None
        self._pause_first = False
        self.failure: Failure | None = None

    def __repr__(self) -> str:
        state = (
            "leader"
            if self._term
            else "failed"
            if self.failure
            else "candidate"
            if self._loop
            else "stopped"
        )
        return f"<LeaderElection {self._key} {self._identity!r} {state}>"

    # -- public API ----------------------------------------------------------

    @property
    def key(self) -> str:
        """
        The election's key.
        """
        return self._key

    @property
    def identity(self) -> str:
        """
        This candidate's identity.
        """
        return self._identity

    @property
    def is_leader(self) -> bool:
        """
        Whether this candidate leads (as far as it can be sure).
        """
        return self._term is not None

    def on(self, name: str, callback: Callable[..., object]) -> None:
        """
        Call ``callback`` on ``"elected"`` (with the token) or ``"deposed"``
        (with the reason); a callback taking no argument is called without.

        :raises ValueError: for an unknown name.
        """
        self._events.on(name, callback)

    def off(self, name: str, callback: Callable[..., object]) -> None:
        """
        Stop calling a callback registered with :meth:`on`.
        """
        self._events.off(name, callback)

    def leader(self) -> Deferred[str | None]:
        """
        Ask etcd who leads now (a quorum read).

        :returns: a Deferred firing with the leader's identity, or ``None``.
        """

        async def read() -> str | None:
            try:
                return (await self._client.get(self._key, quorum=True)).node.value
            except KeyNotFound:
                return None

        return Deferred.fromCoroutine(read())

    def startService(self) -> None:
        """
        Start campaigning (does nothing if already running).
        """
        if self._loop is not None:
            return
        super().startService()
        self.failure = None
        self._loop = Deferred.fromCoroutine(self._campaign())
        self._loop.addErrback(self._crashed)

    def stopService(self) -> Deferred[None]:
        """
        Stop campaigning; a leader resigns (deletes its key if it still holds it;
        when the client cannot, being closed for instance, the key expires by
        itself).

        :returns: a Deferred firing once the key is deleted and no timer is left.
        """
        super().stopService()
        loop, self._loop = self._loop, None
        if loop is None:
            return succeed(None)
        loop.cancel()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        step_down = functools.partial(self._step_down, "stopped")
        await or_let_expire(step_down, self.log, "election", self._key, self._ttl)

    def resign(self) -> Deferred[None]:
        """
        Give up leadership (delete the key) and keep campaigning after
        ``resign_holdoff`` seconds. Does nothing when not leading.

        :returns: a Deferred firing once the key is deleted.
        """
        if self._term is None:
            return succeed(None)
        self._pause_first = True
        return Deferred.fromCoroutine(self._step_down("resigned"))

    # -- campaigning ---------------------------------------------------------

    def _crashed(self, failure: Failure) -> None:
        if failure.check(CancelledError):
            return
        self.log.failure("election {key}: the campaign crashed", failure, key=self._key)

    async def _campaign(self) -> None:
        while True:
            if self._pause_first:
                self._pause_first = False
                await deferLater(self._clock, self._holdoff)
            try:
                node, sent = await self._try_create()
            except EtcdError as e:
                if not await self._pause(e):
                    return
                continue
            if node is not None:
                why = await self._lead(node, sent)
                self.log.info("election {key}: deposed ({why})", key=self._key, why=why)
                continue
            try:
                await self._follow()
            except EtcdError as e:
                if not await self._pause(e):
                    return

    async def _try_create(self) -> tuple[EtcdNode | None, float]:
        """
        Try to create the key.

        :returns: the key's node when this candidate now holds it, else ``None``;
            and when the request that set its TTL was sent.
        """
        sent = self._clock.seconds()
        try:
            response = await self._client.create(self._key, self._identity, ttl=self._ttl)
            return response.node, sent
        except (NodeExist, EtcdOutcomeUnknown):
            pass
        try:
            node = (await self._client.get(self._key, quorum=True)).node
        except KeyNotFound:
            return None, sent
        if node.value != self._identity:
            return None, sent
        # Ours (an earlier create whose answer was lost): renew it before trusting it.
        sent = self._clock.seconds()
        try:
            response = await self._client.refresh(self._key, self._ttl)
        except KeyNotFound:
            return None, sent
        return response.node, sent

    async def _lead(self, node: EtcdNode, sent: float) -> str:
        self._term = (node.created_index, node.modified_index)
        deposed = self._deposed = Deferred()

        def refreshed(modified: int) -> None:
            if self._term is not None:
                self._term = (self._term[0], modified)

        self._keepalive = KeepAlive(
            self._client,
            self._clock,
            self._key,
            self._ttl,
            self._lost,
            refreshed,
            created_index=node.created_index,
            watch=True,
        )
        self._keepalive.start(sent)
        self.log.info(
            "election {key}: {identity} elected (token {token})",
            key=self._key,
            identity=self._identity,
            token=node.created_index,
        )
        self._events.emit("elected", node.created_index)
        return await deposed

    def _lost(self, why: str) -> None:
        self._keepalive = None
        self._end_term(why)

    def _end_term(self, why: str) -> None:
        deposed, self._deposed = self._deposed, None
        if self._term is None:
            return
        self._term = None
        self._events.emit("deposed", why)
        if deposed is not None:
            deposed.callback(why)

    async def _step_down(self, why: str) -> None:
        term = self._term
        if self._keepalive is not None:
            self._keepalive.stop()
            self._keepalive = None
        self._end_term(why)
        if term is not None:
            await delete_if_ours(self._client, self._key, term[0], term[1])
        elif why == "stopped":
            await self._delete_unanswered()

    async def _delete_unanswered(self) -> None:
        """
        A campaign stopped while its ``create`` was in flight may have created
        the key after all: delete it if it carries this (unique) identity.
        """
        try:
            node = (await self._client.get(self._key, quorum=True)).node
        except KeyNotFound:
            return
        if node.value == self._identity:
            await delete_if_ours(self._client, self._key, node.created_index, node.modified_index)

    async def _follow(self) -> None:
        """
        Wait until the key is deleted or expires (or ``ttl`` seconds pass).
        """
        try:
            response = await self._client.get(self._key, quorum=True)
        except KeyNotFound:
            return
        watching = self._client.watch(self._key, index=response.etcd_index + 1)
        watching.addTimeout(self._ttl, self._clock)
        with contextlib.suppress(EventIndexCleared, TimeoutError):
            await watching

    async def _pause(self, error: EtcdError) -> bool:
        # Wait before trying again; False (at once) when retrying cannot fix it.
        if is_fatal(error):
            self.failure = giving_up(self.log, "election", self._key, error)
            return False
        self.log.warn(
            "election {key}: {error}; trying again in 1s", key=self._key, error=str(error)
        )
        await deferLater(self._clock, 1.0)
        return True
