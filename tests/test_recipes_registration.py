"""
Unit tests for :class:`txetcd2.recipes.ServiceRegistration` against an in-memory etcd and a Clock.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.application.service import IService
from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent
from zope.interface.verify import verifyObject

from tests._recipes_case import RecipeTestCase
from txetcd2 import ClientClosed
from txetcd2.recipes import ServiceRegistration

KEY = "/services/web/10.0.0.7:8080"


class RegistrationTests(RecipeTestCase):
    """
    A TTL key kept alive, set again after it expired, deleted on stop.
    """

    def registration(self, ttl: int = 6) -> ServiceRegistration:
        """
        A started registration, stopped at the end of the test.
        """
        registration = ServiceRegistration(self.client(), KEY, "up", ttl=ttl)
        registration.startService()
        self.stops.append(registration.stopService)
        self.settle()
        return registration

    def ttl_and_value(self) -> tuple[int | None, str | None]:
        """
        The key's TTL (seconds left) and value in etcd.
        """
        node = self.node(KEY)
        assert node is not None
        return node.ttl, node.value

    def test_is_a_service(self) -> None:
        """A ServiceRegistration provides IService."""
        self.assertTrue(verifyObject(IService, ServiceRegistration(self.client(), KEY, "up")))

    def test_registers_and_renews(self) -> None:
        """The key is set with its TTL and refreshed, so it outlives the TTL many times."""
        registration = self.registration(ttl=3)
        self.assertEqual(self.ttl_and_value(), (3, "up"))
        self.advance(30)
        self.assertEqual(self.value(KEY), "up")
        self.assertTrue(registration.registered)
        self.assertEqual(registration.registrations, 1)
        self.assertGreaterEqual(self.refreshes(), 29)

    def test_comes_back_after_partition(self) -> None:
        """Cut off past its TTL, the key expires; once etcd answers again, it is set again."""
        registration = self.registration(ttl=6)
        self.member().stop_answering()
        self.advance(10)
        self.assertIsNone(self.node(KEY))
        self.assertFalse(registration.registered)
        self.member().restore()
        self.advance(4)
        self.assertEqual(self.value(KEY), "up")
        self.assertTrue(registration.registered)
        self.assertEqual(registration.registrations, 2)

    def test_recreated_after_delete(self) -> None:
        """A key deleted by someone else is set again at the next refresh."""
        registration = self.registration(ttl=6)
        self.delete(KEY)
        self.advance(2)
        self.assertEqual(self.value(KEY), "up")
        self.assertEqual(registration.registrations, 2)

    def test_overwritten_value_restored(self) -> None:
        """A key overwritten with another value gets this value back at the next refresh."""
        registration = self.registration(ttl=6)
        self.set(KEY, "stale")
        self.advance(2)
        self.assertEqual(self.ttl_and_value(), (6, "up"))
        self.assertEqual(registration.registrations, 2)

    def test_stop_deletes(self) -> None:
        """Stopping deletes the key and leaves no timer."""
        registration = self.registration()
        self.stops.remove(registration.stopService)
        self.result(registration.stopService())
        self.assertIsNone(self.node(KEY))
        self.assertFalse(registration.registered)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_keeps_someone_elses_value(self) -> None:
        """Stopping leaves the key alone when it holds another value now."""
        registration = self.registration()
        self.set(KEY, "someone else")
        self.stops.remove(registration.stopService)
        self.result(registration.stopService())
        self.assertEqual(self.value(KEY), "someone else")

    def test_bad_arguments(self) -> None:
        """Bad arguments raise TypeError or ValueError before any request."""
        client = self.client()
        with self.assertRaises(TypeError):
            ServiceRegistration(client, KEY, 1)  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            ServiceRegistration(client, "/", "up")
        with self.assertRaises(ValueError):
            ServiceRegistration(client, "/a/../b", "up")
        with self.assertRaises(ValueError):
            ServiceRegistration(client, KEY, "up", ttl=0)
        self.assertEqual(self.etcd.requests, [])

    def test_gives_up_when_the_client_closes(self) -> None:
        """An error retrying cannot fix (here, the client closed) ends the registration:
        one error line, the error kept in ``failure``, no request or timer after it;
        stopping still works (the key expires by itself)."""
        client = self.client()
        registration = ServiceRegistration(client, KEY, "up", ttl=3)
        events: list[dict[str, Any]] = []
        registration.log = Logger(
            namespace=ServiceRegistration.log.namespace,
            source=registration,
            observer=cast(ILogObserver, events.append),
        )
        registration.startService()
        self.stops.append(registration.stopService)
        self.settle()
        self.assertTrue(registration.registered)
        self.assertIsNone(registration.failure)
        self.result(client.close())
        self.advance(2)
        sent = len(self.etcd.requests)
        self.advance(30)
        assert registration.failure is not None
        self.assertIsInstance(registration.failure.value, ClientClosed)
        self.assertFalse(registration.registered)
        self.assertEqual(repr(registration), f"<ServiceRegistration {KEY} ttl=3 failed>")
        self.assertEqual(len(self.etcd.requests), sent)
        errors = [e for e in events if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertIn("giving up (retrying cannot fix this)", formatEvent(errors[0]))
        self.assertEqual([e for e in events if e["log_level"] == LogLevel.warn], [])
        self.assertIsNone(self.node(KEY))  # expired by itself
