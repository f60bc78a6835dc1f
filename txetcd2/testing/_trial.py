"""
One call in a trial ``TestCase`` for an in-memory etcd and a client on it.
"""

from __future__ import annotations

from typing import Any, Protocol

from txetcd2._client import EtcdClient
from txetcd2.testing._memory import MemoryEtcd


class _HasAddCleanup(Protocol):
    def addCleanup(self, f: Any, *args: Any, **kwargs: Any) -> None: ...


def memory_etcd(
    testcase: _HasAddCleanup,
    *,
    clock: Any = None,
    members: int = 1,
    enable_v2: bool = True,
    **options: Any,
) -> tuple[MemoryEtcd, EtcdClient]:
    """
    A :class:`MemoryEtcd` and a client on it, both closed at the test's cleanup::

        class MyTests(SynchronousTestCase):
            def test_it(self) -> None:
                etcd, client = memory_etcd(self)
                self.successResultOf(client.set("/a", "1"))
                self.assertEqual(self.successResultOf(client.get_value("/a")), "1")

    The cleanup closes the client, drops every connection still open, cancels the TTL timer
    and fails the test if the client's close did not finish (a request or a timer of the
    client left behind). Works in ``SynchronousTestCase`` and ``TestCase`` alike.

    :param testcase: the test case (anything with ``addCleanup``).
    :param clock: the clock (default: a fresh :class:`~twisted.internet.task.Clock`).
    :param members: how many members (see :class:`MemoryEtcd`).
    :param enable_v2: ``False`` for a server with the v2 API off.
    :param options: :class:`~txetcd2.EtcdClient` options (``timeout``, ``max_retries``...).
    :returns: ``(etcd, client)``.
    """
    etcd = MemoryEtcd(clock, members=members, enable_v2=enable_v2)
    client = etcd.client(**options)

    def close() -> None:
        closed = client.close()
        etcd.kick()
        etcd.clock.advance(0)
        etcd.close()
        outcome: list[Any] = []
        closed.addBoth(outcome.append)
        if not outcome:
            raise AssertionError("the MemoryEtcd client did not finish closing")
        if isinstance(outcome[0], Exception):
            raise outcome[0]

    testcase.addCleanup(close)
    return etcd, client
