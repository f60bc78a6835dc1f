"""
Loggers named by stable, public names (``txetcd2.session``, ``txetcd2.watch``)
rather than by private module paths.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger


class PublicLogger(Logger):
    """
    A :class:`~twisted.logger.Logger` for a class attribute that keeps its
    namespace when read from an instance (a plain ``Logger`` renames itself
    after the private module and class), with the instance as its source.
    """

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return Logger(self.namespace, instance, observer=self.observer)
