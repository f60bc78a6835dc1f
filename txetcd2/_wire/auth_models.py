"""
etcd v2 auth: the user and role models, and the auth endpoints' errors.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from txetcd2._wire.answers import RawResponse, error_for
from txetcd2._wire.errors import EtcdError


@attrs.frozen
class Role:
    """
    A role: the key prefixes it may read and write.

    A permission ``/app/*`` covers the keys below ``/app`` but not a
    recursive read or watch of ``/app`` itself; ``/app*`` also matches ``/apple``.

    :ivar name: the role's name.
    :ivar read: key patterns the role may read.
    :ivar write: key patterns the role may write.
    """

    name: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()


@attrs.frozen
class User:
    """
    A user and the roles granted to it.

    :ivar name: the user's name.
    :ivar roles: the names of its roles.
    :ivar role_details: the roles with their permissions, when etcd sent
        them (reads do; changes answer with the names only).
    """

    name: str
    roles: tuple[str, ...] = ()
    role_details: tuple[Role, ...] = ()


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} is not a list of strings")
    return tuple(value)


def decode_role(doc: Any) -> Role:
    """
    Build a role from etcd's JSON.

    :param doc: ``{"role": ..., "permissions": {"kv": {"read": [...], "write": [...]}}}``.
    :returns: the role.
    :raises ValueError: when the document is not a role.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("role"), str):
        raise ValueError("not a role document")
    kv = (doc.get("permissions") or {}).get("kv") or {}
    if not isinstance(kv, dict):
        raise ValueError("permissions.kv is not an object")
    return Role(
        doc["role"],
        _strings(kv.get("read"), "read"),
        _strings(kv.get("write"), "write"),
    )


def decode_user(doc: Any) -> User:
    """
    Build a user from etcd's JSON.

    :param doc: ``{"user": ..., "roles": [names or role documents]}``.
    :returns: the user.
    :raises ValueError: when the document is not a user.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("user"), str):
        raise ValueError("not a user document")
    names: list[str] = []
    details: list[Role] = []
    for item in doc.get("roles") or []:
        if isinstance(item, str):
            names.append(item)
        else:
            role = decode_role(item)
            names.append(role.name)
            details.append(role)
    return User(doc["user"], tuple(names), tuple(details))


@attrs.frozen(auto_exc=True, eq=False)
class EtcdAuthError(EtcdError):
    """
    An auth endpoint (``/v2/auth/...``) refused a request.

    :ivar endpoint: the member's URL.
    :ivar status: the HTTP status.
    :ivar message: etcd's message.
    """

    endpoint: str
    status: int
    message: str

    _hint = ""

    def __str__(self) -> str:
        text = f"etcd auth request refused by {self.endpoint} (HTTP {self.status}): {self.message}"
        hint = type(self)._hint
        return f"{text}. {hint}" if hint else text


class AuthNotFound(EtcdAuthError):
    """
    The user or role does not exist (HTTP 404).
    """

    _hint = "Check the name; list them with users() or roles()"


class AuthConflict(EtcdAuthError):
    """
    The change conflicts with the current state (HTTP 409).

    The role already exists, a role or permission is granted twice or
    revoked without having been granted, or auth cannot be enabled because
    there is no root user.
    """

    _hint = "Read the current state (get_user/get_role/enabled) and change only what differs"


class RootProtected(EtcdAuthError):
    """
    The root user or role cannot be changed that way (HTTP 403).
    """

    _hint = "The root role cannot be changed, and the root user cannot be deleted while auth is on"


class InsufficientCredentials(EtcdAuthError):
    """
    The auth API needs the root user's credentials (HTTP 401).
    """

    _hint = "Create the client with username='root' and its password to manage auth"


class AuthRequestRejected(EtcdAuthError):
    """
    etcd rejected the request itself (HTTP 400), e.g. a change that changes nothing.
    """


_BY_STATUS: dict[int, type[EtcdAuthError]] = {
    400: AuthRequestRejected,
    401: InsufficientCredentials,
    403: RootProtected,
    404: AuthNotFound,
    409: AuthConflict,
}


def auth_error(raw: RawResponse) -> EtcdError:
    """
    Build the exception for an auth endpoint's answer that is not a success.

    :param raw: the answer.
    :returns: a typed :class:`EtcdAuthError`, or what :func:`error_for` says
        for answers that are not auth errors (v2 disabled, not etcd, ...).
    """
    if raw.headers.get("content-type", "").startswith("application/json"):
        try:
            doc = json.loads(raw.body)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            cls = _BY_STATUS.get(raw.status, EtcdAuthError)
            return cls(raw.endpoint, raw.status, doc["message"])
    return error_for(raw)
