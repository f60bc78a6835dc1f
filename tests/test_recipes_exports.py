"""
Tests that ``txetcd2.recipes`` exports what it should.
"""

from twisted.application.service import IService
from twisted.trial.unittest import SynchronousTestCase

from txetcd2 import EtcdError, recipes


class RecipeExportTests(SynchronousTestCase):
    """
    The recipes facade re-exports the private modules' public names.
    """

    def test_names(self) -> None:
        """Every name of ``__all__`` exists and comes from ``txetcd2._recipes``."""
        self.assertEqual(
            sorted(recipes.__all__),
            [
                "ELECTION_PREFIX",
                "LOCK_PREFIX",
                "LeaderElection",
                "Lock",
                "LockNotAcquired",
                "Mirror",
                "ServiceRegistration",
            ],
        )
        for name in recipes.__all__:
            value = getattr(recipes, name)
            if isinstance(value, type):
                self.assertTrue(value.__module__.startswith("txetcd2._recipes."), name)

    def test_kinds(self) -> None:
        """LockNotAcquired is an EtcdError; the election and registration are IServices."""
        self.assertTrue(issubclass(recipes.LockNotAcquired, EtcdError))
        self.assertTrue(IService.implementedBy(recipes.LeaderElection))
        self.assertTrue(IService.implementedBy(recipes.ServiceRegistration))
        message = str(recipes.LockNotAcquired("/l", "busy"))
        self.assertTrue(message.startswith("lock /l not acquired: busy. Try again later"), message)
