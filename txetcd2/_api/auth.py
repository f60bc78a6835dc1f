"""
``client.auth``: etcd's v2 auth API (users, roles, enabling auth).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import quote

from twisted.internet.defer import Deferred
from twisted.web.http_headers import Headers

from txetcd2._logs import PublicLogger
from txetcd2._session.session import Request, Session
from txetcd2._wire.answers import RawResponse
from txetcd2._wire.auth_models import (
    AuthConflict,
    Role,
    User,
    auth_error,
    decode_role,
    decode_user,
)
from txetcd2._wire.errors import EtcdProtocolError

_T = TypeVar("_T")

#: The role etcd applies to requests without credentials once auth is on.
GUEST_ROLE = "guest"

_JSON = Headers({b"content-type": [b"application/json"]})


def _name(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value or "/" in value:
        raise ValueError(f"{what} {value!r} must be non-empty and contain no '/'")
    return value


def _names(values: Iterable[str], what: str) -> list[str]:
    if isinstance(values, str | bytes):
        raise TypeError(f"{what} must be a list of str, not a single string")
    return [_name(v, what) for v in values]


def _patterns(values: Iterable[str], what: str) -> list[str]:
    if isinstance(values, str | bytes):
        raise TypeError(f"{what} must be a list of key patterns, not a single string")
    result = []
    for value in values:
        if not isinstance(value, str) or not value.startswith("/"):
            raise ValueError(f"{what} pattern {value!r} must be a str starting with '/'")
        result.append(value)
    return result


def _password(value: object) -> str:
    if not isinstance(value, str) or not value:
        # Never echo the value: it is a secret.
        raise TypeError("password must be a non-empty str")
    return value


def _kv(read: list[str], write: list[str]) -> dict[str, Any]:
    return {"kv": {"read": read, "write": write}}


class AuthAPI:
    """
    etcd's v2 auth API, as ``client.auth``.

    Every call except :meth:`enabled` needs the root user's credentials
    once auth is enabled (``EtcdClient(..., username="root", password=...)``);
    without them it fails with :class:`InsufficientCredentials`.

    After :meth:`enable`, the built-in ``guest`` role (requests without
    credentials) still reads and writes every key until you call
    :meth:`revoke_guest_access`.

    :param session: the session every request goes through.
    """

    log = PublicLogger(namespace="txetcd2.auth")

    def __init__(
        self,
        session: Session,
    ) -> None:
        self._session = session
        self._run = session.run

    def __repr__(self) -> str:
        return "<AuthAPI>"

    async def _call(
        self, method: str, path: str, doc: dict[str, Any] | None = None
    ) -> RawResponse:
        body = json.dumps(doc).encode("utf-8") if doc is not None else None
        headers = _JSON if body is not None else None
        request = Request(method, path, path, method == "GET", body, headers)
        raw = await self._session.request(request, self._session.deadline(None))
        if raw.status not in (200, 201):
            raise auth_error(raw)
        return raw

    async def _json(self, method: str, path: str, doc: dict[str, Any] | None = None) -> Any:
        raw = await self._call(method, path, doc)
        return raw.json()

    def _decode(self, raw_doc: Any, decoder: Callable[[Any], _T], path: str) -> _T:
        try:
            return decoder(raw_doc)
        except (ValueError, AttributeError) as e:
            raise EtcdProtocolError(
                self._session.members.pinned, 200, f"unexpected answer to {path}: {e}"
            ) from None

    # -- enabling ------------------------------------------------------------

    def enabled(self) -> Deferred[bool]:
        """
        Tell whether auth is enabled.

        :returns: a Deferred firing with ``True`` or ``False``.
        """
        return self._run(self._enabled())

    async def _enabled(self) -> bool:
        doc = await self._json("GET", "/v2/auth/enable")
        if not isinstance(doc, dict) or not isinstance(doc.get("enabled"), bool):
            raise EtcdProtocolError(
                self._session.members.pinned, 200, "no 'enabled' in the answer"
            )
        return bool(doc["enabled"])

    def enable(self) -> Deferred[None]:
        """
        Enable auth (nothing happens if it is already enabled).

        The ``root`` user must exist. Afterwards, the ``guest`` role still
        has read and write access to everything: call
        :meth:`revoke_guest_access` to close it.

        :returns: a Deferred firing with ``None``.
        :raises AuthConflict: (in the Deferred) when there is no root user.
        """
        return self._run(self._switch("PUT", "already enabled"))

    def disable(self) -> Deferred[None]:
        """
        Disable auth (nothing happens if it is already disabled).

        :returns: a Deferred firing with ``None``.
        """
        return self._run(self._switch("DELETE", "already disabled"))

    async def _switch(self, method: str, already: str) -> None:
        try:
            await self._call(method, "/v2/auth/enable")
        except AuthConflict as e:
            if already not in e.message:
                raise

    # -- users ---------------------------------------------------------------

    def users(self) -> Deferred[list[User]]:
        """
        List the users, with their roles' permissions.

        :returns: a Deferred firing with the users.
        """
        return self._run(self._users())

    async def _users(self) -> list[User]:
        doc = await self._json("GET", "/v2/auth/users")
        items = doc.get("users") if isinstance(doc, dict) else None
        return [self._decode(item, decode_user, "/v2/auth/users") for item in items or []]

    def get_user(self, name: str) -> Deferred[User]:
        """
        Read one user, with its roles' permissions.

        :param name: the user's name.
        :returns: a Deferred firing with the user.
        :raises AuthNotFound: (in the Deferred) when there is no such user.
        """
        return self._run(self._user("GET", _name(name, "name")))

    async def _user(self, method: str, name: str, doc: dict[str, Any] | None = None) -> User:
        path = "/v2/auth/users/" + quote(name, safe="")
        answer = await self._json(method, path, doc)
        return self._decode(answer, decode_user, path)

    def create_user(self, name: str, password: str, roles: Iterable[str] = ()) -> Deferred[User]:
        """
        Create a user (etcd sets the password if the user exists already).

        :param name: the user's name (``root`` for the administrator).
        :param password: its password.
        :param roles: the roles to grant it.
        :returns: a Deferred firing with the user (role names only).
        """
        doc: dict[str, Any] = {
            "user": _name(name, "name"),
            "password": _password(password),
        }
        role_names = _names(roles, "roles")
        if role_names:
            doc["roles"] = role_names
        return self._run(self._user("PUT", name, doc))

    def delete_user(self, name: str) -> Deferred[None]:
        """
        Delete a user.

        :param name: the user's name.
        :returns: a Deferred firing with ``None``.
        :raises AuthNotFound: (in the Deferred) when there is no such user.
        :raises RootProtected: (in the Deferred) for ``root`` while auth is on.
        """
        path = "/v2/auth/users/" + quote(_name(name, "name"), safe="")
        return self._run(self._delete(path))

    async def _delete(self, path: str) -> None:
        await self._call("DELETE", path)

    def grant_user_roles(self, name: str, roles: Iterable[str]) -> Deferred[User]:
        """
        Grant roles to a user.

        :param name: the user's name.
        :param roles: the roles' names.
        :returns: a Deferred firing with the user (role names only).
        :raises AuthConflict: (in the Deferred) when a role is already granted.
        """
        doc = {"user": _name(name, "name"), "grant": _names(roles, "roles")}
        return self._run(self._user("PUT", name, doc))

    def revoke_user_roles(self, name: str, roles: Iterable[str]) -> Deferred[User]:
        """
        Revoke roles from a user.

        :param name: the user's name.
        :param roles: the roles' names.
        :returns: a Deferred firing with the user (role names only).
        :raises AuthConflict: (in the Deferred) when a role was not granted.
        """
        doc = {"user": _name(name, "name"), "revoke": _names(roles, "roles")}
        return self._run(self._user("PUT", name, doc))

    def change_password(self, name: str, password: str) -> Deferred[User]:
        """
        Change a user's password.

        :param name: the user's name.
        :param password: the new password.
        :returns: a Deferred firing with the user (role names only).
        """
        doc = {"user": _name(name, "name"), "password": _password(password)}
        return self._run(self._user("PUT", name, doc))

    # -- roles ---------------------------------------------------------------

    def roles(self) -> Deferred[list[Role]]:
        """
        List the roles with their permissions.

        :returns: a Deferred firing with the roles.
        """
        return self._run(self._roles())

    async def _roles(self) -> list[Role]:
        doc = await self._json("GET", "/v2/auth/roles")
        items = doc.get("roles") if isinstance(doc, dict) else None
        return [self._decode(item, decode_role, "/v2/auth/roles") for item in items or []]

    def get_role(self, name: str) -> Deferred[Role]:
        """
        Read one role.

        :param name: the role's name.
        :returns: a Deferred firing with the role.
        :raises AuthNotFound: (in the Deferred) when there is no such role.
        """
        return self._run(self._role("GET", _name(name, "name")))

    async def _role(self, method: str, name: str, doc: dict[str, Any] | None = None) -> Role:
        path = "/v2/auth/roles/" + quote(name, safe="")
        answer = await self._json(method, path, doc)
        return self._decode(answer, decode_role, path)

    def create_role(
        self, name: str, read: Iterable[str] = (), write: Iterable[str] = ()
    ) -> Deferred[Role]:
        """
        Create a role.

        ``"/app/*"`` covers the keys below ``/app`` (but not a recursive read
        or watch of ``/app`` itself); ``"/app*"`` also matches ``/apple``.

        :param name: the role's name.
        :param read: key patterns it may read.
        :param write: key patterns it may write.
        :returns: a Deferred firing with the role.
        :raises AuthConflict: (in the Deferred) when the role exists.
        """
        doc = {
            "role": _name(name, "name"),
            "permissions": _kv(_patterns(read, "read"), _patterns(write, "write")),
        }
        return self._run(self._role("PUT", name, doc))

    def delete_role(self, name: str) -> Deferred[None]:
        """
        Delete a role.

        :param name: the role's name.
        :returns: a Deferred firing with ``None``.
        :raises AuthNotFound: (in the Deferred) when there is no such role.
        :raises RootProtected: (in the Deferred) for ``root``.
        """
        path = "/v2/auth/roles/" + quote(_name(name, "name"), safe="")
        return self._run(self._delete(path))

    def grant_role_permissions(
        self, name: str, read: Iterable[str] = (), write: Iterable[str] = ()
    ) -> Deferred[Role]:
        """
        Add permissions to a role.

        :param name: the role's name.
        :param read: key patterns to allow reading.
        :param write: key patterns to allow writing.
        :returns: a Deferred firing with the role.
        :raises AuthConflict: (in the Deferred) when a permission is granted already.
        """
        return self._change_role(name, "grant", read, write)

    def revoke_role_permissions(
        self, name: str, read: Iterable[str] = (), write: Iterable[str] = ()
    ) -> Deferred[Role]:
        """
        Remove permissions from a role.

        :param name: the role's name.
        :param read: key patterns to stop allowing to read.
        :param write: key patterns to stop allowing to write.
        :returns: a Deferred firing with the role.
        :raises AuthRequestRejected: (in the Deferred) when nothing changed.
        """
        return self._change_role(name, "revoke", read, write)

    def _change_role(
        self, name: str, change: str, read: Iterable[str], write: Iterable[str]
    ) -> Deferred[Role]:
        reads, writes = _patterns(read, "read"), _patterns(write, "write")
        if not reads and not writes:
            raise ValueError(f"{change} needs at least one read or write pattern")
        doc = {"role": _name(name, "name"), change: _kv(reads, writes)}
        return self._run(self._role("PUT", name, doc))

    def revoke_guest_access(self) -> Deferred[Role]:
        """
        Take every permission away from the ``guest`` role.

        Once auth is enabled, requests without credentials act as ``guest``,
        which etcd creates with read and write access to every key.

        :returns: a Deferred firing with the guest role, without permissions.
        """
        return self._run(self._revoke_guest())

    async def _revoke_guest(self) -> Role:
        guest = await self._role("GET", GUEST_ROLE)
        if not guest.read and not guest.write:
            return guest
        self.log.info(
            "revoking the guest role's permissions (read {read}, write {write})",
            read=list(guest.read),
            write=list(guest.write),
        )
        doc = {"role": GUEST_ROLE, "revoke": _kv(list(guest.read), list(guest.write))}
        return await self._role("PUT", GUEST_ROLE, doc)
