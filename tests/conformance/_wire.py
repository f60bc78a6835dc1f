"""
The wire scenarios: etcd's exact statuses, error bodies, headers and watch quirks, checked with
raw HTTP requests, the same code on every back end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import DeferredSemaphore, gatherResults

if TYPE_CHECKING:
    from tests.conformance._backends import Backend

    _Base = Backend
else:
    _Base = object

_JSON = "application/json"


class WireScenarios(_Base):
    """
    Raw requests and the exact answers.
    """

    async def put(self, key: str, **form: str) -> Any:
        """
        ``PUT /v2/keys<key>`` with a form; the answer's JSON.
        """
        return (await self.raw("PUT", "/v2/keys" + key, form)).json()

    async def assert_error(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None,
        status: int,
        code: int,
        cause: str | None,
        index: int | None,
    ) -> None:
        """
        The request fails with exactly this status, errorCode, cause and index (``None``:
        the current one, also in ``X-Etcd-Index``).
        """
        answer = await self.raw(method, path, form)
        self.assertEqual(answer.status, status, answer.body)
        self.assertEqual(answer.headers["content-type"], _JSON)
        self.assertIn("x-etcd-cluster-id", answer.headers)
        doc = answer.json()
        self.assertEqual(doc["errorCode"], code)
        self.assertEqual(doc.get("cause"), cause)
        self.assertEqual(
            sorted(doc),
            sorted(["errorCode", "message", "index"] + (["cause"] if cause is not None else [])),
        )
        self.assertEqual(answer.headers["x-etcd-index"], str(doc["index"]))
        if index is not None:
            self.assertEqual(doc["index"], index)

    async def test_empty_root(self) -> None:
        """A fresh store's root lists as a bare directory: no key, no indexes, no nodes."""
        answer = await self.raw("GET", "/v2/keys/")
        self.assertEqual(
            (answer.status, answer.json()), (200, {"action": "get", "node": {"dir": True}})
        )

    async def test_set_answers(self) -> None:
        """set answers 201 then 200 with prevNode, exact bodies and every etcd header."""
        created = await self.raw("PUT", "/v2/keys/w/a", {"value": "1"})
        self.assertEqual(created.status, 201)
        index = int(created.headers["x-etcd-index"])
        node = {"key": "/w/a", "value": "1", "modifiedIndex": index, "createdIndex": index}
        self.assertEqual(created.json(), {"action": "set", "node": node})
        for name in ("x-raft-index", "x-raft-term", "x-etcd-cluster-id"):
            self.assertIn(name, created.headers)
        self.assertEqual(created.headers["content-type"], _JSON)
        replaced = await self.raw("PUT", "/v2/keys/w/a", {"value": "2"})
        self.assertEqual(replaced.status, 200)
        new = {"key": "/w/a", "value": "2", "modifiedIndex": index + 1, "createdIndex": index + 1}
        self.assertEqual(replaced.json(), {"action": "set", "node": new, "prevNode": node})
        quiet = await self.raw("PUT", "/v2/keys/w/a?noValueOnSuccess=true", {"value": "3"})
        self.assertEqual((quiet.status, quiet.json()), (200, {"action": "set"}))
        read = await self.raw("GET", "/v2/keys/w/a?quorum=true")
        self.assertEqual(read.json()["node"]["value"], "3")
        self.assertEqual(read.headers["x-etcd-index"], str(index + 2))

    async def test_update_cas_cad_answers(self) -> None:
        """update, compareAndSwap and compareAndDelete answer with their actions and prevNodes."""
        first = await self.put("/w/c", value="a")
        index = first["node"]["modifiedIndex"]
        updated = await self.put("/w/c?prevExist=true", value="b")
        self.assertEqual((updated["action"], updated["node"]["createdIndex"]), ("update", index))
        self.assertEqual(updated["prevNode"]["value"], "a")
        swapped = await self.put(f"/w/c?prevValue=b&prevIndex={index + 1}", value="c")
        self.assertEqual(
            (swapped["action"], swapped["prevNode"]["value"]), ("compareAndSwap", "b")
        )
        deleted = await self.raw("DELETE", "/v2/keys/w/c?prevValue=c")
        self.assertEqual(deleted.status, 200)
        self.assertEqual(
            deleted.json(),
            {
                "action": "compareAndDelete",
                "node": {"key": "/w/c", "modifiedIndex": index + 3, "createdIndex": index},
                "prevNode": {
                    "key": "/w/c",
                    "value": "c",
                    "modifiedIndex": index + 2,
                    "createdIndex": index,
                },
            },
        )

    async def test_store_errors(self) -> None:
        """Store errors carry etcd's code, HTTP status, cause and the current index."""
        made = await self.put("/e/file", value="v")
        index = made["node"]["modifiedIndex"]
        bad = index + 100
        await self.assert_error("GET", "/v2/keys/e/missing", None, 404, 100, "/e/missing", index)
        await self.assert_error("GET", "/v2/keys/nodir/x/y", None, 404, 100, "/nodir", index)
        await self.assert_error(
            "PUT", "/v2/keys/e/file?prevExist=false", {"value": "x"}, 412, 105, "/e/file", index
        )
        await self.assert_error(
            "PUT", "/v2/keys/e/file/under", {"value": "x"}, 400, 104, "/e/file", index
        )
        await self.assert_error("PUT", "/v2/keys/e", {"value": "x"}, 403, 102, "/e", index)
        await self.assert_error("DELETE", "/v2/keys/e", None, 403, 102, "/e", index)
        await self.assert_error("DELETE", "/v2/keys/e?dir=true", None, 403, 108, "/e", index)
        await self.assert_error("DELETE", "/v2/keys/?recursive=true", None, 400, 107, "/", index)
        await self.assert_error(
            "PUT",
            "/v2/keys/e/file?prevExist=true&prevValue=no",
            {"value": "x"},
            412,
            101,
            "[no != v]",
            index,
        )
        await self.assert_error(
            "PUT",
            f"/v2/keys/e/file?prevIndex={bad}",
            {"value": "x"},
            412,
            101,
            f"[{bad} != {index}]",
            index,
        )
        await self.assert_error(
            "DELETE",
            f"/v2/keys/e/file?prevValue=no&prevIndex={bad}",
            None,
            412,
            101,
            f"[no != v] [{bad} != {index}]",
            index,
        )
        await self.assert_error(
            "PUT", "/v2/keys/absent?prevExist=true", {"value": "x"}, 404, 100, "/absent", index
        )

    async def test_form_errors(self) -> None:
        """Bad parameters give etcd's 2xx codes with index 0, before anything is applied."""
        await self.put("/f/k", value="v")
        cases = [
            ("/f/k", {"value": "x", "ttl": "soon"}, 202),
            ("/f/k?prevIndex=x", {"value": "x"}, 203),
            ("/f/k?recursive=maybe", {"value": "x"}, 209),
            ("/f/k?prevExist=maybe", {"value": "x"}, 209),
            ("/f/k?prevValue=", {"value": "x"}, 201),
            ("/f/k?prevExist=true", {"value": "x", "ttl": "5", "refresh": "true"}, 211),
            ("/f/k?prevExist=true", {"refresh": "true"}, 212),
        ]
        for path, form, code in cases:
            answer = await self.raw("PUT", "/v2/keys" + path, form)
            doc = answer.json()
            self.assertEqual((answer.status, doc["errorCode"], doc["index"]), (400, code, 0), path)
            self.assertEqual(answer.headers["x-etcd-index"], "0")
        self.assertEqual((await self.raw("GET", "/v2/keys/f/k")).json()["node"]["value"], "v")

    async def test_method_not_allowed(self) -> None:
        """A method etcd does not serve on keys gets a plain-text 405."""
        answer = await self.raw("PATCH", "/v2/keys/m")
        self.assertEqual(answer.status, 405)
        self.assertTrue(answer.headers["content-type"].startswith("text/plain"))

    async def test_in_order_and_ttl_nodes(self) -> None:
        """POST makes 20-digit keys; a TTL shows as ttl and expiration; a huge TTL means none."""
        posted = await self.raw("POST", "/v2/keys/q", {"value": "job"})
        doc = posted.json()
        self.assertEqual((posted.status, doc["action"]), (201, "create"))
        self.assertEqual(doc["node"]["key"], f"/q/{doc['node']['createdIndex']:020d}")
        ttl = (await self.put("/t/k", value="v", ttl="100"))["node"]
        self.assertEqual(ttl["ttl"], 100)
        self.assertRegex(ttl["expiration"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        forever = (await self.put("/t/k", value="v", ttl="7428128579"))["node"]
        self.assertNotIn("ttl", forever)
        self.assertNotIn("expiration", forever)
        listing = (await self.raw("GET", "/v2/keys/t?recursive=true&sorted=true")).json()
        self.assertEqual([n["key"] for n in listing["node"]["nodes"]], ["/t/k"])

    async def test_dir_listings(self) -> None:
        """A directory lists one level (child dirs bare), recursive all, hidden keys never."""
        for key in ("/l/b/deep", "/l/a", "/l/_hidden", "/l/b/_deeper"):
            await self.put(key, value="v")
        flat = (await self.raw("GET", "/v2/keys/l?sorted=true")).json()["node"]
        self.assertEqual([n["key"] for n in flat["nodes"]], ["/l/a", "/l/b"])
        self.assertEqual(set(flat["nodes"][1]), {"key", "dir", "modifiedIndex", "createdIndex"})
        deep = (await self.raw("GET", "/v2/keys/l?recursive=true&sorted=true")).json()["node"]
        self.assertEqual([n["key"] for n in deep["nodes"][1]["nodes"]], ["/l/b/deep"])
        self.assertEqual(
            (await self.raw("GET", "/v2/keys/l/_hidden")).json()["node"]["value"], "v"
        )

    async def test_long_poll_headers(self) -> None:
        """A long-poll's X-Etcd-Index is the store index when it started, below its event's."""
        start = await self.put("/p/k", value="0")
        pending = self.send("GET", "/v2/keys/p/k?wait=true")
        await self.watchers(1)
        later = await self.put("/p/k", value="1")
        answer = await self.wait(pending)
        self.assertEqual(answer.json()["node"]["modifiedIndex"], later["node"]["modifiedIndex"])
        self.assertEqual(answer.headers["x-etcd-index"], str(start["node"]["modifiedIndex"]))
        self.assertEqual(answer.json()["prevNode"]["value"], "0")

    async def test_history_window(self) -> None:
        """A waitIndex below the last 1000 events gives 400 / errorCode 401 with etcd's cause."""
        first = (await self.put("/h/k", value="0"))["node"]["modifiedIndex"]
        semaphore = DeferredSemaphore(20)
        churn = [semaphore.run(self.client.set, "/h/churn", str(i)) for i in range(1000)]
        await self.wait(gatherResults(churn), "the churn")
        last = first + 1000
        inside = await self.raw("GET", f"/v2/keys/h/churn?wait=true&waitIndex={first + 1}")
        self.assertEqual(inside.json()["node"]["modifiedIndex"], first + 1)
        cleared = await self.raw("GET", f"/v2/keys/h/k?wait=true&waitIndex={first}")
        self.assertEqual(cleared.status, 400)
        self.assertEqual(
            cleared.json(),
            {
                "errorCode": 401,
                "message": "The event in requested index is outdated and cleared",
                "cause": f"the requested history has been cleared [{first + 1}/{first}]",
                "index": last,
            },
        )

    async def test_stream_inside_history_is_one_shot(self) -> None:
        """A stream whose waitIndex is still in history sends that one event, then nothing."""
        first = (await self.put("/s/k", value="0"))["node"]["modifiedIndex"]
        await self.put("/s/k", value="1")
        stream = await self.open_stream(f"/v2/keys/s/k?wait=true&stream=true&waitIndex={first}")
        await self.until(lambda: len(stream.lines) == 1, "the event from history")
        self.assertEqual(stream.lines[0]["node"]["modifiedIndex"], first)
        self.assertEqual(stream.etcd_index, first + 1)
        later = (await self.put("/s/k", value="2"))["node"]["modifiedIndex"]
        witness = await self.raw("GET", f"/v2/keys/s/k?wait=true&waitIndex={later}")
        self.assertEqual(witness.json()["node"]["modifiedIndex"], later)
        for _ in range(10):
            await self.tick()
        self.assertEqual(len(stream.lines), 1)

    async def test_live_stream(self) -> None:
        """A stream from now sends every later change of its tree, hidden keys excepted."""
        stream = await self.open_stream("/v2/keys/ls?wait=true&stream=true&recursive=true")
        await self.watchers(1)
        written = [
            (await self.put(f"/ls/{k}", value="v"))["node"]["modifiedIndex"]
            for k in ("a", "_h", "b/c")
        ]
        await self.until(lambda: len(stream.lines) >= 2, "the events")
        witness = await self.put("/ls/d", value="v")
        await self.until(lambda: len(stream.lines) >= 3, "the witness")
        self.assertEqual(
            [e["node"]["modifiedIndex"] for e in stream.lines],
            [written[0], written[2], witness["node"]["modifiedIndex"]],
        )

    async def test_admin_documents(self) -> None:
        """/version, /health, /v2/members, /v2/machines and /v2/stats answer like etcd."""
        version = (await self.raw("GET", "/version")).json()
        self.assertRegex(version["etcdserver"], r"^3\.[45]\.\d+$")
        self.assertEqual((await self.raw("GET", "/health")).json()["health"], "true")
        members = (await self.raw("GET", "/v2/members")).json()["members"]
        self.assertEqual([m["clientURLs"] for m in members], [[self.urls[0]]])
        self.assertRegex(members[0]["id"], r"^[0-9a-f]+$")
        machines = await self.raw("GET", "/v2/machines")
        self.assertEqual(machines.body.decode(), self.urls[0])
        stats = (await self.raw("GET", "/v2/stats/self")).json()
        self.assertEqual((stats["id"], stats["state"]), (members[0]["id"], "StateLeader"))
        store = (await self.raw("GET", "/v2/stats/store")).json()
        self.assertIn("watchers", store)
        leader = (await self.raw("GET", "/v2/members/leader")).json()
        self.assertEqual(leader["id"], members[0]["id"])
        missing = await self.raw("GET", "/v2/nothing")
        self.assertEqual(missing.status, 404)
