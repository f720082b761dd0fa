# The asyncio client's unary calls on the native transport (included by _h2.pyx).
#
# An AsyncCall is at once the call's HTTP/2 stream, the future its result arrives in, and
# the coroutine the caller awaits: one object per call. The client's methods return it
# started (the request is queued for the connection's next write before the caller
# awaits). Only the first attempt runs here, on a connection that is ready: when it
# fails, the client's retry coroutine (AsyncClient._retry, driven by the retry core)
# takes over and the AsyncCall completes with what that returns. AsyncCaller starts them
# (or, with no connection ready, returns the coroutine AsyncClient._call instead).

from cpython.contextvars cimport PyContext_Enter, PyContext_Exit
from cpython.object cimport PyObject_GenericGetAttr, PyObject_GenericSetAttr
from cpython.ref cimport PyObject, Py_INCREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE

import collections.abc as _abc
import contextvars as _contextvars
from asyncio import CancelledError as _AsyncCancelled
from time import monotonic as _monotonic

from libc.stdint cimport INT64_MIN, uint64_t

from fastetcd._codec cimport (
    Call,
    ResponseParser,
    _get_size,
    _get_write,
    _parse_get,
    _parse_put,
    _put_size,
    _put_write,
    _user_bytes,
    _user_int64,
    _user_key,
    check_timeout,
)
from fastetcd._codec import KV_PUT as _KV_PUT
from fastetcd._codec import KV_RANGE as _KV_RANGE
from fastetcd._codec import decode_get_response as _decode_get_response
from fastetcd._codec import decode_put_response as _decode_put_response
from fastetcd._codec import plan_get as _plan_get
from fastetcd._codec import plan_put as _plan_put

from fastetcd.errors import DEADLINE_MESSAGE as _DEADLINE_MESSAGE
from fastetcd.errors import EtcdError as _EtcdError
from fastetcd.errors import InvalidArgumentError as _InvalidArgumentError

cdef extern from *:
    """
    /* The C method definition behind asyncio Task wake-ups, learned from the first one
       seen (see AsyncCall.add_done_callback). */
    static PyMethodDef *fastetcd_task_wakeup_def = NULL;

    static int fastetcd_known_task_wakeup(PyObject *fn) {
        /* 1: a C Task's wake-up; 0: not; -1: not known yet */
        if (!PyCFunction_Check(fn)) return 0;
        if (fastetcd_task_wakeup_def == NULL) return -1;
        return ((PyCFunctionObject *)fn)->m_ml == fastetcd_task_wakeup_def;
    }

    static void fastetcd_learn_task_wakeup(PyObject *fn) {
        fastetcd_task_wakeup_def = ((PyCFunctionObject *)fn)->m_ml;
    }
    """
    int fastetcd_known_task_wakeup(object fn)
    void fastetcd_learn_task_wakeup(object fn)

try:
    from asyncio.tasks import _CTask
except ImportError:  # pragma: no cover - asyncio without its C accelerator
    _CTask = None


cdef bint _is_task_wakeup(object fn) except -1:
    # Is ``fn`` the wake-up method a C asyncio Task registers on the future it awaits?
    cdef int known = fastetcd_known_task_wakeup(fn)
    if known >= 0:
        return known
    owner = getattr(fn, "__self__", None)
    if (_CTask is not None and isinstance(owner, _CTask)
            and getattr(fn, "__name__", None) == "task_wakeup"):
        fastetcd_learn_task_wakeup(fn)
        return True
    return False


cdef enum:
    # what an AsyncCall holds (see its ``call`` field)
    KIND_CALL = 0
    KIND_GET = 1
    KIND_PUT = 2
    # a put's flags
    PUT_PREV_KV = 1
    PUT_IGNORE_VALUE = 2
    PUT_IGNORE_LEASE = 4
    PUT_IDEMPOTENT = 8
    CALL_PENDING = 0
    CALL_DONE = 1
    CALL_CANCELLED = 2
    # am_send's results (CPython's PySendResult)
    SEND_ERROR = -1
    SEND_RETURN = 0
    SEND_NEXT = 1


@cython.final
cdef class AsyncCall(H2Stream):
    """A unary etcd call in flight on the native transport: await it for its decoded
    result. It is an asyncio future (``done()``, ``result()``, ``cancel()``,
    ``add_done_callback()``, …; ``asyncio.gather`` and ``wait_for`` take it as it is)
    and a coroutine (``asyncio.create_task`` takes it too). Cancelling it resets its
    stream."""

    cdef object loop
    cdef AsyncCaller caller
    # What the call is: a planned Call (AsyncCaller.start), or, for a get or a put the
    # caller wrote straight into the connection's output (AsyncCaller.get/put), that
    # call's arguments, checked, from which the Call is planned if it is ever needed (a
    # retry: see _planned)
    cdef Call call
    cdef int kind  # KIND_CALL, KIND_GET or KIND_PUT
    cdef object arg_key, arg_value, arg_number  # get: key, revision; put: key, value, lease
    cdef int flags  # get: serializable; put: prev_kv, ignore_value, ignore_lease, idempotent
    cdef object call_timeout  # the checked per-call timeout (None: the client's)
    cdef uint64_t wire_number  # the revision or lease as the request carries it
    cdef str method
    cdef object decode  # the decoder of a response message's bytes
    cdef ResponseParser parse  # and the compiled parser it runs (NULL: none)
    cdef object slot  # the client's TransportSlot the first attempt counts in
    cdef AsyncConnectionBase conn  # the first attempt's connection; None once over
    # the first attempt's deadline (monotonic seconds), when it has one: the connection's
    # deadline timer expires it (see AsyncConnectionBase._watch_deadline)
    cdef double deadline
    cdef bint has_deadline
    cdef object retrying  # the task running AsyncClient._retry after a failed attempt
    cdef object value
    cdef object error
    cdef bint parsed  # the first attempt's response was parsed where it arrived: into
    cdef object parse_error  # value, or this
    cdef object cancel_message
    cdef object callback  # the first done-callback and its context (the usual one)
    cdef object callback_context
    cdef bint callback_wakes_task  # it is the wake-up of the Task awaiting the call
    cdef list more_callbacks  # [(callback, context), ...] after it
    cdef int outcome
    cdef bint retrieved  # its exception was read (await, result(), exception())
    # asyncio's protocol for future-like objects: True while a Task waits on it
    cdef public bint _asyncio_future_blocking

    def __del__(self):
        # As asyncio's futures do: a failure nobody read is reported, not lost (a call is
        # sent whether or not it is awaited, so a write may fail unseen).
        if self.outcome == CALL_DONE and self.error is not None and not self.retrieved:
            self.loop.call_exception_handler({
                "message": f"{self!r}: exception was never retrieved",
                "exception": self.error,
                "future": self,
            })

    def __repr__(self):
        states = ("pending", "done", "cancelled")
        return f"<AsyncCall {self.method} {states[self.outcome]}>"

    # ---------------------------------------------------------------- awaiting

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        return self.send(None)

    def send(self, value):
        """Coroutine protocol: yield this future while it is pending, then return (as
        ``StopIteration``) its result."""
        if self.outcome == CALL_PENDING:
            self._asyncio_future_blocking = True
            return self
        raise StopIteration(self.result())

    def throw(self, typ, val=None, tb=None):
        """Coroutine protocol: the awaiting task is abandoning the call (cancel it) and
        raising ``typ``/``val`` from where it awaited."""
        self.cancel()
        if val is None:
            raise typ
        raise val.with_traceback(tb) if tb is not None else val

    def close(self):
        """Coroutine protocol: abandon the call (cancel it) if it is still pending."""
        self.cancel()

    # ---------------------------------------------------------------- the future

    def get_loop(self):
        """The event loop the call runs on."""
        return self.loop

    def done(self):
        """True once the call has a result, an exception, or was cancelled."""
        return self.outcome != CALL_PENDING

    def cancelled(self):
        """True if the call was cancelled."""
        return self.outcome == CALL_CANCELLED

    def result(self):
        """The decoded response (raises the call's exception, ``CancelledError`` if it
        was cancelled, ``InvalidStateError`` while it is pending)."""
        if self.outcome == CALL_DONE:
            if self.error is not None:
                self.retrieved = True
                raise self.error
            return self.value
        if self.outcome == CALL_CANCELLED:
            raise self._cancelled_error()
        raise _AsyncInvalidState("Result is not ready.")

    def exception(self):
        """The call's exception, or None (raises like :meth:`result` when cancelled or
        pending)."""
        if self.outcome == CALL_DONE:
            self.retrieved = True
            return self.error
        if self.outcome == CALL_CANCELLED:
            raise self._cancelled_error()
        raise _AsyncInvalidState("Exception is not set.")

    def add_done_callback(self, fn, *, context=None):
        """Call ``fn(self)`` from the loop once the call is done (in ``context``)."""
        self._add_done_callback(fn, context)

    cdef void _add_done_callback(self, object fn, object context) except *:
        if context is None:
            context = _contextvars.copy_context()
        if self.outcome != CALL_PENDING:
            self.loop.call_soon(fn, self, context=context)
        elif self.callback is None:
            self.callback = fn
            self.callback_context = context
            self.callback_wakes_task = _is_task_wakeup(fn)
        else:
            if self.more_callbacks is None:
                self.more_callbacks = []
            self.more_callbacks.append((fn, context))

    def remove_done_callback(self, fn):
        """Forget every registration of ``fn``; return how many there were."""
        cdef int removed = 0
        if self.callback is not None and self.callback == fn:
            self.callback = self.callback_context = None
            self.callback_wakes_task = False
            removed += 1
        if self.more_callbacks:
            kept = [(f, c) for f, c in self.more_callbacks if f != fn]
            removed += len(self.more_callbacks) - len(kept)
            self.more_callbacks = kept
        if self.callback is None and self.more_callbacks:
            self.callback, self.callback_context = self.more_callbacks.pop(0)
            self.callback_wakes_task = _is_task_wakeup(self.callback)
        return removed

    def cancel(self, msg=None):
        """Cancel the call (its stream is reset); False if it was already done."""
        if self.outcome != CALL_PENDING:
            return False
        self.outcome = CALL_CANCELLED
        self.cancel_message = msg
        if self.retrying is not None:
            self.retrying.cancel(msg)
        elif self.conn is not None:
            conn = self.conn
            conn.core.cancel(self)
            self._attempt_over()
            if conn.ok:  # (_attempt_over told a draining connection already)
                conn.call_done()
        self._schedule_callbacks()
        return True

    cdef object _cancelled_error(self):
        if self.cancel_message is None:
            return _AsyncCancelled()
        return _AsyncCancelled(self.cancel_message)

    # What asyncio.gather reads of a cancelled child, as it does of asyncio's own futures.

    @property
    def _cancel_message(self):
        return self.cancel_message

    def _make_cancelled_error(self):
        return self._cancelled_error()

    # ---------------------------------------------------------------- the call

    cdef void _resolve(self, object result, object exc):
        # the first attempt's response (or failure), from the connection core
        if self.outcome != CALL_PENDING:
            return
        cdef AsyncConnectionBase conn = self.conn
        try:
            self._attempt_over()
            if exc is None:
                if self.parsed:
                    self.error = self.parse_error
                    self.parse_error = None
                else:
                    try:
                        self.value = self.decode(result)
                    except BaseException as decode_error:
                        self.error = decode_error
                self.outcome = CALL_DONE
                if self.callback is not None or self.more_callbacks is not None:
                    conn._wake_later(self)
            else:
                self._retry(exc)
        except BaseException as bug:  # never lose the call, whatever went wrong
            self.error = bug
            self._finish()

    cdef bint _parse_now(self, const unsigned char* p, Py_ssize_t n) except -1:
        # The response parsed in the read buffer by the planner's compiled parser (no
        # bytes object for it), when there is one; a failed parse fails the call only if
        # the trailers say it succeeded (see _resolve).
        cdef ResponseParser parse = self.parse
        if parse == NULL:
            return False
        try:
            self.value = parse(p, p + n)
        except BaseException as exc:
            self.parse_error = exc
        self.parsed = True
        return True

    cdef void _expire(self) except *:
        """The deadline passed during the first attempt: reset the stream; the retry
        coroutine turns the error into ``DeadlineExceededError``."""
        if self.outcome != CALL_PENDING or self.conn is None:
            return
        conn = self.conn
        conn.core.cancel(self)
        self._attempt_over()
        if conn.ok:
            conn.call_done()
        self._retry(_status_error(4, _DEADLINE_MESSAGE))

    cdef void _attempt_over(self) except *:
        """What ends the first attempt, whatever its outcome (AsyncClient._attempts does
        the same for the attempts after it)."""
        cdef AsyncConnectionBase conn = self.conn
        self.conn = None
        if not conn.ok:
            conn.call_done()
        self.caller._ended(self.slot)

    cdef void _retry(self, object error) except *:
        """Hand the call to the client's retry coroutine, which waits as the retry core
        decides (or raises ``error``) and makes the next attempts."""
        self.retrying = self.loop.create_task(
            self.caller.client._retry(
                self._planned(), error, self.deadline if self.has_deadline else None
            )
        )
        self.retrying.add_done_callback(self._retried)

    cdef unsigned char* _write_request(self, unsigned char* p):
        """Write the call's request at ``p``; the end of what was written."""
        cdef Py_ssize_t n
        if self.kind == KIND_CALL:
            n = PyBytes_GET_SIZE(self.call.request)
            memcpy(p, PyBytes_AS_STRING(self.call.request), n)
            return p + n
        if self.kind == KIND_GET:
            return _get_write(p, self.arg_key, self.wire_number, self.flags & 1)
        return _put_write(
            p, self.arg_key, self.arg_value, self.wire_number, self.flags & PUT_PREV_KV,
            self.flags & PUT_IGNORE_VALUE, self.flags & PUT_IGNORE_LEASE,
        )

    cdef Call _planned(self):
        """The call's Call: the one it was started with, or the one its checked arguments
        plan (the same request, decoder, repeatability and timeout)."""
        if self.call is None:
            if self.kind == KIND_GET:
                self.call = _plan_get(
                    self.arg_key, self.arg_number, self.flags & 1, self.call_timeout
                )
            else:
                self.call = _plan_put(
                    self.arg_key, self.arg_value, self.arg_number, self.flags & PUT_PREV_KV,
                    self.flags & PUT_IGNORE_VALUE, self.flags & PUT_IGNORE_LEASE,
                    self.call_timeout, self.flags & PUT_IDEMPOTENT,
                )
        return self.call

    def _retried(self, task):
        if self.outcome != CALL_PENDING:
            return
        self.retrying = None
        if task.cancelled():  # not by us (cancel() set the outcome first): by the loop
            self.outcome = CALL_CANCELLED
            self._schedule_callbacks()
            return
        error = task.exception()
        if error is None:
            self.value = task.result()
        else:
            self.error = error
        self._finish()

    cdef void _finish(self) except *:
        self.outcome = CALL_DONE
        self._schedule_callbacks()

    cdef void _run_callbacks(self, object done) except *:
        """Run the done-callbacks now, each in its context, as the loop's handles would
        (for calls completed by a read: see AsyncConnectionBase._wake).

        A C Task's wake-up is given ``done``, an asyncio Future that is done with no
        exception, instead of this call: all it does with its argument is call
        ``result()`` (to throw a failure into its coroutine) and step the coroutine, which
        then gets the result, or raises the failure, from this call's ``am_send``. Given a
        plain Future, it reads that without calling ``result()`` by name (a method call
        that would cost about a tenth of the call)."""
        cdef object loop = self.loop
        if self.callback is not None:
            callback, context = self.callback, self.callback_context
            self.callback = self.callback_context = None
            _run_callback(loop, context, callback, done if self.callback_wakes_task else self)
        if self.more_callbacks is not None:
            more, self.more_callbacks = self.more_callbacks, None
            for callback, context in more:
                _run_callback(loop, context, callback, self)

    cdef void _schedule_callbacks(self) except *:
        cdef object loop = self.loop
        if self.callback is not None:
            callback, context = self.callback, self.callback_context
            self.callback = self.callback_context = None
            loop.call_soon(callback, self, context=context)
        if self.more_callbacks is not None:
            more, self.more_callbacks = self.more_callbacks, None
            for callback, context in more:
                loop.call_soon(callback, self, context=context)


_abc.Coroutine.register(AsyncCall)


cdef int _run_callback(object loop, object context, object callback,
                       object call) except -1:
    # what the loop does with a handle: run it in its context, report what it raises
    PyContext_Enter(context)
    try:
        callback(call)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        loop.call_exception_handler({
            "message": f"Exception in callback {callback!r}",
            "exception": exc,
            "future": call,
        })
    finally:
        PyContext_Exit(context)
    return 0


cdef int _async_call_send(PyObject* obj, PyObject* arg, PyObject** presult) except -1:
    # AsyncCall's am_send slot: what an ``await`` and a Task's step call. Returning the
    # result here (SEND_RETURN) instead of raising StopIteration from send() spares an
    # exception object per call; asyncio's own Future does the same.
    cdef AsyncCall c = <AsyncCall><object>obj
    cdef object result
    if c.outcome == CALL_PENDING:
        c._asyncio_future_blocking = True
        Py_INCREF(c)
        presult[0] = <PyObject*>c
        return SEND_NEXT
    if c.outcome == CALL_DONE and c.error is None:
        result = c.value
    else:
        result = c.result()  # raises
    Py_INCREF(result)
    presult[0] = <PyObject*>result
    return SEND_RETURN


cdef extern from *:
    """
    /* Cython has no spelling for the am_send slot (PEP 590's PyIter_Send protocol):
       set it on the type object it generated. */
    static int fastetcd_set_am_send(PyObject *type, void *fn) {
        PyTypeObject *t = (PyTypeObject *)type;
        if (t->tp_as_async == NULL) {
            PyErr_SetString(PyExc_TypeError, "no tp_as_async to set am_send in");
            return -1;
        }
        t->tp_as_async->am_send = (sendfunc)fn;
        PyType_Modified(t);
        return 0;
    }
    """
    int fastetcd_set_am_send(object type, void* fn) except -1


fastetcd_set_am_send(AsyncCall, <void*>_async_call_send)


# An asyncio Task that awaits a future-like object reads its ``_asyncio_future_blocking``,
# calls its ``get_loop()`` and sets ``_asyncio_future_blocking = False``, by name, on every
# await. Through the generic attribute look-up that is ~1k instructions a call (a bound
# method made and freed for get_loop alone); AsyncCall's own look-up answers those two names
# first and leaves every other name to the generic one.


cdef extern from *:
    """
    /* A call's get_loop: a builtin function bound to the loop, returning it (one per
       connection, made once). */
    static PyObject *fastetcd_return_self(PyObject *self, PyObject *unused) {
        Py_INCREF(self);
        return self;
    }

    static PyMethodDef fastetcd_get_loop_def = {
        "get_loop", fastetcd_return_self, METH_NOARGS, "The event loop the call runs on."
    };

    static PyObject *fastetcd_loop_getter(PyObject *loop) {
        return PyCFunction_New(&fastetcd_get_loop_def, loop);
    }

    /* A call's add_done_callback attribute: a builtin bound to the call (see
       _add_done_callback_fast; its C function is set at module init). */
    static PyMethodDef fastetcd_add_done_callback_def = {
        "add_done_callback", NULL, METH_FASTCALL | METH_KEYWORDS,
        "Call fn(call) from the loop once the call is done (in context)."
    };

    static void fastetcd_set_add_done_callback(void *fn) {
        fastetcd_add_done_callback_def.ml_meth = (PyCFunction)fn;
    }

    static PyObject *fastetcd_add_done_callback_of(PyObject *call) {
        return PyCFunction_New(&fastetcd_add_done_callback_def, call);
    }
    """
    object fastetcd_loop_getter(object loop)
    void fastetcd_set_add_done_callback(void* fn)
    object fastetcd_add_done_callback_of(object call)
    object PyObject_Vectorcall(object fn, PyObject** args, size_t nargsf, PyObject* kwnames)


fastetcd_set_add_done_callback(<void*>_add_done_callback_fast)


cdef str _BLOCKING = "_asyncio_future_blocking"
cdef str _GET_LOOP = "get_loop"
cdef str _ADD_DONE_CALLBACK = "add_done_callback"
cdef str _CONTEXT = "context"


cdef object _add_done_callback_fast(object obj, PyObject** args, Py_ssize_t nargs,
                                    PyObject* kwnames):
    # A call's add_done_callback as its attribute gives it: a builtin (vectorcall, no
    # keyword parsing for the one keyword a Task passes, ``context``); any other use of
    # keywords goes to the method.
    # (asyncio's Task names it with a string of its own: compared by value)
    cdef PyObject* context = NULL
    if nargs == 1 and (kwnames == NULL or (
            PyTuple_GET_SIZE(<object>kwnames) == 1
            and <object>PyTuple_GET_ITEM(<object>kwnames, 0) == _CONTEXT)):
        if kwnames != NULL:
            context = args[1]
        (<AsyncCall>obj)._add_done_callback(
            <object>args[0], None if context == NULL else <object>context
        )
        return None
    return PyObject_Vectorcall(
        PyObject_GenericGetAttr(obj, _ADD_DONE_CALLBACK), args, nargs, kwnames
    )


cdef object _async_call_getattr(object obj, object name):
    # AsyncCall's tp_getattro (a new reference; the arguments are borrowed)
    cdef AsyncCall c = <AsyncCall>obj
    cdef AsyncConnectionBase conn
    if name is _BLOCKING:
        return c._asyncio_future_blocking
    if name is _ADD_DONE_CALLBACK:
        return fastetcd_add_done_callback_of(obj)
    if name is _GET_LOOP and c.conn is not None:  # (its loop is the call's)
        conn = c.conn
        if conn.loop_getter is None:
            conn.loop_getter = fastetcd_loop_getter(conn.loop)
        return conn.loop_getter
    return PyObject_GenericGetAttr(obj, name)


cdef int _async_call_setattr(object obj, object name, object value) except -1:
    # AsyncCall's tp_setattro (value NULL: delete)
    if name is _BLOCKING and <PyObject*>value != NULL:
        (<AsyncCall>obj)._asyncio_future_blocking = value
        return 0
    return PyObject_GenericSetAttr(obj, name, value)


cdef extern from *:
    """
    /* Cython has no spelling for a cdef class's own tp_getattro/tp_setattro. */
    static int fastetcd_set_attr_slots(PyObject *type, void *get, void *set) {
        PyTypeObject *t = (PyTypeObject *)type;
        t->tp_getattro = (getattrofunc)get;
        t->tp_setattro = (setattrofunc)set;
        PyType_Modified(t);
        return 0;
    }
    """
    int fastetcd_set_attr_slots(object type, void* get, void* set) except -1


fastetcd_set_attr_slots(AsyncCall, <void*>_async_call_getattr, <void*>_async_call_setattr)


cdef class AsyncConnectionBase:
    """The part of the asyncio driver's connection (``fastetcd._native._AsyncConnection``,
    the protocol class built on this one) that calls use as they start and end, typed so
    that doing so reads no Python attributes."""

    cdef public H2Connection core
    cdef public object loop
    cdef public object transport  # the asyncio (or uvloop) transport, once connected
    cdef public bint ok  # new calls may start here
    cdef public bint lost  # the transport is gone
    cdef bint flush_pending
    cdef list woken  # calls completed by reads since _wake last ran
    cdef bint wake_pending
    cdef bint waking  # _wake is running callbacks
    cdef object done_future  # a Future done with None (see AsyncCall._run_callbacks)
    cdef object loop_getter  # what its calls' get_loop attribute is (see below)
    # One loop timer for the deadlines of all its calls, set for the earliest one (not a
    # timer per call: with one timeout for all, a new call's deadline is later than the
    # timer's and sets nothing)
    cdef object deadline_timer
    cdef double deadline_at  # when it fires (monotonic seconds)
    # done once the server's SETTINGS arrived (the connection is then ready for calls),
    # failed if the connection is lost first; None after that (set by the driver)
    cdef public object settled
    # bound methods the loop's handles and the writes call, looked up once (see _bind_loop
    # and _flush; dropped by _unbind)
    cdef object call_soon_fn, wake_fn, flush_fn, write_fn, is_closing_fn
    cdef object bound_transport  # the transport write_fn and is_closing_fn belong to
    cdef object ping_timer  # releases the PING ack the core holds (see buffer_updated)

    # The read callbacks of asyncio's BufferedProtocol, compiled: the loop calls them on
    # every read.

    def get_buffer(self, Py_ssize_t sizehint):
        """The free end of the core's read buffer, for the next read to fill."""
        return self.core.get_buffer(sizehint)

    def buffer_updated(self, Py_ssize_t nbytes):
        """A read put ``nbytes`` into the buffer: process them, write what they call for
        (the calls they complete are woken by their own handle: see _wake_later)."""
        cdef H2Connection core = self.core
        core.buffer_updated(nbytes)
        if core.ping_held and self.ping_timer is None and not self.lost:
            self.ping_timer = self.loop.call_later(PING_ACK_HOLD, self.release_ping)
        if core.out_len:
            self.schedule_flush()
        if self.settled is not None and core.settings_received:
            if not self.settled.done():
                self.settled.set_result(None)
            self.settled = None
        if not core._usable():
            self._draining()

    def release_ping(self):
        """Send the ack of the PING the core holds (the connection sets its core's
        ``hold_ping_acks``; this runs ``PING_ACK_HOLD`` after the PING came)."""
        self.ping_timer = None
        self.core.release_ping()
        if self.core.out_len:
            self.schedule_flush()

    cdef void _wake_later(self, AsyncCall call) except *:
        # One loop handle runs the done-callbacks of all the calls a read completed (in
        # the order they completed) instead of one handle per call.
        if self.woken is None:
            self.woken = [call]
        else:
            self.woken.append(call)
        if not self.wake_pending:
            self.wake_pending = True
            if self.call_soon_fn is None:
                self._bind_loop()
            self.call_soon_fn(self.wake_fn)

    cdef void _bind_loop(self) except *:
        # (a connection's loop does not change: its bound methods are looked up once)
        self.call_soon_fn = self.loop.call_soon
        self.wake_fn = self._wake
        self.flush_fn = self.flush

    def _unbind(self):
        """Drop the bound methods looked up once (see _bind_loop and _flush): the
        connection is lost, and they would keep it (and its buffers) alive in a cycle
        until the garbage collector runs. Also stop the deadline timer (its calls are
        failed and retried elsewhere, within their deadlines) and the PING ack's."""
        self.call_soon_fn = self.wake_fn = self.flush_fn = None
        self.write_fn = self.is_closing_fn = self.bound_transport = None
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
            self.deadline_timer = None
        if self.ping_timer is not None:
            self.ping_timer.cancel()
            self.ping_timer = None

    cdef void _watch_deadline(self, double deadline, double now) except *:
        # a call with this deadline started: have the timer fire by then
        if self.deadline_timer is not None:
            if deadline >= self.deadline_at:
                return
            self.deadline_timer.cancel()
        self.deadline_at = deadline
        self.deadline_timer = self.loop.call_later(deadline - now, self._deadlines_due)

    def _deadlines_due(self):
        """The deadline timer fired: expire the calls whose deadline passed (within the
        timer's resolution, a millisecond) and set it for the earliest one left."""
        self.deadline_timer = None
        cdef double now = _monotonic()
        cdef double earliest = 0
        cdef AsyncCall c
        due = []
        for s in self.core.slots + list(self.core.queued):
            if type(s) is AsyncCall:
                c = <AsyncCall>s
                if c.has_deadline and c.conn is self and c.outcome == CALL_PENDING:
                    if c.deadline <= now + 0.001:
                        due.append(c)
                    elif earliest == 0 or c.deadline < earliest:
                        earliest = c.deadline
        for s in due:
            (<AsyncCall>s)._expire()
        if earliest and not self.lost:
            self._watch_deadline(earliest, now)

    def _wake(self):
        self.wake_pending = False
        calls, self.woken = self.woken, None
        if self.done_future is None:
            self.done_future = self.loop.create_future()
            self.done_future.set_result(None)
        # The woken tasks mostly start their next calls on this connection: they are
        # written when the callbacks are done, not from a handle of their own (which would
        # take one more turn of the loop, with its poll, before the write).
        self.waking = True
        try:
            for call in calls:
                (<AsyncCall>call)._run_callbacks(self.done_future)
        finally:
            self.waking = False
            if self.flush_pending:
                self._flush()

    cpdef schedule_flush(self):
        """Write what the core has to send at the end of this loop iteration (once, for
        every call started in it)."""
        if not self.flush_pending and not self.lost:  # (nothing is written once lost)
            self.flush_pending = True
            # (while a wake handle is pending or running, it writes when its callbacks
            # are done: the calls they start and, e.g., the PING ack a read queued)
            if not (self.waking or self.wake_pending):
                if self.call_soon_fn is None:
                    self._bind_loop()
                self.call_soon_fn(self.flush_fn)

    def flush(self):
        """Write what the core has to send now."""
        self._flush()

    cdef void _flush(self) except *:
        self.flush_pending = False
        cdef H2Connection core = self.core
        if core.out_len and not self.lost and self.transport is not None:
            if self.bound_transport is not self.transport:
                self.bound_transport = self.transport
                self.write_fn = self.transport.write
                self.is_closing_fn = self.transport.is_closing
            sent = core.flushed_max_id
            self.write_fn(core.data_to_send())
            if self.is_closing_fn():
                # the write failed at once (a reset the loop has not read yet) or was
                # dropped: none of it left, so the calls it started were not sent
                core.flushed_max_id = sent

    cpdef call_done(self):
        """A call finished or was abandoned: flush its RST_STREAM; close the connection
        if it is draining and this was its last call."""
        if self.core.out_len:
            self.schedule_flush()
        if not self.ok and not self.lost and self.core.active == 0:
            self.close()


cdef class AsyncCaller:
    """Starts an AsyncClient's unary calls (it is the client's ``_start`` on the native
    transport): an :class:`AsyncCall` with the request queued on a ready connection, or,
    when none is ready (or not every endpoint has one and the loop is not running), the
    transport is not native (a test's stand-in) or auto-sync waits for the first call,
    the coroutine ``client._call(call)``, which connects first."""

    cdef readonly object client
    cdef object native_type  # fastetcd._native.NativeAsyncTransport
    cdef object slot  # the client's TransportSlot (the client says when it changes: use())
    # AsyncCalls in flight on it; it is added to slot.calls when the client moves on to
    # another slot (use()), so that AsyncCalls on the current slot touch no Python object
    cdef Py_ssize_t calls
    # auto-sync waits for the client's first call in its loop (the client sets and clears
    # this as it sets and clears its _sync_pending)
    cdef public bint sync_pending
    cdef object transport  # and its transport
    cdef list ready  # the native transport's _ready (its ready connections, in turn)
    cdef bint native
    cdef Py_ssize_t endpoints  # how many the transport has
    cdef size_t turn  # round-robin over the ready connections
    cdef Py_ssize_t max_send_bytes  # the client's settings (fixed at its creation)
    cdef object timeout
    cdef object metadata

    def __init__(self, client, native_type):
        self.client = client
        self.native_type = native_type
        self.max_send_bytes = client._max_send_bytes
        self.timeout = client._timeout
        self.metadata = client._metadata
        self._use(client._slot)

    def use(self, slot):
        """The client moved to ``slot`` (auto-sync replaced its transport)."""
        self._use(slot)

    cdef void _use(self, slot) except *:
        if self.slot is not None and self.calls:
            self.slot.calls += self.calls
        self.calls = 0
        self.slot = slot
        self.transport = slot.transport
        self.native = isinstance(self.transport, self.native_type)
        if self.native:
            self.endpoints = len(self.transport._by_endpoint)
            self.ready = self.transport._ready

    cdef void _ended(self, slot) except *:
        # an AsyncCall's attempt on ``slot`` ended
        if slot is self.slot:
            self.calls -= 1
            return
        slot.calls -= 1
        if slot.retired:
            self.client._release_soon(slot)

    cdef AsyncConnectionBase _connection(self):
        # The transport's _pick() (a ready connection, in turn), minus its Python call
        # while every endpoint has one. With fewer, _pick() also starts the dials of the
        # others, which needs the loop running: then None unless it is. (A call started
        # while the loop is not running, e.g. one given to run_until_complete, is sent
        # when the loop runs: its write and timer are the loop's handles.)
        cdef list ready = self.ready
        cdef Py_ssize_t n = len(ready)
        cdef AsyncConnectionBase conn
        if n and n == self.endpoints:
            if n == 1:
                conn = <AsyncConnectionBase?>ready[0]
            else:
                self.turn += 1
                conn = <AsyncConnectionBase?>ready[self.turn % n]
            return conn if conn.ok else None
        if not n or not ready[0].loop.is_running():
            return None
        conn = self.transport._pick()
        if conn is None or not conn.ok:
            return None
        return conn

    def start(self, call):
        """Start ``call`` (a planned ``Call``): see the class."""
        cdef AsyncConnectionBase conn = self._ready_connection()
        if conn is None or type(call) is not Call:
            return self.client._call(call)
        cdef Call planned = <Call>call
        cdef AsyncCall c = self._new_async_call(
            conn, KIND_CALL, planned.method, planned.decode, planned.parse, planned.timeout
        )
        c.call = planned
        return self._open(c, conn, PyBytes_GET_SIZE(planned.request))

    def get(self, key, *, revision=0, serializable=False, timeout=None, idempotent=False):
        """Start a get: the client's ``get`` itself (the client binds it as its ``get``,
        so that a get is one call), with its arguments (``idempotent`` is accepted and
        ignored there too: a get is always safe to retry). Its request is written straight
        into a ready connection's output (no ``Call``, no bytes object); else as
        :meth:`start` does with the planned ``Call``."""
        cdef AsyncConnectionBase conn = self._ready_connection()
        if conn is None:
            return self.client._call(_plan_get(key, revision, serializable, timeout))
        # plan_get's checks, in its order
        cdef bytes k = _user_key(key, "key")
        cdef uint64_t rev = <uint64_t>_user_int64(revision, "revision", 0)
        cdef bint ser = serializable
        t = check_timeout(timeout)
        cdef AsyncCall c = self._new_async_call(
            conn, KIND_GET, _KV_RANGE, _decode_get_response, <ResponseParser>_parse_get, t
        )
        c.arg_key = k
        c.arg_number = revision
        c.wire_number = rev
        c.flags = ser
        return self._open(c, conn, _get_size(k, rev, ser))

    def put(self, key, value, *, lease=0, prev_kv=False, ignore_value=False,
            ignore_lease=False, timeout=None, idempotent=False):
        """Start a put: the client's ``put`` itself (bound as the client's ``put``, as
        :meth:`get` is), with its arguments. Its request is written straight into a ready
        connection's output (no ``Call``, no bytes object); else as :meth:`start` does
        with the planned ``Call``."""
        cdef AsyncConnectionBase conn = self._ready_connection()
        if conn is None:
            return self.client._call(_plan_put(
                key, value, lease, prev_kv, ignore_value, ignore_lease, timeout, idempotent
            ))
        # plan_put's checks, in its order
        cdef bytes k = _user_key(key, "key")
        cdef bytes v = _user_bytes(value, "value")
        cdef uint64_t ls = <uint64_t>_user_int64(lease, "lease", INT64_MIN)
        cdef bint pk = prev_kv, iv = ignore_value, il = ignore_lease
        t = check_timeout(timeout)
        cdef bint idem = idempotent
        cdef AsyncCall c = self._new_async_call(
            conn, KIND_PUT, _KV_PUT, _decode_put_response, <ResponseParser>_parse_put, t
        )
        c.arg_key = k
        c.arg_value = v
        c.arg_number = lease
        c.wire_number = ls
        c.flags = (pk * PUT_PREV_KV | iv * PUT_IGNORE_VALUE | il * PUT_IGNORE_LEASE
                   | idem * PUT_IDEMPOTENT)
        return self._open(c, conn, _put_size(k, v, ls, pk, iv, il))

    cdef AsyncConnectionBase _ready_connection(self):
        # The connection to start a call on now; None when the client's coroutine must
        # start it (auto-sync waits for it, the transport is not native, or no connection
        # is ready)
        if self.sync_pending or not self.native:
            return None
        return self._connection()

    cdef AsyncCall _new_async_call(self, AsyncConnectionBase conn, int kind, str method,
                                   object decode, ResponseParser parse, object timeout):
        cdef AsyncCall c = AsyncCall.__new__(AsyncCall)
        c.loop = conn.loop
        c.caller = self
        c.kind = kind
        c.method = method
        c.decode = decode
        c.parse = parse
        c.call_timeout = timeout
        return c

    cdef object _open(self, AsyncCall c, AsyncConnectionBase conn, Py_ssize_t n):
        # Open the stream of ``c``, whose request is ``n`` bytes, on ``conn``: the request
        # written straight into the output, or, where that cannot be (a request larger
        # than a frame or the windows, metadata, calls queued for a stream slot), from the
        # request bytes of its planned Call. Then count it, have it written and watch its
        # deadline. (A connection that takes no new calls leaves it to the coroutine.)
        if n > self.max_send_bytes:
            raise self.client._too_large(c._planned())
        timeout = c.call_timeout if c.call_timeout is not None else self.timeout
        cdef unsigned char* p
        try:
            p = conn.core._begin_fast(c, c.method, n, timeout, self.metadata)
            if p == NULL:
                conn.core._begin(c, c.method, c._planned().request, timeout, self.metadata,
                                 True)
            elif c._write_request(p) != p + n:
                raise SystemError("fastetcd._h2: request size mismatch")
        except ValueError as exc:
            raise _InvalidArgumentError(f"bad metadata: {exc}") from None
        except _EtcdError:  # the connection is closing: let the coroutine go elsewhere
            return self.client._call(c._planned())
        c.slot = self.slot
        c.conn = conn
        self.calls += 1
        conn.schedule_flush()
        cdef double now
        if timeout is not None:
            now = _monotonic()
            c.deadline = now + <double>timeout
            c.has_deadline = True
            conn._watch_deadline(c.deadline, now)
        return c
