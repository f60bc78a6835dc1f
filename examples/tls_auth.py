"""
TLS with client certificates and basic auth, configured from the environment.

Set any of:

- ``TXETCD2_ENDPOINTS``: e.g. ``https://etcd.example.com:2379``
- ``TXETCD2_CA``: the CA certificate (PEM) that signed the members' certificates
- ``TXETCD2_CERT`` and ``TXETCD2_KEY``: this client's certificate and private key (PEM)
- ``TXETCD2_USERNAME`` and ``TXETCD2_PASSWORD``: etcd basic-auth credentials

and run: python examples/tls_auth.py [ENDPOINTS]

Options that are not set are not passed, so against a plain ``http://`` etcd without auth this
script works too. The password is never printed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet.task import react

from txetcd2 import EtcdClient, Unauthorized

SETTINGS = {
    "ca": "TXETCD2_CA",
    "cert": "TXETCD2_CERT",
    "key": "TXETCD2_KEY",
    "username": "TXETCD2_USERNAME",
    "password": "TXETCD2_PASSWORD",
}


def endpoints(argv: list[str]) -> str:
    """
    The etcd endpoints: the first argument, else ``$TXETCD2_ENDPOINTS``, else the default.
    """
    return (
        argv[1] if len(argv) > 1 else os.environ.get("TXETCD2_ENDPOINTS", "http://127.0.0.1:2379")
    )


def security_options() -> dict[str, Any]:
    """
    The TLS and auth keyword arguments of EtcdClient that are set in the environment.
    """
    return {name: os.environ[var] for name, var in SETTINGS.items() if os.environ.get(var)}


async def main(reactor: Any, urls: str) -> None:
    options = security_options()
    print("using:", ", ".join(sorted(options)) or "no TLS client options, no auth")
    client = EtcdClient(urls, reactor=reactor, **options)
    try:
        await client.set("/examples/secure/key", "secret value")
        print("read back:", await client.get_value("/examples/secure/key"))
        await client.delete("/examples/secure/key")
    except Unauthorized as e:
        print("etcd refused the credentials:", e)
        raise
    finally:
        await client.close()


if __name__ == "__main__":
    react(main, [endpoints(sys.argv)])
