"""
The etcd v2 client.
"""

from txetcd2._client import EtcdClient

__all__ = ["EtcdClient"]
