"""
Unit tests for :class:`txetcd2.recipes.Lock` against an in-memory etcd and a Clock.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred

from tests._recipes_case import RecipeTestCase
from txetcd2 import EtcdError, NotDir
from txetcd2.recipes import Lock, LockNotAcquired

QUEUE = "/_txetcd2/locks/job"


class LockTests(RecipeTestCase):
    """
    A fair lock: FIFO queue of in-order keys, fencing tokens, renewal, ``lost``.
    """

    def lock(self, ttl: int = 6) -> Lock:
        """
        A lock on ``job`` with its own client, released at the end of the test.
        """
        lock = Lock(self.client(), "job", ttl=ttl)
        self.stops.append(lock.release)
        return lock

    def test_acquire_and_release(self) -> None:
        """The token is the holder key's created index; release deletes the key."""
        lock = self.lock()
        token = self.result(lock.acquire())
        [key] = self.keys_below(QUEUE)
        node = self.node(key)
        assert node is not None
        self.assertEqual((token, node.ttl), (node.created_index, 6))
        self.assertTrue(lock.held)
        self.assertEqual(lock.token, token)
        self.result(lock.release())
        self.assertFalse(lock.held)
        self.assertEqual(self.keys_below(QUEUE), [])

    def test_fifo_and_increasing_tokens(self) -> None:
        """Waiters get the lock in arrival order, each watching only its predecessor."""
        a, b, c = self.lock(), self.lock(), self.lock()
        first = self.result(a.acquire())
        waiting_b, waiting_c = b.acquire(), c.acquire()
        self.settle()
        self.assertNoResult(waiting_b)
        self.assertNoResult(waiting_c)
        key_a, key_b, _ = self.keys_below(QUEUE)
        self.assertEqual(
            sorted(set(self.watch_paths())), sorted({f"/v2/keys{key_a}", f"/v2/keys{key_b}"})
        )
        self.result(a.release())
        second = self.successResultOf(waiting_b)
        self.assertNoResult(waiting_c)
        self.result(b.release())
        third = self.successResultOf(waiting_c)
        self.assertLess(first, second)
        self.assertLess(second, third)
        self.result(c.release())
        self.assertEqual(self.keys_below(QUEUE), [])

    def test_non_blocking_leaves_no_key(self) -> None:
        """A failed non-blocking try raises LockNotAcquired and deletes its key."""
        a, b = self.lock(), self.lock()
        self.result(a.acquire())
        trying = b.acquire(blocking=False)
        self.settle()
        failure = self.failureResultOf(trying, LockNotAcquired)
        self.assertIsInstance(failure.value, EtcdError)
        self.assertIn("held by another client", str(failure.value))
        self.assertEqual(len(self.keys_below(QUEUE)), 1)
        self.assertFalse(b.held)

    def test_timeout_leaves_no_key(self) -> None:
        """An acquire that times out fails with LockNotAcquired and deletes its key."""
        a, b = self.lock(), self.lock()
        self.result(a.acquire())
        waiting = b.acquire(timeout=4)
        self.advance(3.5)
        self.assertNoResult(waiting)
        self.advance(0.5)
        failure = self.failureResultOf(waiting, LockNotAcquired)
        self.assertIn("within 4s", str(failure.value))
        self.assertEqual(len(self.keys_below(QUEUE)), 1)
        self.assertTrue(a.held)

    def test_cancel_leaves_no_key(self) -> None:
        """Cancelling a waiting acquire deletes its key; the next waiter is unaffected."""
        a, b, c = self.lock(), self.lock(), self.lock()
        self.result(a.acquire())
        waiting_b, waiting_c = b.acquire(), c.acquire()
        self.settle()
        waiting_b.cancel()
        self.settle()
        self.failureResultOf(waiting_b, CancelledError)
        self.assertEqual(len(self.keys_below(QUEUE)), 2)
        self.result(a.release())
        self.assertTrue(c.held)
        self.successResultOf(waiting_c)

    def test_renewal_keeps_the_lock(self) -> None:
        """The holder refreshes its key's TTL, so it keeps the lock far past the TTL."""
        lock = self.lock(ttl=3)
        self.result(lock.acquire())
        self.advance(30)
        self.assertTrue(lock.held)
        self.assertEqual(len(self.keys_below(QUEUE)), 1)
        self.assertGreaterEqual(self.refreshes(), 29)
        self.assertNoResult(lock.lost)

    def test_lost_within_ttl_of_last_renewal(self) -> None:
        """Cut off from etcd, the holder's ``lost`` fires ``ttl`` after its last renewal, less
        the safety margin (0.5 s here): before etcd can expire its key."""
        lock = self.lock(ttl=6)
        self.result(lock.acquire())
        self.advance(2)  # the renewal sent at t=2 succeeds
        self.member().stop_answering()
        self.advance(5.0)
        self.assertNoResult(lock.lost)
        self.assertTrue(lock.held)
        self.advance(0.5)
        self.assertEqual(self.successResultOf(lock.lost), "expired")
        self.assertFalse(lock.held)
        self.member().restore()
        self.settle()

    def test_lost_at_once_when_the_client_closes(self) -> None:
        """A renewal that fails with an error retrying cannot fix (here, the holder's
        client closed) loses the lock at its next renewal, not ``ttl`` later."""
        lock = self.lock(ttl=6)
        self.result(lock.acquire())
        self.result(self.clients[-1].close())
        self.advance(2)
        self.assertEqual(self.successResultOf(lock.lost), "expired")
        self.assertFalse(lock.held)

    def test_lost_when_key_deleted(self) -> None:
        """When its key is deleted, the holder learns it at its next renewal."""
        lock = self.lock(ttl=6)
        self.result(lock.acquire())
        [key] = self.keys_below(QUEUE)
        self.delete(key)
        self.advance(2)
        self.assertEqual(self.successResultOf(lock.lost), "missing")
        self.assertFalse(lock.held)

    def test_differing_ttls(self) -> None:
        """Holders and waiters with very different TTLs keep their places (python-etcd #181)."""
        short, long = self.lock(ttl=2), self.lock(ttl=60)
        self.result(short.acquire())
        waiting = long.acquire()
        self.advance(120)
        self.assertTrue(short.held)
        self.assertNoResult(waiting)
        self.assertEqual(len(self.keys_below(QUEUE)), 2)
        self.result(short.release())
        self.successResultOf(waiting)
        again = short.acquire()
        self.advance(120)
        self.assertNoResult(again)
        self.assertEqual(len(self.keys_below(QUEUE)), 2)
        self.result(long.release())
        self.successResultOf(again)

    def test_lost_history(self) -> None:
        """A waiter whose watch gets 401 EventIndexCleared reads the queue again and waits on."""
        a, b = self.lock(), self.lock()
        self.result(a.acquire())
        self.member().lose_history()
        waiting = b.acquire()
        self.settle()
        self.assertNoResult(waiting)
        self.assertEqual(len(self.watch_paths()), 2)
        self.result(a.release())
        self.successResultOf(waiting)

    def test_append_outcome_unknown_found_by_value(self) -> None:
        """An append applied without an answer is found by its owner token, not made twice."""
        lock = self.lock()
        self.member().lose_answers()
        acquiring = lock.acquire()
        self.advance(2.5)
        token = self.successResultOf(acquiring)
        [key] = self.keys_below(QUEUE)
        node = self.node(key)
        assert node is not None
        self.assertEqual(token, node.created_index)

    def test_append_outcome_unknown_not_applied(self) -> None:
        """An append neither applied nor answered is made again."""
        lock = self.lock()
        self.member().lose_answers(apply=False)
        acquiring = lock.acquire()
        self.advance(2.5)
        self.successResultOf(acquiring)
        self.assertEqual(len(self.keys_below(QUEUE)), 1)

    def test_cancel_during_unanswered_append(self) -> None:
        """Cancelled while its append is unanswered, an acquire deletes the key it made."""
        lock = self.lock()
        self.member().lose_answers()
        acquiring = lock.acquire()
        self.settle()
        self.assertEqual(len(self.keys_below(QUEUE)), 1)
        acquiring.cancel()
        self.settle()
        self.failureResultOf(acquiring, CancelledError)
        self.assertEqual(self.keys_below(QUEUE), [])

    def test_transient_read_failure_retried(self) -> None:
        """A failed read of the queue (raft error) is retried a second later."""
        lock = self.lock()
        self.member().fail(500, times=1, match=lambda request: request.method == "GET")
        acquiring = lock.acquire()
        self.settle()
        self.assertNoResult(acquiring)
        self.advance(1)
        self.successResultOf(acquiring)

    def test_configuration_error_fails_acquire(self) -> None:
        """An error retrying cannot fix (the queue is a key, not a directory) fails at once."""
        self.set(QUEUE, "not a directory")
        lock = self.lock()
        acquiring = lock.acquire()
        self.settle()
        self.failureResultOf(acquiring, NotDir)
        self.assertEqual(self.value(QUEUE), "not a directory")
        self.assertEqual(len([r for r in self.etcd.requests if r.method == "POST"]), 1)
        self.assertFalse(lock.held)

    def test_twenty_digit_keys(self) -> None:
        """In-order keys of 20 digits order by index across a change of digit count (#123)."""
        self.new_etcd(index=10**19 - 3)
        a, b = self.lock(), self.lock()
        first = self.result(a.acquire())
        waiting = b.acquire()
        self.settle()
        self.assertNoResult(waiting)
        self.assertEqual([len(k.rsplit("/", 1)[1]) for k in self.keys_below(QUEUE)], [20, 20])
        self.result(a.release())
        self.assertGreater(self.successResultOf(waiting), first)
        self.assertGreaterEqual(first, 10**19 - 2)

    def test_async_with(self) -> None:
        """``async with lock:`` holds the lock inside the block and releases it after."""
        lock = self.lock()
        seen: list[bool] = []

        async def use() -> None:
            async with lock:
                seen.append(lock.held)

        self.result(Deferred.fromCoroutine(use()))
        self.assertEqual(seen, [True])
        self.assertFalse(lock.held)
        self.assertEqual(self.keys_below(QUEUE), [])

    def test_bad_arguments(self) -> None:
        """Bad arguments raise TypeError or ValueError before any request."""
        client = self.client()
        with self.assertRaises(ValueError):
            Lock(client, "job", ttl=1)
        with self.assertRaises(TypeError):
            Lock(client, "job", ttl="30")  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            Lock(client, "a/../b")
        with self.assertRaises(TypeError):
            Lock(object(), "job")  # type: ignore[arg-type]
        lock = Lock(client, "job")
        with self.assertRaises(ValueError):
            lock.acquire(timeout=0)
        with self.assertRaises(TypeError):
            lock.acquire(blocking=None)  # type: ignore[arg-type]
        self.assertEqual(self.etcd.requests, [])

    def test_acquire_twice_refused(self) -> None:
        """One Lock object holds at most once at a time."""
        lock = self.lock()
        self.result(lock.acquire())
        with self.assertRaises(RuntimeError):
            lock.acquire()
