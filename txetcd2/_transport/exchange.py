"""
One HTTP exchange with one etcd member, over treq, and the reading of its answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hyperlink import EncodedURL
from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.error import (
    ConnectError,
    ConnectingCancelledError,
    DNSLookupError,
)
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseNeverReceived
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from txetcd2._transport.agent import NO_COOKIES, BytesProducer
from txetcd2._transport.deadline import settled_failure, within
from txetcd2._transport.timeouts import Timeout, Timeouts
from txetcd2._wire.answers import RawResponse, etcd_headers, make_raw_response
from txetcd2._wire.errors import (
    EtcdConnectionError,
    EtcdError,
    EtcdTimeout,
)
from txetcd2._wire.tls_errors import (
    closed_without_answer,
    plain_port_error,
    speaks_tls,
    tls_error_for,
    tls_port_error,
)

#: The ``Content-Type`` of a form body.
FORM_TYPE = b"application/x-www-form-urlencoded"

#: Seconds the probe of a member's port (TLS or plain, after a connection
#: closed without an answer) may take at most; never more than the time the
#: request had left.
PROBE_TIMEOUT = 5.0


class RequestURL(EncodedURL):
    """
    A request URL that is already an encoded ASCII URI.

    treq accepts an :class:`~hyperlink.EncodedURL` and sends
    ``url.to_uri().to_text()``; for a URL built from a checked endpoint and
    a percent-encoded target, parsing it and converting it to a URI again
    (IDNA checks of the host on every call) only costs CPU, so this one is
    its own URI and its own text. It is only given to treq.

    :param text: the whole URL, ASCII only.
    """

    def __init__(self, text: str) -> None:  # no parsing: see the class docstring
        self._request_text = text

    def to_uri(self) -> RequestURL:
        """
        :returns: this URL: it is encoded already.
        """
        return self

    def to_text(self, with_password: bool = False) -> str:
        """
        :param with_password: ignored (credentials never go in the URL).
        :returns: the URL as given.
        """
        return self._request_text

    def __repr__(self) -> str:
        return f"RequestURL({self._request_text!r})"


def request_url(endpoint: str, target: str) -> EncodedURL | str:
    """
    The URL to give treq for one request, without reparsing it when it can.

    :param endpoint: the member's base URL.
    :param target: the encoded path and query.
    :returns: a pre-encoded :class:`RequestURL` when the URL is ASCII (the
        usual case), otherwise the text for treq to parse and IDNA-encode.
    """
    text = endpoint + target
    if text.isascii():
        return RequestURL(text)
    return text


def never_sent(error: BaseException) -> bool:
    """
    Tell whether a failure proves the request never reached the server.

    :param error: the exception from the HTTP layer.
    :returns: ``True`` for connection refused, DNS failure and the like.
    """
    if isinstance(error, ResponseNeverReceived):
        return False
    return isinstance(error, ConnectError | DNSLookupError | ConnectingCancelledError)


def describe(error: BaseException) -> str:
    """
    Put an HTTP-layer failure in words.

    :param error: the exception.
    :returns: a short description.
    """
    if isinstance(error, ResponseNeverReceived):
        reasons = ", ".join(r.getErrorMessage() or type(r.value).__name__ for r in error.reasons)
        return f"the connection closed before an answer ({reasons})"
    text = str(error) or type(error).__name__
    return text


def connection_error(endpoint: str, error: BaseException) -> EtcdConnectionError:
    """
    Build the exception for a failed connection.

    :param endpoint: the member's URL.
    :param error: the HTTP layer's exception.
    :returns: an :class:`EtcdTLSError` for a TLS failure, else an
        :class:`EtcdConnectionError`.
    """
    return tls_error_for(endpoint, error) or EtcdConnectionError(endpoint, describe(error))


class Exchange:
    """
    Sends requests to etcd members through one treq client.

    :param http: the treq client, over the injected agent and pool.
    :param clock: the clock for timeouts.
    :ivar auth_header: the ``Authorization`` header value sent with every
        request (basic auth), or ``None``.
    """

    auth_header: bytes | None = None

    def __init__(self, http: HTTPClient, clock: IReactorTime) -> None:
        self._http = http
        self._clock = clock
        #: Every request's timeout, sharing delayed calls.
        self.timeouts = Timeouts(clock)
        # treq's request, typed loosely: its answers are IResponse providers
        # (treq's wrapper) and any IReactorTime serves as its reactor.
        self._request: Any = http.request
        self._built_for: bytes | None = None
        self._built = (Headers(), Headers({b"content-type": [FORM_TYPE]}))

    def open(
        self,
        endpoint: str,
        method: str,
        target: str,
        form: bytes | None,
        headers: Headers | None = None,
    ) -> Deferred[IResponse]:
        """
        Send one request and fire with the answer once its headers arrived.

        :param endpoint: the member's base URL.
        :param method: the HTTP method.
        :param target: the encoded path and query.
        :param form: the form body, if any (labelled as a form unless
            ``headers`` has a ``Content-Type``).
        :param headers: extra headers.
        :returns: a Deferred firing with the unread answer.
        """
        if headers is None:
            if self.auth_header is self._built_for:
                all_headers = self._built[form is not None]  # the usual request
            else:
                all_headers = self._plain_headers(form is not None)
        else:
            all_headers = self._merged_headers(headers, form is not None)
        producer = None if form is None else BytesProducer(form)  # given to treq as is
        request: Deferred[IResponse] = self._request(
            method,
            request_url(endpoint, target),
            headers=all_headers,
            data=producer,
            cookies=NO_COOKIES,
            allow_redirects=False,
            unbuffered=True,
            reactor=self._clock,
        )
        return request

    def _merged_headers(self, headers: Headers, form: bool) -> Headers:
        merged = headers.copy()
        if self.auth_header is not None and not merged.hasHeader(b"authorization"):
            merged.setRawHeaders(b"authorization", [self.auth_header])
        if form and not merged.hasHeader(b"content-type"):
            merged.setRawHeaders(b"content-type", [FORM_TYPE])
        return merged

    def _plain_headers(self, form: bool) -> Headers:
        # The headers of a request without extra headers, built once per
        # credentials: treq and the agents below copy them before adding
        # theirs, and no one changes them.
        auth = self.auth_header
        if auth is not self._built_for:
            self._built_for = auth
            self._built = (
                self._merged_headers(Headers(), False),
                self._merged_headers(Headers(), True),
            )
        return self._built[form]

    def send(
        self,
        endpoint: str,
        method: str,
        target: str,
        form: bytes | None,
        timeout: float | None,
        headers: Headers | None = None,
        then: Callable[..., Any] | None = None,
        args: tuple[Any, ...] = (),
    ) -> Deferred[Any]:
        """
        Send one request and read its whole answer, within ``timeout``.

        :param endpoint: the member's base URL.
        :param method: the HTTP method.
        :param target: the encoded path and query.
        :param form: the form body, if any.
        :param timeout: seconds to wait for the whole answer; ``None`` waits forever.
        :param headers: extra headers.
        :param then: called with the outcome (the answer, or the
            :class:`~twisted.python.failure.Failure` below) and ``args``, in
            the same callback that reads the answer; the Deferred fires with
            what it returns. (One callback fewer for every request than
            adding it to the Deferred.)
        :param args: more arguments for ``then``.
        :returns: a Deferred firing with the answer, whatever its status
            (or with what ``then`` made of it).
        :raises EtcdTimeout: when the timeout ran out.
        :raises EtcdConnectionError: when the connection failed; its
            ``__cause__`` is the HTTP layer's exception.
        """
        # The deadline, the reading of the answer and the mapping of errors
        # in one callback: what within() and a callback of its own would do.
        timer: Timeout | None = None
        request = self.open(endpoint, method, target, form, headers)

        def settle(result: Any) -> Any:
            if not isinstance(result, Failure):
                read = answer_of(endpoint, result)
                if not isinstance(read, RawResponse):
                    return read.addBoth(done)  # a body still to come
                result = read
            return done(result)

        def done(result: Any) -> Any:
            # (Not settle itself: a function that refers to itself is a cycle
            # that only the garbage collector frees, with all it holds.)
            if timer is not None:
                timer.stop()  # (nothing once it ran out)
            if not isinstance(result, Failure):
                return result if then is None else then(result, *args)
            # What is left of the attempt's time bounds the port probe, if any.
            left = None if timer is None else timer.when - self._clock.seconds()
            try:
                outcome = self._send_failed(
                    settled_failure(result, timer is not None and timer.fired, timeout),
                    endpoint,
                    method,
                    target,
                    timeout,
                    left,
                )
            except BaseException:
                outcome = Failure()
            if then is None:
                return outcome
            if isinstance(outcome, Deferred):
                return outcome.addBoth(then, *args)
            return then(outcome, *args)

        if timeout is not None:
            timer = self.timeouts.start(timeout, request)
        return request.addBoth(settle)

    def _send_failed(
        self,
        failure: Failure,
        endpoint: str,
        method: str,
        target: str,
        timeout: float | None,
        left: float | None = None,
    ) -> Failure | Deferred[RawResponse]:
        error = failure.value
        if isinstance(error, TimeoutError):
            raise EtcdTimeout(
                endpoint, f"{method} {target.split('?')[0]}", timeout or 0.0
            ) from None
        if isinstance(error, ConnectingCancelledError):
            # The deadline passed while connecting: never sent (its cause says so).
            raise EtcdTimeout(endpoint, "connecting", timeout or 0.0) from error
        if isinstance(error, EtcdError | CancelledError) or not isinstance(error, Exception):
            return failure
        return Deferred.fromCoroutine(self._raise_connection_error(endpoint, error, left))

    async def _raise_connection_error(
        self, endpoint: str, error: Exception, left: float | None
    ) -> RawResponse:
        raise await self._connection_error(endpoint, error, left) from error

    async def _connection_error(
        self, endpoint: str, error: BaseException, left: float | None = None
    ) -> EtcdConnectionError:
        # ``left``: seconds the request had left; the probe takes no more.
        found = connection_error(endpoint, error)
        if type(found) is not EtcdConnectionError or not closed_without_answer(error):
            return found
        wait = PROBE_TIMEOUT if left is None else min(PROBE_TIMEOUT, left)
        if wait <= 0:
            return found
        # A TLS port closes plain HTTP connections without a byte, and etcd's plain port
        # drops a TLS handshake; so do a member going down and a proxy in front of a dead
        # member. One probe of /version with the other scheme tells them apart: over TLS,
        # a TLS port answers or fails the handshake on its certificates; over plain HTTP,
        # a plain port answers like etcd.
        if endpoint.startswith("http://"):
            try:
                await self._probe("https://" + endpoint[len("http://") :], wait)
            except CancelledError:
                raise  # the call was cancelled while probing: it ends here
            except Exception as e:
                if speaks_tls(e):
                    return tls_port_error(endpoint)
                return found
            return tls_port_error(endpoint)
        elif endpoint.startswith("https://"):
            plain = "http://" + endpoint[len("https://") :]
            try:
                answer = await self._probe(plain, wait)
            except CancelledError:
                raise
            except Exception:
                return found
            if answer.status == 200 and b"etcdserver" in answer.body:
                return plain_port_error(endpoint)
        return found

    def _probe(self, endpoint: str, wait: float) -> Deferred[RawResponse]:
        return self._read(endpoint, "GET", "/version", None, None).addTimeout(wait, self._clock)

    def _read(
        self,
        endpoint: str,
        method: str,
        target: str,
        form: bytes | None,
        headers: Headers | None,
    ) -> Deferred[RawResponse]:
        return self.open(endpoint, method, target, form, headers).addCallback(
            lambda response: answer_of(endpoint, response)
        )

    async def open_within(
        self, endpoint: str, method: str, target: str, timeout: float | None, what: str
    ) -> IResponse:
        """
        Send a request without a body and wait for its answer's headers.

        :param endpoint: the member's base URL.
        :param method: the HTTP method.
        :param target: the encoded path and query.
        :param timeout: seconds to wait for the headers.
        :param what: what the request is, for messages (``"watch"``).
        :returns: the unread answer.
        :raises EtcdTimeout: when the timeout ran out.
        :raises EtcdConnectionError: when the connection failed (an
            :class:`EtcdTLSError` for a TLS failure).
        """
        started = self._clock.seconds()
        opened = within(self.open(endpoint, method, target, None), timeout, self.timeouts)
        try:
            return await opened
        except TimeoutError:
            raise EtcdTimeout(endpoint, f"{what} {target.split('?')[0]}", timeout or 0.0) from None
        except ConnectingCancelledError as e:
            raise EtcdTimeout(endpoint, "connecting", timeout or 0.0) from e
        except CancelledError:
            raise
        except Exception as e:
            left = None if timeout is None else timeout - (self._clock.seconds() - started)
            raise await self._connection_error(endpoint, e, left) from e

    async def read_within(
        self, endpoint: str, response: IResponse, timeout: float | None, what: str
    ) -> bytes:
        """
        Read a whole body within ``timeout``; its connection is aborted otherwise.

        :param endpoint: the member's base URL.
        :param response: the answer.
        :param timeout: seconds to wait for the body.
        :param what: what the request is, for messages.
        :returns: the body.
        :raises EtcdTimeout: when the timeout ran out.
        :raises EtcdConnectionError: when the body was cut short.
        """
        try:
            return await within(read_body(response), timeout, self.timeouts)
        except TimeoutError:
            raise EtcdTimeout(endpoint, f"{what} body", timeout or 0.0) from None
        except CancelledError:
            raise
        except Exception as e:
            raise connection_error(endpoint, e) from e

    async def poll(
        self,
        endpoint: str,
        target: str,
        timeout: float | None,
        wait: float,
    ) -> tuple[RawResponse, bool]:
        """
        Send a long-poll ``GET`` and wait up to ``wait`` seconds for its body.

        etcd sends a watch's headers at once and its body when an event
        comes, so the headers are awaited within ``timeout`` and the body
        within ``wait``; a body that does not come in time is abandoned (the
        connection is aborted).

        :param endpoint: the member's base URL.
        :param target: the encoded path and query.
        :param timeout: seconds to wait for the headers.
        :param wait: seconds to wait for the body.
        :returns: the answer and whether its body arrived (``False``: the
            body is empty because the wait ran out).
        """
        response = await self.open_within(endpoint, "GET", target, timeout, "watch")
        found = etcd_headers(response.headers)
        try:
            body = await self.read_within(endpoint, response, wait, "watch")
        except EtcdTimeout:
            return RawResponse(endpoint, response.code, found, b""), False
        return RawResponse(endpoint, response.code, found, body), True


def answer_of(endpoint: str, response: IResponse) -> RawResponse | Deferred[RawResponse]:
    """
    Read an answer: at once when its body is here already (the agent
    pool's short answers), otherwise through a body reader.

    :param endpoint: the member it came from.
    :param response: the answer (treq's wrapper or the agent's own).
    :returns: the answer with its body, or a Deferred firing with it.
    """
    # treq's wrapper forwards every attribute to the answer it wraps: read
    # them there, once.
    response = getattr(response, "original", response)
    found = etcd_headers(response.headers)
    complete_body = getattr(response, "complete_body", None)
    if complete_body is not None:
        body = complete_body()
        if body is not None:
            return make_raw_response(endpoint, response.code, found, body)
    return _read_body(response, (endpoint, response.code, found))


class _BodyReader(Protocol):
    """
    Collects a body; ignores the end of a body whose reading was cancelled.

    :param finished: fires with the body, or with the
        :class:`RawResponse` of ``answer`` (endpoint, status and etcd's
        headers) and the body.
    """

    def __init__(
        self,
        finished: Deferred[Any],
        answer: tuple[str, int, dict[str, str]] | None = None,
    ) -> None:
        self._finished = finished
        self._answer = answer
        self._chunks: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self._chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._finished.called:
            return
        if type(reason.value) is ResponseDone or reason.check(ResponseDone, PotentialDataLoss):
            body = b"".join(self._chunks)
            answer = self._answer
            if answer is None:
                self._finished.callback(body)
            else:
                self._finished.callback(RawResponse(*answer, body))
        else:
            self._finished.errback(reason)


def read_body(response: IResponse) -> Deferred[bytes]:
    """
    Read a whole body; cancelling the Deferred aborts the connection.

    :param response: the answer.
    :returns: a Deferred firing with the body.
    """
    return _read_body(response, None)


def _read_body(
    response: IResponse, answer: tuple[str, int, dict[str, str]] | None
) -> Deferred[Any]:
    # read_body(), firing with the RawResponse of ``answer`` when it is given.
    reader: _BodyReader

    def cancel(d: Deferred[Any]) -> None:
        # A real body transport is a producer proxy without abortConnection:
        # losing the connection through it closes the TCP connection.
        transport = reader.transport
        abort = getattr(transport, "abortConnection", None) or getattr(
            transport, "loseConnection", None
        )
        if abort is not None:
            abort()

    finished: Deferred[Any] = Deferred(cancel)
    reader = _BodyReader(finished, answer)
    response.deliverBody(reader)
    return finished


def abort_answer(response: IResponse) -> None:
    """
    Drop an answer whose body will not be read: its connection is closed
    (or, when the body is complete already, given back to the pool).

    :param response: the answer.
    """
    reading = read_body(response)
    reading.addErrback(lambda _: None)
    reading.cancel()
