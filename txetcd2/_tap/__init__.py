"""
``twistd etcd-watch``: the command-line options and the service they build.

Loaded lazily by the dropin ``twisted/plugins/txetcd2_plugin.py``.
"""

from txetcd2._tap.command import Options, makeService

__all__ = ["Options", "makeService"]
