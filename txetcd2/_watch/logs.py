"""
Loggers under stable public names.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger


class NamedLogger(Logger):
    """
    A :class:`~twisted.logger.Logger` class attribute that keeps its namespace.

    A plain ``Logger`` used as a class attribute names its events after the
    module that defines the class (``txetcd2._watch.watcher.Watcher``), a
    private name that moves with the code; this one keeps the public name it
    was given (``txetcd2.watch.Watcher``), so log filters keep working.
    """

    def __get__(self, instance: object, owner: type | None = None) -> Logger:
        source: Any = owner if instance is None else instance
        return Logger(self.namespace, source, observer=self.observer)
