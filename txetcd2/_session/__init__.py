"""
The cluster: members, pinning, failover, freshness, retries, member sync and the
one request path every call takes.
"""
