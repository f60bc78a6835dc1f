"""
etcd v2's error answers, as :class:`~txetcd2.testing.MemoryEtcd` sends them: the code, its
message, its HTTP status and the JSON body.
"""

from __future__ import annotations

from typing import Any

_MESSAGES = {
    100: "Key not found",
    101: "Compare failed",
    102: "Not a file",
    104: "Not a directory",
    105: "Key already exists",
    107: "Root is read only",
    108: "Directory not empty",
    110: "The request requires user authentication",
    201: "PrevValue is Required in POST form",
    202: "The given TTL in POST form is not a number",
    203: "The given index in POST form is not a number",
    209: "Invalid field",
    210: "Invalid POST form",
    211: "Value provided on refresh",
    212: "A TTL must be provided on refresh",
    300: "Raft Internal Error",
    301: "During Leader Election",
    400: "watcher is cleared due to etcd recovery",
    401: "The event in requested index is outdated and cleared",
}

_STATUSES = {100: 404, 101: 412, 102: 403, 105: 412, 108: 403, 110: 401, 300: 500, 301: 500}


class StoreError(Exception):
    """
    An etcd v2 error: ``errorCode``, ``message``, ``cause``, ``index``.

    :param code: etcd's error code.
    :param cause: what it is about (a key, a comparison, a field).
    :param index: the store index it carries (0 for request checks).
    """

    def __init__(self, code: int, cause: str, index: int) -> None:
        super().__init__(code, cause, index)
        self.code = code
        self.cause = cause
        self.index = index

    @property
    def status(self) -> int:
        """
        The HTTP status etcd answers it with.
        """
        return _STATUSES.get(self.code, 400)

    def body(self) -> dict[str, Any]:
        """
        The JSON document etcd sends.
        """
        doc: dict[str, Any] = {"errorCode": self.code, "message": _MESSAGES[self.code]}
        if self.cause:
            doc["cause"] = self.cause
        doc["index"] = self.index
        return doc
