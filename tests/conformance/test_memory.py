"""
The conformance scenarios against :class:`~txetcd2.testing.MemoryEtcd`.
"""

from tests.conformance._backends import InMemoryEtcd
from tests.conformance._keyspace import KeySpaceScenarios
from tests.conformance._watcher import WatcherScenarios
from tests.conformance._wire import WireScenarios


class MemoryKeySpaceTests(KeySpaceScenarios, InMemoryEtcd):
    """
    The key-space scenarios on MemoryEtcd.
    """


class MemoryWatcherTests(WatcherScenarios, InMemoryEtcd):
    """
    The Watcher scenarios on MemoryEtcd.
    """


class MemoryWireTests(WireScenarios, InMemoryEtcd):
    """
    The wire scenarios on MemoryEtcd.
    """
