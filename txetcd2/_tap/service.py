"""
The service behind ``twistd etcd-watch``: a Watcher that writes one line per event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from txetcd2._logs import PublicLogger
from txetcd2._tap.lines import Formatter, resync_line
from txetcd2._wire.models import EtcdResponse


class EtcdSource(Protocol):
    """
    Where the etcd members come from: fixed URLs, or a private etcd started for the service.
    """

    def start(self) -> Deferred[Sequence[str]]:
        """
        :returns: a Deferred firing with the members' client URLs once they can be used.
        """

    def stop(self) -> Deferred[None]:
        """
        :returns: a Deferred firing once whatever :meth:`start` started is stopped.
        """


class WatcherLike(Protocol):
    """
    What the service needs of a :class:`~txetcd2.watch.Watcher`.
    """

    def on(self, name: str, callback: Callable[..., object]) -> object:
        """
        Call ``callback`` on the watcher's ``name`` notifications.
        """

    def start(self) -> object:
        """
        Start watching.
        """

    def stop(self) -> Deferred[Any]:
        """
        Stop watching.
        """


class ClientLike(Protocol):
    """
    What the service needs of an :class:`~txetcd2.EtcdClient`.
    """

    def watcher(self, key: str, *, index: int | None = None, recursive: bool = False) -> Any:
        """
        Build a Watcher.
        """

    def close(self) -> Deferred[None]:
        """
        Close the client.
        """


class FixedEndpoints:
    """
    An :class:`EtcdSource` for members that run already.

    :param urls: their client URLs.
    """

    def __init__(self, urls: Sequence[str]) -> None:
        self._urls = list(urls)

    def start(self) -> Deferred[Sequence[str]]:
        """
        :returns: a Deferred that has fired with the URLs.
        """
        return succeed(self._urls)

    def stop(self) -> Deferred[None]:
        """
        :returns: a Deferred that has fired (there is nothing to stop).
        """
        return succeed(None)


class WatchService(Service):
    """
    Watch a key (or a directory tree) and write one line per event.

    Events go to ``write_line``; reconnects, resyncs and errors are logged as structured events.
    A resync (the watcher lost etcd's event history and re-read the tree) is also written as a
    line, because a reader of the lines must replace its state with it.

    :param source: where the etcd members are.
    :param client_factory: builds the client from the members' URLs.
    :param key: the key or directory to watch.
    :param recursive: watch everything below ``key``.
    :param index: the first index to report (default: changes from now on).
    :param formatter: turns an event into a line.
    :param write_line: writes one line (without its newline).
    :param on_fatal: called when watching cannot go on (start failed, the watcher gave up on
        an error that retrying cannot fix), e.g. to stop the program; :attr:`fatal_error` then
        says why.
    :ivar fatal_error: why watching could not go on (a sentence for people), or ``None``.
    """

    log = PublicLogger(namespace="txetcd2.tap.WatchService")

    def __init__(
        self,
        source: EtcdSource,
        client_factory: Callable[[Sequence[str]], ClientLike],
        *,
        key: str,
        recursive: bool,
        index: int | None,
        formatter: Formatter,
        write_line: Callable[[str], None],
        on_fatal: Callable[[], None],
    ) -> None:
        self._source = source
        self._client_factory = client_factory
        self._key = key
        self._recursive = recursive
        self._index = index
        self._formatter = formatter
        self._write_line = write_line
        self._on_fatal = on_fatal
        self._client: ClientLike | None = None
        self._watcher: WatcherLike | None = None
        self._starting: Deferred[None] | None = None
        self._stopping = False
        self.events = 0
        self.fatal_error: str | None = None

    def startService(self) -> None:
        """
        Find the members, then start the watcher (in the background).
        """
        super().startService()
        self._stopping = False
        starting = Deferred.fromCoroutine(self._start())
        self._starting = starting
        starting.addErrback(self._start_failed)

    async def _start(self) -> None:
        endpoints = await self._source.start()
        client = self._client_factory(endpoints)
        self._client = client
        watcher: WatcherLike = client.watcher(
            self._key, index=self._index, recursive=self._recursive
        )
        watcher.on("change", self._change)
        watcher.on("resync", self._resync)
        # Reconnects and errors are logged by the watcher itself (one line each, with what
        # failed, where, and what happens next).
        watcher.on("stop", self._watcher_stopped)
        self._watcher = watcher
        watcher.start()
        self.log.info(
            "watching {key} (recursive={recursive}) on {endpoints}",
            key=self._key,
            recursive=self._recursive,
            endpoints=",".join(endpoints),
        )

    def _start_failed(self, failure: Failure) -> None:
        if self._stopping:
            return
        self.log.failure("etcd-watch could not start watching {key}", failure, key=self._key)
        self.fatal_error = f"could not start watching {self._key}: {failure.getErrorMessage()}"
        self._on_fatal()

    def _change(self, event: EtcdResponse, *rest: object) -> None:
        self.events += 1
        self._write_line(self._formatter(event))

    def _resync(self, snapshot: EtcdResponse, *rest: object) -> None:
        self.log.warn(
            "watch of {key} lost etcd's event history; resynced at index {index} "
            "with {count} keys",
            key=self._key,
            index=snapshot.etcd_index,
            count=len(snapshot.node.leaves()),
        )
        self._write_line(resync_line(snapshot, self._formatter))

    def _watcher_stopped(self, failure: object = None, *rest: object) -> None:
        if self._stopping:
            return
        if isinstance(failure, Failure):
            reason = failure.getErrorMessage()
        else:
            reason = "it stopped by itself" if failure is None else str(failure)
        self.fatal_error = f"the watch of {self._key} gave up: {reason}"
        self.log.error(
            "etcd-watch: the watch of {key} gave up: {reason}; exiting",
            key=self._key,
            reason=reason,
        )
        self._on_fatal()

    def stopService(self) -> Deferred[None]:
        """
        Stop the watcher, close the client's connections, then stop the members it started.

        :returns: a Deferred firing once all of that is done.
        """
        super().stopService()
        self._stopping = True
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        starting, self._starting = self._starting, None
        if starting is not None and not starting.called:
            starting.cancel()
        watcher, self._watcher = self._watcher, None
        client, self._client = self._client, None
        try:
            if watcher is not None:
                await watcher.stop()
            if client is not None:
                await client.close()
        finally:
            await self._source.stop()
        self.log.info(
            "stopped watching {key} after {events} events", key=self._key, events=self.events
        )


class EmbeddedEtcd:
    """
    An :class:`EtcdSource` that starts a private one-member etcd (the test harness) and stops
    it again, for demos on a machine without a running etcd.

    :param reactor: the reactor that runs the etcd process.
    """

    log = PublicLogger(namespace="txetcd2.tap.EmbeddedEtcd")

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._cluster: Any = None

    def start(self) -> Deferred[Sequence[str]]:
        """
        Start etcd and wait until it serves the v2 API.

        :returns: a Deferred firing with its client URL.
        :raises EtcdBinaryNotFound: (in the Deferred) when there is no etcd binary.
        """
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> Sequence[str]:
        from txetcd2._embedded.harness import EtcdCluster

        cluster = EtcdCluster(1, reactor=self._reactor)
        self._cluster = cluster
        await cluster.start()
        self.log.info("embedded etcd running at {urls}", urls=",".join(cluster.client_urls))
        return cluster.client_urls

    def stop(self) -> Deferred[None]:
        """
        Stop etcd (if it was started) and remove its data.

        :returns: a Deferred firing once the process is gone.
        """
        cluster, self._cluster = self._cluster, None
        if cluster is None:
            return succeed(None)
        stopping: Deferred[None] = cluster.stop()
        return stopping
