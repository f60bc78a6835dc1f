"""
Basic-auth credentials: checking them, and the header that carries them.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import attrs


@attrs.frozen(repr=False)
class Credentials:
    """
    A user name and password for etcd's basic auth.

    The password never appears in ``repr()`` or ``str()``.

    :ivar username: the user.
    :ivar password: the password.
    """

    username: str
    password: str = attrs.field(repr=False)

    def __repr__(self) -> str:
        return f"<Credentials for {self.username!r}>"

    __str__ = __repr__

    def header(self) -> bytes:
        """
        The value of the ``Authorization`` header.

        :returns: ``Basic <base64 of user:password>``.
        """
        token = f"{self.username}:{self.password}".encode()
        return b"Basic " + base64.b64encode(token)


def check_credentials(
    username: str | None,
    password: str | None,
    endpoints: Sequence[str],
    allow_insecure_auth: bool = False,
) -> Credentials | None:
    """
    Check the ``username=``/``password=`` options of a client.

    :param username: the user, or ``None``.
    :param password: the password, or ``None``.
    :param endpoints: the members' base URLs.
    :param allow_insecure_auth: allow sending credentials over plain ``http://``.
    :returns: the credentials, or ``None`` when neither was given.
    :raises TypeError: for a non-``str`` user or password.
    :raises ValueError: when only one is given, the user name is empty or
        has a ``:``, or an endpoint is plain ``http://`` without
        ``allow_insecure_auth=True``.
    """
    if not isinstance(allow_insecure_auth, bool):
        raise TypeError("allow_insecure_auth must be True or False")
    if username is None and password is None:
        return None
    if username is None or password is None:
        raise ValueError("give both username= and password=, or neither")
    if not isinstance(username, str):
        raise TypeError(f"username must be a str, not {type(username).__name__}")
    if not isinstance(password, str):
        # Never show the value: it is a secret.
        raise TypeError(f"password must be a str, not {type(password).__name__}")
    if not username or ":" in username:
        raise ValueError(f"username {username!r} must be non-empty and contain no ':'")
    plain = [endpoint for endpoint in endpoints if endpoint.startswith("http://")]
    if plain and not allow_insecure_auth:
        raise ValueError(
            f"refusing to send the password in clear text to {', '.join(plain)}: use "
            "https:// endpoints, or pass allow_insecure_auth=True if the network is trusted"
        )
    return Credentials(username, password)
