# cython: language_level=3
"""Compiled watch core: the Watch codec (requests to bytes, responses straight to
``WatchResponse``/``Event``/``KeyValue`` objects) and the sans-I/O state machine of the
watches multiplexed on one gRPC Watch stream.

``fastetcd._watch_py`` is the pure-Python twin and ``fastetcd/_watch.pyi`` the interface
both export (same bytes out, same objects out, same exceptions, same decisions). The
``KeyValue`` and ``ResponseHeader`` objects are ``fastetcd._codec``'s own classes,
cimported through ``fastetcd/_codec.pxd``. Reads are length-checked by small helpers, as
in the KV codec: any overrun or malformed field raises
:class:`fastetcd.errors.DecodeError`.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_Check,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.long cimport (
    PyLong_AsLongLongAndOverflow,
    PyLong_Check,
    PyLong_FromLongLong,
)
from cpython.number cimport PyIndex_Check, PyNumber_Index
from cpython.object cimport PyObject, PyTypeObject
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport (
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    int32_t,
    int64_t,
    uint32_t,
    uint64_t,
)
from libc.string cimport memcpy

from fastetcd._codec cimport KeyValue, ResponseHeader, ResponseParser

import enum
from collections import deque

from fastetcd.errors import (
    CancelledError,
    CompactedError,
    DecodeError,
    InternalError,
    NoLeaderError,
    StatusCode,
    UnavailableError,
    from_status,
)

__all__ = [
    "EventType",
    "Event",
    "WatchResponse",
    "FILTER_NOPUT",
    "FILTER_NODELETE",
    "PROGRESS_WATCH_ID",
    "DEFAULT_MAX_BUFFERED_BYTES",
    "encode_watch_create_request",
    "encode_watch_cancel_request",
    "encode_watch_progress_request",
    "decode_event",
    "decode_watch_response",
    "EventIterator",
    "Watcher",
    "WatchCore",
]

FILTER_NOPUT = 0
FILTER_NODELETE = 1
PROGRESS_WATCH_ID = -1
DEFAULT_MAX_BUFFERED_BYTES = 8 * 1024 * 1024

# What a buffered response costs beyond its wire bytes: the Python objects it became.
cdef enum:
    _RESPONSE_OVERHEAD = 256
    _EVENT_OVERHEAD = 256


class EventType(enum.IntEnum):
    """mvccpb.Event.EventType: what happened to the key."""

    PUT = 0
    DELETE = 1


cdef object _PUT = EventType.PUT
cdef object _DELETE = EventType.DELETE

# -------------------- result classes
#
# As in fastetcd._codec: every field is an object slot exposed as a read-only member
# descriptor (see _expose_fields), which CPython reads faster than a getset property.

cdef extern from "structmember.h":
    ctypedef struct PyMemberDef:
        const char* name
        int type
        Py_ssize_t offset
        int flags
        const char* doc
    enum:
        T_OBJECT_EX
        READONLY


cdef extern from "Python.h":
    object PyDescr_NewMember(PyTypeObject* type, PyMemberDef* meth)
    void PyType_Modified(PyTypeObject* type)


# A catch-up delivers responses of up to 1,000 events, several per read of the socket,
# that are all alive until their consumers take them: a freelist of a few responses' worth
# of events makes most Event allocations and deallocations skip the allocator.
@cython.freelist(8192)
@cython.no_gc
@cython.embedsignature(False)
cdef class Event:
    """Event(type, kv, prev_kv=None)
--

mvccpb.Event: one change to one key (``kv`` after it; ``prev_kv`` before it, when the
watch asked for it with ``prev_kv=True``)."""

    cdef object type, kv, prev_kv

    def __init__(self, type, kv, prev_kv=None):
        self.type = type
        self.kv = kv
        self.prev_kv = prev_kv

    cdef tuple _tuple(self):
        return (self.type, self.kv, self.prev_kv)

    def _fields(self):
        """The fields as a tuple, in constructor order."""
        return self._tuple()

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._tuple() == (<Event>other)._tuple()

    def __ne__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._tuple() != (<Event>other)._tuple()

    def __hash__(self):
        return hash(self._tuple())

    def __repr__(self):
        return (
            f"{type(self).__name__}(type={self.type!r}, kv={self.kv!r}, "
            f"prev_kv={self.prev_kv!r})"
        )

    def __reduce__(self):
        return (type(self), self._tuple())


@cython.freelist(64)
@cython.embedsignature(False)
cdef class WatchResponse:
    """WatchResponse(header, watch_id=0, created=False, canceled=False,
    compact_revision=0, cancel_reason='', fragment=False, events=())
--

etcdserverpb.WatchResponse: what one watch received in one response."""

    cdef object header, watch_id, created, canceled, compact_revision, cancel_reason
    cdef object fragment, events

    def __init__(
        self,
        header,
        watch_id=0,
        created=False,
        canceled=False,
        compact_revision=0,
        cancel_reason="",
        fragment=False,
        events=(),
    ):
        self.header = header
        self.watch_id = watch_id
        self.created = created
        self.canceled = canceled
        self.compact_revision = compact_revision
        self.cancel_reason = cancel_reason
        self.fragment = fragment
        self.events = events

    @property
    def is_progress_notify(self):
        """True for a progress notification: no events, not created, not canceled, no
        compact revision, and a header revision (etcd's ``IsProgressNotify``)."""
        return bool(
            not self.events
            and not self.created
            and not self.canceled
            and self.compact_revision == 0
            and self.header.revision != 0
        )

    cdef tuple _tuple(self):
        return (
            self.header,
            self.watch_id,
            self.created,
            self.canceled,
            self.compact_revision,
            self.cancel_reason,
            self.fragment,
            self.events,
        )

    def _fields(self):
        """The fields as a tuple, in constructor order."""
        return self._tuple()

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._tuple() == (<WatchResponse>other)._tuple()

    def __ne__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._tuple() != (<WatchResponse>other)._tuple()

    def __hash__(self):
        return hash(self._tuple())

    def __repr__(self):
        return (
            f"{type(self).__name__}(header={self.header!r}, "
            f"watch_id={self.watch_id!r}, "
            f"created={self.created!r}, canceled={self.canceled!r}, "
            f"compact_revision={self.compact_revision!r}, "
            f"cancel_reason={self.cancel_reason!r}, fragment={self.fragment!r}, "
            f"events={self.events!r})"
        )

    def __reduce__(self):
        return (type(self), self._tuple())


cdef PyMemberDef _MEMBERS[16]
cdef int _n_members = 0
_MEMBER_NAMES = []


cdef int _expose_fields(type cls, tuple names) except -1:
    """Expose the object slots of ``cls`` named ``names`` (its constructor parameters,
    in order) as read-only member descriptors; each slot's offset is found by
    constructing an instance from distinct sentinels and locating them in its memory
    (as in _codec)."""
    global _n_members
    cdef PyTypeObject* tp = <PyTypeObject*>cls
    cdef Py_ssize_t off, i
    cdef PyMemberDef* m
    cdef char* base
    sentinels = tuple([object() for _ in names])
    instance = cls(*sentinels)
    base = <char*><PyObject*>instance
    for i in range(len(names)):
        if _n_members >= 16:
            raise SystemError("fastetcd._watch: too many result fields")
        off = sizeof(PyObject)
        while off + <Py_ssize_t>sizeof(PyObject*) <= tp.tp_basicsize:
            if (<PyObject**>(base + off))[0] == <PyObject*>sentinels[i]:
                break
            off += sizeof(PyObject*)
        else:
            raise SystemError(f"fastetcd._watch: no slot for {cls.__name__}.{names[i]}")
        name = names[i].encode("ascii")
        _MEMBER_NAMES.append(name)  # keeps the C string alive
        m = &_MEMBERS[_n_members]
        _n_members += 1
        m.name = PyBytes_AS_STRING(name)
        m.type = T_OBJECT_EX
        m.offset = off
        m.flags = READONLY
        m.doc = NULL
        (<dict>tp.tp_dict)[names[i]] = PyDescr_NewMember(tp, m)
    PyType_Modified(tp)
    return 0


_expose_fields(Event, ("type", "kv", "prev_kv"))
_expose_fields(
    WatchResponse,
    (
        "header",
        "watch_id",
        "created",
        "canceled",
        "compact_revision",
        "cancel_reason",
        "fragment",
        "events",
    ),
)

cdef ResponseHeader _EMPTY_HEADER = ResponseHeader(0, 0, 0, 0)
cdef KeyValue _EMPTY_KV = KeyValue()

# -------------------- wire helpers shared with the KV codec (src/_codec.pyx):
# argument checks, length-checked readers, _skip_field, _parse_header and _decode.

include "_wire.pxi"

# -------------------- encoders (not on the hot path: built like the pure twin)


cdef inline void _put_varint(bytearray out, uint64_t v):
    while v >= 0x80:
        out.append(<unsigned char>((v & 0x7F) | 0x80))
        v >>= 7
    out.append(<unsigned char>v)


cdef inline void _put_bytes(bytearray out, unsigned char tag, bytes data):
    out.append(tag)
    _put_varint(out, <uint64_t>PyBytes_GET_SIZE(data))
    out += data


cdef tuple _filters_tuple(object filters):
    if isinstance(filters, (bytes, bytearray, memoryview, str)):
        raise TypeError(
            f"filters must be a sequence of ints, not {type(filters).__name__}"
        )
    return tuple(filters)


def encode_watch_create_request(
    key,
    range_end,
    start_revision,
    bint progress_notify,
    filters,
    bint prev_kv,
    watch_id,
    bint fragment,
):
    """WatchRequest{create_request=1: WatchCreateRequest{key=1 range_end=2
    start_revision=3 progress_notify=4 filters=5 (packed enum) prev_kv=6 watch_id=7
    fragment=8}}."""
    _arg_bytes(key, "key")
    _arg_bytes(range_end, "range_end")
    cdef uint64_t rev = <uint64_t><int64_t>_arg_int(
        start_revision, "start_revision", INT64_MIN, INT64_MAX
    )
    cdef uint64_t wid = <uint64_t><int64_t>_arg_int(
        watch_id, "watch_id", INT64_MIN, INT64_MAX
    )
    cdef tuple flt = _filters_tuple(filters)
    cdef bytearray packed = bytearray()
    cdef Py_ssize_t i
    for i in range(len(flt)):
        _put_varint(
            packed,
            <uint64_t><int64_t>_arg_int(flt[i], f"filters[{i}]", INT32_MIN, INT32_MAX),
        )
    cdef bytearray inner = bytearray()
    if PyBytes_GET_SIZE(key):
        _put_bytes(inner, 0x0A, key)
    if PyBytes_GET_SIZE(range_end):
        _put_bytes(inner, 0x12, range_end)
    if rev:
        inner.append(0x18)
        _put_varint(inner, rev)
    if progress_notify:
        inner += b"\x20\x01"
    if packed:
        _put_bytes(inner, 0x2A, bytes(packed))
    if prev_kv:
        inner += b"\x30\x01"
    if wid:
        inner.append(0x38)
        _put_varint(inner, wid)
    if fragment:
        inner += b"\x40\x01"
    cdef bytearray out = bytearray()
    _put_bytes(out, 0x0A, bytes(inner))
    return bytes(out)


def encode_watch_cancel_request(watch_id):
    """WatchRequest{cancel_request=2: WatchCancelRequest{watch_id=1}}."""
    cdef uint64_t wid = <uint64_t><int64_t>_arg_int(
        watch_id, "watch_id", INT64_MIN, INT64_MAX
    )
    if not wid:
        return b"\x12\x00"
    cdef bytearray inner = bytearray(b"\x08")
    _put_varint(inner, wid)
    cdef bytearray out = bytearray()
    _put_bytes(out, 0x12, bytes(inner))
    return bytes(out)


cdef bytes _PROGRESS_REQUEST = b"\x1a\x00"


def encode_watch_progress_request():
    """WatchRequest{progress_request=3: WatchProgressRequest{}}."""
    return _PROGRESS_REQUEST


# -------------------- message parsers


cdef inline int _read_sub_len(
    const unsigned char** pp, const unsigned char* end, Py_ssize_t* out
) except -1:
    """``_read_len`` with a two-byte fast path too: an event or a key-value longer than
    127 bytes (a 100-byte value is enough) has a two-byte length."""
    cdef const unsigned char* p = pp[0]
    cdef Py_ssize_t n
    if end - p >= 2 and p[0] >= 0x80 and p[1] < 0x80:
        n = (p[0] & 0x7F) | (<Py_ssize_t>p[1] << 7)
        if n <= end - p - 2:
            out[0] = n
            pp[0] = p + 2
            return 0
    return _read_len(pp, end, out)


@cython.final
cdef class _Ints:
    """Per-decode cache of the last revision ints made: the events of one txn share
    their mod_revision, and a new key's create_revision equals it, so most are
    reused."""

    cdef int64_t mod
    cdef object mod_obj
    cdef int64_t create
    cdef object create_obj

    def __cinit__(self):
        self.mod = 0
        self.mod_obj = 0
        self.create = 0
        self.create_obj = 0


cdef inline object _mod_int(_Ints ints, int64_t v):
    if v != ints.mod:
        ints.mod = v
        ints.mod_obj = PyLong_FromLongLong(v)
    return ints.mod_obj


cdef inline object _create_int(_Ints ints, int64_t v):
    if v == ints.mod:
        return ints.mod_obj
    if v != ints.create:
        ints.create = v
        ints.create_obj = PyLong_FromLongLong(v)
    return ints.create_obj


# Small ints (a key's version, a lease of 0) as ready objects: cheaper than converting.
cdef enum:
    _N_SMALL = 256
cdef PyObject* _SMALL[_N_SMALL]
_SMALL_INTS = tuple(range(_N_SMALL))  # keeps them alive


cdef int _init_small() except -1:
    cdef Py_ssize_t i
    for i in range(_N_SMALL):
        _SMALL[i] = <PyObject*>_SMALL_INTS[i]
    return 0


_init_small()


cdef inline object _int64_obj(int64_t v):
    if <uint64_t>v < _N_SMALL:
        return <object>_SMALL[v]
    return PyLong_FromLongLong(v)


cdef KeyValue _parse_kv(const unsigned char* p, const unsigned char* end, _Ints ints):
    cdef uint64_t tag, v
    cdef Py_ssize_t n = 0
    cdef int64_t create_revision = 0, mod_revision = 0, version = 0, lease = 0
    cdef bytes key = b""
    cdef bytes value = b""
    cdef KeyValue kv
    while p < end:
        _read_varint(&p, end, &tag)
        if tag == 0x0A:
            _read_len(&p, end, &n)
            key = _bytes_at(p, n)
            p += n
        elif tag == 0x10:
            _read_varint(&p, end, &v)
            create_revision = <int64_t>v
        elif tag == 0x18:
            _read_varint(&p, end, &v)
            mod_revision = <int64_t>v
        elif tag == 0x20:
            _read_varint(&p, end, &v)
            version = <int64_t>v
        elif tag == 0x2A:
            _read_sub_len(&p, end, &n)
            value = _bytes_at(p, n)
            p += n
        elif tag == 0x30:
            _read_varint(&p, end, &v)
            lease = <int64_t>v
        else:
            _skip_field(&p, end, tag, 6)
    kv = <KeyValue>KeyValue.__new__(KeyValue)
    kv.key = key
    kv.value = value
    kv.mod_revision = _mod_int(ints, mod_revision)
    kv.create_revision = _create_int(ints, create_revision)
    kv.version = _int64_obj(version)
    kv.lease = _int64_obj(lease)
    return kv


cdef Event _parse_event(const unsigned char* p, const unsigned char* end, _Ints ints):
    cdef uint64_t tag, v
    cdef Py_ssize_t n = 0
    cdef int32_t t
    cdef object etype = _PUT
    cdef object kv = _EMPTY_KV
    cdef object prev_kv = None
    cdef Event ev
    while p < end:
        _read_varint(&p, end, &tag)
        if tag == 0x12:
            _read_sub_len(&p, end, &n)
            kv = _parse_kv(p, p + n, ints)
            p += n
        elif tag == 0x08:
            _read_varint(&p, end, &v)
            t = <int32_t><uint32_t>v
            if t == 0:
                etype = _PUT
            elif t == 1:
                etype = _DELETE
            else:
                etype = t
        elif tag == 0x1A:
            _read_sub_len(&p, end, &n)
            prev_kv = _parse_kv(p, p + n, ints)
            p += n
        else:
            _skip_field(&p, end, tag, 3)
    ev = Event.__new__(Event)
    ev.type = etype
    ev.kv = kv
    ev.prev_kv = prev_kv
    return ev


cdef inline bint _unknown_response_field(uint64_t tag):
    """Fields 8, 9 and 10 are unused upstream: skipped like any unknown field."""
    return 8 <= (tag >> 3) <= 10


cdef WatchResponse _parse_response(const unsigned char* p, const unsigned char* end):
    cdef uint64_t tag, v
    cdef Py_ssize_t n = 0
    cdef object header = _EMPTY_HEADER
    cdef int64_t watch_id = 0, compact_revision = 0
    cdef bint created = False, canceled = False, fragment = False
    cdef object cancel_reason = ""
    cdef list events = None
    cdef _Ints ints = None
    cdef WatchResponse r
    while p < end:
        _read_varint(&p, end, &tag)
        if tag == 0x5A:
            _read_sub_len(&p, end, &n)
            if events is None:
                events = []
                ints = _Ints.__new__(_Ints)
            events.append(_parse_event(p, p + n, ints))
            p += n
        elif tag == 0x0A:
            _read_len(&p, end, &n)
            header = _parse_header(p, p + n)
            p += n
        elif tag == 0x10:
            _read_varint(&p, end, &v)
            watch_id = <int64_t>v
        elif tag == 0x18:
            _read_varint(&p, end, &v)
            created = v != 0
        elif tag == 0x20:
            _read_varint(&p, end, &v)
            canceled = v != 0
        elif tag == 0x28:
            _read_varint(&p, end, &v)
            compact_revision = <int64_t>v
        elif tag == 0x32:
            _read_len(&p, end, &n)
            try:
                cancel_reason = PyUnicode_DecodeUTF8(<const char*>p, n, NULL)
            except UnicodeDecodeError:
                raise DecodeError("cancel_reason is not valid UTF-8") from None
            p += n
        elif tag == 0x38:
            _read_varint(&p, end, &v)
            fragment = v != 0
        elif _unknown_response_field(tag):
            _skip_field(&p, end, tag, 0)
        else:
            _skip_field(&p, end, tag, 11)
    r = WatchResponse.__new__(WatchResponse)
    r.header = header
    r.watch_id = watch_id
    r.created = created
    r.canceled = canceled
    r.compact_revision = compact_revision
    r.cancel_reason = cancel_reason
    r.fragment = fragment
    r.events = () if events is None else tuple(events)
    return r


cdef Event _parse_event_top(const unsigned char* p, const unsigned char* end):
    return _parse_event(p, end, _Ints.__new__(_Ints))


def decode_event(data):
    """mvccpb.Event: type=1 (enum) kv=2 prev_kv=3."""
    return _decode(data, <ResponseParser>_parse_event_top)


def decode_watch_response(data):
    """WatchResponse: header=1 watch_id=2 created=3 canceled=4 compact_revision=5
    cancel_reason=6 (string) fragment=7 events=11 (repeated Event)."""
    return _decode(data, <ResponseParser>_parse_response)


# -------------------- event iteration


@cython.final
cdef class EventIterator:
    """EventIterator(next_response)
--

The events of the responses ``next_response()`` returns, one by one (responses with
no events are skipped); iteration ends when ``next_response`` raises StopIteration. Used
by ``Watch.events()``: the per-event step runs here, not in a Python generator."""

    cdef object _next_response
    cdef tuple _events
    cdef Py_ssize_t _i

    def __init__(self, next_response):
        if not callable(next_response):
            raise TypeError("next_response must be callable")
        self._next_response = next_response
        self._events = ()
        self._i = 0

    def __iter__(self):
        return self

    def __next__(self):
        cdef tuple events = self._events
        cdef Py_ssize_t i = self._i
        while i >= len(events):
            events = (<WatchResponse?>self._next_response()).events
            self._events = events
            i = 0
        self._i = i + 1
        return events[i]


# -------------------- state machine


@cython.final
cdef class Watcher:
    """One watch of a :class:`WatchCore` (made by :meth:`WatchCore.add`). Read-only for
    everyone but the core, except ``waker``, a free slot for the driver."""

    cdef public object waker
    cdef object _key, _range_end
    cdef int64_t _start_revision, _next_revision, _watch_id
    cdef bint _progress_notify, _prev_kv, _fragment
    cdef tuple _filters
    cdef bint _created, _done, _over
    cdef object _error
    cdef object _buffer  # deque of (WatchResponse, cost)
    cdef Py_ssize_t _buffered_bytes
    cdef list _frag_events
    cdef Py_ssize_t _frag_bytes
    cdef Py_ssize_t _fragments

    def __init__(self, *args):
        raise TypeError("Watcher objects are made by WatchCore.add()")

    @property
    def key(self):
        return self._key

    @property
    def range_end(self):
        return self._range_end

    @property
    def start_revision(self):
        return self._start_revision

    @property
    def next_revision(self):
        """Where the watch resumes after a stream break (0: "now", not created yet)."""
        return self._next_revision

    @property
    def watch_id(self):
        """The server's id for this watch on the current stream; -1 while not
        created."""
        return self._watch_id

    @property
    def created(self):
        """True once the first ``created`` response arrived."""
        return self._created

    @property
    def done(self):
        """True once nothing more will be buffered (canceled, or ended by ``error``)."""
        return self._done

    @property
    def error(self):
        """Why the watch ended (None: canceled by the client, or still running)."""
        return self._error

    @property
    def buffered(self):
        """Responses waiting for the consumer."""
        return len(self._buffer)

    @property
    def buffered_bytes(self):
        """Their accounted size (wire bytes plus a fixed allowance per response and
        event)."""
        return self._buffered_bytes

    @property
    def fragments(self):
        """Fragment messages received and joined so far (statistics)."""
        return self._fragments

    cdef bytes _create_request(self):
        return encode_watch_create_request(
            self._key,
            self._range_end,
            self._next_revision,
            self._progress_notify,
            self._filters,
            self._prev_kv,
            0,
            self._fragment,
        )

    def __repr__(self):
        state = "done" if self._done else ("created" if self._created else "pending")
        return (
            f"<Watcher key={self._key!r} range_end={self._range_end!r} "
            f"next_revision={self._next_revision} watch_id={self._watch_id} {state}>"
        )


cdef object _cancel_error(WatchResponse response, Watcher watcher):
    """The error that ends a watch the server canceled."""
    if response.compact_revision:
        return CompactedError(
            f"watch from revision {watcher._next_revision} canceled: revisions up to "
            f"{response.compact_revision} have been compacted",
            compact_revision=response.compact_revision,
        )
    if response.cancel_reason:
        return from_status(StatusCode.UNKNOWN, response.cancel_reason)
    return CancelledError("the server canceled the watch")


cdef WatchResponse _with_events(WatchResponse response, tuple events):
    cdef WatchResponse r = WatchResponse.__new__(WatchResponse)
    r.header = response.header
    r.watch_id = response.watch_id
    r.created = response.created
    r.canceled = response.canceled
    r.compact_revision = response.compact_revision
    r.cancel_reason = response.cancel_reason
    r.fragment = False
    r.events = events
    return r


cdef bint _resumable(object error, bint require_leader) except -1:
    """Whether a watch stream that failed with ``error`` is opened again (clientv3's
    rule: UNAVAILABLE and INTERNAL are transient; "no leader" ends ``require_leader``
    watches)."""
    if isinstance(error, NoLeaderError):
        return not require_leader
    return isinstance(error, (UnavailableError, InternalError, CancelledError))


cdef inline int64_t _mod_revision(object event) except? -1:
    return (<KeyValue?>(<Event?>event).kv).mod_revision


@cython.final
cdef class WatchCore:
    """The watches multiplexed on one Watch stream: create queue, id map, resume points,
    fragment joining, per-watch buffers, and the reconnect decision.

    Every method returns at once; the requests it wants sent accumulate for
    :meth:`take_requests`, the watchers whose consumers must be woken for
    :meth:`take_woken`. Not thread-safe: the driver serializes calls."""

    cdef object _backoff
    cdef bint _require_leader
    cdef Py_ssize_t _max_bytes
    cdef bint _connected, _responded
    cdef dict _live  # Watcher -> None, in creation order
    cdef object _queue  # deque of Watcher
    cdef Watcher _inflight
    cdef dict _by_id  # watch id -> Watcher
    cdef set _canceling
    cdef list _requests
    cdef list _woken
    cdef Py_ssize_t _over

    def __init__(
        self,
        backoff,
        *,
        require_leader=False,
        max_buffered_bytes=DEFAULT_MAX_BUFFERED_BYTES,
    ):
        if max_buffered_bytes < 1:
            raise ValueError("max_buffered_bytes must be at least 1")
        self._backoff = backoff
        self._require_leader = bool(require_leader)
        self._max_bytes = int(max_buffered_bytes)
        self._connected = False
        self._responded = False
        self._live = {}
        self._queue = deque()
        self._inflight = None
        self._by_id = {}
        self._canceling = set()
        self._requests = []
        self._woken = []
        self._over = 0

    @property
    def connected(self):
        """True between :meth:`on_connect` and :meth:`on_disconnect`."""
        return self._connected

    @property
    def active(self):
        """Watches not done (the driver ends the stream when this drops to 0)."""
        return len(self._live)

    @property
    def paused(self):
        """True while some watch buffers more than ``max_buffered_bytes``: stop
        reading."""
        return self._over > 0

    @property
    def max_buffered_bytes(self):
        return self._max_bytes

    # --------------------------------------------------------------- consumers' side

    def add(
        self,
        key,
        range_end,
        start_revision,
        progress_notify,
        filters,
        prev_kv,
        fragment,
    ):
        """Register a watch (validated by encoding its create request) and queue its
        create."""
        cdef tuple flt = _filters_tuple(filters)
        encode_watch_create_request(
            key, range_end, start_revision, progress_notify, flt, prev_kv, 0, fragment
        )
        cdef int64_t rev = _arg_int(
            start_revision, "start_revision", INT64_MIN, INT64_MAX
        )
        cdef Watcher w = Watcher.__new__(Watcher)
        w.waker = None
        w._key = key
        w._range_end = range_end
        w._start_revision = rev
        w._next_revision = rev
        w._watch_id = -1
        w._progress_notify = bool(progress_notify)
        w._filters = flt
        w._prev_kv = bool(prev_kv)
        w._fragment = bool(fragment)
        w._created = False
        w._done = False
        w._over = False
        w._error = None
        w._buffer = deque()
        w._buffered_bytes = 0
        w._frag_events = None
        w._frag_bytes = 0
        w._fragments = 0
        self._live[w] = None
        self._queue.append(w)
        if self._connected and self._inflight is None:
            self._send_next_create()
        return w

    def cancel(self, Watcher watcher not None):
        """End ``watcher`` (no error), drop its buffer, and cancel it on the server."""
        cdef int64_t wid
        if watcher._done:
            if watcher._buffer:
                self._drop_buffer(watcher)
            return
        self._end(watcher, None)
        self._drop_buffer(watcher)
        wid = watcher._watch_id
        if wid >= 0 and self._by_id.get(wid) is watcher:
            del self._by_id[wid]
            if self._connected:
                self._requests.append(encode_watch_cancel_request(wid))
                self._canceling.add(wid)

    def request_progress(self):
        """Queue a progress request (nothing when disconnected)."""
        if self._connected:
            self._requests.append(_PROGRESS_REQUEST)

    def pop(self, Watcher watcher not None):
        """The next buffered response of ``watcher``, or None when its buffer is
        empty."""
        cdef tuple item
        if not watcher._buffer:
            return None
        item = <tuple>watcher._buffer.popleft()
        watcher._buffered_bytes -= <Py_ssize_t>item[1]
        if watcher._over and watcher._buffered_bytes <= self._max_bytes:
            watcher._over = False
            self._over -= 1
        return item[0]

    # -------------------------------------------------------------- the stream's side

    def on_connect(self):
        """A new stream is open: queue the create of every live watch from its resume
        point."""
        self._connected = True
        self._responded = False
        self._inflight = None
        self._by_id.clear()
        self._canceling.clear()
        self._requests = []
        self._queue = deque(self._live)
        self._send_next_create()

    def feed(self, data):
        """A response arrived: decode it and :meth:`apply` it (a DecodeError changes
        nothing)."""
        cdef WatchResponse response = decode_watch_response(data)
        self._apply(response, len(data))

    def feed_many(self, batch):
        """Responses arrived, in order (an iterable of messages, e.g. what one read of
        the stream brought): decode and apply each in turn. A DecodeError is raised after
        the responses before the bad one have been applied (it and those after it change
        nothing)."""
        cdef WatchResponse response
        for data in batch:
            response = <WatchResponse>_decode(data, <ResponseParser>_parse_response)
            self._apply(response, len(data))

    def apply(self, WatchResponse response not None, Py_ssize_t size):
        """Apply a decoded response of ``size`` wire bytes."""
        self._apply(response, size)

    cdef int _apply(self, WatchResponse response, Py_ssize_t size) except -1:
        cdef int64_t wid, next_revision, revision
        cdef Watcher watcher
        cdef tuple events
        if not self._connected:
            return 0
        if not self._responded:
            self._responded = True
            self._backoff.reset()
        wid = response.watch_id
        if response.created:
            self._on_created(response, size)
            return 0
        if wid == -1:
            if not response.events and not response.canceled:
                for watcher in self._by_id.values():
                    self._deliver(watcher, response, size)
            return 0
        watcher = self._by_id.get(wid)
        if watcher is None:
            if wid not in self._canceling:
                self._canceling.add(wid)
                self._requests.append(encode_watch_cancel_request(wid))
            return 0
        if response.fragment:
            if watcher._frag_events is None:
                watcher._frag_events = []
            watcher._frag_events.extend(response.events)
            watcher._frag_bytes += size
            watcher._fragments += 1
            return 0
        if watcher._frag_events is not None:
            events = tuple(watcher._frag_events) + <tuple>response.events
            size += watcher._frag_bytes
            watcher._frag_events = None
            watcher._frag_bytes = 0
            watcher._fragments += 1
            response = _with_events(response, events)
        if response.canceled or response.compact_revision:
            del self._by_id[wid]
            self._canceling.add(wid)
            self._end(watcher, _cancel_error(response, watcher))
            return 0
        events = <tuple>response.events
        if events:
            next_revision = watcher._next_revision
            if _mod_revision(events[0]) < next_revision:
                events = tuple([e for e in events if _mod_revision(e) >= next_revision])
                if not events:
                    return 0
                response = _with_events(response, events)
            watcher._next_revision = _mod_revision(events[len(events) - 1]) + 1
        else:
            revision = response.header.revision
            revision += 1
            if revision > watcher._next_revision:
                watcher._next_revision = revision
        self._deliver(watcher, response, size)
        return 0

    def on_disconnect(self, error):
        """The stream ended (``error`` None: cleanly). Return the wait before
        reconnecting, or None when the error ends every watch (then they are done, with
        that error)."""
        cdef Watcher watcher
        self._connected = False
        self._inflight = None
        self._by_id.clear()
        self._canceling.clear()
        self._requests = []
        self._queue.clear()
        for watcher in self._live:
            watcher._watch_id = -1
            watcher._frag_events = None
            watcher._frag_bytes = 0
        if error is None or _resumable(error, self._require_leader):
            return self._backoff.next_delay()
        self.fail(error)
        return None

    def fail(self, error):
        """End every live watch with ``error`` (e.g. the stream could not be opened)."""
        cdef Watcher watcher
        for watcher in list(self._live):
            self._end(watcher, error)
        self._queue.clear()
        self._inflight = None
        self._by_id.clear()

    def take_requests(self):
        """The requests to send on the current stream, in order (and forget them)."""
        requests = self._requests
        self._requests = []
        return requests

    def take_woken(self):
        """The watchers with new responses or a new end (and forget them)."""
        woken = self._woken
        self._woken = []
        return woken

    # ---------------------------------------------------------------------- internals

    cdef int _send_next_create(self) except -1:
        cdef Watcher watcher
        while self._queue:
            watcher = self._queue.popleft()
            if watcher._done:
                continue
            self._inflight = watcher
            self._requests.append(watcher._create_request())
            return 0
        return 0

    cdef int _on_created(self, WatchResponse response, Py_ssize_t size) except -1:
        cdef Watcher watcher = self._inflight
        cdef int64_t wid = response.watch_id
        self._inflight = None
        if watcher is None:
            if not response.canceled and wid not in self._canceling:
                self._canceling.add(wid)
                self._requests.append(encode_watch_cancel_request(wid))
        elif watcher._done:
            # Canceled by the client while its create was in flight.
            if not response.canceled:
                self._canceling.add(wid)
                self._requests.append(encode_watch_cancel_request(wid))
        elif response.canceled:
            self._end(watcher, _cancel_error(response, watcher))
        else:
            watcher._watch_id = wid
            self._by_id[wid] = watcher
            if watcher._next_revision == 0:
                watcher._next_revision = response.header.revision
                watcher._next_revision += 1
            if not watcher._created:
                watcher._created = True
                self._deliver(watcher, response, size)
        self._send_next_create()
        return 0

    cdef int _deliver(
        self, Watcher watcher, WatchResponse response, Py_ssize_t size
    ) except -1:
        cdef Py_ssize_t cost = (
            size + _RESPONSE_OVERHEAD + _EVENT_OVERHEAD * len(<tuple>response.events)
        )
        watcher._buffer.append((response, cost))
        watcher._buffered_bytes += cost
        if not watcher._over and watcher._buffered_bytes > self._max_bytes:
            watcher._over = True
            self._over += 1
        self._woken.append(watcher)
        return 0

    cdef int _end(self, Watcher watcher, object error) except -1:
        watcher._done = True
        watcher._error = error
        watcher._frag_events = None
        watcher._frag_bytes = 0
        self._live.pop(watcher, None)
        self._woken.append(watcher)
        return 0

    cdef int _drop_buffer(self, Watcher watcher) except -1:
        watcher._buffer.clear()
        watcher._buffered_bytes = 0
        if watcher._over:
            watcher._over = False
            self._over -= 1
        return 0
