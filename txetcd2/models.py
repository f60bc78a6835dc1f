"""
The typed records returned by txetcd2.
"""

from txetcd2._models import EtcdNode, EtcdResponse

__all__ = ["EtcdNode", "EtcdResponse"]
