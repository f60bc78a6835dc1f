"""
Tests that the public modules export what they should.
"""

from twisted.trial.unittest import SynchronousTestCase

import txetcd2
from txetcd2 import client, errors, models


class ExportTests(SynchronousTestCase):
    """
    Tests for the public facades.
    """

    def test_top_level(self) -> None:
        """
        The package re-exports the client, the models and every error.
        """
        for name in ["EtcdClient", "EtcdNode", "EtcdResponse", *errors.__all__]:
            self.assertTrue(hasattr(txetcd2, name), name)
            self.assertIn(name, txetcd2.__all__)

    def test_facades_resolve(self) -> None:
        """
        Every name in each facade's __all__ exists.
        """
        for module in (txetcd2, client, errors, models):
            for name in module.__all__:
                self.assertTrue(hasattr(module, name), f"{module.__name__}.{name}")

    def test_error_base(self) -> None:
        """
        Every exported exception derives from EtcdError.
        """
        for name in errors.__all__:
            self.assertTrue(issubclass(getattr(errors, name), errors.EtcdError), name)
