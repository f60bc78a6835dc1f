"""
The typed records returned by txetcd2.
"""

from txetcd2._wire.models import EtcdNode, EtcdResponse

__all__ = ["EtcdNode", "EtcdResponse"]
