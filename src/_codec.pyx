# cython: language_level=3
"""Compiled etcd v3 codec: encodes KV/Txn requests to protobuf bytes and decodes
responses straight into result objects.

This is the hot path of fastetcd; ``fastetcd._codec_py`` is its pure-Python twin and
``fastetcd/_codec.pyi`` the interface both export (same bytes out, same objects out,
same exceptions). Encoders compute the exact size of a message first and fill one
``bytes`` object in place; decoders walk a ``const unsigned char*`` with small
length-checked helpers: every read is checked against the end of its (sub)message and
any overrun or malformed field raises :class:`fastetcd.errors.DecodeError`.
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
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check, PyLong_CheckExact
from cpython.number cimport PyIndex_Check, PyNumber_Index
from cpython.object cimport PyObject, PyTypeObject
from cpython.tuple cimport PyTuple_CheckExact
from libc.stdint cimport (
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    int32_t,
    int64_t,
    uint64_t,
)
from libc.string cimport memcpy

from typing import Union

from fastetcd.errors import (
    ArgumentTypeError,
    DecodeError,
    EmptyKeyError,
    InvalidArgumentError,
)

__all__ = [
    "ResponseHeader",
    "KeyValue",
    "RangeResult",
    "PutResult",
    "DeleteResult",
    "TxnResult",
    "CompactResult",
    "OpResult",
    "SORT_NONE",
    "SORT_ASCEND",
    "SORT_DESCEND",
    "SORT_BY_KEY",
    "SORT_BY_VERSION",
    "SORT_BY_CREATE",
    "SORT_BY_MOD",
    "SORT_BY_VALUE",
    "CMP_EQUAL",
    "CMP_GREATER",
    "CMP_LESS",
    "CMP_NOT_EQUAL",
    "TARGET_VERSION",
    "TARGET_CREATE",
    "TARGET_MOD",
    "TARGET_VALUE",
    "TARGET_LEASE",
    "OP_RANGE",
    "OP_PUT",
    "OP_DELETE_RANGE",
    "OP_TXN",
    "Call",
    "to_bytes",
    "key_bytes",
    "int64",
    "encode_get",
    "encode_put",
    "decode_get_response",
    "prefix_range_end",
    "encode_range_request",
    "encode_put_request",
    "encode_delete_range_request",
    "encode_compare",
    "encode_request_op",
    "encode_txn_request",
    "encode_compaction_request",
    "decode_response_header",
    "decode_key_value",
    "decode_range_response",
    "decode_put_response",
    "decode_delete_range_response",
    "decode_txn_response",
    "decode_compaction_response",
]

# -------------------- enums

SORT_NONE = 0
SORT_ASCEND = 1
SORT_DESCEND = 2
SORT_BY_KEY = 0
SORT_BY_VERSION = 1
SORT_BY_CREATE = 2
SORT_BY_MOD = 3
SORT_BY_VALUE = 4
CMP_EQUAL = 0
CMP_GREATER = 1
CMP_LESS = 2
CMP_NOT_EQUAL = 3
TARGET_VERSION = 0
TARGET_CREATE = 1
TARGET_MOD = 2
TARGET_VALUE = 3
TARGET_LEASE = 4
OP_RANGE = 1
OP_PUT = 2
OP_DELETE_RANGE = 3
OP_TXN = 4

# The deepest chain of TxnResponses (the outermost one counts) the decoder accepts.
cdef enum:
    _MAX_TXN_DEPTH = 32

# -------------------- result classes
#
# Every field is a Python object slot, exposed to Python code as a read-only *member*
# descriptor (installed by _expose_fields below) rather than as the getset property
# Cython would generate for a ``readonly`` attribute: CPython (3.11+) specializes
# attribute reads of member slots (LOAD_ATTR_SLOT), which makes reading a field several
# times faster. Setting or deleting a field raises AttributeError, as does setting any
# other attribute (the classes have no __dict__). Constructors store their arguments
# as given, exactly like the pure twin.
#
# ResponseHeader, KeyValue and PutResult are not tracked by the cyclic GC: decoding creates
# them by the thousand and they only ever hold ints, bytes and each other. (A cycle built
# by hand through their constructor arguments would not be collected; nothing in fastetcd
# does that.)


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


@cython.freelist(256)
@cython.no_gc
@cython.embedsignature(False)
cdef class ResponseHeader:
    """ResponseHeader(cluster_id=0, member_id=0, revision=0, raft_term=0)
--

etcdserverpb.ResponseHeader: where and when a response was produced."""

    # Fields: cluster_id, member_id, revision, raft_term (declared in
    # fastetcd/_codec.pxd).

    def __init__(self, cluster_id=0, member_id=0, revision=0, raft_term=0):
        self.cluster_id = cluster_id
        self.member_id = member_id
        self.revision = revision
        self.raft_term = raft_term

    cdef tuple _tuple(self):
        return (self.cluster_id, self.member_id, self.revision, self.raft_term)

    def _fields(self):
        """The fields as a tuple, in constructor order."""
        return self._tuple()

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._tuple() == (<ResponseHeader>other)._tuple()

    def __ne__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._tuple() != (<ResponseHeader>other)._tuple()

    def __hash__(self):
        return hash(self._tuple())

    def __repr__(self):
        return (
            f"{type(self).__name__}(cluster_id={self.cluster_id!r}, "
            f"member_id={self.member_id!r}, revision={self.revision!r}, "
            f"raft_term={self.raft_term!r})"
        )

    def __reduce__(self):
        return (type(self), self._tuple())


# A watcher's consumers hold a few responses' worth of key-values (thousands) until they take
# them: a freelist that large keeps them from coming cold from the allocator.
@cython.freelist(8192)
@cython.no_gc
@cython.embedsignature(False)
cdef class KeyValue:
    """KeyValue(key=b'', value=b'', create_revision=0, mod_revision=0, version=0,
    lease=0)
--

mvccpb.KeyValue: one key with its value and revisions."""

    # Fields: key, value, create_revision, mod_revision, version, lease (declared in
    # fastetcd/_codec.pxd).

    def __init__(
        self, key=b'', value=b'', create_revision=0, mod_revision=0, version=0, lease=0
    ):
        self.key = key
        self.value = value
        self.create_revision = create_revision
        self.mod_revision = mod_revision
        self.version = version
        self.lease = lease

    cdef tuple _tuple(self):
        return (
            self.key,
            self.value,
            self.create_revision,
            self.mod_revision,
            self.version,
            self.lease,
        )

    def _fields(self):
        """The fields as a tuple, in constructor order."""
        return self._tuple()

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._tuple() == (<KeyValue>other)._tuple()

    def __ne__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._tuple() != (<KeyValue>other)._tuple()

    def __hash__(self):
        return hash(self._tuple())

    def __repr__(self):
        return (
            f"{type(self).__name__}(key={self.key!r}, value={self.value!r}, "
            f"create_revision={self.create_revision!r}, "
            f"mod_revision={self.mod_revision!r}, version={self.version!r}, "
            f"lease={self.lease!r})"
        )

    def __reduce__(self):
        return (type(self), self._tuple())


@cython.embedsignature(False)
cdef class RangeResult:
    """RangeResult(header, kvs=(), more=False, count=0)
--

Result of a Range (get) request."""

    cdef object header, kvs, more, count

    def __init__(self, header, kvs=(), more=False, count=0):
        self.header = header
        self.kvs = kvs
        self.more = more
        self.count = count

    cdef tuple _tuple(self):
        return (self.header, self.kvs, self.more, self.count)

    def _fields(self):
        """The fields as a tuple, in constructor order."""
        return self._tuple()

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._tuple() == (<RangeResult>other)._tuple()

    def __ne__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._tuple() != (<RangeResult>other)._tuple()

    def __hash__(self):
        return hash(self._tuple())

    def __repr__(self):
        return (
            f"{type(self).__name__}(header={self.header!r}, kvs={self.kvs!r}, "
            f"more={self.more!r}, count={self.count!r})"
        )

    def __reduce__(self):
        return (type(self), self._tuple())


@cython.freelist(256)
@cython.no_gc
@cython.embedsignature(False)
cdef class PutResult:
    """PutResult(header, prev_kv=None)
--

Result of a Put request."""

    # Fields: header, prev_kv (declared in fastetcd/_codec.pxd).

    def __init__(self, header, prev_kv=None):
        self.header = header
        self.prev_kv = prev_kv

    cdef tuple _tuple(self):
        return (self.header, self.prev_kv)

    def _fields(self):
        """The fields as a tuple, in constructor order."""
        return self._tuple()

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._tuple() == (<PutResult>other)._tuple()

    def __ne__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._tuple() != (<PutResult>other)._tuple()

    def __hash__(self):
        return hash(self._tuple())

    def __repr__(self):
        return (
            f"{type(self).__name__}(header={self.header!r}, prev_kv={self.prev_kv!r})"
        )

    def __reduce__(self):
        return (type(self), self._tuple())


@cython.embedsignature(False)
cdef class DeleteResult:
    """DeleteResult(header, deleted=0, prev_kvs=())
--

Result of a DeleteRange request."""

    cdef object header, deleted, prev_kvs

    def __init__(self, header, deleted=0, prev_kvs=()):
        self.header = header
        self.deleted = deleted
        self.prev_kvs = prev_kvs

    cdef tuple _tuple(self):
        return (self.header, self.deleted, self.prev_kvs)

    def _fields(self):
        """The fields as a tuple, in constructor order."""
        return self._tuple()

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._tuple() == (<DeleteResult>other)._tuple()

    def __ne__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._tuple() != (<DeleteResult>other)._tuple()

    def __hash__(self):
        return hash(self._tuple())

    def __repr__(self):
        return (
            f"{type(self).__name__}(header={self.header!r}, deleted={self.deleted!r}, "
            f"prev_kvs={self.prev_kvs!r})"
        )

    def __reduce__(self):
        return (type(self), self._tuple())


@cython.embedsignature(False)
cdef class TxnResult:
    """TxnResult(header, succeeded=False, responses=())
--

Result of a Txn request: which branch ran and one result per op of that branch."""

    cdef object header, succeeded, responses

    def __init__(self, header, succeeded=False, responses=()):
        self.header = header
        self.succeeded = succeeded
        self.responses = responses

    cdef tuple _tuple(self):
        return (self.header, self.succeeded, self.responses)

    def _fields(self):
        """The fields as a tuple, in constructor order."""
        return self._tuple()

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._tuple() == (<TxnResult>other)._tuple()

    def __ne__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._tuple() != (<TxnResult>other)._tuple()

    def __hash__(self):
        return hash(self._tuple())

    def __repr__(self):
        return (
            f"{type(self).__name__}(header={self.header!r}, "
            f"succeeded={self.succeeded!r}, responses={self.responses!r})"
        )

    def __reduce__(self):
        return (type(self), self._tuple())


@cython.embedsignature(False)
cdef class CompactResult:
    """CompactResult(header)
--

Result of a Compaction request."""

    cdef object header

    def __init__(self, header):
        self.header = header

    cdef tuple _tuple(self):
        return (self.header,)

    def _fields(self):
        """The fields as a tuple, in constructor order."""
        return self._tuple()

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._tuple() == (<CompactResult>other)._tuple()

    def __ne__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._tuple() != (<CompactResult>other)._tuple()

    def __hash__(self):
        return hash(self._tuple())

    def __repr__(self):
        return f"{type(self).__name__}(header={self.header!r})"

    def __reduce__(self):
        return (type(self), self._tuple())


# Member definitions of the descriptors _expose_fields installs (the descriptors point
# into this array, so it lives as long as the module).
cdef PyMemberDef _MEMBERS[32]
cdef int _n_members = 0


cdef int _expose_fields(type cls, tuple names) except -1:
    """Expose the object slots of ``cls`` named ``names`` (its constructor parameters,
    in order) as read-only member descriptors. Each slot's offset is found by
    constructing an instance from distinct sentinel objects and locating them in the
    instance's memory."""
    global _n_members
    cdef PyTypeObject* tp = <PyTypeObject*>cls
    cdef Py_ssize_t off, i
    cdef PyMemberDef* m
    cdef char* base
    sentinels = tuple([object() for _ in names])
    instance = cls(*sentinels)
    base = <char*><PyObject*>instance
    for i in range(len(names)):
        if _n_members >= 32:
            raise SystemError("fastetcd._codec: too many result fields")
        off = sizeof(PyObject)
        while off + <Py_ssize_t>sizeof(PyObject*) <= tp.tp_basicsize:
            if (<PyObject**>(base + off))[0] == <PyObject*>sentinels[i]:
                break
            off += sizeof(PyObject*)
        else:
            raise SystemError(f"fastetcd._codec: no slot for {cls.__name__}.{names[i]}")
        if names[i] in <dict>tp.tp_dict:
            raise SystemError(f"fastetcd._codec: {cls.__name__}.{names[i]} exists")
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


_MEMBER_NAMES = []
_expose_fields(ResponseHeader, ("cluster_id", "member_id", "revision", "raft_term"))
_expose_fields(
    KeyValue, ("key", "value", "create_revision", "mod_revision", "version", "lease")
)
_expose_fields(RangeResult, ("header", "kvs", "more", "count"))
_expose_fields(PutResult, ("header", "prev_kv"))
_expose_fields(DeleteResult, ("header", "deleted", "prev_kvs"))
_expose_fields(TxnResult, ("header", "succeeded", "responses"))
_expose_fields(CompactResult, ("header",))

#: What one op of a txn produced.
OpResult = Union[RangeResult, PutResult, DeleteResult, TxnResult]

# The header of a response that carries none; immutable, so one instance serves all.
cdef ResponseHeader _EMPTY_HEADER = ResponseHeader(0, 0, 0, 0)

# -------------------- wire helpers shared with the watch codec (src/_watch.pyx):
# argument checks, length-checked readers, _skip_field, _parse_header and _decode.

include "_wire.pxi"

# -------------------- argument checks


cdef inline int64_t _arg_i64(object o, str name) except? -1:
    """An int64 argument (TypeError for a non-int, OverflowError outside the range)."""
    cdef int overflow = 0
    cdef long long v
    if PyLong_CheckExact(o):  # fast path; anything else (or an error) takes _arg_int
        v = PyLong_AsLongLongAndOverflow(o, &overflow)
        if not overflow:
            return <int64_t>v
    return <int64_t>_arg_int(o, name, INT64_MIN, INT64_MAX)


cdef inline int32_t _arg_i32(object o, str name) except? -1:
    """An int32 (enum) argument (TypeError for a non-int, OverflowError outside the
    range)."""
    cdef int overflow = 0
    cdef long long v
    if PyLong_CheckExact(o):  # fast path; anything else (or an error) takes _arg_int
        v = PyLong_AsLongLongAndOverflow(o, &overflow)
        if not overflow and INT32_MIN <= v <= INT32_MAX:
            return <int32_t>v
    return <int32_t>_arg_int(o, name, INT32_MIN, INT32_MAX)


# -------------------- encoding helpers


cdef inline Py_ssize_t _vlen(uint64_t v) noexcept nogil:
    """Bytes taken by ``v`` as a varint."""
    cdef Py_ssize_t n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


cdef inline Py_ssize_t _lenfield(Py_ssize_t tag_len, Py_ssize_t n) noexcept nogil:
    """Bytes taken by a length-delimited field of ``n`` payload bytes."""
    return tag_len + _vlen(<uint64_t>n) + n


cdef inline unsigned char* _wv(unsigned char* p, uint64_t v) noexcept nogil:
    """Write ``v`` as a varint at ``p``; return the position after it."""
    while v >= 0x80:
        p[0] = <unsigned char>(v | 0x80)
        v >>= 7
        p += 1
    p[0] = <unsigned char>v
    return p + 1


cdef inline unsigned char* _wbytes(
    unsigned char* p, unsigned char tag, const char* s, Py_ssize_t n
) noexcept nogil:
    """Write a length-delimited field with a one-byte tag."""
    p[0] = tag
    p = _wv(p + 1, <uint64_t>n)
    memcpy(p, s, <size_t>n)
    return p + n


cdef inline unsigned char* _wvarint_field(
    unsigned char* p, unsigned char tag, uint64_t v
) noexcept nogil:
    """Write a varint field with a one-byte tag."""
    p[0] = tag
    return _wv(p + 1, v)


cdef inline Py_ssize_t _vfield(uint64_t v) noexcept nogil:
    """Bytes taken by a varint field with a one-byte tag; 0 when ``v`` is 0."""
    return 1 + _vlen(v) if v else 0


cdef inline bytes _new_bytes(Py_ssize_t n, unsigned char** p):
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
    p[0] = <unsigned char*>PyBytes_AS_STRING(out)
    return out


cdef inline object _check_end(const unsigned char* p, bytes out):
    # An internal consistency check; a mismatch would mean a bug in a size computation.
    if <const char*>p != PyBytes_AS_STRING(out) + PyBytes_GET_SIZE(out):
        raise SystemError("fastetcd._codec: encoded size mismatch")
    return out


# -------------------- planned calls


@cython.final
@cython.freelist(256)
@cython.no_gc  # (its fields are a str, bytes, a decoder function and a number: no cycle)
cdef class Call:
    """One planned RPC: ``decode(transport.unary(method, request))`` is its result.

    ``repeatable`` is True for requests that may be sent again after an ambiguous failure
    (reads, and writes the caller marked ``idempotent=True``); other writes are False (etcd's
    Go client: repeatable vs nonRepeatable). The retry core (``fastetcd._retry``) decides
    from it. ``timeout`` is the caller's per-call deadline in seconds, retries included
    (None: the client's). Built by ``fastetcd._plan``; read-only. (Its fields are declared
    in ``fastetcd/_codec.pxd``.)
    """

    def __init__(self, str method, bytes request, decode, bint repeatable, timeout=None):
        self.method = method
        self.request = request
        self.decode = decode
        self.repeatable = repeatable
        self.timeout = timeout

    def __repr__(self):
        return (
            f"Call({self.method}, {len(self.request)} bytes, repeatable={self.repeatable}, "
            f"timeout={self.timeout})"
        )


cdef Call _new_call(str method, bytes request, object decode, bint repeatable,
                    object timeout, ResponseParser parse):
    # Call(...) without its argument parsing (the planners of the hottest calls), with
    # ``parse``, the compiled parser ``decode`` runs
    cdef Call call = Call.__new__(Call)
    call.parse = parse
    call.method = method
    call.request = request
    call.decode = decode
    call.repeatable = repeatable
    call.timeout = timeout
    return call


# -------------------- user arguments (the client methods' keys, values and ints)


cdef bytes _user_bytes(object value, str what):
    if type(value) is bytes:
        return <bytes>value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise ArgumentTypeError(f"{what} must be bytes or str, not {type(value).__name__}")


cdef bytes _user_key(object key, str what):
    cdef bytes data = _user_bytes(key, what)
    if not PyBytes_GET_SIZE(data):
        raise EmptyKeyError(f"{what} must not be empty")
    return data


cdef int64_t _user_int64(object value, str what, int64_t minimum) except? -1:
    cdef int overflow = 0
    cdef long long v
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(f"{what} must be an int, not {type(value).__name__}")
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or v < minimum:
        raise InvalidArgumentError(
            f"{what} must be between {minimum} and {INT64_MAX}, not {value}"
        )
    return <int64_t>v


def to_bytes(value, what):
    """Return a user's key or value as bytes: bytes as they are, bytearray and memoryview
    copied, str encoded as UTF-8; anything else raises ``ArgumentTypeError``."""
    return _user_bytes(value, what)


def key_bytes(key, what="key"):
    """Return a user's key as bytes (as :func:`to_bytes`); an empty key raises
    ``EmptyKeyError``, as etcd would."""
    return _user_key(key, what)


def int64(value, what, minimum=INT64_MIN):
    """Return a user's int argument as an int in [minimum, 2**63-1]: bools and non-ints
    raise ``ArgumentTypeError``, values outside the range ``InvalidArgumentError``."""
    cdef int64_t low = _arg_i64(minimum, "minimum")
    return int(_user_int64(value, what, low))


# -------------------- encoders


def prefix_range_end(prefix):
    """etcd's prefix end: drop trailing 0xff bytes, then add one to the last byte.
    All-0xff or empty input gives b"\\x00" ("to the end of the keyspace")."""
    _arg_bytes(prefix, "prefix")
    cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(prefix)
    cdef Py_ssize_t i = PyBytes_GET_SIZE(prefix) - 1
    cdef unsigned char* p
    while i >= 0 and s[i] == 0xFF:
        i -= 1
    if i < 0:
        return b"\x00"
    out = _new_bytes(i + 1, &p)
    memcpy(p, s, <size_t>i)
    p[i] = s[i] + 1
    return out


def encode_range_request(
    key,
    range_end,
    limit,
    revision,
    sort_order,
    sort_target,
    bint serializable,
    bint keys_only,
    bint count_only,
    min_mod_revision,
    max_mod_revision,
    min_create_revision,
    max_create_revision,
):
    """RangeRequest: key=1 range_end=2 limit=3 revision=4 sort_order=5 sort_target=6
    serializable=7 keys_only=8 count_only=9 min_mod_revision=10 max_mod_revision=11
    min_create_revision=12 max_create_revision=13 (all ints int64, enums varint)."""
    _arg_bytes(key, "key")
    _arg_bytes(range_end, "range_end")
    cdef uint64_t lim = <uint64_t>_arg_i64(limit, "limit")
    cdef uint64_t rev = <uint64_t>_arg_i64(revision, "revision")
    cdef uint64_t so = <uint64_t><int64_t>_arg_i32(sort_order, "sort_order")
    cdef uint64_t st = <uint64_t><int64_t>_arg_i32(sort_target, "sort_target")
    cdef uint64_t minm = <uint64_t>_arg_i64(min_mod_revision, "min_mod_revision")
    cdef uint64_t maxm = <uint64_t>_arg_i64(max_mod_revision, "max_mod_revision")
    cdef uint64_t minc = <uint64_t>_arg_i64(min_create_revision, "min_create_revision")
    cdef uint64_t maxc = <uint64_t>_arg_i64(max_create_revision, "max_create_revision")
    cdef Py_ssize_t klen = PyBytes_GET_SIZE(key)
    cdef Py_ssize_t elen = PyBytes_GET_SIZE(range_end)
    cdef Py_ssize_t size = 0
    cdef unsigned char* p
    if klen:
        size += _lenfield(1, klen)
    if elen:
        size += _lenfield(1, elen)
    size += (
        _vfield(lim) + _vfield(rev) + _vfield(so) + _vfield(st)
        + 2 * (serializable + keys_only + count_only)
        + _vfield(minm) + _vfield(maxm) + _vfield(minc) + _vfield(maxc)
    )
    out = _new_bytes(size, &p)
    if klen:
        p = _wbytes(p, 0x0A, PyBytes_AS_STRING(key), klen)
    if elen:
        p = _wbytes(p, 0x12, PyBytes_AS_STRING(range_end), elen)
    if lim:
        p = _wvarint_field(p, 0x18, lim)
    if rev:
        p = _wvarint_field(p, 0x20, rev)
    if so:
        p = _wvarint_field(p, 0x28, so)
    if st:
        p = _wvarint_field(p, 0x30, st)
    if serializable:
        p[0] = 0x38
        p[1] = 1
        p += 2
    if keys_only:
        p[0] = 0x40
        p[1] = 1
        p += 2
    if count_only:
        p[0] = 0x48
        p[1] = 1
        p += 2
    if minm:
        p = _wvarint_field(p, 0x50, minm)
    if maxm:
        p = _wvarint_field(p, 0x58, maxm)
    if minc:
        p = _wvarint_field(p, 0x60, minc)
    if maxc:
        p = _wvarint_field(p, 0x68, maxc)
    return _check_end(p, out)


def encode_put_request(
    key, value, lease, bint prev_kv, bint ignore_value, bint ignore_lease
):
    """PutRequest: key=1 value=2 lease=3 prev_kv=4 ignore_value=5 ignore_lease=6."""
    _arg_bytes(key, "key")
    _arg_bytes(value, "value")
    return _put_request(
        key, value, <uint64_t>_arg_i64(lease, "lease"), prev_kv, ignore_value, ignore_lease
    )


cpdef bytes encode_put(key, value, lease, prev_kv, ignore_value, ignore_lease):
    """A client's put arguments, checked and coerced (keys and values as bytes or str,
    ``lease`` an int64), encoded as a PutRequest; bad arguments raise the
    ``fastetcd.errors`` exceptions of :func:`key_bytes`, :func:`to_bytes` and
    :func:`int64`."""
    cdef bytes k = _user_key(key, "key")
    cdef bytes v = _user_bytes(value, "value")
    cdef uint64_t ls = <uint64_t>_user_int64(lease, "lease", INT64_MIN)
    return _put_request(k, v, ls, prev_kv, ignore_value, ignore_lease)


cdef bytes _put_request(
    bytes key, bytes value, uint64_t ls, bint prev_kv, bint ignore_value, bint ignore_lease
):
    cdef unsigned char* p
    out = _new_bytes(_put_size(key, value, ls, prev_kv, ignore_value, ignore_lease), &p)
    p = _put_write(p, key, value, ls, prev_kv, ignore_value, ignore_lease)
    return _check_end(p, out)


cdef Py_ssize_t _put_size(
    bytes key, bytes value, uint64_t ls, bint prev_kv, bint ignore_value, bint ignore_lease
):
    """The PutRequest's size in bytes (what _put_write writes)."""
    cdef Py_ssize_t klen = PyBytes_GET_SIZE(key)
    cdef Py_ssize_t vlen = PyBytes_GET_SIZE(value)
    cdef Py_ssize_t size = _vfield(ls) + 2 * (prev_kv + ignore_value + ignore_lease)
    if klen:
        size += _lenfield(1, klen)
    if vlen:
        size += _lenfield(1, vlen)
    return size


cdef unsigned char* _put_write(
    unsigned char* p, bytes key, bytes value, uint64_t ls, bint prev_kv, bint ignore_value,
    bint ignore_lease
):
    """Write the PutRequest at ``p`` (_put_size bytes); the end of what was written."""
    cdef Py_ssize_t klen = PyBytes_GET_SIZE(key)
    cdef Py_ssize_t vlen = PyBytes_GET_SIZE(value)
    if klen:
        p = _wbytes(p, 0x0A, PyBytes_AS_STRING(key), klen)
    if vlen:
        p = _wbytes(p, 0x12, PyBytes_AS_STRING(value), vlen)
    if ls:
        p = _wvarint_field(p, 0x18, ls)
    if prev_kv:
        p[0] = 0x20
        p[1] = 1
        p += 2
    if ignore_value:
        p[0] = 0x28
        p[1] = 1
        p += 2
    if ignore_lease:
        p[0] = 0x30
        p[1] = 1
        p += 2
    return p


cpdef bytes encode_get(key, revision, serializable):
    """A client's get arguments, checked and coerced (``key`` bytes or str, not empty;
    ``revision`` an int >= 0), encoded as the RangeRequest for that one key."""
    cdef bytes k = _user_key(key, "key")
    cdef uint64_t rev = <uint64_t>_user_int64(revision, "revision", 0)
    cdef bint ser = serializable
    cdef unsigned char* p
    out = _new_bytes(_get_size(k, rev, ser), &p)
    p = _get_write(p, k, rev, ser)
    return _check_end(p, out)


cdef Py_ssize_t _get_size(bytes key, uint64_t rev, bint serializable):
    """The size in bytes of the RangeRequest for one key (what _get_write writes)."""
    return _lenfield(1, PyBytes_GET_SIZE(key)) + _vfield(rev) + 2 * serializable


cdef unsigned char* _get_write(unsigned char* p, bytes key, uint64_t rev, bint serializable):
    """Write the RangeRequest for one key at ``p``; the end of what was written."""
    p = _wbytes(p, 0x0A, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key))
    if rev:
        p = _wvarint_field(p, 0x20, rev)
    if serializable:
        p[0] = 0x38
        p[1] = 1
        p += 2
    return p


# -------------------- whole calls (the planning of the hot client methods, in one step)

#: The gRPC method paths of the calls planned here.
KV_RANGE = "/etcdserverpb.KV/Range"
KV_PUT = "/etcdserverpb.KV/Put"

cdef double _INF = float("inf")


cpdef object check_timeout(timeout):
    """Check a per-call ``timeout``: None, or a finite number of seconds > 0 (returned as a
    float); anything else raises ``InvalidArgumentError``."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise InvalidArgumentError(
            f"timeout must be a number of seconds or None, not {timeout!r}"
        )
    if not 0 < timeout < _INF:
        raise InvalidArgumentError(f"timeout must be > 0 seconds, not {timeout!r}")
    return float(timeout)


def plan_get(key, revision, serializable, timeout):
    """The :class:`Call` of a get: :func:`encode_get`'s request to ``KV_RANGE``, decoded
    by :func:`decode_get_response`, repeatable, with the checked ``timeout``."""
    return _new_call(KV_RANGE, encode_get(key, revision, serializable), decode_get_response,
                     True, check_timeout(timeout), <ResponseParser>_parse_get)


def plan_put(key, value, lease, prev_kv, ignore_value, ignore_lease, timeout, idempotent):
    """The :class:`Call` of a put: :func:`encode_put`'s request to ``KV_PUT``, decoded by
    :func:`decode_put_response`, repeatable only if ``idempotent``, with the checked
    ``timeout``."""
    return _new_call(KV_PUT, encode_put(key, value, lease, prev_kv, ignore_value, ignore_lease),
                     decode_put_response, idempotent, check_timeout(timeout),
                     <ResponseParser>_parse_put)


def encode_delete_range_request(key, range_end, bint prev_kv):
    """DeleteRangeRequest: key=1 range_end=2 prev_kv=3."""
    _arg_bytes(key, "key")
    _arg_bytes(range_end, "range_end")
    cdef Py_ssize_t klen = PyBytes_GET_SIZE(key)
    cdef Py_ssize_t elen = PyBytes_GET_SIZE(range_end)
    cdef Py_ssize_t size = 2 * prev_kv
    cdef unsigned char* p
    if klen:
        size += _lenfield(1, klen)
    if elen:
        size += _lenfield(1, elen)
    out = _new_bytes(size, &p)
    if klen:
        p = _wbytes(p, 0x0A, PyBytes_AS_STRING(key), klen)
    if elen:
        p = _wbytes(p, 0x12, PyBytes_AS_STRING(range_end), elen)
    if prev_kv:
        p[0] = 0x18
        p[1] = 1
        p += 2
    return _check_end(p, out)


def encode_compare(result, target, key, range_end, value):
    """Compare: result=1 target=2 key=3, then the oneof target_union chosen by
    ``target`` (version=4, create_revision=5, mod_revision=6 as int64; value=7 as bytes;
    lease=8 as int64) always written, then range_end=64. ``value`` must be bytes for
    TARGET_VALUE and int otherwise (TypeError if not); ValueError for unknown target."""
    cdef uint64_t res = <uint64_t><int64_t>_arg_i32(result, "result")
    cdef long long tgt = _arg_i32(target, "target")
    if tgt < 0 or tgt > 4:
        raise ValueError(f"unknown compare target {tgt}")
    _arg_bytes(key, "key")
    _arg_bytes(range_end, "range_end")
    cdef Py_ssize_t klen = PyBytes_GET_SIZE(key)
    cdef Py_ssize_t elen = PyBytes_GET_SIZE(range_end)
    cdef Py_ssize_t vlen = 0
    cdef uint64_t ival = 0
    cdef Py_ssize_t size = _vfield(res) + _vfield(<uint64_t>tgt)
    cdef unsigned char* p
    if tgt == 3:
        _arg_bytes(value, "value")
        vlen = PyBytes_GET_SIZE(value)
        size += _lenfield(1, vlen)
    else:
        ival = <uint64_t>_arg_i64(value, "value")
        size += 1 + _vlen(ival)
    if klen:
        size += _lenfield(1, klen)
    if elen:
        size += _lenfield(2, elen)
    out = _new_bytes(size, &p)
    if res:
        p = _wvarint_field(p, 0x08, res)
    if tgt:
        p = _wvarint_field(p, 0x10, <uint64_t>tgt)
    if klen:
        p = _wbytes(p, 0x1A, PyBytes_AS_STRING(key), klen)
    if tgt == 3:
        p = _wbytes(p, 0x3A, PyBytes_AS_STRING(value), vlen)
    else:
        # version=4 (0x20), create_revision=5 (0x28), mod_revision=6 (0x30),
        # lease=8 (0x40)
        p = _wvarint_field(
            p, 0x40 if tgt == 4 else <unsigned char>(0x20 + 8 * tgt), ival
        )
    if elen:
        p[0] = 0x82  # field 64, wire type 2: tag 514 as a varint
        p[1] = 0x04
        p = _wv(p + 2, <uint64_t>elen)
        memcpy(p, PyBytes_AS_STRING(range_end), <size_t>elen)
        p += elen
    return _check_end(p, out)


def encode_request_op(kind, request):
    """RequestOp: wrap an encoded request as oneof field ``kind`` (OP_RANGE..OP_TXN),
    always written even when ``request`` is empty. ValueError for an unknown kind."""
    cdef long long k = _arg_i32(kind, "kind")
    if k < 1 or k > 4:
        raise ValueError(f"unknown request op kind {k}")
    _arg_bytes(request, "request")
    cdef Py_ssize_t n = PyBytes_GET_SIZE(request)
    cdef unsigned char* p
    out = _new_bytes(_lenfield(1, n), &p)
    p = _wbytes(p, <unsigned char>((k << 3) | 2), PyBytes_AS_STRING(request), n)
    return _check_end(p, out)


cdef tuple _as_bytes_tuple(object seq, str name):
    """``seq`` as a tuple whose items are all bytes (TypeError otherwise)."""
    cdef tuple t
    cdef Py_ssize_t i
    if PyTuple_CheckExact(seq):
        t = <tuple>seq
    elif PyBytes_Check(seq) or isinstance(seq, (str, bytearray, memoryview)):
        raise TypeError(f"{name} must be a sequence of bytes, not {type(seq).__name__}")
    else:
        t = tuple(seq)
    for i in range(len(t)):
        if not PyBytes_Check(t[i]):
            raise TypeError(
                f"{name}[{i}] must be bytes (an encoded message), "
                f"not {type(t[i]).__name__}"
            )
    return t


cdef Py_ssize_t _items_size(tuple t) noexcept:
    cdef Py_ssize_t size = 0
    cdef object item
    for item in t:
        size += _lenfield(1, PyBytes_GET_SIZE(item))
    return size


cdef unsigned char* _write_items(unsigned char* p, unsigned char tag, tuple t) noexcept:
    cdef object item
    for item in t:
        p = _wbytes(p, tag, PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item))
    return p


def encode_txn_request(compare, success, failure):
    """TxnRequest: compare=1, success=2, failure=3; each element is an already-encoded
    Compare / RequestOp message, written as a length-delimited field."""
    cdef tuple c = _as_bytes_tuple(compare, "compare")
    cdef tuple s = _as_bytes_tuple(success, "success")
    cdef tuple f = _as_bytes_tuple(failure, "failure")
    cdef unsigned char* p
    out = _new_bytes(_items_size(c) + _items_size(s) + _items_size(f), &p)
    p = _write_items(p, 0x0A, c)
    p = _write_items(p, 0x12, s)
    p = _write_items(p, 0x1A, f)
    return _check_end(p, out)


def encode_compaction_request(revision, bint physical):
    """CompactionRequest: revision=1 (int64) physical=2."""
    cdef uint64_t rev = <uint64_t>_arg_i64(revision, "revision")
    cdef unsigned char* p
    out = _new_bytes(_vfield(rev) + 2 * physical, &p)
    if rev:
        p = _wvarint_field(p, 0x08, rev)
    if physical:
        p[0] = 0x10
        p[1] = 1
        p += 2
    return _check_end(p, out)


# -------------------- message parsers
#
# (_parse_header is in _wire.pxi.)


cdef KeyValue _parse_kv(const unsigned char* p, const unsigned char* end):
    cdef uint64_t tag, v
    cdef Py_ssize_t n
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
            _read_len(&p, end, &n)
            value = _bytes_at(p, n)
            p += n
        elif tag == 0x30:
            _read_varint(&p, end, &v)
            lease = <int64_t>v
        else:
            _skip_field(&p, end, tag, 6)
    kv = KeyValue.__new__(KeyValue)
    kv.key = key
    kv.value = value
    kv.create_revision = create_revision
    kv.mod_revision = mod_revision
    kv.version = version
    kv.lease = lease
    return kv


cdef RangeResult _parse_range(const unsigned char* p, const unsigned char* end):
    cdef uint64_t tag, v
    cdef Py_ssize_t n
    cdef ResponseHeader header = _EMPTY_HEADER
    cdef list kvs = None
    cdef bint more = False
    cdef int64_t count = 0
    cdef RangeResult r
    while p < end:
        _read_varint(&p, end, &tag)
        if tag == 0x12:
            _read_len(&p, end, &n)
            if kvs is None:
                kvs = []
            kvs.append(_parse_kv(p, p + n))
            p += n
        elif tag == 0x0A:
            _read_len(&p, end, &n)
            header = _parse_header(p, p + n)
            p += n
        elif tag == 0x18:
            _read_varint(&p, end, &v)
            more = v != 0
        elif tag == 0x20:
            _read_varint(&p, end, &v)
            count = <int64_t>v
        else:
            _skip_field(&p, end, tag, 4)
    r = RangeResult.__new__(RangeResult)
    r.header = header
    r.kvs = () if kvs is None else tuple(kvs)
    r.more = more
    r.count = count
    return r


cdef object _parse_get(const unsigned char* p, const unsigned char* end):
    """A RangeResponse read for a get: its first key-value (None without one). Every
    field is checked as :func:`_parse_range` checks it, but only that key-value becomes an
    object (a get's result has no header, count or list)."""
    cdef uint64_t tag, v
    cdef Py_ssize_t n
    cdef uint64_t header[4]
    cdef object first = None
    cdef KeyValue kv
    while p < end:
        _read_varint(&p, end, &tag)
        if tag == 0x12:
            _read_len(&p, end, &n)
            kv = _parse_kv(p, p + n)
            if first is None:
                first = kv
            p += n
        elif tag == 0x0A:
            _read_len(&p, end, &n)
            _read_header(p, p + n, header)
            p += n
        elif tag == 0x18 or tag == 0x20:
            _read_varint(&p, end, &v)
        else:
            _skip_field(&p, end, tag, 4)
    return first


cdef PutResult _parse_put(const unsigned char* p, const unsigned char* end):
    cdef uint64_t tag
    cdef Py_ssize_t n
    cdef ResponseHeader header = _EMPTY_HEADER
    cdef KeyValue prev_kv = None
    cdef PutResult r
    while p < end:
        _read_varint(&p, end, &tag)
        if tag == 0x0A:
            _read_len(&p, end, &n)
            header = _parse_header(p, p + n)
            p += n
        elif tag == 0x12:
            _read_len(&p, end, &n)
            prev_kv = _parse_kv(p, p + n)
            p += n
        else:
            _skip_field(&p, end, tag, 2)
    r = PutResult.__new__(PutResult)
    r.header = header
    r.prev_kv = prev_kv
    return r


cdef DeleteResult _parse_delete(const unsigned char* p, const unsigned char* end):
    cdef uint64_t tag, v
    cdef Py_ssize_t n
    cdef ResponseHeader header = _EMPTY_HEADER
    cdef int64_t deleted = 0
    cdef list prev_kvs = None
    cdef DeleteResult r
    while p < end:
        _read_varint(&p, end, &tag)
        if tag == 0x0A:
            _read_len(&p, end, &n)
            header = _parse_header(p, p + n)
            p += n
        elif tag == 0x10:
            _read_varint(&p, end, &v)
            deleted = <int64_t>v
        elif tag == 0x1A:
            _read_len(&p, end, &n)
            if prev_kvs is None:
                prev_kvs = []
            prev_kvs.append(_parse_kv(p, p + n))
            p += n
        else:
            _skip_field(&p, end, tag, 3)
    r = DeleteResult.__new__(DeleteResult)
    r.header = header
    r.deleted = deleted
    r.prev_kvs = () if prev_kvs is None else tuple(prev_kvs)
    return r


cdef object _parse_response_op(
    const unsigned char* p, const unsigned char* end, int depth
):
    cdef uint64_t tag
    cdef Py_ssize_t n
    cdef object result = None
    while p < end:
        _read_varint(&p, end, &tag)
        if 0x0A <= tag <= 0x22 and (tag & 7) == 2:
            _read_len(&p, end, &n)
            if tag == 0x0A:
                result = _parse_range(p, p + n)
            elif tag == 0x12:
                result = _parse_put(p, p + n)
            elif tag == 0x1A:
                result = _parse_delete(p, p + n)
            else:
                result = _parse_txn(p, p + n, depth + 1)
            p += n
        else:
            _skip_field(&p, end, tag, 4)
    if result is None:
        raise DecodeError("ResponseOp has no response set")
    return result


cdef TxnResult _parse_txn(const unsigned char* p, const unsigned char* end, int depth):
    cdef uint64_t tag, v
    cdef Py_ssize_t n
    cdef ResponseHeader header = _EMPTY_HEADER
    cdef bint succeeded = False
    cdef list responses = None
    cdef TxnResult r
    if depth > _MAX_TXN_DEPTH:
        raise DecodeError(f"TxnResponses nested more than {_MAX_TXN_DEPTH} deep")
    while p < end:
        _read_varint(&p, end, &tag)
        if tag == 0x1A:
            _read_len(&p, end, &n)
            if responses is None:
                responses = []
            responses.append(_parse_response_op(p, p + n, depth))
            p += n
        elif tag == 0x0A:
            _read_len(&p, end, &n)
            header = _parse_header(p, p + n)
            p += n
        elif tag == 0x10:
            _read_varint(&p, end, &v)
            succeeded = v != 0
        else:
            _skip_field(&p, end, tag, 3)
    r = TxnResult.__new__(TxnResult)
    r.header = header
    r.succeeded = succeeded
    r.responses = () if responses is None else tuple(responses)
    return r


cdef CompactResult _parse_compact(const unsigned char* p, const unsigned char* end):
    cdef uint64_t tag
    cdef Py_ssize_t n
    cdef ResponseHeader header = _EMPTY_HEADER
    cdef CompactResult r
    while p < end:
        _read_varint(&p, end, &tag)
        if tag == 0x0A:
            _read_len(&p, end, &n)
            header = _parse_header(p, p + n)
            p += n
        else:
            _skip_field(&p, end, tag, 1)
    r = CompactResult.__new__(CompactResult)
    r.header = header
    return r


cdef object _parse_txn_top(const unsigned char* p, const unsigned char* end):
    return _parse_txn(p, end, 1)


# -------------------- decoders


def decode_response_header(data):
    """ResponseHeader: cluster_id=1 member_id=2 (uint64) revision=3 (int64) raft_term=4
    (uint64)."""
    return _decode(data, <ResponseParser>_parse_header)


def decode_key_value(data):
    """mvccpb.KeyValue: key=1 create_revision=2 mod_revision=3 version=4 value=5
    lease=6."""
    return _decode(data, <ResponseParser>_parse_kv)


def decode_range_response(data):
    """RangeResponse: header=1 kvs=2 (repeated KeyValue) more=3 count=4 (int64)."""
    return _decode(data, <ResponseParser>_parse_range)


def decode_get_response(data):
    """A RangeResponse's first key-value, or None when it has none (the result of a
    get)."""
    return _decode(data, _parse_get)


def decode_put_response(data):
    """PutResponse: header=1 prev_kv=2."""
    return _decode(data, <ResponseParser>_parse_put)


def decode_delete_range_response(data):
    """DeleteRangeResponse: header=1 deleted=2 (int64) prev_kvs=3 (repeated
    KeyValue)."""
    return _decode(data, <ResponseParser>_parse_delete)


def decode_txn_response(data):
    """TxnResponse: header=1 succeeded=2 responses=3 (repeated ResponseOp:
    response_range=1 response_put=2 response_delete_range=3 response_txn=4)."""
    return _decode(data, _parse_txn_top)


def decode_compaction_response(data):
    """CompactionResponse: header=1."""
    return _decode(data, <ResponseParser>_parse_compact)
